//! Learning-rate (and Adam `beta1`) schedules over a run of steps, and the
//! ULMFiT training plan built from them: discriminative learning rates and
//! gradual unfreezing.
//!
//! - [`Schedule::Constant`]: `lr` at every step (the default classifier).
//! - [`Schedule::OneCycle`]: fastai's `fit_one_cycle` with its defaults
//!   (`div` 25, `div_final` 1e5, `pct_start` 0.25): cosine from `lr / 25` up
//!   to `lr` over the first quarter of the steps, then cosine down to
//!   `lr / 1e5`; Adam's `beta1` cycles the other way, fastai's text-learner
//!   moments `(0.8, 0.7, 0.8)`.
//! - [`Schedule::Stlr`]: the ULMFiT paper's slanted triangular rates
//!   (`cut_frac` 0.1, `ratio` 32): linear up over the first tenth, linear
//!   down after, `lr * (1 + p (ratio - 1)) / ratio`.
//!
//! The position of step `i` (from 0) of `n` is `i / n`, as fastai's
//! `train_iter / n_iter`. Every value is a function of `(i, n)` alone, so a
//! resumed run sets the same rates, and it is computed with IEEE `+ - * /`
//! only ([`cos_pi`] is a fixed polynomial, not the platform's `cos`), so
//! the rates have the same bits on every host.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the learning rate moves over a stage's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same rate at every step.
    #[default]
    Constant,
    /// fastai's cosine one-cycle (module docs).
    OneCycle,
    /// ULMFiT's slanted triangular learning rates (module docs).
    Stlr,
}

/// fastai's `fit_one_cycle` defaults.
const DIV: f64 = 25.0;
const DIV_FINAL: f64 = 1e5;
const PCT_START: f64 = 0.25;
/// fastai's text learners: `moms = (0.8, 0.7, 0.8)`.
const MOMS: (f64, f64) = (0.8, 0.7);
/// The ULMFiT paper's STLR settings.
const CUT_FRAC: f64 = 0.1;
const RATIO: f64 = 32.0;

/// One step's settings from a schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The learning rate (of the top group).
    pub lr: f32,
    /// Adam's `beta1`, when the schedule sets it (one-cycle).
    pub beta1: Option<f32>,
}

impl Schedule {
    /// Parses `constant`, `one-cycle` or `stlr`.
    pub fn parse(s: &str) -> Result<Schedule> {
        match s {
            "constant" => Ok(Schedule::Constant),
            "one-cycle" => Ok(Schedule::OneCycle),
            "stlr" => Ok(Schedule::Stlr),
            other => Err(Error::invalid(
                "schedule",
                format!("`{other}`: expected constant, one-cycle or stlr"),
            )),
        }
    }

    /// The settings at step `i` (from 0) of `n` steps, peaking at `lr`.
    pub fn at(self, lr: f32, i: u64, n: u64) -> Point {
        let pos = if n == 0 { 0.0 } else { i as f64 / n as f64 };
        let lr = f64::from(lr);
        match self {
            Schedule::Constant => Point {
                lr: lr as f32,
                beta1: None,
            },
            Schedule::OneCycle => {
                let (rate, mom) = if pos < PCT_START {
                    let p = pos / PCT_START;
                    (cos_anneal(lr / DIV, lr, p), cos_anneal(MOMS.0, MOMS.1, p))
                } else {
                    let p = (pos - PCT_START) / (1.0 - PCT_START);
                    (
                        cos_anneal(lr, lr / DIV_FINAL, p),
                        cos_anneal(MOMS.1, MOMS.0, p),
                    )
                };
                Point {
                    lr: rate as f32,
                    beta1: Some(mom as f32),
                }
            }
            Schedule::Stlr => {
                let t = i as f64;
                let cut = (n as f64 * CUT_FRAC).floor().max(1.0);
                let p = if t < cut {
                    t / cut
                } else {
                    1.0 - (t - cut) / (cut * (1.0 / CUT_FRAC - 1.0))
                };
                Point {
                    lr: (lr * (1.0 + p.max(0.0) * (RATIO - 1.0)) / RATIO) as f32,
                    beta1: None,
                }
            }
        }
    }
}

/// fastai's `sched_cos`: from `start` at `p = 0` to `end` at `p = 1`.
fn cos_anneal(start: f64, end: f64, p: f64) -> f64 {
    start + (1.0 + cos_pi(1.0 - p)) * (end - start) / 2.0
}

