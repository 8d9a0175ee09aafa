//! Deterministic float32 `exp`, `log`, `log1p`, `tanh` and `sigmoid`: the same
//! IEEE-754 operations in the same order as `kernels/common/detmath.cuh`, so
//! every device gives the same bits (DESIGN.md numerics rule 2). Read the two
//! files side by side: each line here is the line there, `f32::mul_add` exactly
//! where the CUDA side writes `fmaf`, and every other `a * b + c` two roundings.
//!
//! Only correctly rounded operations are used (`+ - * /`, `mul_add`,
//! comparisons, integer operations on the bits), never `f32::exp`/`ln`/`tanh`.
//! Algorithms, constants and the measured ulp bounds (asserted by
//! `tests/detmath.rs` over more than 10^7 inputs against f64) are in
//! `docs/numerics/detmath.md`:
//!
//! | function | max error (ulp, vs. f64 rounded to f32) |
//! |---|---|
//! | [`exp`] | 1 |
//! | [`log`] | 1 |
//! | [`log1p`] | 2 |
//! | [`tanh`] | 1 |
//! | [`sigmoid`] | 2 |
//!
//! NaN: every NaN result is the project's canonical NaN `0x7fc00000`
//! ([`crate::numerics::CANONICAL_NAN_BITS`]), whatever the input NaN's sign or
//! payload.
//!
//! `f32::mul_add` compiled without the `fma` target feature is a (correctly
//! rounded, slower) libm call; a later change may add an `avx2,fma` path
//! behind run-time detection, which gives the same bits.

use crate::numerics::{is_nan, CANONICAL_NAN_BITS};

/// 2^j for j in [-126, 127], from the exponent bits.
#[inline]
fn pow2i(j: i32) -> f32 {
    f32::from_bits(((j + 127) as u32) << 23)
}

/// exp(x). TWIN: kernels/common/detmath.cuh::ss_exp.
#[inline]
// 1.442695 is LOG2_E rounded (0x3fb8aa3b); written as the same literal as the .cuh.
#[allow(clippy::approx_constant)]
pub fn exp(x: f32) -> f32 {
    if is_nan(x) {
        return f32::from_bits(CANONICAL_NAN_BITS);
    }
    if x > 88.72283 {
        // 0x42b17217: the largest x with a finite result
        return f32::INFINITY;
    }
    if x < -104.0 {
        // exp(x) < 2^-150: rounds to +0 (also -inf)
        return 0.0;
    }
    let t = x.mul_add(1.442695, 12582912.0); // 1.5*2^23 + round(x*log2e)
    let kf = t - 12582912.0;
    let k = t.to_bits() as i32 - 0x4b40_0000;
    let mut r = kf.mul_add(-0.69314575, x); // exact: LN2_HI has 15 significant bits
    r = kf.mul_add(-1.4286068e-06, r); // LN2_LO = ln2 - LN2_HI
    let mut q = r.mul_add(0.0001984127, 0.0013888889);
    q = q.mul_add(r, 0.008333334);
    q = q.mul_add(r, 0.041666668);
    q = q.mul_add(r, 0.16666667);
    q = q.mul_add(r, 0.5);
    let r2 = r * r;
    let p = 1.0 + r2.mul_add(q, r);
    let k1 = k >> 1; // arithmetic shift: floor(k / 2)
    (p * pow2i(k1)) * pow2i(k - k1)
}

/// log(1 + f) + dk*ln2 + c for f in [sqrt(2)/2 - 1, sqrt(2) - 1].
/// TWIN: kernels/common/detmath.cuh::ss_detmath_log_kernel.
#[inline]
fn log_kernel(f: f32, dk: f32, c: f32) -> f32 {
    let s = f / (2.0 + f);
    let z = s * s;
    let mut w = z.mul_add(0.22222222, 0.2857143);
    w = w.mul_add(z, 0.4);
    w = w.mul_add(z, 0.6666667);
    let big_r = z * w;
    let hfsq = 0.5 * f * f;
    let lo = s.mul_add(hfsq + big_r, dk.mul_add(1.4286068e-06, c));
    dk.mul_add(0.69314575, f - (hfsq - lo))
}

