//! Tape-based reverse-mode autograd over [`Tensor`]s.
//!
//! A [`Graph`] is the tape of one step. Every op called on it runs at once
//! (through the kernel twins, so on any device) and appends a node: its
//! value, the [`Var`]s it read and what its backward needs. [`Graph::backward`]
//! walks the tape once, from the loss to the first node, and calls each node's
//! backward, which is written once and launches the same kernels on Cpu, Sim
//! and Cuda. That is the whole engine:
//!
//! ```text
//! grad[loss] = seed
//! for node in tape, last to first:
//!     if node has a gradient: for (input, g) in node.backward(grad[node]):
//!         grad[input] = grad[input] + g      (or g, the first time)
//! ```
//!
//! **Accumulation order.** A value read by several nodes receives their
//! gradients in tape order, last node first, summed one after another with
//! [`add_assign`](crate::ops::elementwise::add_assign): a fixed sequence of
//! kernel launches, never a race. Gradients that sum inside one op (a
//! recurrent weight over time steps, an embedding row over positions) follow
//! that op's own fixed order (`docs/autograd.md`).
//!
//! **Parameters** enter with [`Graph::param`] under a [`ParamId`]; their
//! gradients come back in [`Grads`], indexed by id, so iteration is in the
//! ids' order: the order the model registered its parameters (never a hash
//! map's order).
//!
//! **The step's status.** Every graph owns a [`Status`] block that its
//! kernels report into (overflow, bad ids or labels, the loss); the caller
//! reads it once, at the end of the step ([`Graph::read_status`]).

mod lstm;
mod ops;

pub use lstm::{LstmOptions, LstmState, LstmWeights};

use crate::amp::{Precision, Tier};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::elementwise;
use crate::status::{Status, StatusReport};
use crate::tensor::Tensor;
use ops::Op;

/// A parameter's index in its model's parameter list (the registration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamId(pub usize);

/// A value on a [`Graph`]'s tape. Only meaningful on the graph that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Var(usize);

struct Node {
    value: Tensor,
    op: Op,
    /// Some parameter reaches the loss through this node.
    needs_grad: bool,
}

/// The tape of one step on one device.
pub struct Graph {
    device: Device,
    precision: Precision,
    tier: Tier,
    training: bool,
    grad_enabled: bool,
    nodes: Vec<Node>,
    /// The node of each parameter entered so far (one node per parameter).
    params: Vec<(ParamId, Var)>,
    /// Parameters that get no gradient ([`Graph::freeze`]).
    frozen: Vec<ParamId>,
    status: Status,
}

/// The gradients of a backward pass, by [`ParamId`].
#[derive(Debug, Default)]
pub struct Grads {
    by_id: Vec<Option<Tensor>>,
}

impl Grads {
    /// The gradient of parameter `id`, if it reached the loss.
    pub fn get(&self, id: ParamId) -> Option<&Tensor> {
        self.by_id.get(id.0).and_then(Option::as_ref)
    }

    /// The gradient of parameter `id`, mutable (clipping and unscaling work
    /// in place), if it reached the loss.
    pub fn get_mut(&mut self, id: ParamId) -> Option<&mut Tensor> {
        self.by_id.get_mut(id.0).and_then(Option::as_mut)
    }

    /// `(id, gradient)` in increasing id order.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Tensor)> {
        self.by_id
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.as_ref().map(|g| (ParamId(i), g)))
    }

    /// `(id, gradient)` in increasing id order, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ParamId, &mut Tensor)> {
        self.by_id
            .iter_mut()
            .enumerate()
            .filter_map(|(i, g)| g.as_mut().map(|g| (ParamId(i), g)))
    }

    /// How many parameters have a gradient.
    pub fn len(&self) -> usize {
        self.by_id.iter().filter(|g| g.is_some()).count()
    }

    /// Whether no parameter has a gradient.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Mixed precision: every gradient times `inv_scale` in place, raising
    /// the status block's overflow bit if any result is inf or NaN.
    pub fn unscale(&mut self, device: &Device, inv_scale: f32, status: &mut Status) -> Result<()> {
        for (_, g) in self.iter_mut() {
            elementwise::unscale_check_finite(device, inv_scale, g.f32_mut("unscale")?, status)?;
        }
        Ok(())
    }
}

impl Graph {
    /// A training graph on `device` in f32: dropout on, batch statistics,
    /// gradients recorded.
    pub fn new(device: &Device) -> Result<Graph> {
        Self::with_precision(device, Precision::F32)
    }

    /// A training graph with the given precision ([`Precision::Mixed`]:
    /// f16 GEMM operands, f32 master weights and pointwise math).
    pub fn with_precision(device: &Device, precision: Precision) -> Result<Graph> {
        Ok(Graph {
            device: device.clone(),
            precision,
            tier: Tier::Exact,
            training: true,
            grad_enabled: true,
            nodes: Vec::new(),
            params: Vec::new(),
            frozen: Vec::new(),
            status: Status::new(device)?,
        })
    }

