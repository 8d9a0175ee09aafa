//! Optimizers over a model's [`Params`]: Adam (AdamW: decoupled weight
//! decay; `weight_decay = 0` is Adam) and SGD with momentum, on f32 master
//! weights, by parameter group (each group its own learning rate and weight
//! decay, so discriminative learning rates work, and a freeze switch), with
//! gradient-norm clipping over the canonical sum of squares.
//!
//! Every loop runs over the parameters in [`ParamId`] order (registration
//! order): the update kernels are independent per parameter, and the
//! gradient norm is one canonical sum of the per-parameter sums of squares
//! in that order (DESIGN.md rule 3), computed on the device: clipping reads
//! nothing back (the norm goes to the step's status block).
//!
//! The state (per-parameter moments or velocities and step counts, the
//! groups) converts to and from [`OptimizerState`], plain serde data, for
//! checkpoints.

use crate::autograd::{Grads, ParamId};
use crate::device::{Device, DeviceBuffer};
use crate::error::{Error, Result};
use crate::nn::Params;
use crate::ops::elementwise::{self, AdamParams, SgdParams};
use crate::ops::reduce::{self, ReduceOp};
use crate::status::Status;
use crate::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// One parameter group's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Learning rate.
    pub lr: f32,
    /// Weight decay (decoupled for Adam, coupled for SGD).
    pub weight_decay: f32,
    /// Frozen groups are neither updated nor part of the gradient norm.
    pub frozen: bool,
}

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// AdamW (`elementwise::adam_step`); the groups' `lr` and `weight_decay`
    /// replace those in here.
    Adam {
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
    },
    /// SGD with momentum (`elementwise::sgd_step`).
    Sgd {
        /// Velocity decay.
        momentum: f32,
    },
}

/// One group's update rule with its settings, as the kernels take them.
enum Rule {
    Adam(AdamParams),
    Sgd(SgdParams),
}

impl Rule {
    /// Errors unless the kernel would accept these settings.
    fn check(&self) -> Result<()> {
        match self {
            Rule::Adam(hp) => hp.kernel_params(1, 0).map(drop),
            Rule::Sgd(hp) => hp.kernel_params(0).map(drop),
        }
    }
}

/// Per-parameter state: Adam's moments and step count, or SGD's velocity.
#[derive(Debug, Clone)]
struct Slot {
    m: Tensor,
    v: Option<Tensor>,
    t: u64,
}

/// An optimizer over one model's parameters.
#[derive(Debug)]
pub struct Optimizer {
    /// The update rule.
    pub method: Method,
    /// Settings by parameter group (`Param::group` indexes this).
    pub groups: Vec<Group>,
    slots: Vec<Option<Slot>>,
}

/// An optimizer's whole state on the host, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// The update rule.
    pub method: Method,
    /// The groups.
    pub groups: Vec<Group>,
    /// Per parameter (by id), `None` before its first update.
    pub slots: Vec<Option<SlotState>>,
}

/// One parameter's optimizer state on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotState {
    /// Updates applied so far (Adam's `t`).
    pub steps: u64,
    /// Adam's first moment, or SGD's velocity.
    pub first: Vec<f32>,
    /// Adam's second moment.
    pub second: Option<Vec<f32>>,
}

impl Optimizer {
    /// AdamW over `params` with one group per layer group of the model, all
    /// at `lr` with `weight_decay` (PyTorch's betas 0.9, 0.999 and eps 1e-8).
    pub fn adam(params: &Params, lr: f32, weight_decay: f32) -> Optimizer {
        Self::new(
            params,
            Method::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr,
            weight_decay,
        )
    }

    /// SGD with `momentum` over `params`, every group at `lr`.
    pub fn sgd(params: &Params, lr: f32, momentum: f32) -> Optimizer {
        Self::new(params, Method::Sgd { momentum }, lr, 0.0)
    }

    /// An optimizer with `method`, one group per layer group, all at `lr`.
    pub fn new(params: &Params, method: Method, lr: f32, weight_decay: f32) -> Optimizer {
        let group = Group {
            lr,
            weight_decay,
            frozen: false,
        };
        Optimizer {
            method,
            groups: vec![group; params.groups().max(1)],
            slots: vec![None; params.len()],
        }
    }

