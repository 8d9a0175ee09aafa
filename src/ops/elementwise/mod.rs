//! Elementwise ops on any device: add, mul, scale, f32<->f16 casts, the AdamW
//! step on f32 master weights, and the mixed-precision unscale + finite check
//! that raises the overflow bit of the step's [`Status`] block.
//!
//! # Numerics
//! Every output element is a function of the same-index input elements only,
//! computed by the same IEEE-754 f32 operations in the same order on every
//! device (docs/numerics/elementwise.md has each op's order):
//! - `add`: `a + b`; `mul`: `a * b`; `scale`: `alpha * x` (one rounding each).
//! - `cast_f32_to_f16`: round to nearest even, overflow to inf, NaN kept quiet
//!   with its top payload bits; equal to `half::f16::from_f32(x).to_bits()`.
//!   `cast_f16_to_f32`: exact; equal to `half::f16::to_f32`.
//! - `adam_step`: the order of `kernels/elementwise.cu::elementwise_adam_f32`,
//!   with two explicit fmas for the moments and two for the parameter update;
//!   host constants from [`AdamParams::kernel_params`].
//! - `unscale_check_finite`: `g * inv_scale` (one rounding); the flag is an
//!   integer OR of "some result has an all-ones exponent".
//!
//! - NaN results of arithmetic (not of the casts) are stored as the project's
//!   one NaN, `0x7fc00000` ([`crate::numerics::canonical_nan`]), the IEEE
//!   default quiet NaN that Rust's `f32::NAN` also has.
//!
//! Launch shape never changes the bits: every kernel is a grid-stride loop.

pub mod cpu;
pub mod cuda;

use crate::device::abi::{
    ss_elementwise_adam_params, ss_elementwise_copy_cols_params, ss_elementwise_params,
    ss_elementwise_sgd_params, SS_STATUS_FLAGS,
};
use crate::device::{Device, DeviceBuffer, Element, View, ViewMut};
use crate::error::{Error, Result};
use crate::status::Status;

pub use cuda::DEFAULT_SHAPE;

/// A launch shape: (threads per block, most blocks). Ignored on Cpu.
pub type Shape = (u32, u32);

fn params(n: usize, alpha: f32) -> ss_elementwise_params {
    ss_elementwise_params {
        n: n as u64,
        alpha,
        reserved: 0,
    }
}

/// `out[i] = a[i] + b[i]` on `device`; all three of one length.
/// Overwrites `out`.
pub fn add<'a>(
    device: &Device,
    a: impl Into<View<'a, f32>>,
    b: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    add_with_shape(device, a, b, out, DEFAULT_SHAPE)
}

/// [`add`] with an explicit launch shape for Cuda and Sim.
pub fn add_with_shape<'a>(
    device: &Device,
    a: impl Into<View<'a, f32>>,
    b: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
    shape: Shape,
) -> Result<()> {
    binary(
        "elementwise_add_f32",
        cpu::elementwise_add_f32,
        device,
        a.into(),
        b.into(),
        out.into(),
        shape,
    )
}

/// `out[i] = a[i] * b[i]` on `device`; all three of one length.
/// Overwrites `out`.
pub fn mul<'a>(
    device: &Device,
    a: impl Into<View<'a, f32>>,
    b: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    mul_with_shape(device, a, b, out, DEFAULT_SHAPE)
}

/// [`mul`] with an explicit launch shape for Cuda and Sim.
pub fn mul_with_shape<'a>(
    device: &Device,
    a: impl Into<View<'a, f32>>,
    b: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
    shape: Shape,
) -> Result<()> {
    binary(
        "elementwise_mul_f32",
        cpu::elementwise_mul_f32,
        device,
        a.into(),
        b.into(),
        out.into(),
        shape,
    )
}

/// The CPU twin of one elementwise kernel, over host slices.
type Twin2 = fn(&ss_elementwise_params, &[f32], &[f32], &mut [f32]);
type Twin1<I, O> = fn(&ss_elementwise_params, &[I], &mut [O]);

