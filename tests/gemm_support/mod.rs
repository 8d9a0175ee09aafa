//! Shared by the GEMM test files (`#[path]`-included, not a test target):
//! the contract written out as a naive triple loop, and input helpers; in
//! [`fast`], the tensor-core tests' inputs, reference and bound.
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

/// Helpers for the tensor-core GEMMs (`tests/gemm_fast.rs`, the product;
/// `tests/gemm_dev.rs`, the bench-only variants): f16 inputs, the exact tier
/// on the CPU as the reference, and the accumulation bound stated in
/// `tests/gemm_fast.rs`'s header.
pub mod fast {
    use shoestring::device::{Device, DeviceBuffer};
    use shoestring::numerics::{float_to_half_rn, half_to_float};
    use shoestring::ops::gemm::fast::gemm_fast;
    use shoestring::ops::gemm::{self, Gemm, GemmOut, Op};
    use shoestring::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
    use shoestring::status::Status;

    /// `n` f16 values uniform in `[-scale, scale)` from Philox stream `stream`.
    pub fn uniform_f16(n: usize, stream: u32, scale: f32) -> Vec<u16> {
        let key = PhiloxKey::from_seed(0xfa57_0001);
        uniform_floats(key, PhiloxCounter::new(0, stream, 0), n, scale)
            .unwrap()
            .iter()
            .map(|&x| float_to_half_rn(x))
            .collect()
    }

    /// f16 operands for `g` in [-1, 1) and a bias in [-4, 4).
    pub fn operands(g: &Gemm, stream: u32) -> (Vec<u16>, Vec<u16>, Vec<f32>) {
        let a = uniform_f16(g.m * g.k, stream, 1.0);
        let b = uniform_f16(g.k * g.n, stream + 1, 1.0);
        let key = PhiloxKey::from_seed(0xfa57_0002);
        let bias = uniform_floats(key, PhiloxCounter::new(0, stream + 2, 0), g.n, 4.0).unwrap();
        (a, b, bias)
    }

    /// An output value as f64, for either output type.
    pub trait Out: GemmOut {
        /// A value no kernel stores for these inputs: a NaN with a payload.
        fn poison() -> Self;
        fn value(self) -> f64;
        /// One unit in the last place of the output type at `x` (0 for f32: the
        /// f32 epilogue rounding is in the bound already).
        fn ulp(x: f64) -> f64;
    }
    impl Out for f32 {
        fn poison() -> f32 {
            f32::from_bits(0x7fbb_0bad)
        }
        fn value(self) -> f64 {
            f64::from(self)
        }
        fn ulp(_: f64) -> f64 {
            0.0
        }
    }
    impl Out for u16 {
        fn poison() -> u16 {
            0x7d0b
        }
        fn value(self) -> f64 {
            f64::from(half_to_float(self))
        }
        fn ulp(x: f64) -> f64 {
            let x = x.abs().max(f64::from(half_to_float(0x0400))); // smallest normal
            2f64.powi(x.log2().floor() as i32 - 10)
        }
    }

    /// `len` poisoned elements on `dev`: an element no kernel wrote stays a NaN.
    pub fn poisoned<O: Out>(dev: &Device, len: usize) -> DeviceBuffer<O> {
        DeviceBuffer::copy_htod(dev, &vec![O::poison(); len]).unwrap()
    }

    /// The exact tier on the CPU; returns C and the flag.
    pub fn run_exact<O: Out>(
        g: &Gemm,
        a: &[u16],
        b: &[u16],
        bias: Option<&[f32]>,
    ) -> (Vec<O>, bool) {
        let cpu = Device::Cpu;
        let a = DeviceBuffer::copy_htod(&cpu, a).unwrap();
        let b = DeviceBuffer::copy_htod(&cpu, b).unwrap();
        let bias = bias.map(|v| DeviceBuffer::copy_htod(&cpu, v).unwrap());
        let mut c = DeviceBuffer::<O>::zeros(&cpu, g.m * g.n).unwrap();
        let mut flag = Status::new(&cpu).unwrap();
        gemm::gemm(
            &cpu,
            g,
            &a,
            &b,
            bias.as_ref().map(|b| b.view()),
            &mut c,
            &mut flag,
        )
        .unwrap();
        (c.copy_dtoh().unwrap(), flag.read().unwrap().overflow())
    }