/// `cos(pi x)` for `x` in `[0, 1]` (clamped), from a fixed Taylor
/// polynomial in IEEE `f64` operations: the same bits on every host, within
/// 1e-15 of the true value.
pub fn cos_pi(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    // cos(pi x) = -cos(pi (1 - x)): reduce to [0, 1/2], theta <= pi/2.
    let (x, sign) = if x > 0.5 { (1.0 - x, -1.0) } else { (x, 1.0) };
    let t = std::f64::consts::PI * x;
    let t2 = t * t;
    // sum_{k=0..12} (-1)^k t^(2k) / (2k)!, Horner from the top.
    let mut acc = 0.0;
    for k in (0..=12u32).rev() {
        let c = 1.0 / factorial(2 * k);
        let c = if k % 2 == 0 { c } else { -c };
        acc = acc * t2 + c;
    }
    sign * acc
}

/// `x^n` as `n` multiplications in order, the same bits on every host
/// (`powi`'s evaluation order is the compiler's choice).
pub fn pow(x: f32, n: usize) -> f32 {
    (0..n).fold(1.0, |a, _| a * x)
}

fn factorial(n: u32) -> f64 {
    (1..=n).fold(1.0, |a, k| a * f64::from(k))
}

/// The ULMFiT plan of a classifier fine-tuned from a pretrained encoder:
/// stage `s` trains the top `s + 1` layer groups (the head first, then one
/// more group per stage; the last stage everything), for `epochs[s]`
/// epochs, at peak rate `lr / 2^s` for the top group and `/ factor^k` for
/// the group `k` below it, each stage one run of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Epochs of each stage.
    pub epochs: Vec<u32>,
    /// The schedule each stage runs.
    pub schedule: Schedule,
    /// Peak rate of the top group in stage 0.
    pub lr: f32,
    /// Discriminative factor between groups (2.6).
    pub factor: f32,
    /// Layer groups of the model.
    pub groups: usize,
}

/// What a step of a plan sets: per group, the rate and whether it trains.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSettings {
    /// The stage.
    pub stage: usize,
    /// Per group (by index), its learning rate.
    pub lrs: Vec<f32>,
    /// Groups below this one are frozen.
    pub trainable_from: usize,
    /// Adam's `beta1`, when the schedule sets it.
    pub beta1: Option<f32>,
}

impl Plan {
    /// Checks the stages against the model's groups.
    pub fn validate(&self) -> Result<()> {
        if self.epochs.is_empty() || self.epochs.contains(&0) {
            return Err(Error::invalid(
                "unfreeze schedule",
                format!(
                    "{:?}: one or more stages of at least one epoch",
                    self.epochs
                ),
            ));
        }
        if self.epochs.len() > self.groups {
            return Err(Error::invalid(
                "unfreeze schedule",
                format!(
                    "{} stages, but the model has {} layer groups to unfreeze one by one",
                    self.epochs.len(),
                    self.groups
                ),
            ));
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(Error::invalid(
                "discriminative factor",
                format!("{}: must be at least 1", self.factor),
            ));
        }
        Ok(())
    }

    /// Epochs of all stages together.
    pub fn total_epochs(&self) -> u32 {
        self.epochs.iter().sum()
    }

    /// The stage of `epoch`, and the epochs before it.
    pub fn stage_of(&self, epoch: u32) -> (usize, u32) {
        let mut before = 0;
        for (s, &e) in self.epochs.iter().enumerate() {
            if epoch < before + e {
                return (s, before);
            }
            before += e;
        }
        (
            self.epochs.len() - 1,
            before - self.epochs[self.epochs.len() - 1],
        )
    }