/// Checks, then runs kernel `op` (Cuda, Sim) or its twin `cpu_twin` (Cpu).
fn binary(
    op: &'static str,
    cpu_twin: Twin2,
    device: &Device,
    a: View<'_, f32>,
    b: View<'_, f32>,
    mut out: ViewMut<'_, f32>,
    shape: Shape,
) -> Result<()> {
    let n = a.len();
    a.check(op, "a", device, n)?;
    b.check(op, "b", device, n)?;
    out.check(op, "out", device, n)?;
    if n == 0 {
        return Ok(());
    }
    let p = params(n, 0.0);
    match device {
        Device::Cpu => {
            cpu_twin(&p, a.host(op)?, b.host(op)?, out.host_mut(op)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::elementwise_binary_f32(device, op, &p, a, b, out, shape)
        }
    }
}

/// Checks, then runs the one-input kernel `op` (Cuda, Sim) or its twin (Cpu).
fn unary<I: Element, O: Element>(
    op: &'static str,
    cpu_twin: Twin1<I, O>,
    alpha: f32,
    device: &Device,
    x: View<'_, I>,
    mut out: ViewMut<'_, O>,
    shape: Shape,
) -> Result<()> {
    let n = x.len();
    x.check(op, "x", device, n)?;
    out.check(op, "out", device, n)?;
    if n == 0 {
        return Ok(());
    }
    let p = params(n, alpha);
    match device {
        Device::Cpu => {
            cpu_twin(&p, x.host(op)?, out.host_mut(op)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::elementwise_unary(device, op, &p, x, out, shape),
    }
}

/// `out[i] = alpha * x[i]` on `device`.
/// Overwrites `out`.
pub fn scale<'a>(
    device: &Device,
    alpha: f32,
    x: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    scale_with_shape(device, alpha, x, out, DEFAULT_SHAPE)
}

/// [`scale`] with an explicit launch shape for Cuda and Sim.
pub fn scale_with_shape<'a>(
    device: &Device,
    alpha: f32,
    x: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
    shape: Shape,
) -> Result<()> {
    unary(
        "elementwise_scale_f32",
        cpu::elementwise_scale_f32,
        alpha,
        device,
        x.into(),
        out.into(),
        shape,
    )
}

/// `y[i] = fma(alpha, x[i], y[i])` on `device`: accumulates into `y` (one
/// rounding per element). `x` and `y` of one length.
pub fn axpy<'a>(
    device: &Device,
    alpha: f32,
    x: impl Into<View<'a, f32>>,
    y: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP: &str = "elementwise_axpy_f32";
    let (x, mut y) = (x.into(), y.into());
    let n = y.len();
    x.check(OP, "x", device, n)?;
    y.check(OP, "y", device, n)?;
    if n == 0 {
        return Ok(());
    }
    let p = params(n, alpha);
    match device {
        Device::Cpu => {
            cpu::elementwise_axpy_f32(&p, x.host(OP)?, y.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::elementwise_axpy_f32(device, &p, x, y, DEFAULT_SHAPE)
        }
    }
}

/// `y[i] += x[i]` on `device`: accumulates (gradient sums). [`axpy`] with
/// `alpha = 1`, whose fma rounds exactly like `y + x`.
pub fn add_assign<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    y: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    axpy(device, 1.0, x, y)
}

/// `out[i]` = the f16 bits of `x[i]` rounded to nearest even (overflow -> inf,
/// NaN -> quiet NaN with the top payload bits), as `half::f16::from_f32`.
/// Overwrites `out`.
pub fn cast_f32_to_f16<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, u16>>,
) -> Result<()> {
    cast_f32_to_f16_with_shape(device, x, out, DEFAULT_SHAPE)
}

/// [`cast_f32_to_f16`] with an explicit launch shape for Cuda and Sim.
pub fn cast_f32_to_f16_with_shape<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, u16>>,
    shape: Shape,
) -> Result<()> {
    unary(
        "elementwise_cast_f32_to_f16",
        cpu::elementwise_cast_f32_to_f16,
        0.0,
        device,
        x.into(),
        out.into(),
        shape,
    )
}

/// `out[i]` = the f32 value of the half with bits `x[i]` (exact; NaN payload
/// kept, quiet bit set), as `half::f16::to_f32`.
/// Overwrites `out`.
pub fn cast_f16_to_f32<'a>(
    device: &Device,
    x: impl Into<View<'a, u16>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    cast_f16_to_f32_with_shape(device, x, out, DEFAULT_SHAPE)
}

