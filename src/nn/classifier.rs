//! The text classifier: an AWD-LSTM encoder and a head like fastai's
//! `PoolingLinearClassifier`:
//!
//! ```text
//! tokens -> Embedding (embed_p) -> Lstm (input_p, hidden_p, weight_p)
//!        -> masked concat pool [last | max | mean]
//!        -> [BatchNorm1d -> Dropout -> Linear -> ReLU] * len(head_hidden)
//!        -> BatchNorm1d -> Dropout -> Linear -> logits
//! ```
//!
//! Parameter groups (for discriminative learning rates and gradual
//! unfreezing, fastai's `awd_lstm_clas_split`): 0 the embedding, `1 ..= L`
//! the LSTM layers, `L + 1` the head. Dropout streams: `embedding_dropout[0]`,
//! the [`Lstm`]'s, and `classifier_dropout[k]` for head block `k`.

use super::batchnorm::BatchNorm1d;
use super::embedding::Embedding;
use super::linear::Linear;
use super::lstm::{Lstm, LstmConfig};
use super::params::{HostTensor, Params};
use super::save::{load_model, save_model};
use crate::autograd::{Graph, Var};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::dropout::DropoutMask;
use crate::rng::{RngState, Stream, StreamFamily};
use crate::seq::PackedSeq;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The `format` metadata of a saved classifier.
const FORMAT: &str = "shoestring-text-classifier-v1";

/// Sizes and dropouts of a [`TextClassifier`], serialisable into a run's
/// manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Vocabulary size (rows of the embedding).
    pub vocab: usize,
    /// Classes (the logits' width).
    pub classes: usize,
    /// Embedding width.
    pub emb: usize,
    /// Hidden units of each LSTM layer (per direction).
    pub hidden: Vec<usize>,
    /// A bidirectional encoder.
    pub bidirectional: bool,
    /// Embedding dropout (whole rows of the table).
    pub embed_p: f32,
    /// Variational dropout on the embeddings.
    pub input_p: f32,
    /// Variational dropout between LSTM layers.
    pub hidden_p: f32,
    /// DropConnect on the hidden-to-hidden weights.
    pub weight_p: f32,
    /// Hidden widths of the head (between the pooled features and the logits).
    pub head_hidden: Vec<usize>,
    /// Dropout before each of the head's linear layers (`head_hidden.len() + 1`).
    pub head_dropouts: Vec<f32>,
    /// Gradient checkpointing of the LSTM (0: off; see [`LstmConfig`]).
    pub checkpoint_segments: usize,
}

impl ClassifierConfig {
    /// fastai's AWD-LSTM classifier (`awd_lstm_clas_config`): embeddings of
    /// 400, three layers of 1152, 1152 and 400, input_p 0.4, hidden_p 0.3,
    /// weight_p 0.5, embed_p 0.05, output_p 0.4; head `[1200, 50, classes]`
    /// with dropouts `[0.4, 0.1]`.
    pub fn fastai_awd_lstm(vocab: usize, classes: usize) -> Self {
        ClassifierConfig {
            vocab,
            classes,
            emb: 400,
            hidden: vec![1152, 1152, 400],
            bidirectional: false,
            embed_p: 0.05,
            input_p: 0.4,
            hidden_p: 0.3,
            weight_p: 0.5,
            head_hidden: vec![50],
            head_dropouts: vec![0.4, 0.1],
            checkpoint_segments: 0,
        }
    }

    /// The small default that trains on two CPU cores: embeddings of 64, one
    /// layer of 128, dropout 0.2 on the embeddings (variational) and before
    /// the head, head `[384, 50, classes]`.
    pub fn small(vocab: usize, classes: usize) -> Self {
        ClassifierConfig {
            vocab,
            classes,
            emb: 64,
            hidden: vec![128],
            bidirectional: false,
            embed_p: 0.0,
            input_p: 0.2,
            hidden_p: 0.0,
            weight_p: 0.0,
            head_hidden: vec![50],
            head_dropouts: vec![0.2, 0.0],
            checkpoint_segments: 0,
        }
    }

