//! One direction of one LSTM layer over a packed sequence, as one tape node:
//! the AWD-LSTM layer's input (variational) dropout, the input projection
//! `x W_ih^T + b` for the whole sequence in one GEMM, and per step `t` the
//! recurrent GEMM `gates += h_{t-1} W_hh^T` (accumulating onto the
//! projection: `beta = 1`) and the pointwise cell, over exactly the rows
//! still active at `t` ([`PackedSeq`]). Weight-drop is a dropout node on
//! `W_hh` before this one.
//!
//! Letters: `B` sequences, `T` steps, `P` packed positions, `I` input
//! features, `H` hidden units. States live in `[B + P, H]` buffers whose
//! first `B` rows are the initial state and whose row `B + r` is packed
//! position `r`, so step `t`'s previous state is a contiguous window.
//!
//! **Backward** runs the steps in reverse: the cell backward, then the
//! previous step's `dh += dgates W_hh` (an accumulating GEMM), with `dc`
//! carried in a `[B, H]` buffer; then one GEMM each for `dW_hh` (over the
//! gathered previous states), `dW_ih` and `dx`, and a column sum for the
//! bias. Every sum has a fixed order; nothing races.
//!
//! **Gradient checkpointing** (`checkpoint_segments = K > 0`): the steps are
//! cut into `K` segments; forward keeps only the hidden states (the layer's
//! output) and each segment's starting cell state, and backward recomputes a
//! segment's projections, gates and cell states just before it needs them.
//! The dropout mask is regenerated from its `(key, counter)` and every
//! recomputed value goes through the same kernels on the same inputs, so the
//! gradients are bitwise those of the un-checkpointed layer.

use super::ops::{gemm_t, new_f32, to_f16, Op};
use super::{Graph, Var};
use crate::amp::Precision;
use crate::device::{Device, View, ViewMut};
use crate::error::{Error, Result};
use crate::ops::dropout::{self, DropoutMask};
use crate::ops::elementwise;
use crate::ops::embedding;
use crate::ops::gemm::{Gemm, Op as Trans};
use crate::ops::lstm::{lstm_cell_bwd, lstm_cell_fwd, LstmShape};
use crate::seq::PackedSeq;
use crate::status::Status;
use crate::tensor::{DType, Tensor};
use std::sync::Arc;

/// The parameters of one layer direction: `w_ih` `[4H, I]`, `w_hh` `[4H, H]`
/// (rows in gate order `[i | f | g | o]`, PyTorch's layout), `bias` `[4H]`.
#[derive(Debug, Clone, Copy)]
pub struct LstmWeights {
    /// Input-to-hidden weights, `[4H, I]`.
    pub w_ih: Var,
    /// Hidden-to-hidden weights, `[4H, H]` (weight-dropped by the caller).
    pub w_hh: Var,
    /// The gates' bias, `[4H]`.
    pub bias: Var,
}

/// How a layer direction runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LstmOptions {
    /// Variational dropout on the input: one mask entry per `(row, feature)`,
    /// the same at every step (entry `b * I + f`).
    pub input_dropout: Option<DropoutMask>,
    /// Run each sequence back to front (the backward direction of a
    /// bidirectional layer); the output stays in the input's order.
    pub reverse: bool,
    /// 0: keep every activation for the backward; `K > 0`: keep only the
    /// states at `K` segment boundaries and recompute the rest.
    pub checkpoint_segments: usize,
    /// Return each sequence's final `(h, c)` (forward direction only), to
    /// carry into the next batch (truncated BPTT).
    pub keep_state: bool,
}

/// Per-sequence hidden and cell states, `[B, H]` each, in batch-row order.
#[derive(Debug, Clone)]
pub struct LstmState {
    /// Hidden state.
    pub h: Tensor,
    /// Cell state.
    pub c: Tensor,
}