/// [`cast_f16_to_f32`] with an explicit launch shape for Cuda and Sim.
pub fn cast_f16_to_f32_with_shape<'a>(
    device: &Device,
    x: impl Into<View<'a, u16>>,
    out: impl Into<ViewMut<'a, f32>>,
    shape: Shape,
) -> Result<()> {
    unary(
        "elementwise_cast_f16_to_f32",
        cpu::elementwise_cast_f16_to_f32,
        0.0,
        device,
        x.into(),
        out.into(),
        shape,
    )
}

/// AdamW hyper-parameters (decoupled weight decay, Loshchilov & Hutter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator's square root.
    pub eps: f32,
    /// Decoupled weight decay (0: Adam).
    pub weight_decay: f32,
}

impl Default for AdamParams {
    /// PyTorch's `torch.optim.Adam` defaults: lr 1e-3, betas (0.9, 0.999),
    /// eps 1e-8, no weight decay.
    fn default() -> Self {
        AdamParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamParams {
    /// The kernel parameters of step `t` (1-based) over `n` elements: the one
    /// place the host constants are computed, for the CPU twin and the kernels
    /// alike (see `kernels/common/abi_elementwise.h`):
    /// `one_minus_beta{1,2} = 1.0f32 - beta{1,2}`,
    /// `bias_correction{1,2} = (1.0 - pow_f64(beta{1,2} as f64, t)) as f32`
    /// ([`pow_f64`]: square-and-multiply in f64), `lr_weight_decay = lr * weight_decay` (f32).
    ///
    /// Errors: `t == 0`; `beta1`, `beta2` outside `[0, 1)`; `eps` not finite
    /// and positive; `lr` not finite; `weight_decay` not finite and `>= 0`.
    pub fn kernel_params(&self, t: u64, n: usize) -> Result<ss_elementwise_adam_params> {
        const OP: &str = "adam_step";
        if t == 0 {
            return Err(Error::invalid(OP, "step t must be >= 1 (t counts from 1)"));
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::invalid(
                    OP,
                    format!("{name} = {beta} is not in [0, 1)"),
                ));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::invalid(
                OP,
                format!("eps = {} is not finite and > 0", self.eps),
            ));
        }
        if !self.lr.is_finite() {
            return Err(Error::invalid(
                OP,
                format!("lr = {} is not finite", self.lr),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(
                OP,
                format!(
                    "weight_decay = {} is not finite and >= 0",
                    self.weight_decay
                ),
            ));
        }
        Ok(ss_elementwise_adam_params {
            n: n as u64,
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            one_minus_beta1: 1.0 - self.beta1,
            one_minus_beta2: 1.0 - self.beta2,
            bias_correction1: bias_correction(self.beta1, t),
            bias_correction2: bias_correction(self.beta2, t),
            lr_weight_decay: self.lr * self.weight_decay,
        })
    }
}

/// `base^t` in f64 by square-and-multiply over the bits of `t`, lowest bit
/// first: `r = 1; b = base; while t > 0 { if t & 1 { r *= b }; b *= b; t >>= 1 }`.
/// A fixed sequence of f64 multiplications (no libm `pow`), so every host gives
/// the same bits.
pub fn pow_f64(base: f64, mut t: u64) -> f64 {
    let mut r = 1.0f64;
    let mut b = base;
    while t > 0 {
        if t & 1 == 1 {
            r *= b;
        }
        b *= b;
        t >>= 1;
    }
    r
}

/// `1 - beta^t` evaluated in f64 ([`pow_f64`], then one f64 subtraction) and
/// rounded once to f32. In `(0, 1]` for `beta` in `[0, 1)` and `t >= 1`.
pub fn bias_correction(beta: f32, t: u64) -> f32 {
    (1.0 - pow_f64(f64::from(beta), t)) as f32
}

/// One AdamW step `t` (1-based) in place on `param`, `m`, `v` given `grad`,
/// all of one length on `device`. See the module's Numerics section.
/// Updates `param`, `m` and `v` in place.
pub fn adam_step<'a>(
    device: &Device,
    hp: &AdamParams,
    t: u64,
    param: impl Into<ViewMut<'a, f32>>,
    grad: impl Into<View<'a, f32>>,
    m: impl Into<ViewMut<'a, f32>>,
    v: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    adam_step_with_shape(device, hp, t, param, grad, m, v, DEFAULT_SHAPE)
}

