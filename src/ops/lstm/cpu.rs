//! CPU twin of `kernels/lstm.cu`. Rows are split into tasks of whole rows over
//! rayon; each unit `(b, j)` is computed from its own inputs only, so neither
//! the task size nor the thread count can change a bit. Each task runs in the
//! widest SIMD build the CPU allows ([`crate::simd_dispatch`]: AVX-512F,
//! AVX2 + FMA or portable; the same bits every way).
//!
//! Dimension letters and layouts as in the kernel file: B rows, H hidden units;
//! `gates`, `act`, `dgates` are B x 4H with blocks `[i | f | g | o]`; the rest B x H.

use crate::detmath::{sigmoid, tanh};
use crate::numerics::canonical_nan;
use rayon::prelude::*;

/// Units per rayon task (rounded to whole rows, at least one row). Not part of
/// the numerics: any value gives the same bits.
const UNITS_PER_TASK: usize = 16 * 1024;

fn rows_per_task(hidden: usize) -> usize {
    (UNITS_PER_TASK / hidden).max(1)
}

/// TWIN: kernels/lstm.cu::lstm_cell_fwd_f32. `hidden = H`; B is
/// `c.len() / H`. Lengths are checked by the caller (mod.rs): `gates`, `act`
/// hold 4BH, `c_prev`, `c`, `h` hold BH.
pub fn lstm_cell_fwd_f32(
    hidden: usize,
    gates: &[f32],
    c_prev: &[f32],
    c: &mut [f32],
    h: &mut [f32],
    act: &mut [f32],
) {
    if hidden == 0 || c.is_empty() {
        return;
    }
    let rows = rows_per_task(hidden);
    c.par_chunks_mut(rows * hidden)
        .zip(h.par_chunks_mut(rows * hidden))
        .zip(act.par_chunks_mut(rows * 4 * hidden))
        .enumerate()
        .for_each(|(task, ((c, h), act))| {
            let u0 = task * rows * hidden; // first unit of the task
            let gates = &gates[4 * u0..4 * u0 + act.len()];
            let c_prev = &c_prev[u0..u0 + c.len()];
            fwd_rows_dispatch(hidden, gates, c_prev, c, h, act);
        });
}

crate::simd_dispatch! {
    /// [`fwd_rows`] in the widest build the CPU allows.
    fn fwd_rows_dispatch(hidden: usize, gates: &[f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32], act: &mut [f32]) => fwd_rows
}

/// Whole rows of the forward pass, in the kernel's per-unit order.
#[inline(always)]
fn fwd_rows(
    hidden: usize,
    gates: &[f32],
    c_prev: &[f32],
    c: &mut [f32],
    h: &mut [f32],
    act: &mut [f32],
) {
    let rows = gates
        .chunks_exact(4 * hidden)
        .zip(act.chunks_exact_mut(4 * hidden))
        .zip(c_prev.chunks_exact(hidden))
        .zip(c.chunks_exact_mut(hidden).zip(h.chunks_exact_mut(hidden)));
    for (((gates, act), c_prev), (c, h)) in rows {
        let (gi, rest) = gates.split_at(hidden);
        let (gf, rest) = rest.split_at(hidden);
        let (gg, go) = rest.split_at(hidden);
        let (ai, rest) = act.split_at_mut(hidden);
        let (af, rest) = rest.split_at_mut(hidden);
        let (ag, ao) = rest.split_at_mut(hidden);
        // Every slice re-cut to `hidden`: with the lengths known equal, the
        // bounds checks go; with the slices as the dispatch function's
        // arguments (not captured), the loop vectorises.
        let (gi, gf, gg, go) = (&gi[..hidden], &gf[..hidden], &gg[..hidden], &go[..hidden]);
        let (ai, af, ag, ao) = (
            &mut ai[..hidden],
            &mut af[..hidden],
            &mut ag[..hidden],
            &mut ao[..hidden],
        );
        let (c_prev, c, h) = (&c_prev[..hidden], &mut c[..hidden], &mut h[..hidden]);
        for j in 0..hidden {
            let i = sigmoid(gi[j]);
            let f = sigmoid(gf[j]);
            let g = tanh(gg[j]);
            let o = sigmoid(go[j]);
            let ig = i * g;
            let ct = f.mul_add(c_prev[j], ig);
            c[j] = canonical_nan(ct);
            h[j] = canonical_nan(o * tanh(ct));
            ai[j] = i;
            af[j] = f;
            ag[j] = g;
            ao[j] = o;
        }
    }
}

