//! CPU twin of `kernels/elementwise.cu`. Each function is the kernel's loop
//! body applied to every element; rayon splits the slices into fixed chunks,
//! and since element `i` depends only on element `i` of the inputs, the chunk
//! size and the pool's thread count cannot change the bits. The one cross-element
//! result, the status block's overflow bit, is an integer OR (order independent). Every
//! arithmetic result goes through [`canonical_nan`] (the project's one NaN,
//! `0x7fc00000`), as in the kernels.

use crate::device::abi::{ss_elementwise_adam_params, ss_elementwise_params};
use crate::device::with_fma;
use crate::numerics::{canonical_nan, float_to_half_rn, half_to_float, is_finite};
use rayon::prelude::*;

/// Elements per rayon task: amortises scheduling, balances on many cores. Not
/// part of the numerics (any value gives the same bits).
const CHUNK: usize = 16 * 1024;

/// TWIN: kernels/elementwise.cu::elementwise_add_f32. `out[i] = a[i] + b[i]`.
pub fn elementwise_add_f32(p: &ss_elementwise_params, a: &[f32], b: &[f32], out: &mut [f32]) {
    let n = p.n as usize;
    out[..n]
        .par_chunks_mut(CHUNK)
        .zip(a[..n].par_chunks(CHUNK).zip(b[..n].par_chunks(CHUNK)))
        .for_each(|(out, (a, b))| {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = canonical_nan(x + y);
            }
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_mul_f32. `out[i] = a[i] * b[i]`.
pub fn elementwise_mul_f32(p: &ss_elementwise_params, a: &[f32], b: &[f32], out: &mut [f32]) {
    let n = p.n as usize;
    out[..n]
        .par_chunks_mut(CHUNK)
        .zip(a[..n].par_chunks(CHUNK).zip(b[..n].par_chunks(CHUNK)))
        .for_each(|(out, (a, b))| {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = canonical_nan(x * y);
            }
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_scale_f32. `out[i] = alpha * x[i]`.
pub fn elementwise_scale_f32(p: &ss_elementwise_params, x: &[f32], out: &mut [f32]) {
    let n = p.n as usize;
    let alpha = p.alpha;
    out[..n]
        .par_chunks_mut(CHUNK)
        .zip(x[..n].par_chunks(CHUNK))
        .for_each(|(out, x)| {
            for (o, &x) in out.iter_mut().zip(x) {
                *o = canonical_nan(alpha * x);
            }
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_axpy_f32.
/// `y[i] = fma(alpha, x[i], y[i])`, under [`with_fma`] (the same bits on both paths).
pub fn elementwise_axpy_f32(p: &ss_elementwise_params, x: &[f32], y: &mut [f32]) {
    let n = p.n as usize;
    let alpha = p.alpha;
    y[..n]
        .par_chunks_mut(CHUNK)
        .zip(x[..n].par_chunks(CHUNK))
        .for_each(|(y, x)| {
            with_fma(
                #[inline(always)]
                || {
                    for (y, &x) in y.iter_mut().zip(x) {
                        *y = canonical_nan(alpha.mul_add(x, *y));
                    }
                },
            )
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_cast_f32_to_f16.
/// `out[i] = float_to_half_rn(x[i])`.
pub fn elementwise_cast_f32_to_f16(p: &ss_elementwise_params, x: &[f32], out: &mut [u16]) {
    let n = p.n as usize;
    out[..n]
        .par_chunks_mut(CHUNK)
        .zip(x[..n].par_chunks(CHUNK))
        .for_each(|(out, x)| {
            for (o, &x) in out.iter_mut().zip(x) {
                *o = float_to_half_rn(x);
            }
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_cast_f16_to_f32.
/// `out[i] = half_to_float(x[i])`.
pub fn elementwise_cast_f16_to_f32(p: &ss_elementwise_params, x: &[u16], out: &mut [f32]) {
    let n = p.n as usize;
    out[..n]
        .par_chunks_mut(CHUNK)
        .zip(x[..n].par_chunks(CHUNK))
        .for_each(|(out, x)| {
            for (o, &h) in out.iter_mut().zip(x) {
                *o = half_to_float(h);
            }
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_adam_f32. One AdamW step in place,
/// line for line the kernel's order (docs/numerics/elementwise.md). Each task
/// runs under [`with_fma`] (the same bits on both paths).
pub fn elementwise_adam_f32(
    p: &ss_elementwise_adam_params,
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let n = p.n as usize;
    let p = *p;
    param[..n]
        .par_chunks_mut(CHUNK)
        .zip(grad[..n].par_chunks(CHUNK))
        .zip(
            m[..n]
                .par_chunks_mut(CHUNK)
                .zip(v[..n].par_chunks_mut(CHUNK)),
        )
        .for_each(|((param, grad), (m, v))| {
            with_fma(
                #[inline(always)]
                || {
                    for (((w, &g), m), v) in param.iter_mut().zip(grad).zip(m).zip(v) {
                        adam_element(&p, w, g, m, v);
                    }
                },
            )
        });
}

/// The kernel's loop body for one element.
#[inline(always)]
fn adam_element(p: &ss_elementwise_adam_params, param: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
    let w = *param;
    let m1 = p.beta1.mul_add(*m, p.one_minus_beta1 * g);
    let v1 = p.beta2.mul_add(*v, p.one_minus_beta2 * (g * g));
    let m_hat = m1 / p.bias_correction1;
    let v_hat = v1 / p.bias_correction2;
    let denom = v_hat.sqrt() + p.eps;
    let upd = m_hat / denom;
    let w_dec = (-p.lr_weight_decay).mul_add(w, w);
    *m = canonical_nan(m1);
    *v = canonical_nan(v1);
    *param = canonical_nan((-p.lr).mul_add(upd, w_dec));
}

/// TWIN: kernels/elementwise.cu::elementwise_unscale_check_f32.
/// `g[i] = g[i] * alpha` in place; `flags |= SS_STATUS_OVERFLOW` (the status
/// block's flags word) if any result is not finite. Only ever ORed, never cleared.
pub fn elementwise_unscale_check_f32(p: &ss_elementwise_params, g: &mut [f32], flags: &mut u32) {
    let n = p.n as usize;
    let inv_scale = p.alpha;
    let bad = g[..n]
        .par_chunks_mut(CHUNK)
        .map(|g| {
            let mut bad = 0u32;
            for x in g.iter_mut() {
                let y = *x * inv_scale;
                *x = canonical_nan(y);
                bad |= if is_finite(y) { 0 } else { 1 };
            }
            bad
        })
        .reduce(|| 0, |a, b| a | b);
    if bad != 0 {
        *flags |= crate::device::abi::SS_STATUS_OVERFLOW;
    }
}