    /// An inference graph: dropout off, running statistics, no gradients.
    pub fn inference(device: &Device, precision: Precision) -> Result<Graph> {
        let mut g = Self::with_precision(device, precision)?;
        g.training = false;
        g.grad_enabled = false;
        Ok(g)
    }

    /// Runs this graph's GEMMs in `tier`: [`Tier::Fast`] needs
    /// [`Precision::Mixed`] (f16 operands) and a Cuda device of sm_80 or
    /// newer, and is refused here otherwise.
    pub fn with_tier(mut self, tier: Tier) -> Result<Graph> {
        if tier == Tier::Fast
            && (self.precision != Precision::Mixed || !matches!(self.device, Device::Cuda(_)))
        {
            return Err(Error::Unsupported {
                op: "fast tier",
                device: self.device.to_string(),
                reason: "the fast tier runs f16 GEMMs on tensor cores: it needs mixed precision \
                         and a CUDA device"
                    .into(),
            });
        }
        self.tier = tier;
        Ok(self)
    }

    /// The tier of this graph's GEMMs.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The device every value of this graph lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The precision of the graph's GEMMs.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether layers should train (dropout on, batch statistics).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// The value of `v`.
    pub fn value(&self, v: Var) -> &Tensor {
        &self.nodes[v.0].value
    }

    /// Nodes on the tape so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tape is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The step's status block (kernels report into it).
    pub fn status_mut(&mut self) -> &mut Status {
        &mut self.status
    }

    /// Reads the step's status block: its one device-to-host copy.
    pub fn read_status(&self) -> Result<StatusReport> {
        self.status.read()
    }

    fn push(&mut self, value: Tensor, op: Op, needs_grad: bool) -> Var {
        self.nodes.push(Node {
            value,
            op,
            needs_grad: needs_grad && self.grad_enabled,
        });
        Var(self.nodes.len() - 1)
    }

    fn needs(&self, v: Var) -> bool {
        self.nodes[v.0].needs_grad
    }

    /// A value with no gradient (inputs, masks, states carried from an
    /// earlier step). It must live on the graph's device.
    pub fn constant(&mut self, value: Tensor) -> Result<Var> {
        value.check_device("constant", "value", &self.device)?;
        Ok(self.push(value, Op::Leaf, false))
    }

    /// Parameter `id` with value `value` (f32): its gradient is returned under
    /// `id` by [`backward`](Self::backward). Entering the same id twice gives
    /// the same [`Var`].
    pub fn param(&mut self, id: ParamId, value: &Tensor) -> Result<Var> {
        if let Some(&(_, v)) = self.params.iter().find(|(p, _)| *p == id) {
            return Ok(v);
        }
        value.check_device("param", "value", &self.device)?;
        value.check_dtype("param", "value", crate::tensor::DType::F32)?;
        let needs = !self.frozen.contains(&id);
        let v = self.push(value.clone(), Op::Param, needs);
        self.params.push((id, v));
        Ok(v)
    }

    /// Parameters `ids`, entered after this call, get no gradient (frozen
    /// layer groups): every node that only they would need a gradient for
    /// is skipped in backward, so a frozen encoder costs no backward time.
    /// The other parameters' gradients are the same bits: no gradient a
    /// trainable parameter receives passes through a skipped node.
    pub fn freeze(&mut self, ids: &[ParamId]) {
        self.frozen.extend_from_slice(ids);
    }

    /// The gradients of every parameter that reaches `loss`, a value made by
    /// [`cross_entropy`](Self::cross_entropy), with `d loss = 1`.
    pub fn backward(&mut self, loss: Var) -> Result<Grads> {
        self.backward_scaled(loss, 1.0)
    }

    /// As [`backward`](Self::backward) with `d loss = scale` (a loss scale:
    /// every gradient comes back multiplied by it).
    pub fn backward_scaled(&mut self, loss: Var, scale: f32) -> Result<Grads> {
        self.backward_inner(loss, scale, false).map(|(g, _)| g)
    }

    /// [`backward_scaled`](Self::backward_scaled) that reads every gradient
    /// back as it is made and returns the first holding an inf or a NaN,
    /// named by the node whose backward made it. A diagnostic: one device
    /// read per gradient.
    pub fn backward_checked(
        &mut self,
        loss: Var,
        scale: f32,
    ) -> Result<(Grads, Option<NonFinite>)> {
        self.backward_inner(loss, scale, true)
    }

