//! Embedding: gather forward and deterministic scatter-add backward.
//!
//! Letters: `V` weight rows, `E` columns, `N` positions (`T*B`, time-major).
//! `W` is `V x E` row-major, `ids` has `N` token ids, `out`/`dy` are `N x E`.
//!
//! # Numerics
//! - Forward copies bits: `out[t, c] = W[ids[t], c]`. NaN payloads, signed
//!   zeros and subnormals pass through unchanged on every device.
//! - Backward accumulates (`+=`, like every parameter gradient): for each
//!   `(v, c)`, `acc = dW[v, c]`, then `acc = acc + dy[t, c]` for every `t` with
//!   `ids[t] == v` in **increasing `t`**, then `dW[v, c] = acc` (DESIGN.md rule 6).
//!   Rows no position names are untouched. The GPU sorts the unique keys
//!   `ids[t] << 32 | t` and runs one fixed-order segmented sum per `(v, c)`; no
//!   atomics on floats. Bits do not depend on launch shape or thread count.
//! - An id `>= V` is reported through the step's [`Status`] block, never read
//!   back here: bit `SS_STATUS_BAD_ID`, the first bad position and the count
//!   ([`StatusReport::check_inputs`](crate::status::StatusReport::check_inputs)
//!   turns them into one error, the same text on every device). Once that bit
//!   is set, forward and backward leave their outputs untouched.
//!
//! See `docs/numerics/embedding.md`.

pub mod cpu;
pub mod cuda;

use crate::device::abi::SS_STATUS_BAD_ID;
use crate::device::{Device, View, ViewMut};
use crate::error::{Error, Result};
use crate::status::Status;
pub use cuda::DEFAULT_SHAPE;

/// `rows * cols` elements, or an error naming the op.
fn elements(op: &'static str, rows: usize, cols: usize, what: &str) -> Result<usize> {
    rows.checked_mul(cols)
        .ok_or_else(|| Error::invalid(op, format!("{what}: {rows} x {cols} overflows usize")))
}

/// Checks shared by forward and backward; returns `N`.
fn check_ids_len(op: &'static str, device: &Device, ids: View<'_, u32>) -> Result<usize> {
    let n = ids.len();
    if n as u64 >= u64::from(u32::MAX) {
        return Err(Error::invalid(
            op,
            format!("{n} positions: at most 2^32 - 2 are supported (positions are u32)"),
        ));
    }
    ids.check(op, "ids", device, n)?;
    Ok(n)
}

/// `out[t, :] = weights[ids[t], :]` for `t < N = ids.len()`; `weights` holds
/// `v * e` values, `out` holds `N * e`. Out-of-range ids go to `status`.
/// Overwrites `out` (unless a bad id was reported in this step).
#[allow(clippy::too_many_arguments)] // the kernel's buffers, dims and the status block
pub fn embedding_fwd<'a>(
    device: &Device,
    weights: impl Into<View<'a, f32>>,
    v: usize,
    e: usize,
    ids: impl Into<View<'a, u32>>,
    out: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
) -> Result<()> {
    embedding_fwd_with_shape(device, weights, v, e, ids, out, status, DEFAULT_SHAPE)
}

/// [`embedding_fwd`] with an explicit launch shape `(threads per block, most
/// blocks)` for Cuda and Sim (ignored on Cpu). Tests vary it to show that the
/// shape never changes the bits.
#[allow(clippy::too_many_arguments)]
pub fn embedding_fwd_with_shape<'a>(
    device: &Device,
    weights: impl Into<View<'a, f32>>,
    v: usize,
    e: usize,
    ids: impl Into<View<'a, u32>>,
    out: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
    shape: (u32, u32),
) -> Result<()> {
    let weights = weights.into();
    let ids = ids.into();
    let mut out = out.into();
    const OP: &str = "embedding_fwd";
    let n = check_ids_len(OP, device, ids)?;
    weights.check(OP, "weights", device, elements(OP, v, e, "weights")?)?;
    out.check(OP, "out", device, elements(OP, n, e, "out")?)?;
    status.check(OP, device)?;
    match device {
        Device::Cpu => {
            let (w, ids, out) = (weights.host(OP)?, ids.host(OP)?, out.host_mut(OP)?);
            let words = status.host_words_mut(OP)?;
            cpu::embedding_check_ids_u32(ids, v, words);
            if words[crate::device::abi::SS_STATUS_FLAGS as usize] & SS_STATUS_BAD_ID == 0 {
                cpu::embedding_fwd_f32(w, e, ids, out);
            }
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::embedding_fwd_f32(device, weights, (v, e), ids, out, status.words_mut(), shape)
        }
    }
}

/// `dweights[ids[t], :] += dy[t, :]` for `t < N = ids.len()`, each `(v, c)` summed
/// in increasing `t` starting from its current value; `dy` holds `N * e`
/// values, `dweights` holds `v * e`. Out-of-range ids go to `status`.
/// Accumulates into `dweights` (`+=`; untouched if a bad id was reported).
#[allow(clippy::too_many_arguments)]
pub fn embedding_bwd<'a>(
    device: &Device,
    dy: impl Into<View<'a, f32>>,
    ids: impl Into<View<'a, u32>>,
    v: usize,
    e: usize,
    dweights: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
) -> Result<()> {
    embedding_bwd_with_shape(device, dy, ids, v, e, dweights, status, DEFAULT_SHAPE)
}

