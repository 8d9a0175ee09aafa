//! BatchNorm1d over a batch: each feature (column) normalised by its batch
//! mean and variance (training, which also updates the running statistics)
//! or by the running statistics (evaluation), then scaled and shifted.
//!
//! Letters: `N` rows (the batch), `F` features; `x`, `y`, `dy`, `dx` are
//! `N x F` row-major; `gamma`, `beta`, the saved `mean` and `inv_std`, the
//! running statistics and `dgamma`, `dbeta` hold `F`.
//!
//! # Numerics
//! Exact tier (`docs/numerics/batchnorm.md`), the same bits on every device:
//! the batch statistics are canonical reductions over the column (DESIGN.md
//! rule 3), `sqrt` and division are IEEE (correctly rounded on every device),
//! and every other step is written out in `kernels/batchnorm.cu`:
//! `mean = sum / N`, `var = sumsq(x - mean) / N`, `inv = 1 / sqrt(var + eps)`,
//! `y = fma(gamma, (x - mean) * inv, beta)`; running statistics
//! `r = fma(momentum, stat - r, r)` with the unbiased variance; backward
//! `dbeta = sum dy`, `dgamma = sum dy * xhat`,
//! `dx = (gamma * inv / N) * fma(-xhat, dgamma, fma(N, dy, -dbeta))`.

pub mod cpu;
pub mod cuda;

use crate::device::abi::ss_batchnorm_params;
use crate::device::{Device, View, ViewMut};
use crate::error::{Error, Result};

/// The shape and constants of one BatchNorm1d.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormSpec {
    /// `N`, the batch (`1 ..= 2^24 - 1`).
    pub rows: usize,
    /// `F`, the features.
    pub features: usize,
    /// Added to the variance before the square root (PyTorch: 1e-5).
    pub eps: f32,
    /// The running statistics' update weight (PyTorch: 0.1).
    pub momentum: f32,
}

impl BatchNormSpec {
    fn params(&self, op: &'static str) -> Result<ss_batchnorm_params> {
        if self.rows == 0 || self.rows >= 1 << 24 {
            return Err(Error::invalid(
                op,
                format!(
                    "{} rows: the batch must have 1 ..= 2^24 - 1 rows",
                    self.rows
                ),
            ));
        }
        let features = u32::try_from(self.features)
            .map_err(|_| Error::invalid(op, format!("{} features do not fit", self.features)))?;
        if !(self.eps.is_finite() && self.eps > 0.0 && (0.0..=1.0).contains(&self.momentum)) {
            return Err(Error::invalid(
                op,
                format!(
                    "eps = {} must be finite and > 0, momentum = {} in [0, 1]",
                    self.eps, self.momentum
                ),
            ));
        }
        Ok(ss_batchnorm_params {
            rows: self.rows as u32,
            features,
            eps: self.eps,
            momentum: self.momentum,
        })
    }

    fn elements(&self, op: &'static str) -> Result<usize> {
        self.rows
            .checked_mul(self.features)
            .ok_or_else(|| Error::invalid(op, "rows * features overflows"))
    }
}