/// What one layer direction keeps for its backward.
pub(crate) struct LstmSaved {
    x: Var,
    w: LstmWeights,
    seq: Arc<PackedSeq>,
    opts: LstmOptions,
    hidden: usize,
    /// `[B + P, H]`: the initial hidden states, then every step's.
    hbuf: Tensor,
    /// The un-checkpointed activations: cell states `[P, H]` and gate
    /// activations `[P, 4H]`, or nothing when checkpointing.
    full: Option<(Tensor, Tensor)>,
    /// Each segment's `(first step, last step + 1, starting cell state)`.
    segments: Vec<(usize, usize, Tensor)>,
    /// Mixed: f16 copies of `w_ih` and `w_hh`.
    half: Option<(Tensor, Tensor)>,
    init_given: bool,
}

/// The segments' step ranges: `k` near-equal runs of steps (one run when
/// `k` is 0 or 1, at most one run per step).
fn segment_bounds(steps: usize, k: usize) -> Vec<(usize, usize)> {
    let k = k.clamp(1, steps.max(1));
    (0..k)
        .map(|i| (i * steps / k, (i + 1) * steps / k))
        .filter(|(a, b)| b > a)
        .collect()
}

/// Variational dropout on a packed `[P, f]` tensor: step by step, each
/// step's active rows `0..b_t` take mask entries `b * f + j` (the kernel's
/// `(t = 1, b_t, f)` case), so every step sees the same mask.
fn packed_dropout(
    device: &Device,
    seq: &PackedSeq,
    mask: &DropoutMask,
    f: usize,
    x: View<'_, f32>,
    mut out: ViewMut<'_, f32>,
    backward: bool,
) -> Result<()> {
    for t in 0..seq.steps() {
        let rows = seq.step_rows(t);
        let (lo, hi) = (rows.start * f, rows.end * f);
        let dims = (1, rows.len(), f);
        let (xi, oi) = (x.try_slice(lo..hi)?, out.slice_mut(lo..hi));
        if backward {
            dropout::variational_bwd(device, mask, dims, xi, oi)?;
        } else {
            dropout::variational_fwd(device, mask, dims, xi, oi)?;
        }
    }
    Ok(())
}

/// `out[r] = src[index[r]]` for whole rows of width `f` (the embedding
/// gather, a bit copy).
fn gather_rows(
    device: &Device,
    src: &Tensor,
    f: usize,
    index: View<'_, u32>,
    status: &mut Status,
) -> Result<Tensor> {
    let rows = src.len() / f.max(1);
    let mut out = new_f32(device, &[index.len(), f])?;
    embedding::embedding_fwd(
        device,
        src.f32("lstm")?,
        rows,
        f,
        index,
        out.f32_mut("lstm")?,
        status,
    )?;
    Ok(out)
}

/// The input as the recurrence reads it: dropped out, then (backward
/// direction) reversed. `[P, I]`.
fn prepared_input(
    g: &mut Graph,
    x: &Tensor,
    seq: &PackedSeq,
    opts: &LstmOptions,
) -> Result<Tensor> {
    let dev = g.device.clone();
    let (p, i) = x.matrix("lstm", "x")?;
    let dropped = match &opts.input_dropout {
        Some(m) if g.training && m.p > 0.0 => {
            let mut d = new_f32(&dev, &[p, i])?;
            packed_dropout(&dev, seq, m, i, x.f32("lstm")?, d.f32_mut("lstm")?, false)?;
            d
        }
        _ => x.clone(),
    };
    if opts.reverse {
        gather_rows(&dev, &dropped, i, seq.reverse_view(), &mut g.status)
    } else {
        Ok(dropped)
    }
}