    /// The first value of the tape (in the order the forward made them,
    /// parameters included) that holds an inf or a NaN. A diagnostic: one
    /// device read per value.
    pub fn first_non_finite(&self) -> Result<Option<NonFinite>> {
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(bad) = non_finite_count(&node.value)? {
                return Ok(Some(NonFinite {
                    node: i,
                    op: node.op.name(),
                    backward: false,
                    param: self.param_of(Var(i)),
                    dims: node.value.dims().to_vec(),
                    count: bad,
                }));
            }
        }
        Ok(None)
    }

    fn param_of(&self, v: Var) -> Option<ParamId> {
        self.params.iter().find(|(_, p)| *p == v).map(|(id, _)| *id)
    }

    fn backward_inner(
        &mut self,
        loss: Var,
        scale: f32,
        check: bool,
    ) -> Result<(Grads, Option<NonFinite>)> {
        let mut first_bad: Option<NonFinite> = None;
        if !self.grad_enabled {
            return Err(Error::invalid(
                "backward",
                "an inference graph records no gradients",
            ));
        }
        if !matches!(
            self.nodes.get(loss.0).map(|n| &n.op),
            Some(Op::CrossEntropy { .. })
        ) {
            return Err(Error::invalid(
                "backward",
                "the loss must be a value made by Graph::cross_entropy",
            ));
        }
        let mut grads: Vec<Option<Tensor>> = vec![None; loss.0 + 1];
        for i in (0..=loss.0).rev() {
            if !self.nodes[i].needs_grad {
                continue;
            }
            let upstream = if i == loss.0 {
                ops::Upstream::Seed(scale)
            } else {
                match grads[i].take() {
                    Some(g) => ops::Upstream::Tensor(g),
                    None => continue,
                }
            };
            if let Op::Param = self.nodes[i].op {
                // A parameter's gradient stays where it is, for `Grads`.
                if let ops::Upstream::Tensor(g) = upstream {
                    grads[i] = Some(g);
                }
                continue;
            }
            let op_name = self.nodes[i].op.name();
            let inputs = self.backward_node(Var(i), upstream)?;
            for (input, g) in inputs {
                if !self.needs(input) {
                    continue;
                }
                if check && first_bad.is_none() {
                    if let Some(bad) = non_finite_count(&g)? {
                        first_bad = Some(NonFinite {
                            node: i,
                            op: op_name,
                            backward: true,
                            param: self.param_of(input),
                            dims: g.dims().to_vec(),
                            count: bad,
                        });
                    }
                }
                accumulate(&self.device, &mut grads[input.0], g)?;
            }
            // What this node saved for its backward is no longer needed.
            self.nodes[i].op = Op::Done;
        }
        let mut out = Grads::default();
        for &(id, v) in &self.params {
            if let Some(mut g) = grads.get_mut(v.0).and_then(Option::take) {
                // Each gradient owns its storage, so it can be scaled in place.
                if g.f32_mut("backward").is_err() {
                    g = g.deep_clone()?;
                }
                if out.by_id.len() <= id.0 {
                    out.by_id.resize(id.0 + 1, None);
                }
                out.by_id[id.0] = Some(g);
            }
        }
        Ok((out, first_bad))
    }
}

/// Where a non-finite value first appeared ([`Graph::first_non_finite`],
/// [`Graph::backward_checked`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NonFinite {
    /// The tape node: its output (forward), or the node whose backward made
    /// the gradient.
    pub node: usize,
    /// The node's op (`linear`, `lstm`, `parameter`, ...).
    pub op: &'static str,
    /// Found in a gradient (backward) rather than a value.
    pub backward: bool,
    /// The parameter the value is (forward), or the gradient is for
    /// (backward), if any.
    pub param: Option<ParamId>,
    /// The tensor's dims.
    pub dims: Vec<usize>,
    /// How many of its elements are inf or NaN.
    pub count: usize,
}

/// The number of inf or NaN elements of an f32 or f16 tensor (`None` when
/// there are none, or the tensor holds ids).
fn non_finite_count(t: &Tensor) -> Result<Option<usize>> {
    if t.dtype() == crate::tensor::DType::U32 {
        return Ok(None);
    }
    // Widening f16 to f32 keeps every inf and NaN.
    let n = t.to_host_f32()?.iter().filter(|v| !v.is_finite()).count();
    Ok((n > 0).then_some(n))
}

/// `slot += g` (or `slot = g` the first time), in place when the slot owns
/// its storage; a shared slot (a backward that passed its input gradient
/// through) is copied first.
fn accumulate(device: &Device, slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    match slot {
        None => {
            *slot = Some(g);
            Ok(())
        }
        Some(acc) => {
            acc.check_dims("backward", "gradient", g.dims())?;
            if acc.f32_mut("backward").is_err() {
                *acc = acc.deep_clone()?;
            }
            elementwise::add_assign(device, g.f32("backward")?, acc.f32_mut("backward")?)
        }
    }
}
