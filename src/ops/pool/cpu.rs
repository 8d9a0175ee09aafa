//! CPU twin of `kernels/pool.cu`. Sequences go to rayon tasks; each `(b, f)`
//! gathers its sequence's values and reduces them with the canonical max and
//! sum (the kernel walks them in place, in the same order), so neither the
//! task split nor the thread count changes a bit.
//!
//! Letters and layout as in the kernel file: B sequences, T steps, P packed
//! rows, F features; `h`, `dh` are P x F, `out`, `dout` B x 3F, `argmax` B x F.

use crate::numerics::{canonical_nan, is_nan};
use crate::ops::reduce::cpu::{canonical_max, canonical_sum};
use rayon::prelude::*;

/// TWIN: kernels/pool.cu::pool_concat_fwd_f32. `offsets` (T) and `lengths` (B)
/// come from a checked `PackedSeq`.
pub fn pool_concat_fwd_f32(
    offsets: &[u32],
    lengths: &[u32],
    f_len: usize,
    h: &[f32],
    out: &mut [f32],
    argmax: &mut [u32],
) {
    out.par_chunks_mut(3 * f_len)
        .zip(argmax.par_chunks_mut(f_len))
        .enumerate()
        .for_each(|(b, (o, am))| {
            let n = lengths[b] as usize;
            let mut seq = vec![0.0f32; n];
            for f in 0..f_len {
                for (t, x) in seq.iter_mut().enumerate() {
                    *x = h[(offsets[t] as usize + b) * f_len + f];
                }
                let m = canonical_max(&seq);
                let at = if is_nan(m) {
                    seq.iter().position(|&v| is_nan(v))
                } else {
                    seq.iter().position(|&v| v == m)
                };
                o[f] = seq[n - 1];
                o[f_len + f] = m;
                o[2 * f_len + f] = canonical_nan(canonical_sum(&seq) / n as f32);
                am[f] = at.unwrap_or(0) as u32;
            }
        });
}

/// TWIN: kernels/pool.cu::pool_concat_bwd_f32. `row_step` (P) from the same
/// `PackedSeq`.
#[allow(clippy::too_many_arguments)] // the kernel's arguments, in its order
pub fn pool_concat_bwd_f32(
    offsets: &[u32],
    lengths: &[u32],
    row_step: &[u32],
    argmax: &[u32],
    f_len: usize,
    dout: &[f32],
    dh: &mut [f32],
) {
    dh.par_chunks_mut(f_len).enumerate().for_each(|(r, row)| {
        let t = row_step[r];
        let b = r - offsets[t as usize] as usize;
        let n = lengths[b];
        let d = &dout[b * 3 * f_len..(b + 1) * 3 * f_len];
        for (f, out) in row.iter_mut().enumerate() {
            let mut g = d[2 * f_len + f] / n as f32;
            if argmax[b * f_len + f] == t {
                g += d[f_len + f];
            }
            if t == n - 1 {
                g += d[f];
            }
            *out = canonical_nan(g);
        }
    });
}
