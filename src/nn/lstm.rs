//! `Lstm`: a stack of AWD-LSTM layers over packed sequences, uni- or
//! bidirectional, with the AWD-LSTM regularisers:
//! - **variational dropout** on each layer's input, one mask per
//!   `(sequence, feature)` shared over time: `input_p` on the first layer's
//!   input (stream `input_dropout[0]`), `hidden_p` between layers (stream
//!   `hidden_dropout[l - 1]` on layer `l`'s input);
//! - **weight-drop** (DropConnect) on each `W_hh` at every forward, `weight_p`
//!   (stream `weight_drop[2l + direction]`).
//!
//! Each layer is its own single LSTM (fastai's AWD-LSTM: sizes can change
//! from layer to layer). Layer `l` reads `hidden[l - 1] * directions`
//! features and writes `hidden[l]` per direction; a bidirectional layer runs
//! the backward direction on the reversed sequences (the same dropped input,
//! as one mask serves both) and puts its states after the forward
//! direction's: `[forward | backward]`. Parameters `{name}.{l}.{fwd|bwd}.
//! {w_ih, w_hh, bias}` in group `first_group + l`, initialised uniform in
//! `[-1/sqrt(H), 1/sqrt(H))` (PyTorch's `nn.LSTM`); gates in the order
//! `[i | f | g | o]`, one bias per gate row.

use super::params::{Init, Params};
use crate::autograd::{Graph, LstmOptions, LstmState, LstmWeights, ParamId, Var};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::dropout::DropoutMask;
use crate::rng::{RngState, Stream, StreamFamily};
use crate::seq::PackedSeq;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The sizes and regularisers of an LSTM stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmConfig {
    /// Features of the first layer's input.
    pub input: usize,
    /// Hidden units of each layer (per direction); its length is the depth.
    pub hidden: Vec<usize>,
    /// Run a backward direction too, concatenated after the forward one.
    pub bidirectional: bool,
    /// Variational dropout on the first layer's input.
    pub input_p: f32,
    /// Variational dropout between layers.
    pub hidden_p: f32,
    /// DropConnect on every `W_hh`.
    pub weight_p: f32,
    /// Gradient checkpointing: 0 keeps every activation; `K > 0` keeps only
    /// `K` segment boundaries per layer and recomputes the rest in backward.
    pub checkpoint_segments: usize,
}

/// One layer direction's parameters.
#[derive(Debug, Clone, Copy)]
pub struct LstmDir {
    /// `[4H, I]`.
    pub w_ih: ParamId,
    /// `[4H, H]`.
    pub w_hh: ParamId,
    /// `[4H]`.
    pub bias: ParamId,
}

/// A stack of LSTM layers.
#[derive(Debug, Clone)]
pub struct Lstm {
    /// The sizes and regularisers.
    pub config: LstmConfig,
    /// Per layer, the forward (and backward) direction.
    pub layers: Vec<Vec<LstmDir>>,
}

impl Lstm {
    /// Registers every layer's parameters (layer `l` in group `first_group + l`).
    pub fn new(
        params: &mut Params,
        device: &Device,
        name: &str,
        config: &LstmConfig,
        first_group: usize,
        seed: u64,
    ) -> Result<Lstm> {
        if config.hidden.is_empty() || config.hidden.contains(&0) || config.input == 0 {
            return Err(Error::invalid(
                "Lstm",
                format!("sizes must be positive, with at least one layer: {config:?}"),
            ));
        }
        if config.hidden.len() > 128 {
            // Weight-drop stream 2l + d of 256 per layer and direction.
            return Err(Error::invalid(
                "Lstm",
                format!("{} layers; at most 128 are supported", config.hidden.len()),
            ));
        }
        let dirs = if config.bidirectional { 2 } else { 1 };
        let mut layers = Vec::with_capacity(config.hidden.len());
        let mut input = config.input;
        for (l, &h) in config.hidden.iter().enumerate() {
            let init = Init::Uniform {
                seed,
                bound: 1.0 / (h as f32).sqrt(),
            };
            let mut both = Vec::with_capacity(dirs);
            for d in 0..dirs {
                // PyTorch's names for a one-layer `nn.LSTM` per layer
                // (fastai's layout): `weight_ih_l0`, `_reverse` for the
                // backward direction. The one bias is `bias_ih_l0`; a saved
                // model adds `bias_hh_l0` as zeros (see `TextClassifier::save`).
                let sfx = if d == 0 { "" } else { "_reverse" };
                let p = format!("{name}.{l}");
                let group = first_group + l;
                let mut add = |what: &str, dims: &[usize]| {
                    params.add(device, &format!("{p}.{what}_l0{sfx}"), dims, group, init)
                };
                both.push(LstmDir {
                    w_ih: add("weight_ih", &[4 * h, input])?,
                    w_hh: add("weight_hh", &[4 * h, h])?,
                    bias: add("bias_ih", &[4 * h])?,
                });
            }
            layers.push(both);
            input = h * dirs;
        }
        Ok(Lstm {
            config: config.clone(),
            layers,
        })
    }

