//! CPU twin of `kernels/elementwise.cu`. Each function is the kernel's loop
//! body applied to every element; rayon splits the slices into fixed chunks,
//! and since element `i` depends only on element `i` of the inputs, the chunk
//! size and the pool's thread count cannot change the bits. The one cross-element
//! result, the status block's overflow bit, is an integer OR (order independent). Every
//! arithmetic result goes through [`canonical_nan`] (the project's one NaN,
//! `0x7fc00000`), as in the kernels.

use crate::device::abi::{
    ss_elementwise_adam_params, ss_elementwise_copy_cols_params, ss_elementwise_params,
    ss_elementwise_sgd_params, SS_STATUS_FLAGS, SS_STATUS_GRAD_NORM, SS_STATUS_OVERFLOW,
};
use crate::device::with_fma;
use crate::numerics::{
    canonical_nan, float_to_half_rn, half_to_float, is_finite, is_nan, CANONICAL_NAN_BITS,
};
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

/// TWIN: kernels/elementwise.cu::elementwise_relu_fwd_f32.
/// `y[i] = x[i] > 0 ? x[i] : +0.0`, the canonical NaN for a NaN.
pub fn elementwise_relu_fwd_f32(p: &ss_elementwise_params, x: &[f32], y: &mut [f32]) {
    let n = p.n as usize;
    y[..n]
        .par_chunks_mut(CHUNK)
        .zip(x[..n].par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (y, &v) in y.iter_mut().zip(x) {
                *y = if is_nan(v) {
                    f32::from_bits(CANONICAL_NAN_BITS)
                } else if v > 0.0 {
                    v
                } else {
                    0.0
                };
            }
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_relu_bwd_f32.
/// `dx[i] = x[i] > 0 ? dy[i] : +0.0`.
pub fn elementwise_relu_bwd_f32(p: &ss_elementwise_params, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    let n = p.n as usize;
    dx[..n]
        .par_chunks_mut(CHUNK)
        .zip(x[..n].par_chunks(CHUNK).zip(dy[..n].par_chunks(CHUNK)))
        .for_each(|(dx, (x, dy))| {
            for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                *d = if v > 0.0 { canonical_nan(g) } else { 0.0 };
            }
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_copy_cols_f32. A bit copy of
/// `cols` columns of each of `rows` rows between strided windows.
pub fn elementwise_copy_cols_f32(
    p: &ss_elementwise_copy_cols_params,
    src: &[f32],
    dst: &mut [f32],
) {
    let (rows, cols) = (p.rows as usize, p.cols as usize);
    let (sld, soff, dld, doff) = (
        p.src_ld as usize,
        p.src_off as usize,
        p.dst_ld as usize,
        p.dst_off as usize,
    );
    for r in 0..rows {
        dst[r * dld + doff..][..cols].copy_from_slice(&src[r * sld + soff..][..cols]);
    }
}

/// TWIN: kernels/elementwise.cu::elementwise_sgd_f32 (the same three fmas per
/// element), under [`with_fma`].
pub fn elementwise_sgd_f32(
    p: &ss_elementwise_sgd_params,
    param: &mut [f32],
    grad: &[f32],
    v: &mut [f32],
) {
    let n = p.n as usize;
    param[..n]
        .par_chunks_mut(CHUNK)
        .zip(
            grad[..n]
                .par_chunks(CHUNK)
                .zip(v[..n].par_chunks_mut(CHUNK)),
        )
        .for_each(|(param, (grad, v))| {
            with_fma(
                #[inline(always)]
                || {
                    for ((w, &g0), v) in param.iter_mut().zip(grad).zip(v.iter_mut()) {
                        let g = p.weight_decay.mul_add(*w, g0);
                        let v1 = p.momentum.mul_add(*v, g);
                        *v = canonical_nan(v1);
                        *w = canonical_nan((-p.lr).mul_add(v1, *w));
                    }
                },
            )
        });
}

/// TWIN: kernels/elementwise.cu::elementwise_scale_by_f32. `x[i] *= s`.
pub fn elementwise_scale_by_f32(p: &ss_elementwise_params, s: f32, x: &mut [f32]) {
    let n = p.n as usize;
    x[..n].par_chunks_mut(CHUNK).for_each(|x| {
        for v in x.iter_mut() {
            *v = canonical_nan(*v * s);
        }
    });
}

/// TWIN: kernels/elementwise.cu::elementwise_clip_coef_f32. `alpha` is the
/// largest norm allowed; writes the coefficient, and the norm into `status`.
pub fn elementwise_clip_coef_f32(
    p: &ss_elementwise_params,
    sumsq: f32,
    coef: &mut f32,
    status: &mut [u32],
) {
    let norm = canonical_nan(sumsq.sqrt());
    let q = p.alpha / (norm + 1e-6);
    status[SS_STATUS_GRAD_NORM as usize] = norm.to_bits();
    if is_finite(norm) {
        *coef = if q < 1.0 { q } else { 1.0 };
    } else {
        *coef = f32::from_bits(CANONICAL_NAN_BITS);
        status[SS_STATUS_FLAGS as usize] |= SS_STATUS_OVERFLOW;
    }
}
