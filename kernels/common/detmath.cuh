// detmath: exp, log, log1p, tanh, sigmoid in float32 that give the same bits on
// every device (DESIGN.md numerics rule 2). TWIN: src/detmath.rs, line by line.
//
// Only IEEE-754 operations that are correctly rounded everywhere are used:
// + - * / (compiled --fmad=false -prec-div=true -ftz=false, so no contraction and
// no approximate division), fmaf (exactly where written; f32::mul_add on the
// Rust side), comparisons, and integer operations on the bit patterns. No
// expf/logf/exp2f, no ex2.approx/lg2.approx. The algorithms, constants and
// measured ulp bounds are in docs/numerics/detmath.md.
//
// Every constant is written as the shortest decimal that rounds to the intended
// float32 (both compilers round decimal literals correctly); src/detmath.rs's
// tests pin their bit patterns.
//
// NaN: every NaN result is the project's canonical NaN SS_CANONICAL_NAN_BITS
// (0x7fc00000, prelude.cuh), whatever the input NaN's sign or payload (GPUs and
// CPUs propagate NaN payloads through arithmetic differently, so NaN inputs are
// screened with ss_isnan before any arithmetic).
#pragma once
#include "common/prelude.cuh"

// 2^j as a float for j in [-126, 127], from the exponent bits.
SS_DEVICE float ss_detmath_pow2i(int j) {
    return __uint_as_float((uint32_t)(j + 127) << 23);
}

// exp(x). Reduction x = k*ln2 + r, |r| <~ ln2/2, with k = round-to-nearest-even
// of x*log2(e) (the 1.5*2^23 trick); r = x - k*LN2_HI (exact) - k*LN2_LO.
// exp(r) = 1 + (r + r^2 * q(r)), q = Taylor coefficients 1/2! .. 1/7!.
// Scaling by 2^k in two exact-power steps 2^(k>>1) * 2^(k - (k>>1)): the first
// product is exact, so a subnormal result is rounded once.
// x > 88.72283 (0x42b17217) -> +inf; x < -104 -> +0; NaN -> canonical NaN.
SS_DEVICE float ss_exp(float x) {
    if (ss_isnan(x)) {
        return __uint_as_float(SS_CANONICAL_NAN_BITS);
    }
    if (x > 88.72283f) {  // 0x42b17217: the largest x with a finite result
        return __uint_as_float(0x7f800000u);
    }
    if (x < -104.0f) {  // exp(x) < 2^-150: rounds to +0 (also -inf)
        return 0.0f;
    }
    const float t = fmaf(x, 1.442695f, 12582912.0f);  // 1.5*2^23 + round(x*log2e)
    const float kf = t - 12582912.0f;
    const int k = (int)__float_as_uint(t) - 0x4b400000;
    float r = fmaf(kf, -0.69314575f, x);  // exact: LN2_HI has 15 significant bits
    r = fmaf(kf, -1.4286068e-06f, r);      // LN2_LO = ln2 - LN2_HI
    float q = fmaf(r, 0.0001984127f, 0.0013888889f);
    q = fmaf(q, r, 0.008333334f);
    q = fmaf(q, r, 0.041666668f);
    q = fmaf(q, r, 0.16666667f);
    q = fmaf(q, r, 0.5f);
    const float r2 = r * r;
    const float p = 1.0f + fmaf(r2, q, r);
    const int k1 = k >> 1;  // arithmetic shift: floor(k / 2)
    return (p * ss_detmath_pow2i(k1)) * ss_detmath_pow2i(k - k1);
}

// log(1 + f) + dk*ln2 + c for f in [sqrt(2)/2 - 1, sqrt(2) - 1] (fdlibm's
// scheme with atanh-series coefficients): s = f/(2+f), z = s^2,
// R = z*(2/3 + z*(2/5 + z*(2/7 + z*2/9))), hfsq = f^2/2,
// result = dk*LN2_HI + (f - (hfsq - (s*(hfsq + R) + (dk*LN2_LO + c)))).
SS_DEVICE float ss_detmath_log_kernel(float f, float dk, float c) {
    const float s = f / (2.0f + f);
    const float z = s * s;
    float w = fmaf(z, 0.22222222f, 0.2857143f);
    w = fmaf(w, z, 0.4f);
    w = fmaf(w, z, 0.6666667f);
    const float R = z * w;
    const float hfsq = 0.5f * f * f;
    const float lo = fmaf(s, hfsq + R, fmaf(dk, 1.4286068e-06f, c));
    return fmaf(dk, 0.69314575f, f - (hfsq - lo));
}

