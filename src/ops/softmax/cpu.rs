//! CPU twin of `kernels/softmax.cu`: the same f32 operations in the same
//! order. Rows go to rayon tasks (several short rows per task); a row's bits
//! depend on the row alone, and the batch loss is one canonical sum over the
//! per-row values in row order, so the pool size never changes the bits.
//! Each task runs in the widest SIMD build the CPU allows
//! ([`crate::simd_dispatch`]; the same bits every way, DESIGN.md rule 1).

use crate::detmath::{exp, log};
use crate::device::abi::{
    SS_STATUS_BAD_LABEL, SS_STATUS_BAD_LABEL_FIRST, SS_STATUS_FLAGS, SS_STATUS_LOSS,
    SS_STATUS_NONFINITE_LOSS,
};
use crate::numerics::{canonical_nan, is_finite, CANONICAL_NAN_BITS};
use crate::ops::reduce::cpu::{canonical_max, canonical_sum, CHUNK};
use rayon::prelude::*;

/// Rows per rayon task: about one chunk of elements, at least one row. Not
/// part of the numerics (any value gives the same bits).
fn rows_per_task(cols: usize) -> usize {
    (CHUNK / cols.max(1)).max(1)
}

/// One row's log-softmax into `yr`; returns `(m, ls)`. `yr` first holds the
/// `exp(x_j - m)` terms that the sum reads, then the result.
/// TWIN: kernels/softmax.cu::ss_softmax_log_row
#[inline(always)]
pub fn log_softmax_row(xr: &[f32], yr: &mut [f32]) -> (f32, f32) {
    let m = canonical_max(xr);
    for (e, &xj) in yr.iter_mut().zip(xr) {
        *e = exp(xj - m);
    }
    let s = canonical_sum(yr);
    let ls = log(s);
    for (yj, &xj) in yr.iter_mut().zip(xr) {
        *yj = canonical_nan((xj - m) - ls);
    }
    (m, ls)
}

/// Rows of one rayon task. TWIN: kernels/softmax.cu::softmax_log_fwd_f32 (one block's rows)
#[inline(always)]
fn log_softmax_task(xs: &[f32], cols: usize, ys: &mut [f32]) {
    for (yr, xr) in ys.chunks_exact_mut(cols).zip(xs.chunks_exact(cols)) {
        log_softmax_row(xr, yr);
    }
}

crate::simd_dispatch! {
    /// [`log_softmax_task`] in the widest build the CPU allows.
    fn log_softmax_task_widest(xs: &[f32], cols: usize, ys: &mut [f32]) => log_softmax_task
}

/// `y = log_softmax(x)` over rows of `cols` (`cols >= 1`, `x.len() == y.len()`,
/// a multiple of `cols`). TWIN: kernels/softmax.cu::softmax_log_fwd_f32
pub fn log_softmax_rows(x: &[f32], cols: usize, y: &mut [f32]) {
    let per = rows_per_task(cols);
    y.par_chunks_mut(per * cols)
        .zip(x.par_chunks(per * cols))
        .for_each(|(ys, xs)| log_softmax_task_widest(xs, cols, ys));
}

/// The labels' check: for the smallest row `r` whose label is not below
/// `cols`, the status block's bad-label bit and `u32::MAX - r` (max-combined,
/// as the kernels' atomicMax does). TWIN: the label checks of
/// kernels/softmax.cu::softmax_xent_fwd_f32 and softmax_xent_bwd_f32.
pub fn check_labels(labels: &[u32], cols: usize, status: &mut [u32]) {
    if let Some(r) = labels.iter().position(|&l| l as usize >= cols) {
        status[SS_STATUS_FLAGS as usize] |= SS_STATUS_BAD_LABEL;
        let w = &mut status[SS_STATUS_BAD_LABEL_FIRST as usize];
        *w = (*w).max(u32::MAX - r as u32);
    }
}