/// The input projection of packed rows `rows`: `xr[rows] W_ih^T + bias`,
/// f32 (F32) or f16 (Mixed). `[rows, 4H]`.
fn projection(
    g: &mut Graph,
    xr: &Tensor,
    rows: std::ops::Range<usize>,
    w_ih: &Tensor,
    w_ih16: Option<&Tensor>,
    bias: &Tensor,
) -> Result<Tensor> {
    let dev = g.device.clone();
    let (_, i) = xr.matrix("lstm", "x")?;
    let four_h = bias.len();
    let gm = Gemm::new(rows.len(), four_h, i).ops(Trans::N, Trans::T);
    let xs = xr.narrow(rows.start, rows.len())?;
    match w_ih16 {
        None => {
            let mut out = new_f32(&dev, &[rows.len(), four_h])?;
            gemm_t(
                &dev,
                g.tier,
                &gm,
                &xs,
                w_ih,
                Some(bias),
                &mut out,
                &mut g.status,
            )?;
            Ok(out)
        }
        Some(w16) => {
            let x16 = to_f16(&dev, &xs)?;
            let mut out = Tensor::alloc(&dev, &[rows.len(), four_h], DType::F16)?;
            gemm_t(
                &dev,
                g.tier,
                &gm,
                &x16,
                w16,
                Some(bias),
                &mut out,
                &mut g.status,
            )?;
            Ok(out)
        }
    }
}

/// Where one segment's recurrence reads and writes.
struct Segment<'a> {
    /// Steps `t0..t1`.
    t0: usize,
    t1: usize,
    /// The segment's projections, `[rows, 4H]` (f32, or f16 in Mixed);
    /// the recurrent GEMMs accumulate into them.
    gates: &'a mut Tensor,
    /// The cell state before step `t0`, at least `b_{t0}` rows.
    c_start: &'a Tensor,
    /// Cell states and gate activations of the segment's rows.
    c: &'a mut Tensor,
    act: &'a mut Tensor,
}

/// Where a segment's hidden states come from and go to.
enum HOut<'a> {
    /// The forward: into the `[B + P, H]` state buffer (and, in Mixed, its f16
    /// copy, updated after each step), reading earlier steps from the same.
    Buffer(&'a mut Tensor, Option<&'a mut Tensor>),
    /// A recompute: earlier steps read from the saved buffers, the step's
    /// (identical) hidden states written to a scratch `[rows, H]` whose row 0
    /// is packed row `base`.
    Scratch {
        hbuf: &'a Tensor,
        h16: Option<&'a Tensor>,
        scratch: &'a mut Tensor,
        base: usize,
    },
}

impl HOut<'_> {
    fn prev_f32(&self, rows: std::ops::Range<usize>, h: usize) -> Result<View<'_, f32>> {
        let t = match self {
            HOut::Buffer(hb, _) => &**hb,
            HOut::Scratch { hbuf, .. } => *hbuf,
        };
        t.f32("lstm")?.try_slice(rows.start * h..rows.end * h)
    }

    fn prev_f16(&self, rows: std::ops::Range<usize>, h: usize) -> Result<View<'_, u16>> {
        let t = match self {
            HOut::Buffer(_, Some(h16)) => &**h16,
            HOut::Scratch { h16: Some(h16), .. } => *h16,
            _ => return Err(Error::invalid("lstm", "Mixed precision without f16 states")),
        };
        t.f16("lstm")?.try_slice(rows.start * h..rows.end * h)
    }

    /// The hidden states of packed `rows`.
    fn out_f32(
        &mut self,
        rows: std::ops::Range<usize>,
        b: usize,
        h: usize,
    ) -> Result<ViewMut<'_, f32>> {
        match self {
            HOut::Buffer(hb, _) => hb
                .f32_mut("lstm")?
                .try_into_slice((b + rows.start) * h..(b + rows.end) * h),
            HOut::Scratch { scratch, base, .. } => scratch
                .f32_mut("lstm")?
                .try_into_slice((rows.start - *base) * h..(rows.end - *base) * h),
        }
    }

    /// Mixed forward: the f16 copy of the step's new states.
    fn after_step(
        &mut self,
        device: &Device,
        rows: std::ops::Range<usize>,
        b: usize,
        h: usize,
    ) -> Result<()> {
        if let HOut::Buffer(hb, Some(h16)) = self {
            let r = (b + rows.start) * h..(b + rows.end) * h;
            elementwise::cast_f32_to_f16(
                device,
                hb.f32("lstm")?.try_slice(r.clone())?,
                h16.f16_mut("lstm")?.try_into_slice(r)?,
            )?;
        }
        Ok(())
    }
}