/// Training forward: `y` normalised by the batch statistics, `mean` and
/// `inv_std` saved for the backward, the running statistics updated. Needs
/// at least 2 rows. Overwrites `y`, `mean`, `inv_std`; updates `running_mean`, `running_var`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_fwd_train<'a>(
    device: &Device,
    spec: &BatchNormSpec,
    x: impl Into<View<'a, f32>>,
    gamma: impl Into<View<'a, f32>>,
    beta: impl Into<View<'a, f32>>,
    y: impl Into<ViewMut<'a, f32>>,
    mean: impl Into<ViewMut<'a, f32>>,
    inv_std: impl Into<ViewMut<'a, f32>>,
    running: (impl Into<ViewMut<'a, f32>>, impl Into<ViewMut<'a, f32>>),
) -> Result<()> {
    const OP: &str = "batchnorm_fwd_train";
    let p = spec.params(OP)?;
    if spec.rows < 2 {
        // One row has no spread: y would be beta whatever x is, dx zero, and
        // the running variance pulled toward 0 (PyTorch refuses it too).
        return Err(Error::invalid(
            OP,
            "training needs at least 2 rows (the batch statistics of one row are degenerate)",
        ));
    }
    let n = spec.elements(OP)?;
    let f = spec.features;
    let mut a = cuda::TrainArgs {
        x: x.into(),
        gamma: gamma.into(),
        beta: beta.into(),
        y: y.into(),
        mean: mean.into(),
        inv_std: inv_std.into(),
        running_mean: running.0.into(),
        running_var: running.1.into(),
    };
    a.x.check(OP, "x", device, n)?;
    a.gamma.check(OP, "gamma", device, f)?;
    a.beta.check(OP, "beta", device, f)?;
    a.y.check(OP, "y", device, n)?;
    a.mean.check(OP, "mean", device, f)?;
    a.inv_std.check(OP, "inv_std", device, f)?;
    a.running_mean.check(OP, "running_mean", device, f)?;
    a.running_var.check(OP, "running_var", device, f)?;
    if f == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            cpu::batchnorm_fwd_train_f32(
                &p,
                a.x.host(OP)?,
                a.gamma.host(OP)?,
                a.beta.host(OP)?,
                a.y.host_mut(OP)?,
                a.mean.host_mut(OP)?,
                a.inv_std.host_mut(OP)?,
                a.running_mean.host_mut(OP)?,
                a.running_var.host_mut(OP)?,
            );
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::batchnorm_fwd_train_f32(device, &p, a),
    }
}

/// Evaluation forward: `y` normalised by the running statistics.
/// Overwrites `y`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_fwd_eval<'a>(
    device: &Device,
    spec: &BatchNormSpec,
    x: impl Into<View<'a, f32>>,
    gamma: impl Into<View<'a, f32>>,
    beta: impl Into<View<'a, f32>>,
    running_mean: impl Into<View<'a, f32>>,
    running_var: impl Into<View<'a, f32>>,
    y: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP: &str = "batchnorm_fwd_eval";
    let p = spec.params(OP)?;
    let n = spec.elements(OP)?;
    let f = spec.features;
    let (x, gamma, beta) = (x.into(), gamma.into(), beta.into());
    let (rm, rv, mut y) = (running_mean.into(), running_var.into(), y.into());
    x.check(OP, "x", device, n)?;
    for (name, v) in [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", rm),
        ("running_var", rv),
    ] {
        v.check(OP, name, device, f)?;
    }
    y.check(OP, "y", device, n)?;
    if n == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            cpu::batchnorm_fwd_eval_f32(
                &p,
                x.host(OP)?,
                gamma.host(OP)?,
                beta.host(OP)?,
                rm.host(OP)?,
                rv.host(OP)?,
                y.host_mut(OP)?,
            );
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::batchnorm_fwd_eval_f32(device, &p, x, gamma, beta, rm, rv, y)
        }
    }
}

/// Backward of [`batchnorm_fwd_train`] from its saved `mean` and `inv_std`.
/// Overwrites `dx`, `dgamma` and `dbeta`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_bwd<'a>(
    device: &Device,
    spec: &BatchNormSpec,
    x: impl Into<View<'a, f32>>,
    gamma: impl Into<View<'a, f32>>,
    saved: (impl Into<View<'a, f32>>, impl Into<View<'a, f32>>),
    dy: impl Into<View<'a, f32>>,
    dx: impl Into<ViewMut<'a, f32>>,
    dgamma: impl Into<ViewMut<'a, f32>>,
    dbeta: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP: &str = "batchnorm_bwd";
    let p = spec.params(OP)?;
    let n = spec.elements(OP)?;
    let f = spec.features;
    let mut a = cuda::BwdArgs {
        x: x.into(),
        gamma: gamma.into(),
        mean: saved.0.into(),
        inv_std: saved.1.into(),
        dy: dy.into(),
        dx: dx.into(),
        dgamma: dgamma.into(),
        dbeta: dbeta.into(),
    };
    a.x.check(OP, "x", device, n)?;
    a.gamma.check(OP, "gamma", device, f)?;
    a.mean.check(OP, "mean", device, f)?;
    a.inv_std.check(OP, "inv_std", device, f)?;
    a.dy.check(OP, "dy", device, n)?;
    a.dx.check(OP, "dx", device, n)?;
    a.dgamma.check(OP, "dgamma", device, f)?;
    a.dbeta.check(OP, "dbeta", device, f)?;
    if f == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            cpu::batchnorm_bwd_f32(
                &p,
                a.x.host(OP)?,
                a.gamma.host(OP)?,
                a.mean.host(OP)?,
                a.inv_std.host(OP)?,
                a.dy.host(OP)?,
                a.dx.host_mut(OP)?,
                a.dgamma.host_mut(OP)?,
                a.dbeta.host_mut(OP)?,
            );
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::batchnorm_bwd_f32(device, &p, a),
    }
}

