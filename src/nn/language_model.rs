//! The AWD-LSTM language model of ULMFiT: the classifier's encoder (the
//! same [`Embedding`] and [`Lstm`], the same parameter names, so a trained
//! encoder moves into a [`TextClassifier`](super::TextClassifier) by name)
//! and a decoder tied to the embedding:
//!
//! ```text
//! tokens -> Embedding (embed_p) -> Lstm (input_p, hidden_p, weight_p; state carried)
//!        -> variational dropout (output_p) -> h E^T + decoder.bias -> logits [t * bs, V]
//! ```
//!
//! **Tied weights** (`tie_weights`): the decoder's weight *is* the
//! embedding table `E` (`encoder.embedding.weight`, `[V, emb]`), entered in
//! the step's graph once, so its gradient is the sum of the lookup's and the
//! decoder's (in tape order) and one update moves both uses. So the last
//! LSTM layer has `emb` units. The file holds `E` once; PyTorch users tie
//! `decoder.weight` to it.
//!
//! Parameter groups (fastai's `awd_lstm_lm_split`): layer `l` of the LSTM in
//! group `l`, the embedding and the decoder bias together in the top group
//! `L`. Dropout streams: `embedding_dropout[0]`, the [`Lstm`]'s, and
//! `output_dropout[0]`. The decoder bias starts at zero (fastai's
//! `LinearDecoder`).

use super::embedding::Embedding;
use super::lstm::{Lstm, LstmConfig};
use super::params::{HostTensor, Init, Params};
use super::save::{load_model, save_model};
use crate::autograd::{Graph, LstmState, ParamId, Var};
use crate::data::lm::LmWindow;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::dropout::DropoutMask;
use crate::rng::{RngState, Stream, StreamFamily};
use crate::seq::PackedSeq;
use crate::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The `format` metadata of a saved language model.
const FORMAT: &str = "shoestring-language-model-v1";

/// Sizes and dropouts of a [`LanguageModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Embedding width (and the last layer's hidden units: tied weights).
    pub emb: usize,
    /// Hidden units of each LSTM layer; the last must be `emb`.
    pub hidden: Vec<usize>,
    /// Embedding dropout (whole rows).
    pub embed_p: f32,
    /// Variational dropout on the embeddings.
    pub input_p: f32,
    /// Variational dropout between layers.
    pub hidden_p: f32,
    /// DropConnect on the recurrent weights.
    pub weight_p: f32,
    /// Variational dropout on the last layer's output.
    pub output_p: f32,
}

impl LmConfig {
    /// fastai's language-model dropouts (`awd_lstm_lm_config`): output 0.1,
    /// hidden 0.15, input 0.25, embed 0.02, weight 0.2.
    pub fn fastai(vocab: usize, emb: usize, hidden: Vec<usize>) -> LmConfig {
        LmConfig {
            vocab,
            emb,
            hidden,
            embed_p: 0.02,
            input_p: 0.25,
            hidden_p: 0.15,
            weight_p: 0.2,
            output_p: 0.1,
        }
    }

    /// Every dropout times `m` (fastai's `drop_mult`).
    pub fn scaled_dropouts(mut self, m: f32) -> LmConfig {
        for p in [
            &mut self.embed_p,
            &mut self.input_p,
            &mut self.hidden_p,
            &mut self.weight_p,
            &mut self.output_p,
        ] {
            *p *= m;
        }
        self
    }

    fn validate(&self) -> Result<()> {
        let ps = [
            self.embed_p,
            self.input_p,
            self.hidden_p,
            self.weight_p,
            self.output_p,
        ];
        if self.vocab == 0 || self.emb == 0 || self.hidden.is_empty() {
            return Err(Error::invalid(
                "LmConfig",
                format!("sizes must be positive, with at least one layer: {self:?}"),
            ));
        }
        if self.hidden.last() != Some(&self.emb) {
            return Err(Error::invalid(
                "LmConfig",
                format!(
                    "the decoder is tied to the embedding, so the last layer needs emb = {} units, not {:?}",
                    self.emb, self.hidden
                ),
            ));
        }
        if !ps.iter().all(|p| (0.0..1.0).contains(p)) {
            return Err(Error::invalid(
                "LmConfig",
                format!("dropouts must be in [0, 1): {self:?}"),
            ));
        }
        Ok(())
    }