    /// The ULMFiT pipeline's classifier on two CPU cores: embeddings of 128,
    /// layers of 256 and 128 (the language model's tied decoder needs the
    /// last as wide as the embedding), fastai's classifier dropouts times
    /// 0.5 (its `drop_mult` for text classifiers): embed 0.025, input 0.2,
    /// hidden 0.15, weight 0.25; head `[384, 50, classes]` with dropouts
    /// `[0.2, 0.05]`.
    pub fn ulmfit_small(vocab: usize, classes: usize) -> Self {
        ClassifierConfig {
            vocab,
            classes,
            emb: 128,
            hidden: vec![256, 128],
            bidirectional: false,
            embed_p: 0.025,
            input_p: 0.2,
            hidden_p: 0.15,
            weight_p: 0.25,
            head_hidden: vec![50],
            head_dropouts: vec![0.2, 0.05],
            checkpoint_segments: 0,
        }
    }

    /// How many parameter values (not buffers) a classifier of this config
    /// has, without building it; `None` if the count overflows `usize`.
    pub fn parameter_count(&self) -> Option<usize> {
        let dirs = if self.bidirectional { 2 } else { 1 };
        let mut n = self.vocab.checked_mul(self.emb)?;
        let mut input = self.emb;
        for &h in &self.hidden {
            let h4 = h.checked_mul(4)?;
            // w_ih [4h, input], w_hh [4h, h], bias [4h], per direction.
            let per_dir = h4
                .checked_mul(input)?
                .checked_add(h4.checked_mul(h)?)?
                .checked_add(h4)?;
            n = n.checked_add(per_dir.checked_mul(dirs)?)?;
            input = h.checked_mul(dirs)?;
        }
        let mut widths = vec![input.checked_mul(3)?];
        widths.extend(&self.head_hidden);
        widths.push(self.classes);
        for pair in widths.windows(2) {
            // BatchNorm gamma and beta [in]; Linear weight [out, in], bias [out].
            let block = pair[0]
                .checked_mul(2)?
                .checked_add(pair[0].checked_mul(pair[1])?)?
                .checked_add(pair[1])?;
            n = n.checked_add(block)?;
        }
        Some(n)
    }

    fn validate(&self) -> Result<()> {
        let ps = [self.embed_p, self.input_p, self.hidden_p, self.weight_p];
        let ok = self.vocab > 0
            && self.classes > 0
            && self.emb > 0
            && self.head_dropouts.len() == self.head_hidden.len() + 1
            && self.head_dropouts.len() <= 256
            && ps
                .iter()
                .chain(&self.head_dropouts)
                .all(|p| (0.0..1.0).contains(p));
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "ClassifierConfig",
                format!(
                    "sizes must be positive, dropouts in [0, 1), and head_dropouts one longer \
                     than head_hidden (at most 256 head blocks): {self:?}"
                ),
            ))
        }
    }
}

/// A batch of token sequences and labels, packed for the encoder: sorted
/// longest first (ties keep their order), positions time-major without
/// padding ([`PackedSeq`]).
pub struct TextBatch {
    /// The layout.
    pub seq: Arc<PackedSeq>,
    /// Token ids in packed order, u32 `[P]`.
    pub tokens: Tensor,
    /// Labels in the sorted order, u32 `[B]`.
    pub labels: Tensor,
    /// `order[i]` is the input index of sorted row `i`.
    pub order: Vec<usize>,
}

/// A batch sorted and packed on the host, not yet on a device: the part of
/// [`TextBatch::new`] that batch-building worker threads can do.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Sequence lengths, longest first.
    pub lengths: Vec<usize>,
    /// Token ids in packed (time-major) order.
    pub tokens: Vec<u32>,
    /// Labels in the sorted order.
    pub labels: Vec<u32>,
    /// `order[i]` is the input index of sorted row `i`.
    pub order: Vec<usize>,
}

impl HostBatch {
    /// Sorts `texts` longest first (ties keep their order) and packs them
    /// time-major: step `t` holds the rows longer than `t`.
    pub fn pack(texts: &[Vec<u32>], labels: &[u32]) -> Result<HostBatch> {
        if texts.len() != labels.len() {
            return Err(Error::invalid(
                "TextBatch",
                format!("{} texts but {} labels", texts.len(), labels.len()),
            ));
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by(|&a, &b| texts[b].len().cmp(&texts[a].len()));
        let lengths: Vec<usize> = order.iter().map(|&i| texts[i].len()).collect();
        let mut tokens = Vec::with_capacity(lengths.iter().sum());
        for (t, rows) in crate::seq::batch_sizes(&lengths).into_iter().enumerate() {
            tokens.extend(order[..rows].iter().map(|&i| texts[i][t]));
        }
        Ok(HostBatch {
            lengths,
            tokens,
            labels: order.iter().map(|&i| labels[i]).collect(),
            order,
        })
    }
}

impl TextBatch {
    /// Packs `texts` (token ids, each at least one) and their `labels` on
    /// `device`.
    pub fn new(device: &Device, texts: &[Vec<u32>], labels: &[u32]) -> Result<TextBatch> {
        Self::from_host(device, HostBatch::pack(texts, labels)?)
    }