/// TWIN: kernels/lstm.cu::lstm_cell_bwd_f32. `hidden = H`; B is
/// `dc_prev.len() / H`. Lengths are checked by the caller (mod.rs): `act`,
/// `dgates` hold 4BH, `dh`, `dc`, `c_prev`, `c`, `dc_prev` hold BH.
#[allow(clippy::too_many_arguments)] // the kernel's argument list, in its order
pub fn lstm_cell_bwd_f32(
    hidden: usize,
    dh: &[f32],
    dc: &[f32],
    act: &[f32],
    c_prev: &[f32],
    c: &[f32],
    dgates: &mut [f32],
    dc_prev: &mut [f32],
) {
    if hidden == 0 || dc_prev.is_empty() {
        return;
    }
    let rows = rows_per_task(hidden);
    dgates
        .par_chunks_mut(rows * 4 * hidden)
        .zip(dc_prev.par_chunks_mut(rows * hidden))
        .enumerate()
        .for_each(|(task, (dgates, dc_prev))| {
            let u0 = task * rows * hidden;
            let n = dc_prev.len();
            let ins = BwdInputs {
                dh: &dh[u0..u0 + n],
                dc: &dc[u0..u0 + n],
                act: &act[4 * u0..4 * u0 + 4 * n],
                c_prev: &c_prev[u0..u0 + n],
                c: &c[u0..u0 + n],
            };
            bwd_rows_dispatch(hidden, &ins, dgates, dc_prev);
        });
}

crate::simd_dispatch! {
    /// [`bwd_rows`] in the widest build the CPU allows.
    fn bwd_rows_dispatch(hidden: usize, x: &BwdInputs<'_>, dgates: &mut [f32], dc_prev: &mut [f32]) => bwd_rows
}

/// One task's slices of the backward inputs.
struct BwdInputs<'a> {
    dh: &'a [f32],
    dc: &'a [f32],
    act: &'a [f32],
    c_prev: &'a [f32],
    c: &'a [f32],
}

/// Whole rows of the backward pass, in the kernel's per-unit order.
#[inline(always)]
fn bwd_rows(hidden: usize, x: &BwdInputs<'_>, dgates: &mut [f32], dc_prev: &mut [f32]) {
    let rows = x
        .act
        .chunks_exact(4 * hidden)
        .zip(dgates.chunks_exact_mut(4 * hidden))
        .zip(dc_prev.chunks_exact_mut(hidden))
        .enumerate();
    for (r, ((act, dgates), dc_prev)) in rows {
        let u = r * hidden..(r + 1) * hidden;
        let (dh, dc, cp, cc) = (
            &x.dh[u.clone()],
            &x.dc[u.clone()],
            &x.c_prev[u.clone()],
            &x.c[u],
        );
        let (ai, rest) = act.split_at(hidden);
        let (af, rest) = rest.split_at(hidden);
        let (ag, ao) = rest.split_at(hidden);
        let (di_out, rest) = dgates.split_at_mut(hidden);
        let (df_out, rest) = rest.split_at_mut(hidden);
        let (dg_out, do_out) = rest.split_at_mut(hidden);
        // As in `fwd_rows`: lengths known equal, so the loop vectorises.
        let (ai, af, ag, ao) = (&ai[..hidden], &af[..hidden], &ag[..hidden], &ao[..hidden]);
        let (di_out, df_out) = (&mut di_out[..hidden], &mut df_out[..hidden]);
        let (dg_out, do_out) = (&mut dg_out[..hidden], &mut do_out[..hidden]);
        let (dh, dc, cp, cc) = (&dh[..hidden], &dc[..hidden], &cp[..hidden], &cc[..hidden]);
        let dc_prev = &mut dc_prev[..hidden];
        for j in 0..hidden {
            let (i, f, g, o) = (ai[j], af[j], ag[j], ao[j]);
            let dht = dh[j];
            let tc = tanh(cc[j]);
            let d_o = dht * tc;
            let dct = (dht * o).mul_add((-tc).mul_add(tc, 1.0), dc[j]);
            let di = dct * g;
            let df = dct * cp[j];
            let dg = dct * i;
            dc_prev[j] = canonical_nan(dct * f);
            di_out[j] = canonical_nan(di * (-i).mul_add(i, i));
            df_out[j] = canonical_nan(df * (-f).mul_add(f, f));
            dg_out[j] = canonical_nan(dg * (-g).mul_add(g, 1.0));
            do_out[j] = canonical_nan(d_o * (-o).mul_add(o, o));
        }
    }
}