/// Copies, for steps `t0..t1`, the states of the sequences that end at each
/// step into `hl`, `cl` (`[B, H]`): sequences `b_{t+1} .. b_t` end at `t`.
#[allow(clippy::too_many_arguments)]
fn keep_last(
    seq: &PackedSeq,
    h: usize,
    t0: usize,
    hbuf: &Tensor,
    c: &Tensor,
    t1: usize,
    hl: &mut Tensor,
    cl: &mut Tensor,
) -> Result<()> {
    let b = seq.batch();
    let base = seq.offsets()[t0];
    for t in t0..t1 {
        let bt = seq.batch_sizes()[t];
        let next = seq.batch_sizes().get(t + 1).copied().unwrap_or(0);
        if next == bt {
            continue;
        }
        let o = seq.offsets()[t];
        hl.f32_mut("lstm")?
            .try_into_slice(next * h..bt * h)?
            .copy_from(
                hbuf.f32("lstm")?
                    .try_slice((b + o + next) * h..(b + o + bt) * h)?,
            )?;
        cl.f32_mut("lstm")?
            .try_into_slice(next * h..bt * h)?
            .copy_from(
                c.f32("lstm")?
                    .try_slice((o - base + next) * h..(o - base + bt) * h)?,
            )?;
    }
    Ok(())
}

/// One step of the recurrence (forward): the recurrent GEMM onto the step's
/// projections, then the cell.
#[allow(clippy::too_many_arguments)]
fn step_fwd(
    g: &mut Graph,
    seq: &PackedSeq,
    h: usize,
    w_hh: &Tensor,
    w_hh16: Option<&Tensor>,
    init_given: bool,
    t: usize,
    s: &mut Segment<'_>,
    g32: Option<&mut Tensor>,
    h_out: &mut HOut<'_>,
) -> Result<()> {
    const OP: &str = "lstm";
    let dev = g.device.clone();
    let b = seq.batch();
    let base = seq.offsets()[s.t0];
    let rows = seq.step_rows(t);
    let bt = rows.len();
    let local = rows.start - base..rows.end - base;
    let (l4, r4) = (local.start * 4 * h, local.end * 4 * h);
    // gates_t += h_{t-1} W_hh^T (skipped at t = 0 without initial states:
    // h_{-1} = 0 would add nothing, bit for bit).
    if t > 0 || init_given {
        let prev = if t == 0 {
            0..bt
        } else {
            b + seq.offsets()[t - 1]..b + seq.offsets()[t - 1] + bt
        };
        let gm = Gemm::new(bt, 4 * h, h).ops(Trans::N, Trans::T).accumulate();
        match w_hh16 {
            None => {
                let hp = h_out.prev_f32(prev, h)?;
                let gt = s.gates.f32_mut(OP)?.try_into_slice(l4..r4)?;
                crate::ops::gemm::gemm(&dev, &gm, hp, w_hh.f32(OP)?, None, gt, &mut g.status)?;
            }
            Some(w16) => {
                let hp = h_out.prev_f16(prev, h)?;
                let gt = s.gates.f16_mut(OP)?.try_into_slice(l4..r4)?;
                crate::ops::gemm::gemm(&dev, &gm, hp, w16.f16(OP)?, None, gt, &mut g.status)?;
            }
        }
    }
    // The cell reads f32 gates (Mixed: widened from the f16 GEMM output).
    let gates_t = match g32 {
        None => s.gates.narrow(local.start, bt)?,
        Some(scratch) => {
            elementwise::cast_f16_to_f32(
                &dev,
                s.gates.f16(OP)?.try_slice(l4..r4)?,
                scratch.f32_mut(OP)?.try_into_slice(..bt * 4 * h)?,
            )?;
            scratch.narrow(0, bt)?
        }
    };
    let (c_before, c_here) = s.c.f32_mut(OP)?.split_at_mut(local.start * h);
    let c_prev = if t == s.t0 {
        s.c_start.f32(OP)?.try_slice(..bt * h)?
    } else {
        let l = seq.offsets()[t - 1] - base;
        View::from(&c_before).try_slice(l * h..(l + bt) * h)?
    };
    let act_t = s.act.f32_mut(OP)?.try_into_slice(l4..r4)?;
    let h_t = h_out.out_f32(rows.clone(), b, h)?;
    lstm_cell_fwd(
        &dev,
        LstmShape::new(bt, h),
        gates_t.f32(OP)?,
        c_prev,
        c_here.try_into_slice(..bt * h)?,
        h_t,
        act_t,
    )?;
    h_out.after_step(&dev, rows, b, h)
}

