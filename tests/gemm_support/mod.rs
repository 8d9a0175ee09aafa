//! Shared by the GEMM test files (`#[path]`-included, not a test target):
//! the contract written out as a naive triple loop, and input helpers.
#![allow(dead_code)] // each including file uses a different subset

use shoestring::numerics::{canonical_nan, float_to_half_rn};
use shoestring::ops::gemm::{Gemm, GemmIn, GemmOut, Op};
use shoestring::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};

/// `n` floats uniform in `[-scale, scale)` from Philox stream `stream`.
pub fn uniform(n: usize, stream: u32, scale: f32) -> Vec<f32> {
    let key = PhiloxKey::from_seed(0x9e3_3000);
    uniform_floats(key, PhiloxCounter::new(0, stream, 0), n, scale).unwrap()
}

/// The contract written as plainly as possible: op(A)[i,kk] and op(B)[kk,j]
/// read through the stored layout, one `mul_add` chain over k ascending from
/// +0.0, then the epilogue and the rounding into the output type.
pub fn naive<I: GemmIn, O: GemmOut>(
    g: &Gemm,
    a: &[I],
    b: &[I],
    bias: Option<&[f32]>,
) -> (Vec<O>, bool) {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut c = Vec::with_capacity(m * n);
    let mut overflow = false;
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for kk in 0..k {
                let x = match g.a {
                    Op::N => a[i * k + kk],
                    Op::T => a[kk * m + i],
                };
                let y = match g.b {
                    Op::N => b[kk * n + j],
                    Op::T => b[j * k + kk],
                };
                acc = x.to_f32().mul_add(y.to_f32(), acc);
            }
            let y = match bias {
                Some(bias) => g.alpha.mul_add(acc, bias[j]),
                None => g.alpha * acc,
            };
            let v = O::from_f32(canonical_nan(y));
            overflow |= !v.is_finite();
            c.push(v);
        }
    }
    (c, overflow)
}

pub fn to_f16(v: &[f32]) -> Vec<u16> {
    v.iter().map(|&x| float_to_half_rn(x)).collect()
}
