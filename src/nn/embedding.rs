//! `Embedding`: a `[V, E]` table, rows gathered by token id, with embedding
//! dropout (whole rows of the table, AWD-LSTM's `embed_p`) while training.
//! Initialised uniform in `[-0.1, 0.1)` (fastai's AWD-LSTM).

use super::params::{Init, Params};
use crate::autograd::{Graph, ParamId, Var};
use crate::device::Device;
use crate::error::Result;
use crate::ops::dropout::DropoutMask;
use crate::rng::{RngState, Stream};
use crate::tensor::Tensor;

/// An embedding table.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// The `[vocab, dim]` table.
    pub weight: ParamId,
    /// `V`.
    pub vocab: usize,
    /// `E`.
    pub dim: usize,
}

impl Embedding {
    /// A `[vocab, dim]` table named `{name}.weight` in `group`.
    pub fn new(
        params: &mut Params,
        device: &Device,
        name: &str,
        (vocab, dim): (usize, usize),
        group: usize,
        seed: u64,
    ) -> Result<Embedding> {
        let weight = params.add(
            device,
            &format!("{name}.weight"),
            &[vocab, dim],
            group,
            Init::Uniform { seed, bound: 0.1 },
        )?;
        Ok(Embedding { weight, vocab, dim })
    }

    /// The rows of `ids` (u32 `[n]`): `[n, dim]`. While training with
    /// `embed_p > 0`, whole rows of the table are dropped first, the mask
    /// drawn from `stream` at `rng`'s step.
    pub fn forward(
        &self,
        g: &mut Graph,
        params: &Params,
        ids: &Tensor,
        embed_p: f32,
        rng: &RngState,
        stream: Stream,
    ) -> Result<Var> {
        let w = g.param(self.weight, &params.get(self.weight).value)?;
        let mask = if g.is_training() && embed_p > 0.0 {
            Some(DropoutMask::new(embed_p, rng, stream)?)
        } else {
            None
        };
        g.embedding(w, ids, mask.as_ref())
    }
}