/// [`adam_step`] with an explicit launch shape for Cuda and Sim.
#[allow(clippy::too_many_arguments)]
pub fn adam_step_with_shape<'a>(
    device: &Device,
    hp: &AdamParams,
    t: u64,
    param: impl Into<ViewMut<'a, f32>>,
    grad: impl Into<View<'a, f32>>,
    m: impl Into<ViewMut<'a, f32>>,
    v: impl Into<ViewMut<'a, f32>>,
    shape: Shape,
) -> Result<()> {
    let mut param = param.into();
    let grad = grad.into();
    let mut m = m.into();
    let mut v = v.into();
    const OP: &str = "elementwise_adam_f32";
    let n = param.len();
    param.check(OP, "param", device, n)?;
    grad.check(OP, "grad", device, n)?;
    m.check(OP, "m", device, n)?;
    v.check(OP, "v", device, n)?;
    let p = hp.kernel_params(t, n)?;
    if n == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            let (param, grad) = (param.host_mut(OP)?, grad.host(OP)?);
            cpu::elementwise_adam_f32(&p, param, grad, m.host_mut(OP)?, v.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::elementwise_adam_f32(device, &p, param, grad, m, v, shape)
        }
    }
}

/// `grads[i] *= inv_scale` in place on `device`; raises the status block's
/// overflow bit if any result is inf or NaN (never clears it).
/// Scales `grads` in place.
pub fn unscale_check_finite<'a>(
    device: &Device,
    inv_scale: f32,
    grads: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
) -> Result<()> {
    unscale_check_finite_with_shape(device, inv_scale, grads, status, DEFAULT_SHAPE)
}

/// [`unscale_check_finite`] with an explicit launch shape for Cuda and Sim.
pub fn unscale_check_finite_with_shape<'a>(
    device: &Device,
    inv_scale: f32,
    grads: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
    shape: Shape,
) -> Result<()> {
    let mut grads = grads.into();
    const OP: &str = "elementwise_unscale_check_f32";
    let n = grads.len();
    grads.check(OP, "grads", device, n)?;
    status.check(OP, device)?;
    if n == 0 {
        return Ok(());
    }
    let p = params(n, inv_scale);
    match device {
        Device::Cpu => {
            let word = &mut status.host_words_mut(OP)?[SS_STATUS_FLAGS as usize];
            cpu::elementwise_unscale_check_f32(&p, grads.host_mut(OP)?, word);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::elementwise_unscale_check_f32(device, &p, grads, status.words_mut(), shape)
        }
    }
}

/// `y[i] = max(x[i], 0)` (ReLU): `x > 0 ? x : +0.0`, the canonical NaN for
/// a NaN. Overwrites `y`.
pub fn relu_fwd<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    y: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    unary(
        "elementwise_relu_fwd_f32",
        cpu::elementwise_relu_fwd_f32,
        0.0,
        device,
        x.into(),
        y.into(),
        DEFAULT_SHAPE,
    )
}

/// Backward of [`relu_fwd`]: `dx[i] = x[i] > 0 ? dy[i] : +0.0`, from the
/// forward's input `x`. Overwrites `dx`.
pub fn relu_bwd<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    dy: impl Into<View<'a, f32>>,
    dx: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP: &str = "elementwise_relu_bwd_f32";
    let (x, dy, mut dx) = (x.into(), dy.into(), dx.into());
    let n = x.len();
    x.check(OP, "x", device, n)?;
    dy.check(OP, "dy", device, n)?;
    dx.check(OP, "dx", device, n)?;
    if n == 0 {
        return Ok(());
    }
    let p = params(n, 0.0);
    match device {
        Device::Cpu => {
            cpu::elementwise_relu_bwd_f32(&p, x.host(OP)?, dy.host(OP)?, dx.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::elementwise_relu_bwd_f32(device, &p, x, dy, dx),
    }
}

/// Where a run of columns sits in each row of a row-major matrix: `ld`
/// elements per row, the run starting at column `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// Elements per row of the whole matrix.
    pub ld: usize,
    /// The first column of the run.
    pub offset: usize,
}

