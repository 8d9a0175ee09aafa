//! The ops a [`Graph`] records: each one's forward (a `Graph` method) and its
//! backward, written once over the kernel twins, so every device launches the
//! same kernels in the same order. Gradients a backward returns are fresh
//! tensors (overwritten, never accumulated, by the kernels that make them);
//! the engine sums them into their inputs' gradients (`mod.rs`).

use super::lstm::LstmSaved;
use super::{Graph, Var};
use crate::amp::{Precision, Tier};
use crate::device::{Device, View, ViewMut};
use crate::error::{Error, Result};
use crate::ops::batchnorm::{self, BatchNormSpec};
use crate::ops::dropout::{self, DropoutMask};
use crate::ops::elementwise::{self, Columns};
use crate::ops::gemm::{self, Gemm, GemmOut, Op as Trans};
use crate::ops::reduce::{self, ReduceOp};
use crate::ops::{embedding, pool, softmax};
use crate::seq::PackedSeq;
use crate::status::Status;
use crate::tensor::{DType, Tensor};
use std::sync::Arc;

/// How a node was made, and what its backward needs.
pub(crate) enum Op {
    /// A constant.
    Leaf,
    /// A parameter (its gradient is collected into `Grads`).
    Param,
    /// A node whose backward has run (its saved tensors are freed).
    Done,
    /// `y = x W^T + b`; in Mixed, the f16 operand copies.
    Linear {
        x: Var,
        w: Var,
        b: Option<Var>,
        half: Option<(Tensor, Tensor)>,
    },
    /// `a + b`.
    Add(Var, Var),
    /// `a * b`, elementwise.
    Mul(Var, Var),
    /// `max(x, 0)`.
    Relu(Var),
    /// Elementwise dropout (also DropConnect on a weight matrix).
    Dropout { x: Var, mask: DropoutMask },
    /// Variational dropout on `[t * b, f]` time-major rows.
    VariationalDropout {
        x: Var,
        mask: DropoutMask,
        dims: (usize, usize, usize),
    },
    /// Rows of `w` (after embedding dropout when `mask`) gathered by `ids`.
    Embedding {
        w: Var,
        ids: Tensor,
        mask: Option<DropoutMask>,
    },
    /// Column blocks side by side: `(input, width)` in order.
    ConcatCols(Vec<(Var, usize)>),
    /// Masked concat pooling over a packed sequence.
    ConcatPool {
        h: Var,
        seq: Arc<PackedSeq>,
        argmax: Tensor,
    },
    /// BatchNorm1d with batch statistics.
    BatchNorm {
        x: Var,
        gamma: Var,
        beta: Var,
        spec: BatchNormSpec,
        mean: Tensor,
        inv_std: Tensor,
    },
    /// Mean cross-entropy: the log-softmax `y` is kept.
    CrossEntropy {
        logits: Var,
        labels: Tensor,
        y: Tensor,
    },
    /// One LSTM layer direction over a packed sequence.
    Lstm(Box<LstmSaved>),
}

impl Op {
    /// The op's name in diagnostics (`Graph::first_non_finite`).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Leaf => "constant",
            Op::Param => "parameter",
            Op::Done => "done",
            Op::Linear { .. } => "linear",
            Op::Add(..) => "add",
            Op::Mul(..) => "mul",
            Op::Relu(_) => "relu",
            Op::Dropout { .. } => "dropout",
            Op::VariationalDropout { .. } => "variational_dropout",
            Op::Embedding { .. } => "embedding",
            Op::ConcatCols(_) => "concat_cols",
            Op::ConcatPool { .. } => "concat_pool",
            Op::BatchNorm { .. } => "batchnorm",
            Op::CrossEntropy { .. } => "cross_entropy",
            Op::Lstm(_) => "lstm",
        }
    }
}

/// The gradient arriving at a node: a tensor, or (at the loss) a host scalar.
pub(crate) enum Upstream {
    Tensor(Tensor),
    Seed(f32),
}

impl Upstream {
    fn tensor(self, op: &'static str) -> Result<Tensor> {
        match self {
            Upstream::Tensor(t) => Ok(t),
            Upstream::Seed(_) => Err(Error::invalid(
                op,
                "only a cross-entropy loss can be the root of backward",
            )),
        }
    }
}