// log(x): x = 2^k * m with m in [sqrt(2)/2, sqrt(2)) from the bits (subnormals
// first scaled by 2^23), f = m - 1 (exact), then ss_detmath_log_kernel.
// log(+-0) = -inf, log(x < 0) = NaN, log(+inf) = +inf, NaN -> canonical NaN.
SS_DEVICE float ss_log(float x) {
    if (ss_isnan(x) || x < 0.0f) {
        return __uint_as_float(SS_CANONICAL_NAN_BITS);
    }
    if (x == 0.0f) {
        return __uint_as_float(0xff800000u);
    }
    if (x == __uint_as_float(0x7f800000u)) {
        return x;
    }
    uint32_t ix = __float_as_uint(x);
    int k = 0;
    if (ix < 0x00800000u) {  // subnormal: scale into the normal range (exact)
        ix = __float_as_uint(x * 8388608.0f);
        k = -23;
    }
    ix += 0x3f800000u - 0x3f3504f3u;  // moves the exponent step to sqrt(2)/2
    k += (int)(ix >> 23) - 127;
    ix = (ix & 0x007fffffu) + 0x3f3504f3u;
    const float f = __uint_as_float(ix) - 1.0f;
    return ss_detmath_log_kernel(f, (float)k, 0.0f);
}

// log1p(x): u = 1 + x (rounded). If u lies in [sqrt(2)/2, sqrt(2)) then k = 0
// and f = x exactly; otherwise f = m - 1 from u's bits as in ss_log and
// c = (rounding error of u)/u, with the error 1 - (u - x) (k > 0) or
// x - (u - 1) (k < 0). log1p(+-0) = +-0, log1p(-1) = -inf, log1p(x < -1) = NaN,
// log1p(+inf) = +inf, NaN -> canonical NaN.
SS_DEVICE float ss_log1p(float x) {
    if (ss_isnan(x) || x < -1.0f) {
        return __uint_as_float(SS_CANONICAL_NAN_BITS);
    }
    if (x == -1.0f) {
        return __uint_as_float(0xff800000u);
    }
    if (x == 0.0f || x == __uint_as_float(0x7f800000u)) {
        return x;
    }
    const float u = 1.0f + x;
    uint32_t iu = __float_as_uint(u) + (0x3f800000u - 0x3f3504f3u);
    const int k = (int)(iu >> 23) - 127;
    float f = x;
    float c = 0.0f;
    if (k != 0) {
        iu = (iu & 0x007fffffu) + 0x3f3504f3u;
        f = __uint_as_float(iu) - 1.0f;
        c = (k > 0 ? 1.0f - (u - x) : x - (u - 1.0f)) / u;
    }
    return ss_detmath_log_kernel(f, (float)k, c);
}

// tanh(x) on a = |x|, sign restored from x's sign bit:
//   a < 0.5625: a + a^3 * Q(a^2), Q a degree-4 least-squares fit (relative
//               error) to (tanh(a) - a)/a^3 on [0, 0.5625];
//   a <= 9.5:   1 - 2/(exp(2a) + 1);
//   a > 9.5:    1 (tanh(a) rounds to 1 above 9.0109).
// tanh(+-0) = +-0, tanh(+-inf) = +-1, NaN -> canonical NaN.
SS_DEVICE float ss_tanh(float x) {
    if (ss_isnan(x)) {
        return __uint_as_float(SS_CANONICAL_NAN_BITS);
    }
    const uint32_t sign = __float_as_uint(x) & 0x80000000u;
    const float a = __uint_as_float(__float_as_uint(x) & 0x7fffffffu);
    float y;
    if (a < 0.5625f) {
        const float t = a * a;
        float q = fmaf(t, -0.0061933915f, 0.021018455f);
        q = fmaf(q, t, -0.053840548f);
        q = fmaf(q, t, 0.13332488f);
        q = fmaf(q, t, -0.33333316f);
        y = fmaf(a * t, q, a);
    } else if (a <= 9.5f) {
        y = 1.0f - 2.0f / (ss_exp(2.0f * a) + 1.0f);
    } else {
        y = 1.0f;
    }
    return __uint_as_float(__float_as_uint(y) | sign);
}

// sigmoid(x) = 1/(1 + exp(-x)). Where exp(-x) is finite (x >= -88.72283) the
// formula is used as written: exp, the add and the division are each monotone,
// so sigmoid is monotone there. Below, exp(-x) would overflow and the result is
// e/(1 + e) with e = exp(x) < 2^-127, where 1 + e rounds to 1: it is exp(x).
// sigmoid(-inf) = +0, sigmoid(+-0) = 0.5, sigmoid(+inf) = 1, NaN -> canonical NaN.
SS_DEVICE float ss_sigmoid(float x) {
    if (ss_isnan(x)) {
        return __uint_as_float(SS_CANONICAL_NAN_BITS);
    }
    if (x < -88.72283f) {
        return ss_exp(x);
    }
    return 1.0f / (1.0f + ss_exp(-x));
}
