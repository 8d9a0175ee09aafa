//! Bit-level float helpers shared by every family: the Rust twin of the
//! bit-level helpers in `kernels/common/prelude.cuh` (one function here per
//! `ss_*` helper there, same integer operations, so both sides agree on every
//! input whatever the compiler flags).
//!
//! - One NaN for the whole project ([`CANONICAL_NAN_BITS`] = `0x7fc00000`, the
//!   IEEE default quiet NaN that Rust's `f32::NAN` also has). GPU f32
//!   arithmetic returns `0x7fffffff` for an invalid operation, x86 returns
//!   `0xffc00000` or passes an input's payload through; so every float a
//!   family stores that arithmetic could have made NaN goes through
//!   [`canonical_nan`] on the CPU and `ss_canonical_nan` on the devices
//!   (docs/numerics.md, "One NaN").
//! - [`is_nan`], [`is_finite`]: bit tests, not `f32::is_nan`/`is_finite`, to
//!   read the same as the kernels' (they agree with std on every input).
//! - [`half_to_float`], [`float_to_half_rn`]: f16 <-> f32 in integer code,
//!   equal to `half::f16::to_f32` / `half::f16::from_f32` (tested against the
//!   `half` crate on every half and on ties, subnormals, overflow, NaN
//!   payloads and a stride through all 2^32 floats). The kernels cannot use
//!   `half`, so this port is the twin the tests read against both.

/// The bits of the one NaN every family stores. TWIN: `SS_CANONICAL_NAN_BITS`.
pub const CANONICAL_NAN_BITS: u32 = 0x7fc0_0000;

/// NaN = exponent field all ones, mantissa nonzero (a bit test).
/// TWIN: kernels/common/prelude.cuh::ss_isnan.
#[inline(always)]
pub fn is_nan(x: f32) -> bool {
    (x.to_bits() & 0x7fff_ffff) > 0x7f80_0000
}

/// `x`, or the canonical NaN ([`CANONICAL_NAN_BITS`]) when `x` is any NaN.
/// TWIN: kernels/common/prelude.cuh::ss_canonical_nan.
#[inline(always)]
pub fn canonical_nan(x: f32) -> f32 {
    if is_nan(x) {
        f32::from_bits(CANONICAL_NAN_BITS)
    } else {
        x
    }
}

/// Finite = exponent field not all ones (a bit test).
/// TWIN: kernels/common/prelude.cuh::ss_isfinite.
#[inline(always)]
pub fn is_finite(x: f32) -> bool {
    (x.to_bits() & 0x7f80_0000) != 0x7f80_0000
}

/// TWIN: kernels/common/prelude.cuh::ss_half_to_float. Exact; NaN keeps its payload with
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

/// TWIN: kernels/common/prelude.cuh::ss_float_to_half_rn. Round to nearest, ties to even;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_nan_is_the_ieee_default_quiet_nan_and_rusts() {
        assert_eq!(CANONICAL_NAN_BITS, 0x7fc0_0000);
        assert_eq!(f32::NAN.to_bits(), CANONICAL_NAN_BITS);
        for bits in [
            0x7f80_0001u32,
            0xffc0_0000,
            0x7fff_ffff,
            0xffff_ffff,
            0x7fc0_1234,
        ] {
            assert_eq!(
                canonical_nan(f32::from_bits(bits)).to_bits(),
                CANONICAL_NAN_BITS
            );
        }
        for x in [
            0.0f32,
            -0.0,
            1.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
        ] {
            assert_eq!(canonical_nan(x).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn bit_tests_agree_with_std_on_a_sweep_of_all_bit_patterns() {
        let specials = [
            0u32,
            0x7f80_0000,
            0x7f80_0001,
            0x7fff_ffff,
            0x8000_0000,
            0xff80_0000,
        ];
        let sweep = (0..=u32::MAX).step_by(997).chain(specials);
        for b in sweep {
            let x = f32::from_bits(b);
            assert_eq!(is_nan(x), x.is_nan(), "{b:#010x}");
            assert_eq!(is_finite(x), x.is_finite(), "{b:#010x}");
        }
    }

    #[test]
    fn the_kernels_define_the_same_canonical_nan() {
        let prelude = include_str!("../kernels/common/prelude.cuh");
        let line = format!("#define SS_CANONICAL_NAN_BITS {CANONICAL_NAN_BITS:#010x}u");
        assert!(prelude.contains(&line), "prelude.cuh lacks `{line}`");
    }
}