/// `shoestring verify`: training forward (y, saved statistics, running
/// statistics), evaluation forward and backward on `device` against the CPU
/// twin, on a ragged batch with a constant column and a large offset.
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    use crate::device::DeviceBuffer;
    use crate::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
    let f = 37;
    let rows = (elements / (4 * f)).clamp(2, 300);
    let key = PhiloxKey::from_seed(0xba7c_0001);
    let draw = |stream, n, s| uniform_floats(key, PhiloxCounter::new(0, stream, 0), n, s);
    let mut x = draw(1, rows * f, 3.0)?;
    for r in 0..rows {
        x[r * f] = 2.5; // a constant column: zero variance
        x[r * f + 1] += 1000.0; // a large mean
    }
    let gamma = draw(2, f, 2.0)?;
    let beta = draw(3, f, 1.0)?;
    let dy = draw(4, rows * f, 1.0)?;
    let spec = BatchNormSpec {
        rows,
        features: f,
        eps: 1e-5,
        momentum: 0.1,
    };
    let run = |d: &Device| -> Result<Vec<u32>> {
        let up = |v: &[f32]| DeviceBuffer::copy_htod(d, v);
        let (xb, gb, bb, dyb) = (up(&x)?, up(&gamma)?, up(&beta)?, up(&dy)?);
        let mut y = DeviceBuffer::zeros(d, rows * f)?;
        let mut mean = DeviceBuffer::zeros(d, f)?;
        let mut inv = DeviceBuffer::zeros(d, f)?;
        let mut rm = up(&beta)?;
        let mut rv = up(&gamma.iter().map(|g| g.abs()).collect::<Vec<_>>())?;
        batchnorm_fwd_train(
            d,
            &spec,
            &xb,
            &gb,
            &bb,
            &mut y,
            &mut mean,
            &mut inv,
            (&mut rm, &mut rv),
        )?;
        let mut ye = DeviceBuffer::zeros(d, rows * f)?;
        batchnorm_fwd_eval(d, &spec, &xb, &gb, &bb, &rm, &rv, &mut ye)?;
        let mut dx = DeviceBuffer::zeros(d, rows * f)?;
        let mut dg = DeviceBuffer::zeros(d, f)?;
        let mut db = DeviceBuffer::zeros(d, f)?;
        batchnorm_bwd(
            d,
            &spec,
            &xb,
            &gb,
            (&mean, &inv),
            &dyb,
            &mut dx,
            &mut dg,
            &mut db,
        )?;
        let mut bits = Vec::new();
        for b in [&y, &mean, &inv, &rm, &rv, &ye, &dx, &dg, &db] {
            bits.extend(b.copy_dtoh()?.iter().map(|v| v.to_bits()));
        }
        Ok(bits)
    };
    Ok(crate::verify::compare_bits(
        "batchnorm",
        "batchnorm_fwd_train_f32 + _fwd_eval_f32 + _bwd_f32",
        &run(&Device::Cpu)?,
        &run(device)?,
    ))
}