    /// The encoder's LSTM config.
    pub fn lstm(&self) -> LstmConfig {
        LstmConfig {
            input: self.emb,
            hidden: self.hidden.clone(),
            bidirectional: false,
            input_p: self.input_p,
            hidden_p: self.hidden_p,
            weight_p: self.weight_p,
            checkpoint_segments: 0,
        }
    }
}

/// One window of language-model data on a device.
pub struct LmBatch {
    /// `bs` sequences of `t` steps.
    pub seq: Arc<PackedSeq>,
    /// Input ids, u32 `[t * bs]`, time-major.
    pub tokens: Tensor,
    /// Target ids, u32 `[t * bs]`.
    pub targets: Tensor,
    /// Steps.
    pub t: usize,
    /// Rows.
    pub bs: usize,
}

impl LmBatch {
    /// `w` on `device`.
    pub fn new(device: &Device, w: &LmWindow) -> Result<LmBatch> {
        let n = w.inputs.len();
        Ok(LmBatch {
            seq: Arc::new(PackedSeq::new(device, &vec![w.t; w.bs])?),
            tokens: Tensor::from_u32(device, &[n], &w.inputs)?,
            targets: Tensor::from_u32(device, &[n], &w.targets)?,
            t: w.t,
            bs: w.bs,
        })
    }
}

/// The AWD-LSTM language model.
#[derive(Debug, Clone)]
pub struct LanguageModel {
    /// Sizes and dropouts.
    pub config: LmConfig,
    /// Every parameter, in registration order.
    pub params: Params,
    /// The embedding (also the decoder's weight).
    pub embedding: Embedding,
    /// The encoder's LSTM.
    pub lstm: Lstm,
    /// The decoder's bias, `[V]`.
    pub decoder_bias: ParamId,
}

impl LanguageModel {
    /// A language model on `device`, its parameters drawn from `seed`.
    pub fn new(device: &Device, config: &LmConfig, seed: u64) -> Result<LanguageModel> {
        config.validate()?;
        let top = config.hidden.len();
        let mut params = Params::new();
        let embedding = Embedding::new(
            &mut params,
            device,
            "encoder.embedding",
            (config.vocab, config.emb),
            top,
            seed,
        )?;
        let lstm = Lstm::new(&mut params, device, "encoder.lstm", &config.lstm(), 0, seed)?;
        let decoder_bias = params.add(
            device,
            "decoder.bias",
            &[config.vocab],
            top,
            Init::Constant(0.0),
        )?;
        Ok(LanguageModel {
            config: config.clone(),
            params,
            embedding,
            lstm,
            decoder_bias,
        })
    }

    /// Zero hidden and cell states for `bs` rows, one per layer.
    pub fn zero_state(&self, device: &Device, bs: usize) -> Result<Vec<LstmState>> {
        self.config
            .hidden
            .iter()
            .map(|&h| {
                Ok(LstmState {
                    h: Tensor::zeros(device, &[bs, h], DType::F32)?,
                    c: Tensor::zeros(device, &[bs, h], DType::F32)?,
                })
            })
            .collect()
    }

    /// The logits `[t * bs, V]` of `batch`, starting from `state` (one per
    /// layer), with every dropout mask drawn from `rng`'s step; also the
    /// final states, to carry into the next window.
    pub fn forward(
        &self,
        g: &mut Graph,
        batch: &LmBatch,
        rng: &RngState,
        state: &[LstmState],
    ) -> Result<(Var, Vec<LstmState>)> {
        let c = &self.config;
        let emb_stream = Stream::new(StreamFamily::EmbeddingDropout, 0);
        let x =
            self.embedding
                .forward(g, &self.params, &batch.tokens, c.embed_p, rng, emb_stream)?;
        let (h, new_state) = self
            .lstm
            .forward(g, &self.params, x, &batch.seq, rng, Some(state))?;
        let h = if g.is_training() && c.output_p > 0.0 {
            let s = Stream::new(StreamFamily::OutputDropout, 0);
            g.variational_dropout(
                h,
                (batch.t, batch.bs),
                &DropoutMask::new(c.output_p, rng, s)?,
            )?
        } else {
            h
        };
        // The same Var as the lookup's table: one tensor, two uses.
        let w = g.param(
            self.embedding.weight,
            &self.params.get(self.embedding.weight).value,
        )?;
        let b = g.param(self.decoder_bias, &self.params.get(self.decoder_bias).value)?;
        Ok((g.linear(h, w, Some(b))?, new_state))
    }

