//! Matrix multiply: `C = alpha * op(A) op(B) (+ bias)`, the one place mixed
//! precision lives. Two tiers:
//! - **exact** ([`gemm`](fn@gemm)): bit-identical on Cpu, Sim and Cuda, for f32 or f16
//!   operands and an f32 or f16 output. CPU twin in `cpu.rs`, kernel in
//!   `kernels/gemm.cu`.
//! - **fast** ([`fast::gemm_fast`]): tensor cores (`mma.sync`), Cuda only,
//!   run-to-run deterministic on one GPU model, compared to the CPU within a
//!   tolerance (DESIGN.md, "The fast tier").
//!
//! Layout: row-major and contiguous. `op(A)` is m x k (A stored m x k for
//! [`Op::N`], k x m for [`Op::T`]); `op(B)` is k x n (B stored k x n for N,
//! n x k for T); C is m x n; the bias, when given, has one f32 per column
//! (length n). f16 values travel as their bits in `u16` buffers, as everywhere
//! in the crate.
//!
//! # Numerics
//! Every output, on every device (DESIGN.md rule 4; docs/numerics/gemm.md):
//!
//! ```text
//! acc = beta == 1 ? 0.0 + C[i,j] : +0.0     (accumulate: the old C starts the chain)
//! for kk in 0..k (ascending): acc = fma(a[i,kk], b[kk,j], acc)
//! y   = bias.map_or(alpha * acc, |bias| fma(alpha, acc, bias[j]))
//! C[i,j] = round_to_nearest_even::<Out>(canonical_nan(y))
//! ```
//!
//! Operands are converted to f32 exactly (f16 -> f32 is exact). No split-K:
//! tiling (over m, n and k) is free as long as each output keeps that one fma
//! chain. A stored value that is not finite (an f16 that overflowed on
//! rounding included) ORs the overflow bit into the caller's [`Status`] block,
//! which the caller reads once per step, not once per GEMM.

pub mod cpu;
pub mod cuda;

pub mod fast;

use crate::device::abi::ss_gemm_params;
use crate::device::abi::{SS_STATUS_FLAGS, SS_STATUS_OVERFLOW};
use crate::device::{Device, DeviceBuffer, Element, View, ViewMut};
use crate::error::{Error, Result};
use crate::numerics;
use crate::status::Status;

/// Whether an operand is used as stored (`N`) or transposed (`T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// The shape of one GEMM: C is `m x n`, the reduction runs over `k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm {
    /// Rows of C and op(A).
    pub m: usize,
    /// Columns of C and op(B).
    pub n: usize,
    /// The reduction length.
    pub k: usize,
    /// How A is read.
    pub a: Op,
    /// How B is read.
    pub b: Op,
    /// Scales `op(A) op(B)`, never the bias.
    pub alpha: f32,
    /// 0: C is overwritten. 1: C accumulates, `C = op(A) op(B) (+ bias) + C`,
    /// each chain starting from the old `C[i,j]` (then `alpha` must be 1). No
    /// other value.
    pub beta: f32,
}

impl Gemm {
    /// `m x k` by `k x n`, both operands as stored, `alpha = 1`.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Gemm {
            m,
            n,
            k,
            a: Op::N,
            b: Op::N,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// The same GEMM with operand ops `a` and `b`.
    pub fn ops(self, a: Op, b: Op) -> Self {
        Gemm { a, b, ..self }
    }

    /// The same GEMM with scale `alpha`.
    pub fn alpha(self, alpha: f32) -> Self {
        Gemm { alpha, ..self }
    }

    /// The same GEMM accumulating into C (`beta = 1`): `C += op(A) op(B)`.
    pub fn accumulate(self) -> Self {
        Gemm { beta: 1.0, ..self }
    }

    /// 2 m n k: the flop count benches divide by.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// The kernel parameters, after checking every dimension is below 2^31
    /// (the kernels index tiles with 32-bit values and offsets with 64-bit),
    /// `beta` is 0 or 1, and `alpha` is 1 when accumulating.
    pub fn params(&self, op: &'static str, has_bias: bool) -> Result<ss_gemm_params> {
        const LIMIT: usize = 1 << 31;
        let beta = match self.beta {
            0.0 => 0,
            1.0 if self.alpha == 1.0 => 1,
            1.0 => {
                return Err(Error::invalid(
                    op,
                    format!(
                        "beta = 1 (accumulate) needs alpha = 1, got alpha = {}: the old C \
                         starts the chain, so alpha would scale it too",
                        self.alpha
                    ),
                ))
            }
            b => {
                return Err(Error::invalid(
                    op,
                    format!("beta = {b}: only 0 (overwrite) and 1 (accumulate) are supported"),
                ))
            }
        };
        for (name, v) in [("m", self.m), ("n", self.n), ("k", self.k)] {
            if v >= LIMIT {
                return Err(Error::invalid(
                    op,
                    format!("{name} = {v} is not below 2^31"),
                ));
            }
        }
        self.m
            .checked_mul(self.k)
            .and(self.k.checked_mul(self.n))
            .and(self.m.checked_mul(self.n))
            .ok_or_else(|| Error::invalid(op, format!("{self:?} does not fit in memory")))?;
        Ok(ss_gemm_params {
            m: self.m as u32,
            n: self.n as u32,
            k: self.k as u32,
            trans_a: (self.a == Op::T) as u32,
            trans_b: (self.b == Op::T) as u32,
            has_bias: has_bias as u32,
            alpha: self.alpha,
            beta,
        })
    }
}