/// A bit copy of `cols` columns of each of `rows` rows: `dst[r, dst_at.offset
/// + c] = src[r, src_at.offset + c]` (concatenating or splitting features).
/// Overwrites those elements of `dst` only.
pub fn copy_cols<'a>(
    device: &Device,
    (rows, cols): (usize, usize),
    src: impl Into<View<'a, f32>>,
    src_at: Columns,
    dst: impl Into<ViewMut<'a, f32>>,
    dst_at: Columns,
) -> Result<()> {
    const OP: &str = "elementwise_copy_cols_f32";
    let (src, mut dst) = (src.into(), dst.into());
    for (name, at, len) in [("src", src_at, src.len()), ("dst", dst_at, dst.len())] {
        let fits = at.offset.checked_add(cols).is_some_and(|e| e <= at.ld)
            && rows.checked_mul(at.ld).is_some_and(|n| n <= len);
        if !fits {
            return Err(Error::invalid(
                OP,
                format!(
                    "`{name}`: {rows} rows of columns {}..{} at row stride {} do not fit {len} elements",
                    at.offset,
                    at.offset.saturating_add(cols),
                    at.ld
                ),
            ));
        }
    }
    src.check(OP, "src", device, src.len())?;
    dst.check(OP, "dst", device, dst.len())?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let p = ss_elementwise_copy_cols_params {
        rows: rows as u64,
        cols: cols as u64,
        src_ld: src_at.ld as u64,
        src_off: src_at.offset as u64,
        dst_ld: dst_at.ld as u64,
        dst_off: dst_at.offset as u64,
    };
    match device {
        Device::Cpu => {
            cpu::elementwise_copy_cols_f32(&p, src.host(OP)?, dst.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::elementwise_copy_cols_f32(device, &p, src, dst),
    }
}

/// SGD hyper-parameters: momentum and coupled weight decay, as
/// `torch.optim.SGD` (no dampening, no Nesterov).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    /// Learning rate.
    pub lr: f32,
    /// Velocity decay, in `[0, 1)`.
    pub momentum: f32,
    /// Added to the gradient as `weight_decay * param`.
    pub weight_decay: f32,
}

impl SgdParams {
    /// The kernel's parameters for `n` elements, or an error naming the
    /// setting out of range.
    pub fn kernel_params(&self, n: usize) -> Result<ss_elementwise_sgd_params> {
        if !(self.lr.is_finite()
            && (0.0..1.0).contains(&self.momentum)
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0)
        {
            return Err(Error::invalid(
                "elementwise_sgd_f32",
                format!(
                    "lr must be finite, momentum in [0, 1), weight_decay finite and >= 0: {self:?}"
                ),
            ));
        }
        Ok(ss_elementwise_sgd_params {
            n: n as u64,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            reserved: 0,
        })
    }
}

/// One SGD step in place on `param` and the velocity `v` given `grad`, all of
/// one length: `g = fma(wd, w, grad)`, `v = fma(momentum, v, g)`,
/// `w = fma(-lr, v, w)`. Updates `param` and `v` in place.
pub fn sgd_step<'a>(
    device: &Device,
    hp: &SgdParams,
    param: impl Into<ViewMut<'a, f32>>,
    grad: impl Into<View<'a, f32>>,
    v: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP: &str = "elementwise_sgd_f32";
    let (mut param, grad, mut v) = (param.into(), grad.into(), v.into());
    let n = param.len();
    let p = hp.kernel_params(n)?;
    param.check(OP, "param", device, n)?;
    grad.check(OP, "grad", device, n)?;
    v.check(OP, "v", device, n)?;
    if n == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            cpu::elementwise_sgd_f32(&p, param.host_mut(OP)?, grad.host(OP)?, v.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::elementwise_sgd_f32(device, &p, param, grad, v),
    }
}

/// `x[i] *= s[0]` in place, `s` one float on the device (a coefficient
/// computed there, such as [`clip_coef`]'s: no host read).
pub fn scale_by<'a>(
    device: &Device,
    s: impl Into<View<'a, f32>>,
    x: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP: &str = "elementwise_scale_by_f32";
    let (s, mut x) = (s.into(), x.into());
    s.check(OP, "s", device, 1)?;
    let n = x.len();
    x.check(OP, "x", device, n)?;
    if n == 0 {
        return Ok(());
    }
    let p = params(n, 0.0);
    match device {
        Device::Cpu => {
            let s = s.host(OP)?[0];
            cpu::elementwise_scale_by_f32(&p, s, x.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::elementwise_scale_by_f32(device, &p, s, x),
    }
}

/// The gradient-clipping coefficient from a total sum of squares `sumsq`
/// (one float on the device): `coef = min(1, max_norm / (sqrt(sumsq) +
/// 1e-6))`, and the norm into the status block's grad-norm word. A norm that
/// is not finite makes `coef` NaN and raises the overflow bit (skip the step).
/// Overwrites `coef` (one float).
pub fn clip_coef<'a>(
    device: &Device,
    max_norm: f32,
    sumsq: impl Into<View<'a, f32>>,
    coef: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
) -> Result<()> {
    const OP: &str = "elementwise_clip_coef_f32";
    let (sumsq, mut coef) = (sumsq.into(), coef.into());
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::invalid(
            OP,
            format!("max_norm = {max_norm} is not finite and > 0"),
        ));
    }
    sumsq.check(OP, "sumsq", device, 1)?;
    coef.check(OP, "coef", device, 1)?;
    status.check(OP, device)?;
    let p = params(1, max_norm);
    match device {
        Device::Cpu => {
            let t = sumsq.host(OP)?[0];
            cpu::elementwise_clip_coef_f32(
                &p,
                t,
                &mut coef.host_mut(OP)?[0],
                status.host_words_mut(OP)?,
            );
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::elementwise_clip_coef_f32(device, &p, sumsq, coef, status.words_mut())
        }
    }
}