// ---- tensor helpers shared by forward and backward ---------------------------

/// A new f32 tensor with `dims` (every element overwritten by the caller).
pub(crate) fn new_f32(device: &Device, dims: &[usize]) -> Result<Tensor> {
    Tensor::alloc(device, dims, DType::F32)
}

/// `x` cast to f16 (round to nearest even), a new tensor.
pub(crate) fn to_f16(device: &Device, x: &Tensor) -> Result<Tensor> {
    let mut out = Tensor::alloc(device, x.dims(), DType::F16)?;
    elementwise::cast_f32_to_f16(device, x.f32("to_f16")?, out.f16_mut("to_f16")?)?;
    Ok(out)
}

/// `x` (f16) widened to f32 (exact), a new tensor.
pub(crate) fn to_f32(device: &Device, x: &Tensor) -> Result<Tensor> {
    let mut out = new_f32(device, x.dims())?;
    elementwise::cast_f16_to_f32(device, x.f16("to_f32")?, out.f32_mut("to_f32")?)?;
    Ok(out)
}

/// The GEMM on tensors: f32 x f32 -> f32, f16 x f16 -> f16 or f32, the
/// output's dtype choosing. Exact, unless `tier` is [`Tier::Fast`] and the
/// operands are f16 and `c` is overwritten (`beta = 0`): then the tensor-core
/// GEMM. `c` must own its storage.
#[allow(clippy::too_many_arguments)] // a GEMM's operands, its tier and the status block
pub(crate) fn gemm_t(
    device: &Device,
    tier: Tier,
    g: &Gemm,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &mut Tensor,
    status: &mut Status,
) -> Result<()> {
    const OP: &str = "gemm";
    let bias = match bias {
        Some(t) => Some(t.f32(OP)?),
        None => None,
    };
    let fast = tier == Tier::Fast && g.beta == 0.0;
    match (a.dtype(), b.dtype(), c.dtype()) {
        (DType::F32, DType::F32, DType::F32) => gemm::gemm(
            device,
            g,
            a.f32(OP)?,
            b.f32(OP)?,
            bias,
            c.f32_mut(OP)?,
            status,
        ),
        (DType::F16, DType::F16, DType::F16) => {
            half_gemm(device, fast, g, (a, b), bias, c.f16_mut(OP)?, status)
        }
        (DType::F16, DType::F16, DType::F32) => {
            half_gemm(device, fast, g, (a, b), bias, c.f32_mut(OP)?, status)
        }
        (x, y, z) => Err(Error::invalid(
            OP,
            format!("no GEMM for {x} x {y} operands into {z}"),
        )),
    }
}

/// f16 operands into `c`: the tensor-core GEMM when `fast`, else the exact one.
fn half_gemm<'a, O: GemmOut>(
    device: &Device,
    fast: bool,
    g: &Gemm,
    (a, b): (&'a Tensor, &'a Tensor),
    bias: Option<View<'a, f32>>,
    c: ViewMut<'a, O>,
    status: &mut Status,
) -> Result<()> {
    const OP: &str = "gemm";
    let (a, b) = (a.f16(OP)?, b.f16(OP)?);
    if fast {
        gemm::fast::gemm_fast(device, g, a, b, bias, c, status)
    } else {
        gemm::gemm(device, g, a, b, bias, c, status)
    }
}

/// `out = dy^T` summed over rows: the bias gradient of `[rows, cols]` `dy`.
pub(crate) fn col_sums(device: &Device, dy: &Tensor) -> Result<Tensor> {
    let (rows, cols) = dy.matrix("bias gradient", "dy")?;
    let mut out = new_f32(device, &[cols])?;
    reduce::reduce_cols(
        device,
        ReduceOp::Sum,
        dy.f32("col_sums")?,
        rows,
        cols,
        out.f32_mut("col_sums")?,
    )?;
    Ok(out)
}

impl Graph {
    fn same_dims(&self, op: &'static str, a: Var, b: Var) -> Result<()> {
        let dims = self.value(a).dims().to_vec();
        self.value(b).check_dims(op, "b", &dims)
    }