/// Steps `s.t0..s.t1` of the recurrence.
#[allow(clippy::too_many_arguments)]
fn run_segment(
    g: &mut Graph,
    seq: &PackedSeq,
    h: usize,
    w_hh: &Tensor,
    w_hh16: Option<&Tensor>,
    init_given: bool,
    s: &mut Segment<'_>,
    mut h_out: HOut<'_>,
) -> Result<()> {
    let mut g32 = match w_hh16 {
        Some(_) => Some(new_f32(
            &g.device.clone(),
            &[seq.batch_sizes()[s.t0], 4 * h],
        )?),
        None => None,
    };
    for t in s.t0..s.t1 {
        step_fwd(
            g,
            seq,
            h,
            w_hh,
            w_hh16,
            init_given,
            t,
            s,
            g32.as_mut(),
            &mut h_out,
        )?;
    }
    Ok(())
}

impl Graph {
    /// One direction of an LSTM layer over the packed `x` (`[P, I]`): the
    /// hidden states `[P, H]` (in `x`'s row order, also for `reverse`), and,
    /// with `opts.keep_state`, each sequence's final state. `init` (constants,
    /// `[B, H]` each) starts the recurrence; zeros otherwise. See the module
    /// docs for the computation and for checkpointing.
    pub fn lstm(
        &mut self,
        x: Var,
        w: LstmWeights,
        seq: &Arc<PackedSeq>,
        opts: &LstmOptions,
        init: Option<&LstmState>,
    ) -> Result<(Var, Option<LstmState>)> {
        const OP: &str = "lstm";
        let dev = self.device.clone();
        let (p, i) = self.value(x).matrix(OP, "x")?;
        let (four_h, i2) = self.value(w.w_ih).matrix(OP, "w_ih")?;
        let hidden = four_h / 4;
        if four_h % 4 != 0 || four_h == 0 || i2 != i {
            return Err(Error::Dims {
                op: OP,
                name: "w_ih",
                got: vec![four_h, i2],
                expected: format!("[4H, {i}]"),
            });
        }
        self.value(w.w_hh)
            .check_dims(OP, "w_hh", &[four_h, hidden])?;
        self.value(w.bias).check_dims(OP, "bias", &[four_h])?;
        if p != seq.total() || !seq.device().same_as(&dev) {
            return Err(Error::Dims {
                op: OP,
                name: "x",
                got: vec![p, i],
                expected: format!("{} packed rows on {dev}", seq.total()),
            });
        }
        if opts.keep_state && opts.reverse {
            return Err(Error::invalid(
                OP,
                "keep_state is for the forward direction",
            ));
        }
        let b = seq.batch();
        if let Some(s) = init {
            s.h.check_dims(OP, "init.h", &[b, hidden])?;
            s.c.check_dims(OP, "init.c", &[b, hidden])?;
        }
        let half = match self.precision {
            Precision::F32 => None,
            Precision::Mixed => Some((
                to_f16(&dev, self.value(w.w_ih))?,
                to_f16(&dev, self.value(w.w_hh))?,
            )),
        };
        let x_val = self.value(x).clone();
        let xr = prepared_input(self, &x_val, seq, opts)?;
        // State buffers: rows 0..B the initial state, row B + r position r.
        let mut hbuf = Tensor::zeros(&dev, &[b + p, hidden], DType::F32)?;
        let c0 = match init {
            Some(s) => {
                hbuf.f32_mut(OP)?
                    .try_into_slice(..b * hidden)?
                    .copy_from(s.h.f32(OP)?)?;
                s.c.clone()
            }
            None => Tensor::zeros(&dev, &[b, hidden], DType::F32)?,
        };
        let mut h16 = match &half {
            Some(_) => Some(to_f16(&dev, &hbuf)?),
            None => None,
        };
        let mut last = if opts.keep_state {
            Some((new_f32(&dev, &[b, hidden])?, new_f32(&dev, &[b, hidden])?))
        } else {
            None
        };
        let checkpointing = opts.checkpoint_segments > 0;
        let (w_ih, w_hh, bias) = (
            self.value(w.w_ih).clone(),
            self.value(w.w_hh).clone(),
            self.value(w.bias).clone(),
        );
        let mut segments = Vec::new();
        let mut full = None;
        let mut c_start = c0.clone();
        for (t0, t1) in segment_bounds(seq.steps(), opts.checkpoint_segments) {
            let rows = seq.offsets()[t0]..seq.step_rows(t1 - 1).end;
            let w16 = half.as_ref().map(|h| &h.0);
            let mut gates = projection(self, &xr, rows.clone(), &w_ih, w16, &bias)?;
            let mut c = new_f32(&dev, &[rows.len(), hidden])?;
            let mut act = new_f32(&dev, &[rows.len(), four_h])?;
            let mut s = Segment {
                t0,
                t1,
                gates: &mut gates,
                c_start: &c_start,
                c: &mut c,
                act: &mut act,
            };
            let wh16 = half.as_ref().map(|h| &h.1);
            let init_given = init.is_some();
            run_segment(
                self,
                seq,
                hidden,
                &w_hh,
                wh16,
                init_given,
                &mut s,
                HOut::Buffer(&mut hbuf, h16.as_mut()),
            )?;
            if let Some((hl, cl)) = last.as_mut() {
                keep_last(seq, hidden, t0, &hbuf, &c, t1, hl, cl)?;
            }
            // The next segment starts from this one's last step's cell states.
            let lrows = seq.step_rows(t1 - 1);
            let next_start = c.narrow(lrows.start - rows.start, lrows.len())?;
            segments.push((t0, t1, std::mem::replace(&mut c_start, next_start)));
            if !checkpointing {
                full = Some((c, act));
            }
        }
        if checkpointing {
            // Own copies of the segment starts, so the segments' buffers go.
            for seg in segments.iter_mut() {
                seg.2 = seg.2.deep_clone()?;
            }
        }
        let out = hbuf.narrow(b, p)?;
        let out = if opts.reverse {
            gather_rows(&dev, &out, hidden, seq.reverse_view(), &mut self.status)?
        } else {
            out
        };
        let state = last.map(|(h, c)| LstmState { h, c });
        let needs = self.needs(x) || self.needs(w.w_ih) || self.needs(w.w_hh) || self.needs(w.bias);
        let saved = LstmSaved {
            x,
            w,
            seq: seq.clone(),
            opts: *opts,
            hidden,
            hbuf,
            full,
            segments,
            half,
            init_given: init.is_some(),
        };
        Ok((self.push(out, Op::Lstm(Box::new(saved)), needs), state))
    }