/// TWIN: kernels/softmax.cu::softmax_xent_fwd_f32 (one block's rows)
#[inline(always)]
fn xent_task(xs: &[f32], labels: &[u32], cols: usize, ys: &mut [f32], nll: &mut [f32]) {
    let rows = ys.chunks_exact_mut(cols).zip(xs.chunks_exact(cols));
    for ((yr, xr), (n, &label)) in rows.zip(nll.iter_mut().zip(labels)) {
        log_softmax_row(xr, yr);
        // -y: the same bits the kernel gets by recomputing y's operations; a
        // label out of range gives NaN, as in the kernel.
        *n = match yr.get(label as usize) {
            Some(&y) => canonical_nan(-y),
            None => f32::from_bits(CANONICAL_NAN_BITS),
        };
    }
}

crate::simd_dispatch! {
    /// [`xent_task`] in the widest build the CPU allows.
    fn xent_task_widest(xs: &[f32], labels: &[u32], cols: usize, ys: &mut [f32], nll: &mut [f32]) => xent_task
}

/// `y = log_softmax(x)` and `nll[r] = -y[r, labels[r]]` (NaN for a label out
/// of range). TWIN: kernels/softmax.cu::softmax_xent_fwd_f32
pub fn xent_rows(x: &[f32], labels: &[u32], cols: usize, y: &mut [f32], nll: &mut [f32]) {
    let per = rows_per_task(cols);
    y.par_chunks_mut(per * cols)
        .zip(x.par_chunks(per * cols))
        .zip(nll.par_chunks_mut(per).zip(labels.par_chunks(per)))
        .for_each(|((ys, xs), (ns, ls))| xent_task_widest(xs, ls, cols, ys, ns));
}

/// `loss = canonical_sum(nll) / (R as f32)`, one IEEE f32 division (R < 2^24,
/// so `R as f32` is exact), into `loss` and the status block's loss word; a
/// non-finite loss sets its bit. TWIN: kernels/softmax.cu::softmax_xent_loss_f32
pub fn mean_loss(nll: &[f32], loss: &mut f32, status: &mut [u32]) {
    let l = canonical_nan(canonical_sum(nll) / nll.len() as f32);
    *loss = l;
    status[SS_STATUS_LOSS as usize] = l.to_bits();
    if !is_finite(l) {
        status[SS_STATUS_FLAGS as usize] |= SS_STATUS_NONFINITE_LOSS;
    }
}

/// TWIN: kernels/softmax.cu::softmax_xent_bwd_f32 (the elements of these rows)
#[inline(always)]
fn xent_bwd_task(ys: &[f32], labels: &[u32], cols: usize, gscale: f32, ds: &mut [f32]) {
    let rows = ds.chunks_exact_mut(cols).zip(ys.chunks_exact(cols));
    for ((dr, yr), &label) in rows.zip(labels) {
        for (d, &yj) in dr.iter_mut().zip(yr) {
            *d = canonical_nan(exp(yj) * gscale);
        }
        // The label's column: exp(y) - 1 first, then the same multiply.
        if let Some(d) = dr.get_mut(label as usize) {
            let q = exp(yr[label as usize]) - 1.0;
            *d = canonical_nan(q * gscale);
        }
    }
}

crate::simd_dispatch! {
    /// [`xent_bwd_task`] in the widest build the CPU allows.
    fn xent_bwd_task_widest(ys: &[f32], labels: &[u32], cols: usize, gscale: f32, ds: &mut [f32]) => xent_bwd_task
}

/// `dx[r, j] = (exp(y[r, j]) - onehot) * gscale`: off the label `exp(y) - 0`
/// is `exp(y)` exactly (exp never returns -0), so only the label's column
/// subtracts; then one multiply (no fma). TWIN: kernels/softmax.cu::softmax_xent_bwd_f32
pub fn xent_bwd(y: &[f32], labels: &[u32], cols: usize, gscale: f32, dx: &mut [f32]) {
    let per = rows_per_task(cols);
    dx.par_chunks_mut(per * cols)
        .zip(y.par_chunks(per * cols))
        .zip(labels.par_chunks(per))
        .for_each(|((ds, ys), ls)| xent_bwd_task_widest(ys, ls, cols, gscale, ds));
}