/// `shoestring verify`: every elementwise kernel on `device` against the CPU
/// twin, on Philox-drawn inputs with specials (inf, NaN, subnormals, f16
/// overflow and rounding ties) mixed in.
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    let n = elements.max(1);
    let inputs = verify_inputs(n)?;
    let cpu = run_all(&Device::Cpu, &inputs)?;
    let dev = run_all(device, &inputs)?;
    let mut outcome: Option<crate::verify::Outcome> = None;
    for ((kernel, want), (_, got)) in cpu.iter().zip(&dev) {
        let o = crate::verify::compare_bits("elementwise", kernel, want, got);
        outcome = Some(match outcome {
            None => o,
            Some(acc) => acc.merge(o),
        });
    }
    Ok(outcome.expect("run_all returns every kernel"))
}

struct VerifyInputs {
    a: Vec<f32>,
    b: Vec<f32>,
    halves: Vec<u16>,
}

/// Philox words -> floats: `a` spans many binades with both signs plus
/// specials; `b` is in (-1, 1); `halves` covers every f16 bit pattern.
fn verify_inputs(n: usize) -> Result<VerifyInputs> {
    use crate::ops::philox::{philox_blocks, PhiloxCounter, PhiloxKey};
    let key = PhiloxKey::from_seed(0x0e1e_3e47_0a5e_0001);
    let words = philox_blocks(
        &Device::Cpu,
        key,
        PhiloxCounter::new(0, 0x0e1e, 0),
        (2 * n).div_ceil(4) as u64,
    )?
    .copy_dtoh()?;
    let specials = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0xffc0_1234),
        f32::MIN_POSITIVE / 3.0,
        65504.0,
        65520.0,
        1.0 + 2.0f32.powi(-11),
        5.96e-8,
        -0.0,
    ];
    let a = (0..n)
        .map(|i| {
            if i % 97 == 3 {
                specials[(i / 97) % specials.len()]
            } else {
                // Exponent in [2^-30, 2^30): mantissa and sign from the word.
                let w = words[2 * i];
                let exp = 97 + (w >> 26) % 60;
                f32::from_bits((w & 0x8000_0000) | (exp << 23) | (w & 0x007f_ffff))
            }
        })
        .collect();
    let b = (0..n)
        .map(|i| (words[2 * i + 1] >> 8) as f32 * 2.0f32.powi(-23) - 1.0)
        .collect();
    let halves = (0..n).map(|i| i as u16).collect();
    Ok(VerifyInputs { a, b, halves })
}