/// An operand element type: f32, or f16 as its bits in a `u16`.
pub trait GemmIn: Element {
    /// The kernel-name part: `f32` or `f16`.
    const NAME: &'static str;
    /// Exact conversion to f32.
    fn to_f32(self) -> f32;
}

impl GemmIn for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl GemmIn for u16 {
    const NAME: &'static str = "f16";
    #[inline(always)]
    fn to_f32(self) -> f32 {
        numerics::half_to_float(self)
    }
}

/// An output element type: f32, or f16 as its bits in a `u16`. Also an
/// operand type ([`GemmIn`], whose `NAME` names it in kernel names):
/// accumulating (`beta = 1`) reads the old output as f32.
pub trait GemmOut: GemmIn {
    /// Round `y` (already canonical if NaN) to nearest even.
    fn from_f32(y: f32) -> Self;
    /// False for inf and NaN.
    fn is_finite(self) -> bool;
    /// The stored bit pattern, widened: what exact-tier comparisons compare.
    fn bits(self) -> u32;
}

impl GemmOut for f32 {
    #[inline(always)]
    fn from_f32(y: f32) -> Self {
        y
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        numerics::is_finite(self)
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
}

impl GemmOut for u16 {
    #[inline(always)]
    fn from_f32(y: f32) -> Self {
        numerics::float_to_half_rn(y)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        self & 0x7c00 != 0x7c00
    }
    fn bits(self) -> u32 {
        u32::from(self)
    }
}

/// The exact tier's epilogue for one output: `alpha * acc`, or
/// `fma(alpha, acc, bias)` with a bias; NaN made canonical, then rounded into
/// the output type. Shared by the CPU twin and the tests' references.
#[inline(always)]
pub fn epilogue<O: GemmOut>(alpha: f32, acc: f32, bias: Option<f32>) -> O {
    let y = match bias {
        Some(b) => alpha.mul_add(acc, b),
        None => alpha * acc,
    };
    O::from_f32(numerics::canonical_nan(y))
}

/// Checks lengths and devices of one call; returns the kernel parameters.
pub(crate) fn check<I: Element, O: Element>(
    op: &'static str,
    device: &Device,
    g: &Gemm,
    a: View<'_, I>,
    b: View<'_, I>,
    bias: Option<View<'_, f32>>,
    c: View<'_, O>,
) -> Result<ss_gemm_params> {
    let p = g.params(op, bias.is_some())?;
    a.check(op, "a", device, g.m * g.k)?;
    b.check(op, "b", device, g.k * g.n)?;
    if let Some(bias) = bias {
        bias.check(op, "bias", device, g.n)?;
    }
    c.check(op, "c", device, g.m * g.n)?;
    Ok(p)
}

/// Exact tier: `c = alpha * op(a) op(b) (+ bias)` on `device`, bit-identical
/// on every device (see the module's Numerics). Overwrites `c`, or with
/// `g.beta = 1` ([`Gemm::accumulate`]) accumulates into it (`c += a b`, each
/// chain starting from the old value). A non-finite output ORs the overflow
/// bit into `status`; nothing is synchronised.
pub fn gemm<'a, I: GemmIn, O: GemmOut>(
    device: &Device,
    g: &Gemm,
    a: impl Into<View<'a, I>>,
    b: impl Into<View<'a, I>>,
    bias: Option<View<'_, f32>>,
    c: impl Into<ViewMut<'a, O>>,
    status: &mut Status,
) -> Result<()> {
    let a = a.into();
    let b = b.into();
    let mut c = c.into();
    const OP: &str = "gemm";
    let p = check(OP, device, g, a, b, bias, c.as_view())?;
    status.check(OP, device)?;
    if g.m == 0 || g.n == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            let bias = match bias {
                Some(b) => Some(b.host(OP)?),
                None => None,
            };
            let overflow = cpu::gemm(&p, a.host(OP)?, b.host(OP)?, bias, c.host_mut(OP)?);
            if overflow {
                status.host_words_mut(OP)?[SS_STATUS_FLAGS as usize] |= SS_STATUS_OVERFLOW;
            }
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::gemm_exact::<I, O>(device, &p, a, b, bias, c, status.words_mut())
        }
    }
}