    /// The f16 copy of a value for a Mixed GEMM operand.
    fn half(&self, v: Var) -> Result<Tensor> {
        to_f16(&self.device, self.value(v))
    }

    /// `y = x W^T + b`: `x` is `[n, in]`, `w` `[out, in]` (rows are output
    /// units, as PyTorch's `Linear`), `b` `[out]`. In Mixed the GEMM reads f16
    /// copies of `x` and `w` and its f16 output is widened to f32.
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        const OP: &str = "linear";
        let (n, k) = self.value(x).matrix(OP, "x")?;
        let (out, k2) = self.value(w).matrix(OP, "w")?;
        if k2 != k {
            return Err(Error::Dims {
                op: OP,
                name: "w",
                got: vec![out, k2],
                expected: format!("[out, {k}] to match x's {k} columns"),
            });
        }
        if let Some(b) = b {
            self.value(b).check_dims(OP, "b", &[out])?;
        }
        let g = Gemm::new(n, out, k).ops(Trans::N, Trans::T);
        let dev = self.device.clone();
        let bias = b.map(|b| self.value(b).clone());
        let (y, half) = match self.precision {
            Precision::F32 => {
                let mut y = new_f32(&dev, &[n, out])?;
                let (xv, wv) = (self.value(x).clone(), self.value(w).clone());
                gemm_t(
                    &dev,
                    self.tier,
                    &g,
                    &xv,
                    &wv,
                    bias.as_ref(),
                    &mut y,
                    &mut self.status,
                )?;
                (y, None)
            }
            Precision::Mixed => {
                let (x16, w16) = (self.half(x)?, self.half(w)?);
                let mut y16 = Tensor::alloc(&dev, &[n, out], DType::F16)?;
                gemm_t(
                    &dev,
                    self.tier,
                    &g,
                    &x16,
                    &w16,
                    bias.as_ref(),
                    &mut y16,
                    &mut self.status,
                )?;
                (to_f32(&dev, &y16)?, Some((x16, w16)))
            }
        };
        let needs = self.needs(x) || self.needs(w) || b.is_some_and(|b| self.needs(b));
        Ok(self.push(y, Op::Linear { x, w, b, half }, needs))
    }

    /// `a + b`, elementwise, same dims.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_dims("add", a, b)?;
        let mut y = new_f32(&self.device, self.value(a).dims())?;
        elementwise::add(
            &self.device,
            self.value(a).f32("add")?,
            self.value(b).f32("add")?,
            y.f32_mut("add")?,
        )?;
        let needs = self.needs(a) || self.needs(b);
        Ok(self.push(y, Op::Add(a, b), needs))
    }

    /// `a * b`, elementwise, same dims.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_dims("mul", a, b)?;
        let mut y = new_f32(&self.device, self.value(a).dims())?;
        elementwise::mul(
            &self.device,
            self.value(a).f32("mul")?,
            self.value(b).f32("mul")?,
            y.f32_mut("mul")?,
        )?;
        let needs = self.needs(a) || self.needs(b);
        Ok(self.push(y, Op::Mul(a, b), needs))
    }

    /// `max(x, 0)`, elementwise.
    pub fn relu(&mut self, x: Var) -> Result<Var> {
        let mut y = new_f32(&self.device, self.value(x).dims())?;
        elementwise::relu_fwd(&self.device, self.value(x).f32("relu")?, y.f32_mut("relu")?)?;
        let needs = self.needs(x);
        Ok(self.push(y, Op::Relu(x), needs))
    }

    /// Elementwise dropout with `mask` (in an inference graph: `x` itself).
    /// Also DropConnect (AWD-LSTM weight-drop) on a weight matrix.
    pub fn dropout(&mut self, x: Var, mask: &DropoutMask) -> Result<Var> {
        if !self.training || mask.p == 0.0 {
            return Ok(x);
        }
        let mut y = new_f32(&self.device, self.value(x).dims())?;
        dropout::dropout_fwd(
            &self.device,
            mask,
            self.value(x).f32("dropout")?,
            y.f32_mut("dropout")?,
        )?;
        let needs = self.needs(x);
        Ok(self.push(y, Op::Dropout { x, mask: *mask }, needs))
    }

    /// Variational (locked) dropout on `x`, `[t * b, f]` time-major (row
    /// `i * b + j` is sequence `j` at step `i`): one mask entry per
    /// `(sequence, feature)`, the same at every step (AWD-LSTM's
    /// `RNNDropout`). In an inference graph: `x` itself.
    pub fn variational_dropout(
        &mut self,
        x: Var,
        (t, b): (usize, usize),
        mask: &DropoutMask,
    ) -> Result<Var> {
        const OP: &str = "variational_dropout";
        if !self.training || mask.p == 0.0 {
            return Ok(x);
        }
        let (rows, f) = self.value(x).matrix(OP, "x")?;
        if rows != t * b {
            return Err(Error::Dims {
                op: OP,
                name: "x",
                got: vec![rows, f],
                expected: format!("[{t} * {b}, f]"),
            });
        }
        let mut y = new_f32(&self.device, &[rows, f])?;
        dropout::variational_fwd(
            &self.device,
            mask,
            (t, b, f),
            self.value(x).f32(OP)?,
            y.f32_mut(OP)?,
        )?;
        let needs = self.needs(x);
        let op = Op::VariationalDropout {
            x,
            mask: *mask,
            dims: (t, b, f),
        };
        Ok(self.push(y, op, needs))
    }

    /// Rows of the embedding matrix `w` (`[V, E]`) for `ids` (u32, `[n]`):
    /// `[n, E]`. With `mask` (training only), embedding dropout first drops
    /// whole rows of `w` (mask entry = row). Out-of-range ids are reported in
    /// the status block, and the output is then left unspecified.
    pub fn embedding(&mut self, w: Var, ids: &Tensor, mask: Option<&DropoutMask>) -> Result<Var> {
        const OP: &str = "embedding";
        let (v, e) = self.value(w).matrix(OP, "w")?;
        ids.check_device(OP, "ids", &self.device)?;
        let n = ids.len();
        let mask = mask.filter(|m| self.training && m.p > 0.0).copied();
        let dev = self.device.clone();
        let dropped = match &mask {
            Some(m) => {
                let mut wd = new_f32(&dev, &[v, e])?;
                dropout::embedding_fwd(&dev, m, (v, e), self.value(w).f32(OP)?, wd.f32_mut(OP)?)?;
                wd
            }
            None => self.value(w).clone(),
        };
        let mut y = Tensor::zeros(&dev, &[n, e], DType::F32)?;
        embedding::embedding_fwd(
            &dev,
            dropped.f32(OP)?,
            v,
            e,
            ids.u32(OP)?,
            y.f32_mut(OP)?,
            &mut self.status,
        )?;
        let needs = self.needs(w);
        Ok(self.push(
            y,
            Op::Embedding {
                w,
                ids: ids.clone(),
                mask,
            },
            needs,
        ))
    }

    /// Matrices with one row count side by side: `[n, sum of widths]`.
    pub fn concat_cols(&mut self, parts: &[Var]) -> Result<Var> {
        const OP: &str = "concat_cols";
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid(OP, "nothing to concatenate"))?;
        let (n, _) = self.value(*first).matrix(OP, "part")?;
        let mut widths = Vec::with_capacity(parts.len());
        for &p in parts {
            let (r, c) = self.value(p).matrix(OP, "part")?;
            if r != n {
                return Err(Error::Dims {
                    op: OP,
                    name: "part",
                    got: vec![r, c],
                    expected: format!("{n} rows"),
                });
            }
            widths.push(c);
        }
        let total: usize = widths.iter().sum();
        let mut y = new_f32(&self.device, &[n, total])?;
        let mut at = 0;
        for (&p, &w) in parts.iter().zip(&widths) {
            elementwise::copy_cols(
                &self.device,
                (n, w),
                self.value(p).f32(OP)?,
                Columns { ld: w, offset: 0 },
                y.f32_mut(OP)?,
                Columns {
                    ld: total,
                    offset: at,
                },
            )?;
            at += w;
        }
        let needs = parts.iter().any(|&p| self.needs(p));
        let saved = parts.iter().copied().zip(widths).collect();
        Ok(self.push(y, Op::ConcatCols(saved), needs))
    }

    /// Masked concat pooling of `h` (`[P, F]`, packed by `seq`): `[B, 3F]`,
    /// each row `[last | max | mean]` over the sequence's real steps.
    pub fn concat_pool(&mut self, h: Var, seq: &Arc<PackedSeq>) -> Result<Var> {
        const OP: &str = "concat_pool";
        let (p, f) = self.value(h).matrix(OP, "h")?;
        if p != seq.total() {
            return Err(Error::Dims {
                op: OP,
                name: "h",
                got: vec![p, f],
                expected: format!("{} packed rows", seq.total()),
            });
        }
        let mut y = new_f32(&self.device, &[seq.batch(), 3 * f])?;
        let mut argmax = Tensor::alloc(&self.device, &[seq.batch(), f], DType::U32)?;
        pool::pool_concat_fwd(
            &self.device,
            seq,
            f,
            self.value(h).f32(OP)?,
            y.f32_mut(OP)?,
            argmax.u32_mut(OP)?,
        )?;
        let needs = self.needs(h);
        Ok(self.push(
            y,
            Op::ConcatPool {
                h,
                seq: seq.clone(),
                argmax,
            },
            needs,
        ))
    }

    /// BatchNorm1d of `x` (`[n, F]`): with batch statistics in a training
    /// graph (updating `running` = (mean, var) in place, with `momentum`),
    /// with `running` in an inference graph.
    pub fn batchnorm(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        running: (&mut Tensor, &mut Tensor),
        eps: f32,
        momentum: f32,
    ) -> Result<Var> {
        const OP: &str = "batchnorm";
        let (n, f) = self.value(x).matrix(OP, "x")?;
        let spec = BatchNormSpec {
            rows: n,
            features: f,
            eps,
            momentum,
        };
        let dev = self.device.clone();
        let mut y = new_f32(&dev, &[n, f])?;
        if !self.training {
            batchnorm::batchnorm_fwd_eval(
                &dev,
                &spec,
                self.value(x).f32(OP)?,
                self.value(gamma).f32(OP)?,
                self.value(beta).f32(OP)?,
                running.0.f32(OP)?,
                running.1.f32(OP)?,
                y.f32_mut(OP)?,
            )?;
            return Ok(self.push(y, Op::Leaf, false));
        }
        let mut mean = new_f32(&dev, &[f])?;
        let mut inv_std = new_f32(&dev, &[f])?;
        batchnorm::batchnorm_fwd_train(
            &dev,
            &spec,
            self.value(x).f32(OP)?,
            self.value(gamma).f32(OP)?,
            self.value(beta).f32(OP)?,
            y.f32_mut(OP)?,
            mean.f32_mut(OP)?,
            inv_std.f32_mut(OP)?,
            (running.0.f32_mut(OP)?, running.1.f32_mut(OP)?),
        )?;
        let needs = self.needs(x) || self.needs(gamma) || self.needs(beta);
        Ok(self.push(
            y,
            Op::BatchNorm {
                x,
                gamma,
                beta,
                spec,
                mean,
                inv_std,
            },
            needs,
        ))
    }

    /// Mean cross-entropy of `logits` (`[B, C]`) against `labels` (u32,
    /// `[B]`): a one-element tensor, also written to the status block. Bad
    /// labels are reported there. The root of [`backward`](Graph::backward).
    pub fn cross_entropy(&mut self, logits: Var, labels: &Tensor) -> Result<Var> {
        const OP: &str = "cross_entropy";
        let (rows, cols) = self.value(logits).matrix(OP, "logits")?;
        labels.check_dims(OP, "labels", &[rows])?;
        labels.check_device(OP, "labels", &self.device)?;
        let dev = self.device.clone();
        let mut y = new_f32(&dev, &[rows, cols])?;
        let mut loss = new_f32(&dev, &[1])?;
        let x = self.value(logits).clone();
        softmax::cross_entropy_fwd(
            &dev,
            x.f32(OP)?,
            labels.u32(OP)?,
            rows,
            cols,
            y.f32_mut(OP)?,
            loss.f32_mut(OP)?,
            &mut self.status,
        )?;
        let needs = self.needs(logits);
        Ok(self.push(
            loss,
            Op::CrossEntropy {
                logits,
                labels: labels.clone(),
                y,
            },
            needs,
        ))
    }

    /// Runs the backward of node `v`, returning `(input, gradient)` pairs.
    pub(super) fn backward_node(&mut self, v: Var, up: Upstream) -> Result<Vec<(Var, Tensor)>> {
        let dev = self.device.clone();
        let op = std::mem::replace(&mut self.nodes[v.0].op, Op::Done);
        let out = match &op {
            Op::Leaf | Op::Param | Op::Done => Vec::new(),
            Op::Linear { x, w, b, half } => {
                self.linear_bwd(*x, *w, *b, half.as_ref(), up.tensor("linear")?)?
            }
            Op::Add(a, b) => {
                let g = up.tensor("add")?;
                vec![(*a, g.clone()), (*b, g)]
            }
            Op::Mul(a, b) => {
                let g = up.tensor("mul")?;
                let mut da = new_f32(&dev, g.dims())?;
                elementwise::mul(
                    &dev,
                    g.f32("mul")?,
                    self.value(*b).f32("mul")?,
                    da.f32_mut("mul")?,
                )?;
                let mut db = new_f32(&dev, g.dims())?;
                elementwise::mul(
                    &dev,
                    g.f32("mul")?,
                    self.value(*a).f32("mul")?,
                    db.f32_mut("mul")?,
                )?;
                vec![(*a, da), (*b, db)]
            }
            Op::Relu(x) => {
                let g = up.tensor("relu")?;
                let mut dx = new_f32(&dev, g.dims())?;
                elementwise::relu_bwd(
                    &dev,
                    self.value(*x).f32("relu")?,
                    g.f32("relu")?,
                    dx.f32_mut("relu")?,
                )?;
                vec![(*x, dx)]
            }
            Op::Dropout { x, mask } => {
                let g = up.tensor("dropout")?;
                let mut dx = new_f32(&dev, g.dims())?;
                dropout::dropout_bwd(&dev, mask, g.f32("dropout")?, dx.f32_mut("dropout")?)?;
                vec![(*x, dx)]
            }
            Op::VariationalDropout { x, mask, dims } => {
                const OP: &str = "variational_dropout";
                let g = up.tensor(OP)?;
                let mut dx = new_f32(&dev, g.dims())?;
                dropout::variational_bwd(&dev, mask, *dims, g.f32(OP)?, dx.f32_mut(OP)?)?;
                vec![(*x, dx)]
            }
            Op::Embedding { w, ids, mask } => {
                let g = up.tensor("embedding")?;
                let (vr, e) = self.value(*w).matrix("embedding", "w")?;
                let mut dw = Tensor::zeros(&dev, &[vr, e], DType::F32)?;
                embedding::embedding_bwd(
                    &dev,
                    g.f32("embedding")?,
                    ids.u32("embedding")?,
                    vr,
                    e,
                    dw.f32_mut("embedding")?,
                    &mut self.status,
                )?;
                if let Some(m) = mask {
                    let mut d = new_f32(&dev, &[vr, e])?;
                    dropout::embedding_bwd(
                        &dev,
                        m,
                        (vr, e),
                        dw.f32("embedding")?,
                        d.f32_mut("embedding")?,
                    )?;
                    dw = d;
                }
                vec![(*w, dw)]
            }
            Op::ConcatCols(parts) => {
                let g = up.tensor("concat_cols")?;
                let (n, total) = g.matrix("concat_cols", "gradient")?;
                let mut out = Vec::with_capacity(parts.len());
                let mut at = 0;
                for &(p, w) in parts {
                    if self.needs(p) {
                        let mut d = new_f32(&dev, &[n, w])?;
                        elementwise::copy_cols(
                            &dev,
                            (n, w),
                            g.f32("concat_cols")?,
                            Columns {
                                ld: total,
                                offset: at,
                            },
                            d.f32_mut("concat_cols")?,
                            Columns { ld: w, offset: 0 },
                        )?;
                        out.push((p, d));
                    }
                    at += w;
                }
                out
            }
            Op::ConcatPool { h, seq, argmax } => {
                let g = up.tensor("concat_pool")?;
                let (p, f) = self.value(*h).matrix("concat_pool", "h")?;
                let mut dh = new_f32(&dev, &[p, f])?;
                pool::pool_concat_bwd(
                    &dev,
                    seq,
                    f,
                    argmax.u32("concat_pool")?,
                    g.f32("concat_pool")?,
                    dh.f32_mut("concat_pool")?,
                )?;
                vec![(*h, dh)]
            }
            Op::BatchNorm {
                x,
                gamma,
                beta,
                spec,
                mean,
                inv_std,
            } => {
                const OP: &str = "batchnorm";
                let g = up.tensor(OP)?;
                let mut dx = new_f32(&dev, g.dims())?;
                let mut dgamma = new_f32(&dev, &[spec.features])?;
                let mut dbeta = new_f32(&dev, &[spec.features])?;
                batchnorm::batchnorm_bwd(
                    &dev,
                    spec,
                    self.value(*x).f32(OP)?,
                    self.value(*gamma).f32(OP)?,
                    (mean.f32(OP)?, inv_std.f32(OP)?),
                    g.f32(OP)?,
                    dx.f32_mut(OP)?,
                    dgamma.f32_mut(OP)?,
                    dbeta.f32_mut(OP)?,
                )?;
                vec![(*x, dx), (*gamma, dgamma), (*beta, dbeta)]
            }
            Op::CrossEntropy { logits, labels, y } => {
                const OP: &str = "cross_entropy";
                let seed = match up {
                    Upstream::Seed(s) => s,
                    Upstream::Tensor(_) => {
                        return Err(Error::invalid(
                            OP,
                            "a cross-entropy must be the loss of backward",
                        ))
                    }
                };
                let (rows, cols) = y.matrix(OP, "y")?;
                let mut dx = new_f32(&dev, &[rows, cols])?;
                softmax::cross_entropy_bwd(
                    &dev,
                    y.f32(OP)?,
                    labels.u32(OP)?,
                    rows,
                    cols,
                    seed,
                    dx.f32_mut(OP)?,
                    &mut self.status,
                )?;
                vec![(*logits, dx)]
            }
            Op::Lstm(saved) => self.lstm_bwd(saved, up.tensor("lstm")?)?,
        };
        Ok(out)
    }

    fn linear_bwd(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        half: Option<&(Tensor, Tensor)>,
        dy: Tensor,
    ) -> Result<Vec<(Var, Tensor)>> {
        let dev = self.device.clone();
        let (n, out) = dy.matrix("linear", "dy")?;
        let (_, k) = self.value(w).matrix("linear", "w")?;
        // dx = dy W (n x out by out x k); dW = dy^T x (out x n by n x k).
        let gdx = Gemm::new(n, k, out);
        let gdw = Gemm::new(out, k, n).ops(Trans::T, Trans::N);
        let mut grads = Vec::with_capacity(3);
        let (dy_op, x_op, w_op) = match half {
            None => (dy.clone(), self.value(x).clone(), self.value(w).clone()),
            Some((x16, w16)) => (to_f16(&dev, &dy)?, x16.clone(), w16.clone()),
        };
        if self.needs(x) {
            let mut dx = new_f32(&dev, &[n, k])?;
            gemm_t(
                &dev,
                self.tier,
                &gdx,
                &dy_op,
                &w_op,
                None,
                &mut dx,
                &mut self.status,
            )?;
            grads.push((x, dx));
        }
        if self.needs(w) {
            let mut dw = new_f32(&dev, &[out, k])?;
            gemm_t(
                &dev,
                self.tier,
                &gdw,
                &dy_op,
                &x_op,
                None,
                &mut dw,
                &mut self.status,
            )?;
            grads.push((w, dw));
        }
        if let Some(b) = b.filter(|&b| self.needs(b)) {
            grads.push((b, col_sums(&dev, &dy)?));
        }
        Ok(grads)
    }
}