    /// The backward of one layer direction (module docs).
    pub(super) fn lstm_bwd(&mut self, s: &LstmSaved, dy: Tensor) -> Result<Vec<(Var, Tensor)>> {
        const OP: &str = "lstm";
        let dev = self.device.clone();
        let seq = &*s.seq;
        let (b, p, h) = (seq.batch(), seq.total(), s.hidden);
        let w_ih = self.value(s.w.w_ih).clone();
        let w_hh = self.value(s.w.w_hh).clone();
        let bias = self.value(s.w.bias).clone();
        let (_, i) = w_ih.matrix(OP, "w_ih")?;
        // dh in the recurrence's row order; it also collects each step's
        // contribution to the step before it.
        let mut dh = if s.opts.reverse {
            gather_rows(&dev, &dy, h, seq.reverse_view(), &mut self.status)?
        } else {
            dy.deep_clone()?
        };
        let mut dgates = new_f32(&dev, &[p, 4 * h])?;
        let mut dg16 = match &s.half {
            Some(_) => Some(Tensor::alloc(&dev, &[p, 4 * h], DType::F16)?),
            None => None,
        };
        let mut dc = [
            Tensor::zeros(&dev, &[b, h], DType::F32)?,
            Tensor::zeros(&dev, &[b, h], DType::F32)?,
        ];
        let x_val = self.value(s.x).clone();
        let xr = prepared_input(self, &x_val, seq, &s.opts)?;
        let h16_saved = match &s.half {
            Some(_) => Some(to_f16(&dev, &s.hbuf)?),
            None => None,
        };
        let mut cur = 0; // dc[cur] holds the incoming dc of the next step processed
        for &(t0, t1, ref c_start) in s.segments.iter().rev() {
            let rows = seq.offsets()[t0]..seq.step_rows(t1 - 1).end;
            // The segment's cell states and activations: saved, or recomputed.
            let (c_seg, act_seg) = match &s.full {
                Some((c, act)) => (c.clone(), act.clone()),
                None => {
                    let w16 = s.half.as_ref().map(|x| &x.0);
                    let mut gates = projection(self, &xr, rows.clone(), &w_ih, w16, &bias)?;
                    let mut c = new_f32(&dev, &[rows.len(), h])?;
                    let mut act = new_f32(&dev, &[rows.len(), 4 * h])?;
                    let mut scratch = new_f32(&dev, &[rows.len(), h])?;
                    let mut seg = Segment {
                        t0,
                        t1,
                        gates: &mut gates,
                        c_start,
                        c: &mut c,
                        act: &mut act,
                    };
                    let hout = HOut::Scratch {
                        hbuf: &s.hbuf,
                        h16: h16_saved.as_ref(),
                        scratch: &mut scratch,
                        base: rows.start,
                    };
                    let wh16 = s.half.as_ref().map(|x| &x.1);
                    run_segment(self, seq, h, &w_hh, wh16, s.init_given, &mut seg, hout)?;
                    (c, act)
                }
            };
            for t in (t0..t1).rev() {
                let r = seq.step_rows(t);
                let bt = r.len();
                let local = r.start - rows.start;
                let c_prev = if t == t0 {
                    c_start.narrow(0, bt)?
                } else {
                    c_seg.narrow(seq.offsets()[t - 1] - rows.start, bt)?
                };
                let (din, dout) = {
                    let (a, bb) = dc.split_at_mut(1);
                    if cur == 0 {
                        (&a[0], &mut bb[0])
                    } else {
                        (&bb[0], &mut a[0])
                    }
                };
                lstm_cell_bwd(
                    &dev,
                    LstmShape::new(bt, h),
                    dh.f32(OP)?.try_slice(r.start * h..r.end * h)?,
                    din.f32(OP)?.try_slice(..bt * h)?,
                    act_seg
                        .f32(OP)?
                        .try_slice(local * 4 * h..(local + bt) * 4 * h)?,
                    c_prev.f32(OP)?,
                    c_seg.f32(OP)?.try_slice(local * h..(local + bt) * h)?,
                    dgates
                        .f32_mut(OP)?
                        .try_into_slice(r.start * 4 * h..r.end * 4 * h)?,
                    dout.f32_mut(OP)?.try_into_slice(..bt * h)?,
                )?;
                // Sequences that end at t - 1 get dc = 0 there.
                if t > 0 {
                    let before = seq.batch_sizes()[t - 1];
                    if before > bt {
                        dout.f32_mut(OP)?
                            .try_into_slice(bt * h..before * h)?
                            .fill_zeros()?;
                    }
                }
                cur = 1 - cur;
                if let Some(d16) = dg16.as_mut() {
                    elementwise::cast_f32_to_f16(
                        &dev,
                        dgates.f32(OP)?.try_slice(r.start * 4 * h..r.end * 4 * h)?,
                        d16.f16_mut(OP)?
                            .try_into_slice(r.start * 4 * h..r.end * 4 * h)?,
                    )?;
                }
                // dh_{t-1} += dgates_t W_hh, onto the previous step's rows.
                if t > 0 {
                    let o = seq.offsets()[t - 1];
                    let gm = Gemm::new(bt, h, 4 * h).accumulate();
                    let dst = dh.f32_mut(OP)?.try_into_slice(o * h..(o + bt) * h)?;
                    match (&dg16, &s.half) {
                        (Some(d16), Some((_, wh16))) => crate::ops::gemm::gemm(
                            &dev,
                            &gm,
                            d16.f16(OP)?.try_slice(r.start * 4 * h..r.end * 4 * h)?,
                            wh16.f16(OP)?,
                            None,
                            dst,
                            &mut self.status,
                        )?,
                        _ => crate::ops::gemm::gemm(
                            &dev,
                            &gm,
                            dgates.f32(OP)?.try_slice(r.start * 4 * h..r.end * 4 * h)?,
                            w_hh.f32(OP)?,
                            None,
                            dst,
                            &mut self.status,
                        )?,
                    }
                }
            }
        }
        // Whole-sequence GEMMs: the operands dgates, x and the previous states.
        let hprev = gather_rows(&dev, &s.hbuf, h, seq.prev_row_view(), &mut self.status)?;
        let (dg_op, hprev_op, xr_op, wih_op) = match (&dg16, &s.half) {
            (Some(d16), Some((wi16, _))) => (
                d16.clone(),
                to_f16(&dev, &hprev)?,
                to_f16(&dev, &xr)?,
                wi16.clone(),
            ),
            _ => (dgates.clone(), hprev, xr, w_ih.clone()),
        };
        let mut grads = Vec::with_capacity(4);
        if self.needs(s.w.w_hh) {
            let mut dw = new_f32(&dev, &[4 * h, h])?;
            let gm = Gemm::new(4 * h, h, p).ops(Trans::T, Trans::N);
            gemm_t(
                &dev,
                self.tier,
                &gm,
                &dg_op,
                &hprev_op,
                None,
                &mut dw,
                &mut self.status,
            )?;
            grads.push((s.w.w_hh, dw));
        }
        if self.needs(s.w.w_ih) {
            let mut dw = new_f32(&dev, &[4 * h, i])?;
            let gm = Gemm::new(4 * h, i, p).ops(Trans::T, Trans::N);
            gemm_t(
                &dev,
                self.tier,
                &gm,
                &dg_op,
                &xr_op,
                None,
                &mut dw,
                &mut self.status,
            )?;
            grads.push((s.w.w_ih, dw));
        }
        if self.needs(s.w.bias) {
            grads.push((s.w.bias, super::ops::col_sums(&dev, &dgates)?));
        }
        if self.needs(s.x) {
            let mut dxr = new_f32(&dev, &[p, i])?;
            gemm_t(
                &dev,
                self.tier,
                &Gemm::new(p, i, 4 * h),
                &dg_op,
                &wih_op,
                None,
                &mut dxr,
                &mut self.status,
            )?;
            let dxd = if s.opts.reverse {
                gather_rows(&dev, &dxr, i, seq.reverse_view(), &mut self.status)?
            } else {
                dxr
            };
            let dx = match &s.opts.input_dropout {
                Some(m) if self.training && m.p > 0.0 => {
                    let mut d = new_f32(&dev, &[p, i])?;
                    packed_dropout(&dev, seq, m, i, dxd.f32(OP)?, d.f32_mut(OP)?, true)?;
                    d
                }
                _ => dxd,
            };
            grads.push((s.x, dx));
        }
        Ok(grads)
    }
}