    /// The mean next-token cross-entropy of `batch`, and the final states.
    pub fn loss(
        &self,
        g: &mut Graph,
        batch: &LmBatch,
        rng: &RngState,
        state: &[LstmState],
    ) -> Result<(Var, Vec<LstmState>)> {
        let (logits, new_state) = self.forward(g, batch, rng, state)?;
        Ok((g.cross_entropy(logits, &batch.targets)?, new_state))
    }

    /// Every parameter on the host, in order.
    pub fn tensors(&self) -> Result<Vec<HostTensor>> {
        self.params.to_host()
    }

    /// Saves the model (with PyTorch's two LSTM biases, see
    /// [`with_pytorch_lstm_biases`](super::save::with_pytorch_lstm_biases)) and its config, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_model(path, FORMAT, &self.config, self.tensors()?)
    }

    /// Loads a model that [`save`](Self::save) wrote, onto `device`.
    pub fn load(device: &Device, path: &Path) -> Result<LanguageModel> {
        let (config, params) = load_model(path, FORMAT, LmConfig::parameter_count)?;
        let mut model = LanguageModel::new(device, &config, 0)?;
        model.params.load_host(&params)?;
        Ok(model)
    }

    /// The encoder's tensors (`encoder.*`), for a classifier.
    pub fn encoder_tensors(&self) -> Result<Vec<HostTensor>> {
        Ok(self
            .tensors()?
            .into_iter()
            .filter(|t| t.name.starts_with("encoder."))
            .collect())
    }
}

impl LmConfig {
    /// Parameter values of a model of this config, without building it;
    /// `None` on overflow.
    pub fn parameter_count(&self) -> Option<usize> {
        let mut n = self.vocab.checked_mul(self.emb)?.checked_add(self.vocab)?;
        let mut input = self.emb;
        for &h in &self.hidden {
            let h4 = h.checked_mul(4)?;
            let layer = h4
                .checked_mul(input)?
                .checked_add(h4.checked_mul(h)?)?
                .checked_add(h4)?;
            n = n.checked_add(layer)?;
            input = h;
        }
        Some(n)
    }
}

/// A copy of `model` with the vocabulary grown to `vocab` rows (ULMFiT's
/// vocabulary extension, after [`Vocab::extended`](crate::data::vocab::Vocab::extended)):
/// rows `0..old` of the embedding and of the decoder bias keep their bits,
/// and every new row is the mean of the old rows (the embedding's column
/// means; the bias's mean), summed in row order in f64 and rounded to f32
/// once, as fastai's `match_embeds` does with `mean(0)`.
pub fn extend_vocab(model: &LanguageModel, vocab: usize) -> Result<LanguageModel> {
    let old = model.config.vocab;
    if vocab < old {
        return Err(Error::invalid(
            "extend_vocab",
            format!("{vocab} rows: fewer than the model's {old}"),
        ));
    }
    let e = model.config.emb;
    let device = model
        .params
        .get(model.embedding.weight)
        .value
        .device()
        .clone();
    let mut tensors = model.tensors()?;
    for t in tensors.iter_mut() {
        let width = if t.name == "encoder.embedding.weight" {
            e
        } else if t.name == "decoder.bias" {
            1
        } else {
            continue;
        };
        let mean: Vec<f32> = (0..width)
            .map(|j| {
                let s: f64 = (0..old).map(|r| f64::from(t.values[r * width + j])).sum();
                (s / old as f64) as f32
            })
            .collect();
        for _ in old..vocab {
            t.values.extend_from_slice(&mean);
        }
        t.dims[0] = vocab;
    }
    let config = LmConfig {
        vocab,
        ..model.config.clone()
    };
    let mut out = LanguageModel::new(&device, &config, 0)?;
    out.params.load_host(&tensors)?;
    Ok(out)
}