    /// Discriminative learning rates (ULMFiT): the top group gets `lr`, the
    /// one below `lr / factor`, then `lr / factor^2`, ... (`factor` 2.6 in
    /// the paper).
    pub fn set_discriminative_lr(&mut self, lr: f32, factor: f32) {
        let top = self.groups.len().saturating_sub(1);
        for (k, g) in self.groups.iter_mut().enumerate() {
            g.lr = lr / crate::train::schedule::pow(factor, top - k);
        }
    }

    /// Freezes every group below `from` and unfreezes the rest (gradual
    /// unfreezing: `freeze_to(groups - 1)` trains the head only).
    pub fn freeze_to(&mut self, from: usize) {
        for (k, g) in self.groups.iter_mut().enumerate() {
            g.frozen = k < from;
        }
    }

    /// The parameters of frozen groups (for [`Graph::freeze`](crate::autograd::Graph::freeze)).
    pub fn frozen_params(&self, params: &Params) -> Vec<ParamId> {
        params
            .iter()
            .filter(|(_, p)| self.groups.get(p.group).is_some_and(|g| g.frozen))
            .map(|(id, _)| id)
            .collect()
    }

    fn group_of(&self, params: &Params, id: ParamId) -> Result<Group> {
        if id.0 >= params.len() {
            return Err(Error::invalid(
                "optimizer",
                format!(
                    "a gradient for parameter {} of a model with {}: gradients of another model?",
                    id.0,
                    params.len()
                ),
            ));
        }
        let g = params.get(id).group;
        self.groups.get(g).copied().ok_or_else(|| {
            Error::invalid(
                "optimizer",
                format!(
                    "parameter `{}` is in group {g}, the optimizer has {}",
                    params.get(id).name,
                    self.groups.len()
                ),
            )
        })
    }

