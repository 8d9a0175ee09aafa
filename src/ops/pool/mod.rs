//! Masked concat pooling over time on packed sequences: for every sequence,
//! `[output at its last real step | max over its real steps | mean over its
//! real steps]` (fastai's `masked_concat_pool`, the classifier head's input).
//! Padding does not exist in the packed layout ([`PackedSeq`]), so it can
//! never reach a max or a mean.
//!
//! Letters: `B` sequences, `T` steps, `P` packed positions, `F` features;
//! `h` and `dh` are `P x F`, `out` and `dout` are `B x 3F`, `argmax` is `B x F`
//! (the step each max came from, for the backward).
//!
//! # Numerics
//! Exact tier (`docs/numerics/pool.md`), the same bits on Cpu, Sim and Cuda:
//! - last: a bit copy of `h` at step `len_b - 1`;
//! - max: the canonical max over the `len_b` steps (DESIGN.md rule 3), NaN if
//!   any is NaN; `argmax` the smallest step equal to it (the first NaN);
//! - mean: the canonical sum over the steps, then one IEEE division by `len_b`.
//! - Backward, per position and feature, in this order: `g = d_mean / len`,
//!   `+ d_max` if it is the argmax step, `+ d_last` if it is the last step.
//!   Every position's gradient is written once: no accumulation order exists
//!   across positions, no atomics.

pub mod cpu;
pub mod cuda;

use crate::device::abi::ss_pool_params;
use crate::device::{Device, DeviceBuffer, View, ViewMut};
use crate::error::{Error, Result};
use crate::seq::PackedSeq;

/// The kernel parameters of a layout and feature count, after the checks
/// every device shares.
fn params(op: &'static str, device: &Device, seq: &PackedSeq, f: usize) -> Result<ss_pool_params> {
    if !seq.device().same_as(device) {
        return Err(Error::DeviceMismatch {
            op,
            name: "seq",
            got: seq.device().to_string(),
            expected: device.to_string(),
        });
    }
    let features = u32::try_from(f)
        .ok()
        .filter(|_| seq.total().checked_mul(3 * f).is_some_and(|n| n < 1 << 40))
        .ok_or_else(|| Error::invalid(op, format!("{f} features do not fit")))?;
    if seq.steps() > crate::ops::reduce::cpu::CHUNK * crate::ops::reduce::cpu::CHUNK {
        return Err(Error::invalid(op, "sequences longer than 2^28 steps"));
    }
    Ok(ss_pool_params {
        batch: seq.batch() as u32,
        steps: seq.steps() as u32,
        total: seq.total() as u32,
        features,
    })
}

/// Forward: `out[b] = [h[last_b] | max_t h[t, b] | mean_t h[t, b]]` over the
/// real steps of sequence `b`; `argmax[b, f]` records the max's step.
/// `h` holds `P * f` floats, `out` `B * 3f`, `argmax` `B * f`.
/// Overwrites `out` and `argmax`.
pub fn pool_concat_fwd<'a>(
    device: &Device,
    seq: &PackedSeq,
    f: usize,
    h: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
    argmax: impl Into<ViewMut<'a, u32>>,
) -> Result<()> {
    const OP: &str = "pool_concat_fwd";
    let (h, mut out, mut argmax) = (h.into(), out.into(), argmax.into());
    let p = params(OP, device, seq, f)?;
    h.check(OP, "h", device, seq.total() * f)?;
    out.check(OP, "out", device, seq.batch() * 3 * f)?;
    argmax.check(OP, "argmax", device, seq.batch() * f)?;
    if f == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            let (offsets, lengths) = (seq.offsets_view().host(OP)?, seq.lengths_view().host(OP)?);
            cpu::pool_concat_fwd_f32(
                offsets,
                lengths,
                f,
                h.host(OP)?,
                out.host_mut(OP)?,
                argmax.host_mut(OP)?,
            );
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::pool_concat_fwd_f32(device, &p, seq, h, out, argmax)
        }
    }
}

/// Backward: `dh` (`P * f`) from `dout` (`B * 3f`) and the forward's
/// `argmax`. Overwrites `dh`.
pub fn pool_concat_bwd<'a>(
    device: &Device,
    seq: &PackedSeq,
    f: usize,
    argmax: impl Into<View<'a, u32>>,
    dout: impl Into<View<'a, f32>>,
    dh: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP: &str = "pool_concat_bwd";
    let (argmax, dout, mut dh) = (argmax.into(), dout.into(), dh.into());
    let p = params(OP, device, seq, f)?;
    argmax.check(OP, "argmax", device, seq.batch() * f)?;
    dout.check(OP, "dout", device, seq.batch() * 3 * f)?;
    dh.check(OP, "dh", device, seq.total() * f)?;
    if f == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            cpu::pool_concat_bwd_f32(
                seq.offsets_view().host(OP)?,
                seq.lengths_view().host(OP)?,
                seq.row_step_view().host(OP)?,
                argmax.host(OP)?,
                f,
                dout.host(OP)?,
                dh.host_mut(OP)?,
            );
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::pool_concat_bwd_f32(device, &p, seq, argmax, dout, dh)
        }
    }
}

/// `shoestring verify`: forward (out and argmax) and backward on `device`
/// against the CPU twin, for ragged lengths, with ties, signed zeros, an
/// infinity and a NaN among the values.
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    use crate::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
    let f = 19;
    let batch = (elements / (40 * f)).clamp(3, 64);
    let lengths: Vec<usize> = (0..batch).map(|b| 1 + (batch - b) * 61 % 80).collect();
    let mut lengths = lengths;
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    let total: usize = lengths.iter().sum();
    let key = PhiloxKey::from_seed(0x9001_0001);
    let mut h = uniform_floats(key, PhiloxCounter::new(0, 1, 0), total * f, 3.0)?;
    // Coarse values make ties; a few specials.
    for x in h.iter_mut().step_by(3) {
        *x = (*x * 2.0).round() * 0.5;
    }
    h[5] = -0.0;
    h[7] = f32::INFINITY;
    h[2 * f + 1] = f32::NAN;
    let dout = uniform_floats(key, PhiloxCounter::new(0, 2, 0), batch * 3 * f, 1.0)?;
    let run = |d: &Device| -> Result<Vec<u32>> {
        let seq = PackedSeq::new(d, &lengths)?;
        let hb = DeviceBuffer::copy_htod(d, &h)?;
        let mut out = DeviceBuffer::zeros(d, batch * 3 * f)?;
        let mut am = DeviceBuffer::zeros(d, batch * f)?;
        pool_concat_fwd(d, &seq, f, &hb, &mut out, &mut am)?;
        let db = DeviceBuffer::copy_htod(d, &dout)?;
        let mut dh = DeviceBuffer::zeros(d, total * f)?;
        pool_concat_bwd(d, &seq, f, &am, &db, &mut dh)?;
        let mut bits: Vec<u32> = out.copy_dtoh()?.iter().map(|x| x.to_bits()).collect();
        bits.extend(am.copy_dtoh()?);
        bits.extend(dh.copy_dtoh()?.iter().map(|x| x.to_bits()));
        Ok(bits)
    };
    Ok(crate::verify::compare_bits(
        "pool",
        "pool_concat_fwd_f32 + pool_concat_bwd_f32",
        &run(&Device::Cpu)?,
        &run(device)?,
    ))
}