/// Every kernel once on `device`; outputs as bit patterns, named by kernel.
fn run_all(device: &Device, x: &VerifyInputs) -> Result<Vec<(&'static str, Vec<u32>)>> {
    let n = x.a.len();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    let a = DeviceBuffer::copy_htod(device, &x.a)?;
    let b = DeviceBuffer::copy_htod(device, &x.b)?;
    let mut out = DeviceBuffer::zeros(device, n)?;
    let mut res = Vec::new();
    add(device, &a, &b, &mut out)?;
    res.push(("elementwise_add_f32", bits(out.copy_dtoh()?)));
    mul(device, &a, &b, &mut out)?;
    res.push(("elementwise_mul_f32", bits(out.copy_dtoh()?)));
    scale(device, 0.3, &a, &mut out)?;
    res.push(("elementwise_scale_f32", bits(out.copy_dtoh()?)));
    let mut y = DeviceBuffer::copy_htod(device, &x.b)?;
    axpy(device, -1.75, &a, &mut y)?;
    res.push(("elementwise_axpy_f32", bits(y.copy_dtoh()?)));
    relu_fwd(device, &a, &mut out)?;
    res.push(("elementwise_relu_fwd_f32", bits(out.copy_dtoh()?)));
    relu_bwd(device, &a, &b, &mut out)?;
    res.push(("elementwise_relu_bwd_f32", bits(out.copy_dtoh()?)));
    // Columns 1..n/2 of a two-row view into the second half of each row.
    let half = n / 2;
    if half >= 2 {
        let mut dst = DeviceBuffer::copy_htod(device, &x.b)?;
        let (src_at, dst_at) = (
            Columns {
                ld: half,
                offset: 1,
            },
            Columns {
                ld: half,
                offset: 0,
            },
        );
        copy_cols(device, (2, half - 1), &a, src_at, &mut dst, dst_at)?;
        res.push(("elementwise_copy_cols_f32", bits(dst.copy_dtoh()?)));
    }
    let mut h = DeviceBuffer::zeros(device, n)?;
    cast_f32_to_f16(device, &a, &mut h)?;
    res.push((
        "elementwise_cast_f32_to_f16",
        h.copy_dtoh()?.into_iter().map(u32::from).collect(),
    ));
    let halves = DeviceBuffer::copy_htod(device, &x.halves)?;
    cast_f16_to_f32(device, &halves, &mut out)?;
    res.push(("elementwise_cast_f16_to_f32", bits(out.copy_dtoh()?)));
    // Adam: three steps with weight decay, from b as parameters and a scaled
    // down as gradients (finite ones only: specials become 0).
    let g: Vec<f32> =
        x.a.iter()
            .map(|&v| if v.is_finite() { v * 1e-6 } else { 0.0 })
            .collect();
    let grad = DeviceBuffer::copy_htod(device, &g)?;
    let mut param = DeviceBuffer::copy_htod(device, &x.b)?;
    let mut m = DeviceBuffer::zeros(device, n)?;
    let mut v = DeviceBuffer::zeros(device, n)?;
    let hp = AdamParams {
        weight_decay: 0.01,
        ..AdamParams::default()
    };
    for t in 1..=3 {
        adam_step(device, &hp, t, &mut param, &grad, &mut m, &mut v)?;
    }
    res.push(("elementwise_adam_f32 (param)", bits(param.copy_dtoh()?)));
    res.push(("elementwise_adam_f32 (m)", bits(m.copy_dtoh()?)));
    res.push(("elementwise_adam_f32 (v)", bits(v.copy_dtoh()?)));
    let mut param = DeviceBuffer::copy_htod(device, &x.b)?;
    let mut vel = DeviceBuffer::zeros(device, n)?;
    let sgd = SgdParams {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
    };
    for _ in 0..3 {
        sgd_step(device, &sgd, &mut param, &grad, &mut vel)?;
    }
    res.push(("elementwise_sgd_f32 (param)", bits(param.copy_dtoh()?)));
    res.push(("elementwise_sgd_f32 (v)", bits(vel.copy_dtoh()?)));
    // Clipping: the coefficient from a sum of squares, then the scale by it.
    let mut status = Status::new(device)?;
    let sumsq = DeviceBuffer::copy_htod(device, &[12.25f32])?;
    let mut coef = DeviceBuffer::zeros(device, 1)?;
    clip_coef(device, 0.7, &sumsq, &mut coef, &mut status)?;
    let mut g = DeviceBuffer::copy_htod(device, &x.b)?;
    scale_by(device, &coef, &mut g)?;
    let mut got = bits(g.copy_dtoh()?);
    got.extend(bits(coef.copy_dtoh()?));
    got.push(status.read()?.grad_norm.to_bits());
    res.push(("elementwise_clip_coef_f32 + scale_by", got));
    // Unscale: the specials make the flag rise; compare grads and the status word.
    let mut status = Status::new(device)?;
    let mut grads = DeviceBuffer::copy_htod(device, &x.a)?;
    unscale_check_finite(device, 1.0 / 65536.0, &mut grads, &mut status)?;
    let mut got = bits(grads.copy_dtoh()?);
    got.push(status.read()?.flags);
    res.push(("elementwise_unscale_check_f32", got));
    Ok(res)
}
