//! Raw Philox4x32-10 blocks on any device.
//!
//! # Numerics
//! Integer-only. Block `base + i` (a 64-bit add on the block index words; stream
//! and step untouched) is `philox4x32_10(counter, key)` as Random123 defines it;
//! `out[4*i + w]` is its word `w`. Bit-identical on every device by construction
//! and checked against Random123's known-answer vectors (`tests/philox.rs`).

pub mod cpu;
pub mod cuda;

use crate::device::{Device, DeviceBuffer, ViewMut};
use crate::error::{Error, Result};

pub use crate::rng::{PhiloxCounter, PhiloxKey};

/// Writes `n_blocks` Philox blocks from counter `base` into `out` (length
/// `4 * n_blocks`) on `out`'s device.
/// Overwrites `out`.
pub fn philox_blocks_u32<'a>(
    device: &Device,
    key: PhiloxKey,
    base: PhiloxCounter,
    n_blocks: u64,
    out: impl Into<ViewMut<'a, u32>>,
) -> Result<()> {
    philox_blocks_u32_with_shape(device, key, base, n_blocks, out, cuda::DEFAULT_SHAPE)
}

/// [`philox_blocks_u32`] with an explicit launch shape `(threads per block,
/// most blocks)` for Cuda and Sim (ignored on Cpu). Tests vary it to show that
/// the shape never changes the bits.
pub fn philox_blocks_u32_with_shape<'a>(
    device: &Device,
    key: PhiloxKey,
    base: PhiloxCounter,
    n_blocks: u64,
    out: impl Into<ViewMut<'a, u32>>,
    shape: (u32, u32),
) -> Result<()> {
    let mut out = out.into();
    const OP: &str = "philox_blocks_u32";
    let words = n_blocks
        .checked_mul(4)
        .and_then(|w| usize::try_from(w).ok())
        .ok_or_else(|| Error::invalid(OP, format!("{n_blocks} blocks do not fit in memory")))?;
    out.check(OP, "out", device, words)?;
    // The last block, base + n - 1, must still fit in the 64-bit block index.
    if n_blocks > 0 && base.block().checked_add(n_blocks - 1).is_none() {
        return Err(Error::invalid(
            OP,
            format!(
                "blocks {}..+{n_blocks} run past the 64-bit block index (the stream word would change)",
                base.block()
            ),
        ));
    }
    match device {
        Device::Cpu => {
            let out = out.host_mut(OP)?;
            cpu::philox_blocks_u32(key, base, out);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::philox_blocks_u32(device, key, base, n_blocks, out, shape)
        }
    }
}

/// Convenience: a new buffer of `n_blocks` blocks.
pub fn philox_blocks(
    device: &Device,
    key: PhiloxKey,
    base: PhiloxCounter,
    n_blocks: u64,
) -> Result<DeviceBuffer<u32>> {
    let words = usize::try_from(n_blocks.saturating_mul(4))
        .map_err(|_| Error::invalid("philox_blocks", "too many blocks"))?;
    let mut out = DeviceBuffer::zeros(device, words)?;
    philox_blocks_u32(device, key, base, n_blocks, &mut out)?;
    Ok(out)
}

/// `n` floats uniform in `[-scale, scale)` drawn on the CPU from the blocks
/// at `base`: each word's top 24 bits become a multiple of 2^-24 exactly, then
/// `(u * 2 - 1) * scale`. For tests and `verify` inputs, so that every family
/// draws its random inputs the same way.
pub fn uniform_floats(
    key: PhiloxKey,
    base: PhiloxCounter,
    n: usize,
    scale: f32,
) -> Result<Vec<f32>> {
    let words = philox_blocks(&Device::Cpu, key, base, n.div_ceil(4) as u64)?.copy_dtoh()?;
    Ok(words[..n]
        .iter()
        .map(|&w| ((w >> 8) as f32 * (1.0 / 16_777_216.0) * 2.0 - 1.0) * scale)
        .collect())
}

/// `shoestring verify`: `2^20`-ish blocks from a counter whose block index
/// carries across 2^32, on `device` against the CPU twin.
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    let key = PhiloxKey::from_seed(0x5eed_0123_4567_89ab);
    let base = PhiloxCounter::new((1 << 32) - 1000, 0x0501, 7);
    let n_blocks = (elements / 4).max(1) as u64;
    let want = philox_blocks(&Device::Cpu, key, base, n_blocks)?.copy_dtoh()?;
    let got = philox_blocks(device, key, base, n_blocks)?.copy_dtoh()?;
    Ok(crate::verify::compare_bits(
        "philox",
        "philox_blocks_u32",
        &want,
        &got,
    ))
}
