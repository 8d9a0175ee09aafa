//! Shared by the GEMM test files (`#[path]`-included, not a test target):
//! the contract written out as a naive triple loop, and input helpers.
#![allow(dead_code)] // each including file uses a different subset

use shoestring::device::{Device, DeviceBuffer};
use shoestring::numerics::{canonical_nan, float_to_half_rn};
use shoestring::ops::gemm::{self, Gemm, GemmIn, GemmOut, Op};
use shoestring::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
use shoestring::status::Status;

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
    naive_into(g, a, b, bias, &[])
}

/// [`naive`] into an old C `c0` (m x n; unused unless `g.beta == 1`, when
/// each chain starts from `0.0 + c0[i,j]`).
pub fn naive_into<I: GemmIn, O: GemmOut>(
    g: &Gemm,
    a: &[I],
    b: &[I],
    bias: Option<&[f32]>,
    c0: &[O],
) -> (Vec<O>, bool) {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut c = Vec::with_capacity(m * n);
    let mut overflow = false;
    for i in 0..m {
        for j in 0..n {
            let mut acc = if g.beta == 1.0 {
                0.0 + c0[i * n + j].to_f32()
            } else {
                0.0f32
            };
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

/// Runs the exact tier on `dev`; returns C and the flag.
pub fn run<I: GemmIn, O: GemmOut>(
    dev: &Device,
    g: &Gemm,
    a: &[I],
    b: &[I],
    bias: Option<&[f32]>,
) -> (Vec<O>, bool) {
    run_into(dev, g, a, b, bias, &vec![O::default(); g.m * g.n])
}

/// [`run`] with C holding `c0` (m x n) before the call.
pub fn run_into<I: GemmIn, O: GemmOut>(
    dev: &Device,
    g: &Gemm,
    a: &[I],
    b: &[I],
    bias: Option<&[f32]>,
    c0: &[O],
) -> (Vec<O>, bool) {
    let a = DeviceBuffer::copy_htod(dev, a).unwrap();
    let b = DeviceBuffer::copy_htod(dev, b).unwrap();
    let bias = bias.map(|v| DeviceBuffer::copy_htod(dev, v).unwrap());
    let mut c = DeviceBuffer::<O>::copy_htod(dev, c0).unwrap();
    let mut status = Status::new(dev).unwrap();
    gemm::gemm(
        dev,
        g,
        &a,
        &b,
        bias.as_ref().map(|b| b.view()),
        &mut c,
        &mut status,
    )
    .unwrap();
    (c.copy_dtoh().unwrap(), status.read().unwrap().overflow())
}

/// Operands for `g` in [-1, 1), from Philox stream `stream`, with signed zeros
/// sprinkled in (so -0.0 products meet the +0.0 start of every chain).
pub fn operands(g: &Gemm, stream: u32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut a = uniform(g.m * g.k, stream, 1.0);
    let mut b = uniform(g.k * g.n, stream + 1, 1.0);
    for (t, x) in a.iter_mut().enumerate().step_by(7) {
        *x = if t % 2 == 0 { -0.0 } else { 0.0 };
    }
    for x in b.iter_mut().step_by(11) {
        *x = -0.0;
    }
    let bias = uniform(g.n, stream + 2, 4.0);
    (a, b, bias)
}
