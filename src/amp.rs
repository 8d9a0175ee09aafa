//! Mixed precision (DESIGN.md, "Mixed precision"): the [`Precision`] a graph
//! runs its GEMMs in, and the dynamic [`LossScaler`] whose whole state is
//! public, serialisable and logged, so that a resumed run continues with
//! exactly the scale it had (fastai's `MixedPrecision` keeps it private and a
//! reload loses it).
//!
//! In [`Precision::Mixed`] every GEMM reads f16 operands (activations cast
//! where they are produced, weights cast from their f32 master copy once per
//! graph) and accumulates its one fma chain in f32 as always; the outputs of
//! forward GEMMs are stored f16 (then widened for the f32 pointwise math),
//! the outputs of backward GEMMs (gradients) f32, because they accumulate
//! (over time steps, into the f32 master gradients). The loss is scaled
//! before backward ([`LossScaler::scale`] is the backward's seed); the
//! gradients are unscaled and checked for inf/NaN on the device, which ORs
//! the status block's overflow bit, as an f16 GEMM output that overflows
//! does. The step reads the block once; [`LossScaler::update`] then says
//! whether to apply the optimizer step.

use crate::error::{Error, Result};
use crate::status::StatusReport;
use serde::{Deserialize, Serialize};

/// The arithmetic of a graph's GEMMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// f16 GEMM operands, f32 master weights, optimizer state and pointwise
    /// math; a dynamic loss scale.
    Mixed,
}

/// The numerics tier of a graph's GEMMs (DESIGN.md). `Exact` is
/// bit-identical on every device. `Fast` runs the GEMMs whose operands are
/// f16 (mixed precision) and that overwrite their output on the tensor cores
/// (`ops::gemm::gemm_fast`): reproducible run to run on one GPU model, within
/// a tolerance of the exact tier, Cuda only. GEMMs that accumulate (the
/// recurrent step, gradient sums) stay exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Bit-identical on CPU, simulator and GPU.
    #[default]
    Exact,
    /// Tensor-core GEMMs where they apply.
    Fast,
}

/// A dynamic loss scale. Every field is public; the defaults are common
/// practice (PyTorch's `GradScaler`): 2^16, growth 2, backoff 0.5, interval
/// 2000.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The current scale: the backward's seed, `d loss`.
    pub scale: f32,
    /// The scale is multiplied by this after `growth_interval` good steps.
    pub growth_factor: f32,
    /// The scale is multiplied by this on an overflow.
    pub backoff_factor: f32,
    /// Good steps in a row before the scale grows.
    pub growth_interval: u32,
    /// Good steps since the last growth or overflow.
    pub good_steps: u32,
    /// Steps skipped for overflow, in total.
    pub skipped_steps: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            good_steps: 0,
            skipped_steps: 0,
        }
    }
}

/// What [`LossScaler::update`] decided for one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleStep {
    /// No overflow: apply the optimizer step.
    Apply,
    /// No overflow, and the scale grew for the next step: apply the step.
    ApplyAndGrow,
    /// Overflow: skip the optimizer step; the scale backed off.
    Skip,
}

impl ScaleStep {
    /// Whether the optimizer step is applied.
    pub fn applies(self) -> bool {
        !matches!(self, ScaleStep::Skip)
    }
}

impl LossScaler {
    /// `1 / scale`, the unscale factor (exact for a power-of-two scale).
    pub fn inv_scale(&self) -> f32 {
        1.0 / self.scale
    }

    /// Checks the fields: a finite positive scale, `growth_factor >= 1`,
    /// `0 < backoff_factor <= 1`, `growth_interval >= 1`.
    pub fn validate(&self) -> Result<()> {
        let ok = self.scale.is_finite()
            && self.scale > 0.0
            && self.growth_factor.is_finite()
            && self.growth_factor >= 1.0
            && self.backoff_factor > 0.0
            && self.backoff_factor <= 1.0
            && self.growth_interval >= 1;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "LossScaler",
                format!("invalid state {self:?}"),
            ))
        }
    }

    /// One step's verdict from its status report (read once, after backward
    /// and the unscale check): on overflow, skip and back off; otherwise
    /// count a good step and grow after `growth_interval` of them. The scale
    /// never grows to infinity (it stays below 2^127).
    pub fn update(&mut self, report: &StatusReport) -> ScaleStep {
        if report.overflow() {
            self.scale *= self.backoff_factor;
            // A scale that underflows to zero would never recover.
            self.scale = self.scale.max(f32::MIN_POSITIVE);
            self.good_steps = 0;
            self.skipped_steps += 1;
            return ScaleStep::Skip;
        }
        self.good_steps += 1;
        if self.good_steps >= self.growth_interval {
            self.good_steps = 0;
            let grown = self.scale * self.growth_factor;
            if grown.is_finite() && grown < 1.7e38 {
                self.scale = grown;
            }
            return ScaleStep::ApplyAndGrow;
        }
        ScaleStep::Apply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_common_practice() {
        let s = LossScaler::default();
        assert_eq!(
            (
                s.scale,
                s.growth_factor,
                s.backoff_factor,
                s.growth_interval
            ),
            (65536.0, 2.0, 0.5, 2000)
        );
        assert!(s.validate().is_ok());
        assert!(LossScaler {
            scale: f32::NAN,
            ..s
        }
        .validate()
        .is_err());
    }
}
