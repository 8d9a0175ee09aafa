//! `BatchNorm1d` over the batch (the classifier head's): `gamma` (ones) and
//! `beta` (zeros) are parameters; the running mean (zeros) and variance
//! (ones) are buffers, updated while training with `momentum` 0.1 and saved
//! with the model. `eps` 1e-5 (PyTorch's defaults).
//!
//! A training forward does not touch the running statistics: it computes
//! their update into a copy, kept as *pending* until the step's verdict.
//! [`commit`](BatchNorm1d::commit) installs it (the step was applied);
//! [`discard`](BatchNorm1d::discard) drops it (an overflow skipped the step,
//! or the batch was bad). So a skipped or failed step leaves the whole model,
//! buffers included, bit for bit as it was, and an overflow can never put an
//! inf into the running statistics.

use super::params::{constant, Init, Params};
use crate::autograd::{Graph, ParamId, Var};
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// A batch normalisation over features.
#[derive(Debug, Clone)]
pub struct BatchNorm1d {
    /// `[features]`, initially 1.
    pub gamma: ParamId,
    /// `[features]`, initially 0.
    pub beta: ParamId,
    /// The running mean (a buffer, not a parameter).
    pub running_mean: Tensor,
    /// The running (unbiased) variance (a buffer).
    pub running_var: Tensor,
    /// Added to the variance.
    pub eps: f32,
    /// The running statistics' update weight.
    pub momentum: f32,
    /// The last training forward's running statistics, not yet committed.
    pending: Option<(Tensor, Tensor)>,
}

impl BatchNorm1d {
    /// `{name}.weight` (gamma) and `{name}.bias` (beta) in `group`, PyTorch's names.
    pub fn new(
        params: &mut Params,
        device: &Device,
        name: &str,
        features: usize,
        group: usize,
    ) -> Result<Self> {
        let gamma = params.add(
            device,
            &format!("{name}.weight"),
            &[features],
            group,
            Init::Constant(1.0),
        )?;
        let beta = params.add(
            device,
            &format!("{name}.bias"),
            &[features],
            group,
            Init::Constant(0.0),
        )?;
        Ok(BatchNorm1d {
            gamma,
            beta,
            running_mean: constant(device, &[features], 0.0)?,
            running_var: constant(device, &[features], 1.0)?,
            eps: 1e-5,
            momentum: 0.1,
            pending: None,
        })
    }

    /// Normalises `x` (`[n, features]`): batch statistics while training
    /// (the running statistics' update becomes pending: see the module
    /// docs), the running statistics otherwise.
    pub fn forward(&mut self, g: &mut Graph, params: &Params, x: Var) -> Result<Var> {
        let gamma = g.param(self.gamma, &params.get(self.gamma).value)?;
        let beta = g.param(self.beta, &params.get(self.beta).value)?;
        if !g.is_training() {
            let (mut mean, mut var) = (self.running_mean.clone(), self.running_var.clone());
            return g.batchnorm(
                x,
                gamma,
                beta,
                (&mut mean, &mut var),
                self.eps,
                self.momentum,
            );
        }
        let mut mean = self.running_mean.deep_clone()?;
        let mut var = self.running_var.deep_clone()?;
        let y = g.batchnorm(
            x,
            gamma,
            beta,
            (&mut mean, &mut var),
            self.eps,
            self.momentum,
        )?;
        self.pending = Some((mean, var));
        Ok(y)
    }

    /// Installs the pending running statistics, if any.
    pub fn commit(&mut self) {
        if let Some((mean, var)) = self.pending.take() {
            self.running_mean = mean;
            self.running_var = var;
        }
    }

    /// Drops the pending running statistics, if any.
    pub fn discard(&mut self) {
        self.pending = None;
    }
}
