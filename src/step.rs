//! One training step of a [`TextClassifier`], the sequence every trainer
//! runs: forward and backward on a fresh [`Graph`], (mixed precision) the
//! unscale check, optional gradient clipping, then the step's **one**
//! device-to-host read (the status block: flags, loss, gradient norm), the
//! loss scaler's verdict, and the optimizer update (with the BatchNorm
//! running statistics this batch gave) unless the step overflowed. A skipped
//! or failed step leaves every parameter and buffer bit as it was. The RNG
//! step advances on an applied or skipped step, so no mask is drawn twice;
//! after an error it stays, and a retry draws the same masks.

use crate::amp::{LossScaler, Precision, ScaleStep, Tier};
use crate::autograd::{Graph, Var};
use crate::error::Result;
use crate::nn::{Params, TextBatch, TextClassifier};
use crate::optim::Optimizer;
use crate::rng::RngState;
use crate::status::StatusReport;

/// How steps run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepConfig {
    /// F32, or Mixed with a loss scaler.
    pub precision: Precision,
    /// Clip the gradient norm to this (None: no clipping).
    pub clip: Option<f32>,
    /// The GEMMs' tier ([`Tier::Fast`]: Mixed on Cuda only).
    pub tier: Tier,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// The status block as read at the end of the step (the loss is
    /// `report.loss`).
    pub report: StatusReport,
    /// Whether the optimizer update was applied (false on overflow).
    pub applied: bool,
    /// Mixed precision: the scaler's verdict.
    pub scale: Option<ScaleStep>,
}

/// One step on `batch`; `scaler` is required in Mixed precision and unused
/// in F32. Bad token ids or labels are an error (nothing is updated, the
/// RNG state included).
pub fn train_step(
    model: &mut TextClassifier,
    opt: &mut Optimizer,
    scaler: Option<&mut LossScaler>,
    config: &StepConfig,
    batch: &TextBatch,
    rng: &mut RngState,
) -> Result<StepOutcome> {
    let device = batch.tokens.device().clone();
    let mut g = Graph::with_precision(&device, config.precision)?.with_tier(config.tier)?;
    // Frozen groups (gradual unfreezing) get no gradient and cost no backward.
    g.freeze(&opt.frozen_params(&model.params));
    let out = model
        .loss(&mut g, batch, rng)
        .and_then(|loss| finish_step(g, loss, &mut model.params, opt, scaler, config, rng));
    match &out {
        Ok(o) if o.applied => model.commit_running_stats(),
        _ => model.discard_running_stats(),
    }
    out
}

/// The rest of a step whose forward built `loss` on `g` (any model's):
/// backward (times the loss scale in Mixed), the unscale check, clipping,
/// the one status read, the scaler's verdict, the update of `params` unless
/// the step overflowed, and the RNG step. Bad inputs (ids, labels) are an
/// error before anything is updated, the RNG state included.
pub fn finish_step(
    mut g: Graph,
    loss: Var,
    params: &mut Params,
    opt: &mut Optimizer,
    scaler: Option<&mut LossScaler>,
    config: &StepConfig,
    rng: &mut RngState,
) -> Result<StepOutcome> {
    let device = g.device().clone();
    let mixed = config.precision == Precision::Mixed;
    let seed = match (&scaler, mixed) {
        (Some(s), true) => s.scale,
        (None, true) => {
            return Err(crate::error::Error::invalid(
                "train_step",
                "mixed precision needs a LossScaler",
            ))
        }
        _ => 1.0,
    };
    let mut grads = g.backward_scaled(loss, seed)?;
    // Unscale (mixed) or only check (f32: times 1, exact): either way an
    // inf or NaN gradient raises the overflow bit, and the update is not
    // applied, so no non-finite value ever reaches the weights.
    let inv_scale = if mixed { 1.0 / seed } else { 1.0 };
    grads.unscale(&device, inv_scale, g.status_mut())?;
    if let Some(max_norm) = config.clip {
        opt.clip_grad_norm(&device, params, &mut grads, max_norm, g.status_mut())?;
    }
    let report = g.read_status()?;
    drop(g); // releases the graph's references to the parameters
    report.check_inputs()?;
    let verdict = match (scaler, mixed) {
        (Some(s), true) => Some(s.update(&report)),
        _ => None,
    };
    let applied = match verdict {
        Some(v) => v.applies(),
        None => !report.overflow() && report.loss.is_finite(),
    };
    if applied {
        opt.step(params, &grads)?;
    }
    rng.advance()?;
    Ok(StepOutcome {
        report,
        applied,
        scale: verdict,
    })
}

/// Where a step's non-finite value first appeared, found by running the
/// step again with every value and gradient read back
/// ([`Graph::first_non_finite`], [`Graph::backward_checked`]). The replay
/// draws the same masks (the same RNG step) from the same weights, so it
/// computes the same values: call it with the model and `rng` as they were
/// before the failing step (a step that is not applied changes neither).
/// Nothing is updated.
pub fn diagnose_non_finite(
    model: &mut TextClassifier,
    config: &StepConfig,
    scale: f32,
    batch: &TextBatch,
    rng: &RngState,
) -> Result<Option<String>> {
    let device = batch.tokens.device().clone();
    let mut g = Graph::with_precision(&device, config.precision)?.with_tier(config.tier)?;
    let loss = model.loss(&mut g, batch, rng)?;
    let found = match g.first_non_finite()? {
        Some(f) => Some(f),
        None => g.backward_checked(loss, scale)?.1,
    };
    drop(g);
    model.discard_running_stats();
    Ok(found.map(|f| {
        let param = f.param.map(|id| format!("`{}`", model.params.get(id).name));
        let what = match (f.backward, param) {
            (false, Some(p)) => format!("the value of parameter {p}"),
            (false, None) => format!("the output of `{}`", f.op),
            (true, Some(p)) => format!("the gradient for {p} made by the backward of `{}`", f.op),
            (true, None) => format!("a gradient made by the backward of `{}`", f.op),
        };
        format!(
            "{what} (tape node {}): {} of {} elements inf or NaN, dims {:?}",
            f.node,
            f.count,
            f.dims.iter().product::<usize>(),
            f.dims
        )
    }))
}