    /// Features of the last layer's output.
    pub fn output_size(&self) -> usize {
        let h = self.config.hidden.last().copied().unwrap_or(0);
        if self.config.bidirectional {
            2 * h
        } else {
            h
        }
    }

    /// Runs the stack over `x` (`[P, input]`, packed by `seq`); returns the
    /// last layer's output `[P, output_size]`. With `state` (one per layer,
    /// unidirectional only) the recurrences start there and the new final
    /// states come back, to carry into the next batch; otherwise they start
    /// from zeros and the returned list is empty.
    pub fn forward(
        &self,
        g: &mut Graph,
        params: &Params,
        mut x: Var,
        seq: &Arc<PackedSeq>,
        rng: &RngState,
        state: Option<&[LstmState]>,
    ) -> Result<(Var, Vec<LstmState>)> {
        let c = &self.config;
        if state.is_some() && c.bidirectional {
            return Err(Error::invalid(
                "Lstm",
                "carried state is for unidirectional stacks",
            ));
        }
        if let Some(s) = state {
            if s.len() != self.layers.len() {
                return Err(Error::invalid(
                    "Lstm",
                    format!("{} states for {} layers", s.len(), self.layers.len()),
                ));
            }
        }
        let training = g.is_training();
        let mut new_state = Vec::new();
        for (l, dirs) in self.layers.iter().enumerate() {
            let (p, stream) = if l == 0 {
                (c.input_p, Stream::new(StreamFamily::InputDropout, 0))
            } else {
                (
                    c.hidden_p,
                    Stream::indexed(StreamFamily::HiddenDropout, l - 1)?,
                )
            };
            let input_dropout = if training && p > 0.0 {
                Some(DropoutMask::new(p, rng, stream)?)
            } else {
                None
            };
            let mut outs = Vec::with_capacity(dirs.len());
            for (d, dir) in dirs.iter().enumerate() {
                let w_ih = g.param(dir.w_ih, &params.get(dir.w_ih).value)?;
                let w_hh = g.param(dir.w_hh, &params.get(dir.w_hh).value)?;
                let bias = g.param(dir.bias, &params.get(dir.bias).value)?;
                let w_hh = if training && c.weight_p > 0.0 {
                    let s = Stream::indexed(StreamFamily::WeightDrop, 2 * l + d)?;
                    g.dropout(w_hh, &DropoutMask::new(c.weight_p, rng, s)?)?
                } else {
                    w_hh
                };
                let opts = LstmOptions {
                    input_dropout,
                    reverse: d == 1,
                    checkpoint_segments: c.checkpoint_segments,
                    keep_state: state.is_some(),
                };
                let init = state.map(|s| &s[l]);
                let (h, st) = g.lstm(x, LstmWeights { w_ih, w_hh, bias }, seq, &opts, init)?;
                new_state.extend(st);
                outs.push(h);
            }
            x = if outs.len() == 1 {
                outs[0]
            } else {
                g.concat_cols(&outs)?
            };
        }
        Ok((x, new_state))
    }
}
