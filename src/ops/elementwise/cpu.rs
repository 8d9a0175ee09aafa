//! CPU twin of `kernels/elementwise.cu`. Each function is the kernel's loop
//! body applied to every element; rayon splits the slices into fixed chunks,
//! and since element `i` depends only on element `i` of the inputs, the chunk
//! size and the pool's thread count cannot change the bits. The one cross-element
//! result, the overflow flag, is an integer OR (order independent). Every
//! arithmetic result goes through [`canonical_nan`], as in the kernels.

use crate::device::abi::{ss_elementwise_adam_params, ss_elementwise_params};
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
/// line for line the kernel's order (docs/numerics/elementwise.md).
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
            for (((w, &g), m), v) in param.iter_mut().zip(grad).zip(m).zip(v) {
                adam_element(&p, w, g, m, v);
            }
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
/// `g[i] = g[i] * alpha` in place; `flag[0] |= 1` if any result is not finite.
/// The flag is only ever ORed, never cleared here.
pub fn elementwise_unscale_check_f32(p: &ss_elementwise_params, g: &mut [f32], flag: &mut u32) {
    let n = p.n as usize;
    let inv_scale = p.alpha;
    let bad = g[..n]
        .par_chunks_mut(CHUNK)
        .map(|g| {
            let mut bad = 0u32;
            for x in g.iter_mut() {
                let y = *x * inv_scale;
                *x = canonical_nan(y);
                bad |= if is_finite_bits(y) { 0 } else { 1 };
            }
            bad
        })
        .reduce(|| 0, |a, b| a | b);
    if bad != 0 {
        *flag |= 1;
    }
}

/// The canonical NaN every arithmetic output of this family is stored as: the
/// GPU's f32 arithmetic produces it for any NaN result; x86 propagates payloads.
pub const CANONICAL_NAN_BITS: u32 = 0x7fff_ffff;

/// TWIN: kernels/elementwise.cu::ss_elementwise_canonical_nan. A NaN becomes
/// `f32::from_bits(0x7fffffff)`; everything else is returned unchanged.
#[inline(always)]
pub fn canonical_nan(x: f32) -> f32 {
    if (x.to_bits() & 0x7fff_ffff) > 0x7f80_0000 {
        f32::from_bits(CANONICAL_NAN_BITS)
    } else {
        x
    }
}

/// TWIN: prelude.cuh::ss_isfinite. Finite = exponent field not all ones.
#[inline(always)]
pub fn is_finite_bits(x: f32) -> bool {
    (x.to_bits() & 0x7f80_0000) != 0x7f80_0000
}

/// TWIN: prelude.cuh::ss_half_to_float. Exact; NaN keeps its payload with
/// the quiet bit set (as the `half` crate does).
pub fn half_to_float(h: u16) -> f32 {
    let h = u32::from(h);
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let mut man = h & 0x3ff;
    let bits = if exp == 0x1f {
        sign | 0x7f80_0000
            | if man != 0 {
                0x0040_0000 | (man << 13)
            } else {
                0
            }
    } else if exp != 0 {
        sign | ((exp + (127 - 15)) << 23) | (man << 13)
    } else if man == 0 {
        sign
    } else {
        // Subnormal man * 2^-24: shift the leading one up to the hidden-bit position.
        let mut e = 127 - 14;
        while man & 0x400 == 0 {
            man <<= 1;
            e -= 1;
        }
        sign | (e << 23) | ((man & 0x3ff) << 13)
    };
    f32::from_bits(bits)
}

/// TWIN: prelude.cuh::ss_float_to_half_rn. Round to nearest, ties to even;
/// overflow -> inf; NaN -> `0x7e00 | top payload bits` (quiet), sign kept;
/// subnormal results correctly rounded.
pub fn float_to_half_rn(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = (x >> 16) & 0x8000;
    let exp = (x >> 23) & 0xff;
    let man = x & 0x007f_ffff;
    if exp == 0xff {
        return (sign | 0x7c00 | if man != 0 { 0x0200 | (man >> 13) } else { 0 }) as u16;
    }
    let e = exp as i32 - 127 + 15; // biased half exponent
    if e >= 31 {
        return (sign | 0x7c00) as u16;
    }
    if e <= 0 {
        // Half subnormal (or zero): below half the smallest subnormal rounds to 0.
        if e < -10 {
            return sign as u16;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32; // 14..24
        let mut q = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let halfway = 1 << (shift - 1);
        if rem > halfway || (rem == halfway && q & 1 != 0) {
            q += 1; // may carry into the smallest normal: still the right encoding
        }
        return (sign | q) as u16;
    }
    let mut q = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && q & 1 != 0) {
        q += 1; // may carry into the exponent, up to inf: still right
    }
    (sign | q) as u16
}