    /// The ids of the parameters [`step`](Self::step) updates, after checking
    /// everything that could make an update fail: each id belongs to
    /// `params`, its group's settings are valid, its gradient has its shape,
    /// and no one else holds its storage.
    fn updates(&self, params: &Params, grads: &Grads) -> Result<Vec<ParamId>> {
        if self.slots.len() != params.len() {
            return Err(Error::invalid(
                "optimizer",
                format!(
                    "built for {} parameters, given {}",
                    self.slots.len(),
                    params.len()
                ),
            ));
        }
        let mut ids = Vec::new();
        for (id, grad) in grads.iter() {
            let group = self.group_of(params, id)?;
            if group.frozen {
                continue;
            }
            let p = params.get(id);
            grad.check_dims("optimizer", "gradient", p.value.dims())?;
            grad.check_dtype("optimizer", "gradient", DType::F32)?;
            p.value.check_dtype("optimizer", "parameter", DType::F32)?;
            if !p.value.is_exclusive() {
                return Err(Error::invalid(
                    "optimizer",
                    format!(
                        "parameter `{}` is shared (a live graph or a clone holds it); drop the \
                         step's graph before the update",
                        p.name
                    ),
                ));
            }
            self.rule(&group).check()?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// The kernel settings of `group` under this optimizer's method.
    fn rule(&self, group: &Group) -> Rule {
        match self.method {
            Method::Adam { beta1, beta2, eps } => Rule::Adam(AdamParams {
                lr: group.lr,
                beta1,
                beta2,
                eps,
                weight_decay: group.weight_decay,
            }),
            Method::Sgd { momentum } => Rule::Sgd(SgdParams {
                lr: group.lr,
                momentum,
                weight_decay: group.weight_decay,
            }),
        }
    }

    /// Scales every trainable gradient so that their global L2 norm is at
    /// most `max_norm`: the norm is the square root of the canonical sum, in
    /// id order, of each gradient's canonical sum of squares, all on the
    /// device; the norm goes to `status` (and a non-finite norm raises its
    /// overflow bit: skip the step).
    pub fn clip_grad_norm(
        &self,
        device: &Device,
        params: &Params,
        grads: &mut Grads,
        max_norm: f32,
        status: &mut Status,
    ) -> Result<()> {
        let mut ids = Vec::new();
        for (id, _) in grads.iter() {
            if !self.group_of(params, id)?.frozen {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let mut sums = DeviceBuffer::<f32>::alloc(device, ids.len())?;
        for (k, &id) in ids.iter().enumerate() {
            let g = grads
                .get(id)
                .ok_or_else(|| Error::invalid("clip", "gradient vanished"))?;
            reduce::reduce_all(
                device,
                ReduceOp::SumSquares,
                g.f32("clip")?,
                sums.slice_mut(k..k + 1),
            )?;
        }
        let mut total = DeviceBuffer::<f32>::alloc(device, 1)?;
        reduce::reduce_all(device, ReduceOp::Sum, &sums, &mut total)?;
        let mut coef = DeviceBuffer::<f32>::alloc(device, 1)?;
        elementwise::clip_coef(device, max_norm, &total, &mut coef, status)?;
        for &id in &ids {
            if let Some(g) = grads.get_mut(id) {
                elementwise::scale_by(device, &coef, g.f32_mut("clip")?)?;
            }
        }
        Ok(())
    }

    /// One update of every trainable parameter that has a gradient, in id
    /// order. The parameters must not be shared (drop the step's graph
    /// first). Everything checkable is checked before the first update, so
    /// an error leaves every parameter and step count as it was.
    pub fn step(&mut self, params: &mut Params, grads: &Grads) -> Result<()> {
        for id in self.updates(params, grads)? {
            let rule = self.rule(&self.group_of(params, id)?);
            let grad = grads
                .get(id)
                .ok_or_else(|| Error::invalid("optimizer", "gradient vanished"))?;
            let p = params.get_mut(id);
            let device = p.value.device().clone();
            let dims = p.value.dims().to_vec();
            let slot = match &mut self.slots[id.0] {
                Some(s) => s,
                s @ None => s.insert(Slot {
                    m: Tensor::zeros(&device, &dims, DType::F32)?,
                    v: match rule {
                        Rule::Adam(_) => Some(Tensor::zeros(&device, &dims, DType::F32)?),
                        Rule::Sgd(_) => None,
                    },
                    t: 0,
                }),
            };
            let t = slot.t + 1;
            match &rule {
                Rule::Adam(hp) => {
                    let v = slot.v.as_mut().ok_or_else(|| {
                        Error::invalid("optimizer", "Adam without a second moment")
                    })?;
                    elementwise::adam_step(
                        &device,
                        hp,
                        t,
                        p.value.f32_mut("optimizer")?,
                        grad.f32("optimizer")?,
                        slot.m.f32_mut("optimizer")?,
                        v.f32_mut("optimizer")?,
                    )?;
                }
                Rule::Sgd(hp) => elementwise::sgd_step(
                    &device,
                    hp,
                    p.value.f32_mut("optimizer")?,
                    grad.f32("optimizer")?,
                    slot.m.f32_mut("optimizer")?,
                )?,
            }
            slot.t = t;
        }
        Ok(())
    }

    /// The whole state on the host.
    pub fn state(&self) -> Result<OptimizerState> {
        let slots = self
            .slots
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|s| {
                        Ok(SlotState {
                            steps: s.t,
                            first: s.m.to_vec_f32()?,
                            second: s.v.as_ref().map(|v| v.to_vec_f32()).transpose()?,
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(OptimizerState {
            method: self.method,
            groups: self.groups.clone(),
            slots,
        })
    }

    /// An optimizer from a saved state, its buffers on each parameter's
    /// device; the state must fit `params` (count and sizes).
    pub fn from_state(params: &Params, state: &OptimizerState) -> Result<Optimizer> {
        if state.slots.len() != params.len() {
            return Err(Error::invalid(
                "optimizer state",
                format!(
                    "{} slots for {} parameters",
                    state.slots.len(),
                    params.len()
                ),
            ));
        }
        let mut slots = Vec::with_capacity(state.slots.len());
        for ((_, p), s) in params.iter().zip(&state.slots) {
            let dev = p.value.device();
            let dims = p.value.dims();
            slots.push(match s {
                None => None,
                Some(st) => Some(Slot {
                    m: Tensor::from_f32(dev, dims, &st.first)?,
                    v: st
                        .second
                        .as_ref()
                        .map(|v| Tensor::from_f32(dev, dims, v))
                        .transpose()?,
                    t: st.steps,
                }),
            });
        }
        Ok(Optimizer {
            method: state.method,
            groups: state.groups.clone(),
            slots,
        })
    }
}