/// `shoestring verify`: the exact tier on `device` against the CPU twin, for
/// every operand/output type pair and every transpose combination, on ragged
/// shapes with k = 300 (a partial k tile), with and without a bias, and with
/// signed zeros and one overflowing f16 output among the inputs, and
/// accumulating (beta = 1) into an old C for f32 and f16. About
/// `elements / 4` outputs per case, at most 2^16 (the cost grows with k).
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    use crate::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
    let outputs = (elements / 4).clamp(16, 1 << 16);
    let m = (outputs as f64).sqrt() as usize | 1;
    let n = outputs / m + 3;
    let k = 300;
    let key = PhiloxKey::from_seed(0x6e33_0001);
    let draw = |len: usize, stream: u32, scale: f32| {
        uniform_floats(key, PhiloxCounter::new(0, stream, 0), len, scale)
    };
    let mut a = draw(m * k, 1, 1.0)?;
    let b = draw(k * n, 2, 1.0)?;
    let bias = draw(n, 3, 4.0)?;
    for x in a.iter_mut().step_by(13) {
        *x = -0.0;
    }
    // One large row of A: with f16 output some of its outputs overflow.
    a[..k].iter_mut().for_each(|x| *x *= 60000.0);
    let a16: Vec<u16> = a.iter().map(|&x| numerics::float_to_half_rn(x)).collect();
    let b16: Vec<u16> = b.iter().map(|&x| numerics::float_to_half_rn(x)).collect();

    let mut outcome: Option<crate::verify::Outcome> = None;
    let mut add = |o: crate::verify::Outcome| {
        outcome = Some(match outcome.take() {
            None => o,
            Some(acc) => acc.merge(o),
        });
    };
    for (case, (oa, ob)) in [
        (Op::N, Op::N),
        (Op::N, Op::T),
        (Op::T, Op::N),
        (Op::T, Op::T),
    ]
    .into_iter()
    .enumerate()
    {
        let g = Gemm::new(m, n, k).ops(oa, ob).alpha(0.5);
        let bias = (case % 2 == 1).then_some(bias.as_slice());
        add(verify_case::<f32, f32>(device, &g, &a, &b, bias, None)?);
        add(verify_case::<u16, f32>(device, &g, &a16, &b16, bias, None)?);
        add(verify_case::<u16, u16>(device, &g, &a16, &b16, bias, None)?);
        add(verify_case::<f32, u16>(device, &g, &a, &b, bias, None)?);
        // Accumulating into an old C (with signed zeros): beta = 1, alpha = 1.
        let acc = Gemm::new(m, n, k).ops(oa, ob).accumulate();
        let c0 = draw(m * n, 4 + case as u32, 2.0)?;
        let c0: Vec<f32> = c0
            .iter()
            .enumerate()
            .map(|(t, &x)| if t % 5 == 0 { -0.0 } else { x })
            .collect();
        let c0_16: Vec<u16> = c0.iter().map(|&x| numerics::float_to_half_rn(x)).collect();
        add(verify_case::<f32, f32>(
            device,
            &acc,
            &a,
            &b,
            bias,
            Some(&c0),
        )?);
        add(verify_case::<u16, u16>(
            device,
            &acc,
            &a16,
            &b16,
            bias,
            Some(&c0_16),
        )?);
    }
    Ok(outcome.expect("twenty-four cases compared"))
}

/// One exact GEMM on the CPU and on `device`: outputs and flags compared.
fn verify_case<I: GemmIn, O: GemmOut>(
    device: &Device,
    g: &Gemm,
    a: &[I],
    b: &[I],
    bias: Option<&[f32]>,
    c0: Option<&[O]>,
) -> Result<crate::verify::Outcome> {
    let run = |d: &Device| -> Result<(Vec<u32>, u32)> {
        let a = DeviceBuffer::copy_htod(d, a)?;
        let b = DeviceBuffer::copy_htod(d, b)?;
        let bias = bias.map(|v| DeviceBuffer::copy_htod(d, v)).transpose()?;
        let mut c = match c0 {
            Some(c0) => DeviceBuffer::copy_htod(d, c0)?,
            None => DeviceBuffer::<O>::zeros(d, g.m * g.n)?,
        };
        let mut status = Status::new(d)?;
        gemm(
            d,
            g,
            &a,
            &b,
            bias.as_ref().map(|b| b.view()),
            &mut c,
            &mut status,
        )?;
        let bits = c.copy_dtoh()?.iter().map(|&x| O::bits(x)).collect();
        Ok((bits, status.read()?.flags))
    };
    let (want, want_flag) = run(&Device::Cpu)?;
    let (got, got_flag) = run(device)?;
    let kernel = cuda::exact_kernel::<I, O>()?;
    let mut o = crate::verify::compare_bits("gemm", kernel, &want, &got);
    if want_flag != got_flag {
        o.mismatches += 1;
        o.first_mismatch.get_or_insert_with(|| {
            format!("{kernel} {g:?}: device flag {got_flag}, cpu flag {want_flag}")
        });
    }
    Ok(o)
}