/// [`embedding_bwd`] with an explicit launch shape (see [`embedding_fwd_with_shape`]).
#[allow(clippy::too_many_arguments)]
pub fn embedding_bwd_with_shape<'a>(
    device: &Device,
    dy: impl Into<View<'a, f32>>,
    ids: impl Into<View<'a, u32>>,
    v: usize,
    e: usize,
    dweights: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
    shape: (u32, u32),
) -> Result<()> {
    let dy = dy.into();
    let ids = ids.into();
    let mut dweights = dweights.into();
    const OP: &str = "embedding_bwd";
    let n = check_ids_len(OP, device, ids)?;
    dy.check(OP, "dy", device, elements(OP, n, e, "dy")?)?;
    dweights.check(OP, "dweights", device, elements(OP, v, e, "dweights")?)?;
    status.check(OP, device)?;
    match device {
        Device::Cpu => {
            let (dy, ids, dw) = (dy.host(OP)?, ids.host(OP)?, dweights.host_mut(OP)?);
            let words = status.host_words_mut(OP)?;
            cpu::embedding_check_ids_u32(ids, v, words);
            if words[crate::device::abi::SS_STATUS_FLAGS as usize] & SS_STATUS_BAD_ID == 0 {
                let mut keys = cpu::embedding_sort_keys_init_u64(ids);
                cpu::embedding_sort_keys(&mut keys);
                cpu::embedding_bwd_f32(&keys, dy, e, dw);
            }
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::embedding_bwd_f32(device, dy, ids, (v, e), dweights, status.words_mut(), shape)
        }
    }
}

/// `shoestring verify`: forward and backward on `device` against the CPU twin,
/// on Philox-drawn weights, ids and gradients. Forward weights include NaNs with
/// payloads, infinities, signed zeros and subnormals (a gather copies bits);
/// backward uses finite values of mixed magnitude, including subnormals and
/// `-0.0`, and a skewed id distribution so some tokens repeat many times.
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    use crate::device::DeviceBuffer;
    use crate::ops::philox::{philox_blocks, PhiloxCounter, PhiloxKey};
    let key = PhiloxKey::from_seed(0xe4b_ed00_0000_0001);
    let e = 37usize; // ragged on purpose
    let n = (elements / e).max(1);
    let v = 1000usize;
    let draw = |stream: u32, words: usize| -> Result<Vec<u32>> {
        let blocks = words.div_ceil(4) as u64;
        let mut w = philox_blocks(&Device::Cpu, key, PhiloxCounter::new(0, stream, 0), blocks)?
            .copy_dtoh()?;
        w.truncate(words);
        Ok(w)
    };
    // Ids: half uniform over V, half squeezed onto the first 8 tokens.
    let ids: Vec<u32> = draw(1, n)?
        .into_iter()
        .map(|r| {
            if r & 1 == 0 {
                (r >> 1) % v as u32
            } else {
                (r >> 1) % 8
            }
        })
        .collect();
    let specials = [f32::NAN, -f32::NAN, f32::INFINITY, -0.0, 1e-45, -1e-40];
    let finite = |r: u32| -> f32 {
        // Sign, a mantissa and a biased exponent in 0..=140 (subnormals included).
        f32::from_bits((r & 0x807f_ffff) | (((r >> 23) % 141) << 23))
    };
    let w_host: Vec<f32> = draw(2, v * e)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if i % 97 == 0 {
                specials[(r % 6) as usize]
            } else {
                finite(r)
            }
        })
        .collect();
    let dy_host: Vec<f32> = draw(3, n * e)?.into_iter().map(finite).collect();
    let dw0: Vec<f32> = draw(4, v * e)?.into_iter().map(finite).collect();

    let run = |dev: &Device| -> Result<(Vec<f32>, Vec<f32>)> {
        let w = DeviceBuffer::copy_htod(dev, &w_host)?;
        let ids = DeviceBuffer::copy_htod(dev, &ids)?;
        let mut out = DeviceBuffer::zeros(dev, n * e)?;
        let mut status = Status::new(dev)?;
        embedding_fwd(dev, &w, v, e, &ids, &mut out, &mut status)?;
        let dy = DeviceBuffer::copy_htod(dev, &dy_host)?;
        let mut dw = DeviceBuffer::copy_htod(dev, &dw0)?;
        embedding_bwd(dev, &dy, &ids, v, e, &mut dw, &mut status)?;
        status.read()?.check_inputs()?;
        Ok((out.copy_dtoh()?, dw.copy_dtoh()?))
    };
    let (want_fwd, want_bwd) = run(&Device::Cpu)?;
    let (got_fwd, got_bwd) = run(device)?;
    let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let fwd = crate::verify::compare_bits(
        "embedding",
        "embedding_fwd_f32",
        &bits(&want_fwd),
        &bits(&got_fwd),
    );
    let bwd = crate::verify::compare_bits(
        "embedding",
        "embedding_bwd_f32",
        &bits(&want_bwd),
        &bits(&got_bwd),
    );
    Ok(fwd.merge(bwd))
}