    /// A packed host batch moved to `device` (the layout is validated here:
    /// every text at least one token).
    pub fn from_host(device: &Device, host: HostBatch) -> Result<TextBatch> {
        let seq = PackedSeq::new(device, &host.lengths)?;
        debug_assert_eq!(seq.total(), host.tokens.len());
        Ok(TextBatch {
            tokens: Tensor::from_u32(device, &[host.tokens.len()], &host.tokens)?,
            labels: Tensor::from_u32(device, &[host.labels.len()], &host.labels)?,
            seq: Arc::new(seq),
            order: host.order,
        })
    }
}

/// One block of the head: BatchNorm1d, dropout, Linear (ReLU after all but
/// the last block).
#[derive(Debug, Clone)]
pub struct HeadBlock {
    /// Normalises the block's input.
    pub bn: BatchNorm1d,
    /// Dropout before the linear layer.
    pub p: f32,
    /// The linear layer.
    pub linear: Linear,
}

/// The AWD-LSTM text classifier.
#[derive(Debug, Clone)]
pub struct TextClassifier {
    /// Sizes and dropouts.
    pub config: ClassifierConfig,
    /// Every parameter, in registration order.
    pub params: Params,
    /// The token embedding.
    pub embedding: Embedding,
    /// The encoder.
    pub lstm: Lstm,
    /// The head blocks, the last one producing the logits.
    pub head: Vec<HeadBlock>,
}

impl TextClassifier {
    /// A classifier on `device`, its parameters drawn from `seed`
    /// ([`Params`]: the values depend on the seed and the config alone).
    pub fn new(device: &Device, config: &ClassifierConfig, seed: u64) -> Result<TextClassifier> {
        config.validate()?;
        let mut params = Params::new();
        let embedding = Embedding::new(
            &mut params,
            device,
            "encoder.embedding",
            (config.vocab, config.emb),
            0,
            seed,
        )?;
        let lstm_config = LstmConfig {
            input: config.emb,
            hidden: config.hidden.clone(),
            bidirectional: config.bidirectional,
            input_p: config.input_p,
            hidden_p: config.hidden_p,
            weight_p: config.weight_p,
            checkpoint_segments: config.checkpoint_segments,
        };
        let lstm = Lstm::new(&mut params, device, "encoder.lstm", &lstm_config, 1, seed)?;
        let head_group = 1 + config.hidden.len();
        let mut widths = vec![3 * lstm.output_size()];
        widths.extend(&config.head_hidden);
        widths.push(config.classes);
        let mut head = Vec::with_capacity(widths.len() - 1);
        for (k, pair) in widths.windows(2).enumerate() {
            let name = format!("head.{k}");
            head.push(HeadBlock {
                bn: BatchNorm1d::new(
                    &mut params,
                    device,
                    &format!("{name}.bn"),
                    pair[0],
                    head_group,
                )?,
                p: config.head_dropouts[k],
                linear: Linear::new(
                    &mut params,
                    device,
                    &format!("{name}.linear"),
                    (pair[0], pair[1]),
                    head_group,
                    seed,
                )?,
            });
        }
        Ok(TextClassifier {
            config: config.clone(),
            params,
            embedding,
            lstm,
            head,
        })
    }

    /// The logits `[B, classes]` of `batch` (in its sorted order), drawing
    /// every dropout mask from `rng`'s step.
    pub fn forward(&mut self, g: &mut Graph, batch: &TextBatch, rng: &RngState) -> Result<Var> {
        let c = &self.config;
        let emb_stream = Stream::new(StreamFamily::EmbeddingDropout, 0);
        let x =
            self.embedding
                .forward(g, &self.params, &batch.tokens, c.embed_p, rng, emb_stream)?;
        let (h, _) = self
            .lstm
            .forward(g, &self.params, x, &batch.seq, rng, None)?;
        let mut z = g.concat_pool(h, &batch.seq)?;
        let last = self.head.len() - 1;
        for (k, block) in self.head.iter_mut().enumerate() {
            z = block.bn.forward(g, &self.params, z)?;
            if block.p > 0.0 && g.is_training() {
                let s = Stream::indexed(StreamFamily::ClassifierDropout, k)?;
                z = g.dropout(z, &DropoutMask::new(block.p, rng, s)?)?;
            }
            z = block.linear.forward(g, &self.params, z)?;
            if k < last {
                z = g.relu(z)?;
            }
        }
        Ok(z)
    }