/// Natural logarithm. TWIN: kernels/common/detmath.cuh::ss_log.
#[inline]
pub fn log(x: f32) -> f32 {
    if is_nan(x) || x < 0.0 {
        return f32::from_bits(CANONICAL_NAN_BITS);
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let mut ix = x.to_bits();
    let mut k: i32 = 0;
    if ix < 0x0080_0000 {
        // subnormal: scale into the normal range (exact)
        ix = (x * 8388608.0).to_bits();
        k = -23;
    }
    ix = ix.wrapping_add(0x3f80_0000 - 0x3f35_04f3); // moves the exponent step to sqrt(2)/2
    k += (ix >> 23) as i32 - 127;
    ix = (ix & 0x007f_ffff) + 0x3f35_04f3;
    let f = f32::from_bits(ix) - 1.0;
    log_kernel(f, k as f32, 0.0)
}

/// log(1 + x), accurate near 0. TWIN: kernels/common/detmath.cuh::ss_log1p.
#[inline]
pub fn log1p(x: f32) -> f32 {
    if is_nan(x) || x < -1.0 {
        return f32::from_bits(CANONICAL_NAN_BITS);
    }
    if x == -1.0 {
        return f32::NEG_INFINITY;
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    let u = 1.0 + x;
    let mut iu = u.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = (iu >> 23) as i32 - 127;
    let mut f = x;
    let mut c = 0.0;
    if k != 0 {
        iu = (iu & 0x007f_ffff) + 0x3f35_04f3;
        f = f32::from_bits(iu) - 1.0;
        c = (if k > 0 { 1.0 - (u - x) } else { x - (u - 1.0) }) / u;
    }
    log_kernel(f, k as f32, c)
}

/// Hyperbolic tangent. TWIN: kernels/common/detmath.cuh::ss_tanh.
#[inline]
pub fn tanh(x: f32) -> f32 {
    if is_nan(x) {
        return f32::from_bits(CANONICAL_NAN_BITS);
    }
    let sign = x.to_bits() & 0x8000_0000;
    let a = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    let y = if a < 0.5625 {
        let t = a * a;
        let mut q = t.mul_add(-0.0061933915, 0.021018455);
        q = q.mul_add(t, -0.053840548);
        q = q.mul_add(t, 0.13332488);
        q = q.mul_add(t, -0.33333316);
        (a * t).mul_add(q, a)
    } else if a <= 9.5 {
        1.0 - 2.0 / (exp(2.0 * a) + 1.0)
    } else {
        1.0
    };
    f32::from_bits(y.to_bits() | sign)
}

/// The logistic function 1/(1 + exp(-x)), never overflowing.
/// TWIN: kernels/common/detmath.cuh::ss_sigmoid.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if is_nan(x) {
        return f32::from_bits(CANONICAL_NAN_BITS);
    }
    if x < -88.72283 {
        // exp(-x) would overflow; e/(1 + e) with 1 + e == 1 is exp(x)
        return exp(x);
    }
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32) -> u32 {
        x.to_bits()
    }

    #[test]
    #[allow(clippy::approx_constant)]
    fn constants_have_the_bits_the_docs_state() {
        let pinned: [(f32, u32); 14] = [
            (88.72283, 0x42b1_7217),
            (1.442695, 0x3fb8_aa3b),
            (0.69314575, 0x3f31_7200),
            (1.4286068e-06, 0x35bf_be8e),
            (0.0001984127, 0x3950_0d01),
            (0.0013888889, 0x3ab6_0b61),
            (0.008333334, 0x3c08_8889),
            (0.041666668, 0x3d2a_aaab),
            (0.16666667, 0x3e2a_aaab),
            (0.22222222, 0x3e63_8e39),
            (0.2857143, 0x3e92_4925),
            (0.6666667, 0x3f2a_aaab),
            (-0.0061933915, 0xbbca_f1ef),
            (-0.33333316, 0xbeaa_aaa5),
        ];
        for (v, bits) in pinned {
            assert_eq!(v.to_bits(), bits, "{v}");
        }
        assert_eq!(b(0.021018455), 0x3cac_2ee5);
        assert_eq!(b(-0.053840548), 0xbd5c_87e8);
        assert_eq!(b(0.13332488), 0x3e08_8651);
    }

    #[test]
    fn exp_specials() {
        assert_eq!(b(exp(0.0)), b(1.0));
        assert_eq!(b(exp(-0.0)), b(1.0));
        assert_eq!(b(exp(f32::INFINITY)), b(f32::INFINITY));
        assert_eq!(b(exp(f32::NEG_INFINITY)), b(0.0));
        assert_eq!(b(exp(f32::NAN)), CANONICAL_NAN_BITS);
        assert_eq!(b(exp(f32::from_bits(0xffc0_0001))), CANONICAL_NAN_BITS);
        assert!(exp(f32::from_bits(0x42b1_7217)).is_finite());
        assert_eq!(exp(f32::from_bits(0x42b1_7218)), f32::INFINITY);
        // Gradual underflow: the smallest subnormal just above ln(2^-150), 0 below.
        assert_eq!(b(exp(f32::from_bits(0xc2cf_f1b4))), 1);
        assert_eq!(b(exp(f32::from_bits(0xc2cf_f1b5))), 0);
        assert_eq!(b(exp(f32::from_bits(1))), b(1.0));
    }

    #[test]
    fn log_specials() {
        assert_eq!(b(log(1.0)), 0);
        assert_eq!(b(log(0.0)), b(f32::NEG_INFINITY));
        assert_eq!(b(log(-0.0)), b(f32::NEG_INFINITY));
        assert_eq!(b(log(-1.0)), CANONICAL_NAN_BITS);
        assert_eq!(b(log(f32::NEG_INFINITY)), CANONICAL_NAN_BITS);
        assert_eq!(b(log(f32::from_bits(0x8000_0001))), CANONICAL_NAN_BITS);
        assert_eq!(b(log(f32::INFINITY)), b(f32::INFINITY));
        assert_eq!(b(log(f32::NAN)), CANONICAL_NAN_BITS);
        assert_eq!(log(f32::from_bits(1)), -103.27893); // ln 2^-149
    }

    #[test]
    fn log1p_specials() {
        assert_eq!(b(log1p(0.0)), 0);
        assert_eq!(b(log1p(-0.0)), 0x8000_0000);
        assert_eq!(b(log1p(-1.0)), b(f32::NEG_INFINITY));
        assert_eq!(b(log1p(-1.5)), CANONICAL_NAN_BITS);
        assert_eq!(b(log1p(f32::NEG_INFINITY)), CANONICAL_NAN_BITS);
        assert_eq!(b(log1p(f32::INFINITY)), b(f32::INFINITY));
        assert_eq!(b(log1p(f32::NAN)), CANONICAL_NAN_BITS);
        assert_eq!(b(log1p(f32::from_bits(1))), 1);
        assert_eq!(b(log1p(f32::from_bits(0x8000_0001))), 0x8000_0001);
        assert!(log1p(f32::MAX).is_finite());
    }

    #[test]
    fn tanh_specials() {
        assert_eq!(b(tanh(0.0)), 0);
        assert_eq!(b(tanh(-0.0)), 0x8000_0000);
        assert_eq!(b(tanh(f32::INFINITY)), b(1.0));
        assert_eq!(b(tanh(f32::NEG_INFINITY)), b(-1.0));
        assert_eq!(b(tanh(f32::NAN)), CANONICAL_NAN_BITS);
        assert_eq!(b(tanh(f32::from_bits(0x8000_0001))), 0x8000_0001);
        assert_eq!(tanh(10.0), 1.0);
        assert_eq!(tanh(-f32::MAX), -1.0);
    }

    #[test]
    fn sigmoid_specials() {
        assert_eq!(b(sigmoid(0.0)), b(0.5));
        assert_eq!(b(sigmoid(-0.0)), b(0.5));
        assert_eq!(b(sigmoid(f32::INFINITY)), b(1.0));
        assert_eq!(b(sigmoid(f32::NEG_INFINITY)), 0);
        assert_eq!(b(sigmoid(f32::NAN)), CANONICAL_NAN_BITS);
        assert_eq!(b(sigmoid(f32::MAX)), b(1.0));
        assert_eq!(b(sigmoid(-f32::MAX)), 0);
        assert_eq!(b(sigmoid(-100.0)), b(exp(-100.0))); // subnormal, no 1+e effect
    }
}