    /// The settings of the batch `batch` of epoch `epoch`, with
    /// `per_epoch` batches in every epoch.
    pub fn at(&self, epoch: u32, batch: u64, per_epoch: u64) -> StepSettings {
        let (stage, before) = self.stage_of(epoch);
        let steps = u64::from(self.epochs[stage]) * per_epoch;
        let i = u64::from(epoch - before) * per_epoch + batch;
        let top_lr = self.lr / pow(2.0, stage);
        let point = self.schedule.at(top_lr, i, steps);
        let top = self.groups.saturating_sub(1);
        let last_stage = stage + 1 == self.epochs.len();
        let trainable_from = if last_stage {
            0
        } else {
            self.groups.saturating_sub(stage + 1)
        };
        let lrs = (0..self.groups)
            .map(|k| point.lr / pow(self.factor, top - k))
            .collect();
        StepSettings {
            stage,
            lrs,
            trainable_from,
            beta1: point.beta1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cos_pi_matches_the_platform_cos_closely() {
        for i in 0..=1000 {
            let x = f64::from(i) / 1000.0;
            let want = (std::f64::consts::PI * x).cos();
            assert!((cos_pi(x) - want).abs() < 1e-15, "x {x}");
        }
        assert_eq!(cos_pi(0.0), 1.0);
        assert_eq!(cos_pi(1.0), -1.0);
    }

    #[test]
    fn one_cycle_starts_at_lr_over_25_peaks_at_lr_and_ends_near_zero() {
        let s = Schedule::OneCycle;
        let n = 100;
        let first = s.at(1e-2, 0, n);
        assert!((first.lr - 4e-4).abs() < 1e-9);
        assert_eq!(first.beta1, Some(0.8));
        let peak = s.at(1e-2, 25, n);
        assert!((peak.lr - 1e-2).abs() < 1e-9);
        assert!((peak.beta1.unwrap() - 0.7).abs() < 1e-7);
        let last = s.at(1e-2, 99, n);
        assert!(last.lr < 1e-4 && last.lr > 1e-2 / 1e5);
        // Rising then falling.
        let lrs: Vec<f32> = (0..n).map(|i| s.at(1e-2, i, n).lr).collect();
        assert!(lrs[..26].windows(2).all(|w| w[0] <= w[1]));
        assert!(lrs[25..].windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn stlr_rises_for_a_tenth_then_falls_to_lr_over_ratio() {
        let s = Schedule::Stlr;
        let n = 200;
        assert!((s.at(1.0, 0, n).lr - 1.0 / 32.0).abs() < 1e-7);
        assert!((s.at(1.0, 20, n).lr - 1.0).abs() < 1e-7);
        let end = s.at(1.0, n, n).lr;
        assert!((end - 1.0 / 32.0).abs() < 1e-6, "{end}");
        assert!(s.at(1.0, 10, n).lr < s.at(1.0, 20, n).lr);
        assert!(s.at(1.0, 100, n).lr < s.at(1.0, 20, n).lr);
    }

    #[test]
    fn gradual_unfreezing_trains_the_head_first_then_one_more_group_per_stage() {
        let plan = Plan {
            epochs: vec![1, 1, 2],
            schedule: Schedule::Constant,
            lr: 0.01,
            factor: 2.6,
            groups: 3,
        };
        plan.validate().unwrap();
        assert_eq!(plan.total_epochs(), 4);
        let s0 = plan.at(0, 5, 10);
        assert_eq!((s0.stage, s0.trainable_from), (0, 2));
        assert_eq!(s0.lrs[2], 0.01);
        assert_eq!(s0.lrs[1], 0.01 / 2.6);
        assert_eq!(s0.lrs[0], 0.01 / (2.6f32 * 2.6));
        let s1 = plan.at(1, 0, 10);
        assert_eq!((s1.stage, s1.trainable_from), (1, 1));
        assert_eq!(s1.lrs[2], 0.005);
        // The last stage unfreezes everything, over its two epochs.
        for e in [2, 3] {
            let s = plan.at(e, 0, 10);
            assert_eq!((s.stage, s.trainable_from), (2, 0));
        }
        assert!(Plan {
            epochs: vec![1, 1, 1, 1],
            ..plan.clone()
        }
        .validate()
        .is_err());
        assert!(Plan {
            epochs: vec![1, 0],
            ..plan
        }
        .validate()
        .is_err());
    }

    #[test]
    fn one_cycle_restarts_with_each_stage() {
        let plan = Plan {
            epochs: vec![1, 1],
            schedule: Schedule::OneCycle,
            lr: 0.02,
            factor: 2.6,
            groups: 4,
        };
        let a = plan.at(0, 0, 8);
        let b = plan.at(1, 0, 8);
        assert!((a.lrs[3] - 0.02 / 25.0).abs() < 1e-9);
        assert!((b.lrs[3] - 0.01 / 25.0).abs() < 1e-9);
    }
}