    /// The fast tier on `dev` into a poisoned C; returns C and the flag.
    pub fn run_fast<O: Out>(
        dev: &Device,
        g: &Gemm,
        a: &[u16],
        b: &[u16],
        bias: Option<&[f32]>,
    ) -> (Vec<O>, bool) {
        let a = DeviceBuffer::copy_htod(dev, a).unwrap();
        let b = DeviceBuffer::copy_htod(dev, b).unwrap();
        let bias = bias.map(|v| DeviceBuffer::copy_htod(dev, v).unwrap());
        let mut c = poisoned::<O>(dev, g.m * g.n);
        let mut flag = Status::new(dev).unwrap();
        gemm_fast(
            dev,
            g,
            &a,
            &b,
            bias.as_ref().map(|b| b.view()),
            &mut c,
            &mut flag,
        )
        .unwrap_or_else(|e| panic!("{g:?}: {e}"));
        (c.copy_dtoh().unwrap(), flag.read().unwrap().overflow())
    }

    /// S[i, j] = sum_kk |op(A)[i,kk] op(B)[kk,j]| in f64.
    pub fn magnitudes(g: &Gemm, a: &[u16], b: &[u16]) -> Vec<f64> {
        let (m, n, k) = (g.m, g.n, g.k);
        let af: Vec<f64> = a
            .iter()
            .map(|&h| f64::from(half_to_float(h)).abs())
            .collect();
        let bf: Vec<f64> = b
            .iter()
            .map(|&h| f64::from(half_to_float(h)).abs())
            .collect();
        let mut s = vec![0.0f64; m * n];
        for i in 0..m {
            for kk in 0..k {
                let x = match g.a {
                    Op::N => af[i * k + kk],
                    Op::T => af[kk * m + i],
                };
                for j in 0..n {
                    let y = match g.b {
                        Op::N => bf[kk * n + j],
                        Op::T => bf[j * k + kk],
                    };
                    s[i * n + j] += x * y;
                }
            }
        }
        s
    }

    /// Asserts `got` (fast) is within the bound of `tests/gemm_fast.rs`'s
    /// header of `want` (exact).
    pub fn assert_within_bound<O: Out>(label: &str, g: &Gemm, got: &[O], want: &[O], mag: &[f64]) {
        assert_eq!(got.len(), want.len());
        let k = g.k as f64;
        let alpha = f64::from(g.alpha).abs();
        let mut worst = 0.0f64;
        for (idx, ((&x, &y), &s)) in got.iter().zip(want).zip(mag).enumerate() {
            let (xv, yv) = (x.value(), y.value());
            assert!(
                xv.is_finite() && yv.is_finite(),
                "{label}: element {idx} (row {}, col {}) is {:#x} (fast) vs {:#x} (exact): \
                 not finite (a poisoned element was never written?)",
                idx / g.n,
                idx % g.n,
                x.bits(),
                y.bits()
            );
            let bound = alpha * (k + 4.0) * 2f64.powi(-21) * s
                + 2f64.powi(-22) * yv.abs()
                + O::ulp(xv.abs().max(yv.abs()));
            let err = (xv - yv).abs();
            assert!(
                err <= bound,
                "{label}: element {idx} (row {}, col {}): fast {xv:e} vs exact {yv:e}, \
                 |err| {err:e} > bound {bound:e}",
                idx / g.n,
                idx % g.n
            );
            if bound > 0.0 {
                worst = worst.max(err / bound);
            }
        }
        eprintln!("{label}: worst |err| / bound = {worst:.3}");
    }
}