    /// Installs the running statistics of the last training forward (the
    /// head's BatchNorms; see [`BatchNorm1d`]): call it when the step's
    /// update is applied, as [`train_step`](crate::step::train_step) does.
    pub fn commit_running_stats(&mut self) {
        self.head.iter_mut().for_each(|b| b.bn.commit());
    }

    /// Drops the running statistics of the last training forward (a step
    /// skipped on overflow, or failed).
    pub fn discard_running_stats(&mut self) {
        self.head.iter_mut().for_each(|b| b.bn.discard());
    }

    /// Every tensor that defines the model: the parameters in order, then
    /// each head BatchNorm's running statistics (`head.k.bn.running_mean`,
    /// `running_var`).
    pub fn tensors(&self) -> Result<Vec<HostTensor>> {
        let mut all = self.params.to_host()?;
        for (k, block) in self.head.iter().enumerate() {
            for (name, t) in [
                ("running_mean", &block.bn.running_mean),
                ("running_var", &block.bn.running_var),
            ] {
                all.push(HostTensor {
                    name: format!("head.{k}.bn.{name}"),
                    dims: t.dims().to_vec(),
                    values: t.to_vec_f32()?,
                });
            }
        }
        Ok(all)
    }

    /// Saves the model (every tensor of [`tensors`](Self::tensors) and the
    /// config, as JSON metadata) to a safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_model(path, FORMAT, &self.config, self.tensors()?)
    }

    /// Loads a model that [`save`](Self::save) wrote, onto `device`.
    pub fn load(device: &Device, path: &Path) -> Result<TextClassifier> {
        let (config, tensors) = load_model(path, FORMAT, ClassifierConfig::parameter_count)?;
        let bad = |msg: String| Error::Format {
            what: path.display().to_string(),
            msg,
        };
        let (stats, params): (Vec<HostTensor>, Vec<HostTensor>) = tensors
            .into_iter()
            .partition(|t| t.name.contains(".bn.running_"));
        let mut model = TextClassifier::new(device, &config, 0)?;
        model.params.load_host(&params)?;
        for (k, block) in model.head.iter_mut().enumerate() {
            for (name, t) in [
                ("running_mean", &mut block.bn.running_mean),
                ("running_var", &mut block.bn.running_var),
            ] {
                let full = format!("head.{k}.bn.{name}");
                let h = stats
                    .iter()
                    .find(|s| s.name == full)
                    .ok_or_else(|| bad(format!("no tensor `{full}`")))?;
                t.check_dims("load", "running statistics", &h.dims)?;
                *t = Tensor::from_f32(device, &h.dims, &h.values)?;
            }
        }
        Ok(model)
    }

    /// Replaces the encoder (`encoder.*`: the embedding and every LSTM
    /// layer) with a pretrained one's tensors, which must be exactly the
    /// encoder's parameters, by name and dims (a language model of the
    /// same vocabulary and sizes: [`LanguageModel::encoder_tensors`](super::LanguageModel::encoder_tensors)).
    pub fn load_encoder(&mut self, encoder: &[HostTensor]) -> Result<()> {
        let want = self
            .params
            .iter()
            .filter(|(_, p)| p.name.starts_with("encoder."))
            .count();
        if encoder.len() != want || encoder.iter().any(|t| !t.name.starts_with("encoder.")) {
            let names: Vec<&str> = encoder.iter().map(|t| t.name.as_str()).collect();
            return Err(Error::invalid(
                "load_encoder",
                format!("the classifier's encoder has {want} tensors; given {names:?}"),
            ));
        }
        self.params.load_some(encoder).map(drop)
    }

    /// The mean cross-entropy of `batch` (its forward, then the loss).
    pub fn loss(&mut self, g: &mut Graph, batch: &TextBatch, rng: &RngState) -> Result<Var> {
        let logits = self.forward(g, batch, rng)?;
        g.cross_entropy(logits, &batch.labels)
    }
}
