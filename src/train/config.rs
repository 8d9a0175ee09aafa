//! The training config: every setting that decides a run's bits, with the
//! defaults of the README's main command. It reads from TOML (every field
//! optional, unknown fields an error), is overridden by command-line flags,
//! and is written whole into the run's manifest.

use super::schedule::Schedule;
pub use crate::amp::Tier;
use crate::amp::{LossScaler, Precision};
use crate::data::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use crate::nn::ClassifierConfig;
use crate::run::manifest::json_value;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (decoupled weight decay: AdamW when `weight_decay > 0`).
    #[default]
    Adam,
    /// SGD with momentum.
    Sgd,
}

/// Which model sizes to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Embedding 64, one LSTM layer of 128, dropout 0.2 on the embeddings
    /// and before the head ([`ClassifierConfig::small`]).
    #[default]
    Small,
    /// fastai's AWD-LSTM classifier ([`ClassifierConfig::fastai_awd_lstm`]).
    AwdLstm,
    /// The ULMFiT pipeline's size on two CPU cores: embedding 128, layers of
    /// 256 and 128 (the last as wide as the embedding, for the language
    /// model's tied decoder), fastai's classifier dropouts times 0.5
    /// ([`ClassifierConfig::ulmfit_small`]).
    Ulmfit,
}

/// The model: a preset, and any of its sizes or dropouts replaced.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The starting point.
    pub preset: Preset,
    /// Embedding width.
    pub emb: Option<usize>,
    /// LSTM hidden units per layer (per direction).
    pub hidden: Option<Vec<usize>>,
    /// A bidirectional encoder.
    pub bidirectional: Option<bool>,
    /// Embedding dropout (whole rows).
    pub embed_p: Option<f32>,
    /// Variational dropout on the LSTM input.
    pub input_p: Option<f32>,
    /// Variational dropout between LSTM layers.
    pub hidden_p: Option<f32>,
    /// DropConnect on the recurrent weights (weight-drop).
    pub weight_p: Option<f32>,
    /// Hidden widths of the head.
    pub head_hidden: Option<Vec<usize>>,
    /// Dropout before each head linear layer (one more than `head_hidden`).
    pub head_dropouts: Option<Vec<f32>>,
    /// Gradient checkpointing of the LSTM: segments (0: off).
    pub checkpoint_segments: Option<usize>,
}

impl ModelConfig {
    /// The classifier for `vocab` tokens and `classes` classes.
    pub fn resolve(&self, vocab: usize, classes: usize) -> ClassifierConfig {
        let mut c = match self.preset {
            Preset::Small => ClassifierConfig::small(vocab, classes),
            Preset::AwdLstm => ClassifierConfig::fastai_awd_lstm(vocab, classes),
            Preset::Ulmfit => ClassifierConfig::ulmfit_small(vocab, classes),
        };
        if let Some(v) = self.emb {
            c.emb = v;
        }
        if let Some(v) = &self.hidden {
            c.hidden = v.clone();
        }
        if let Some(v) = self.bidirectional {
            c.bidirectional = v;
        }
        if let Some(v) = self.embed_p {
            c.embed_p = v;
        }
        if let Some(v) = self.input_p {
            c.input_p = v;
        }
        if let Some(v) = self.hidden_p {
            c.hidden_p = v;
        }
        if let Some(v) = self.weight_p {
            c.weight_p = v;
        }
        if let Some(v) = &self.head_hidden {
            c.head_hidden = v.clone();
            if self.head_dropouts.is_none() {
                // Keep the preset's first dropout, then none between.
                let first = c.head_dropouts.first().copied().unwrap_or(0.0);
                c.head_dropouts = std::iter::once(first)
                    .chain(std::iter::repeat_n(0.0, v.len()))
                    .collect();
            }
        }
        if let Some(v) = &self.head_dropouts {
            c.head_dropouts = v.clone();
        }
        if let Some(v) = self.checkpoint_segments {
            c.checkpoint_segments = v;
        }
        c
    }
}

/// Everything that decides a training run's bits (and a few settings that
/// only decide what is logged and kept: `checkpoint_every`,
/// `fingerprint_every`, `keep_checkpoints`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// `fortunes8` (embedded), a CSV file, or an aclImdb-style folder.
    pub data: String,
    /// Validation share when the data has no `is_valid` column.
    pub valid_fraction: f64,
    /// Tokens per text at most (`xxbos` included).
    pub max_len: usize,
    /// Training-token count a word needs to enter the vocabulary.
    pub min_freq: usize,
    /// The model.
    pub model: ModelConfig,
    /// Passes over the training texts.
    pub epochs: u32,
    /// Texts per batch.
    pub batch_size: usize,
    /// The update rule.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// Weight decay (decoupled for Adam).
    pub weight_decay: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// Clip the gradient norm to this.
    pub clip: Option<f32>,
    /// The seed of every random draw: initialisation, shuffling, dropout.
    pub seed: u64,
    /// `f32` or `mixed` (f16 GEMMs, loss scaling).
    pub precision: Precision,
    /// `exact` or `fast`.
    pub tier: Tier,
    /// Mixed precision: the initial loss scale.
    pub loss_scale: f32,
    /// Mixed precision: good steps before the scale doubles.
    pub scale_growth_interval: u32,
    /// End training after this many steps (a complete, short run).
    pub max_steps: Option<u64>,
    /// Checkpoint every this many steps (and at each epoch's end; 0: only there).
    pub checkpoint_every: u64,
    /// Log parameter and optimizer fingerprints every this many steps (0: only at step 0).
    pub fingerprint_every: u64,
    /// Checkpoints kept (the newest).
    pub keep_checkpoints: usize,
    /// `words` (the default) or `fastai` (its special-token rules).
    pub tokenizer: Tokenizer,
    /// Keep at most this many tokens in the vocabulary (specials included).
    pub max_vocab: Option<usize>,
    /// How the learning rate moves: `constant`, `one-cycle` or `stlr`.
    pub schedule: Schedule,
    /// A fine-tuned language-model run whose encoder the classifier starts
    /// from (its vocabulary and sizes too).
    pub encoder: Option<String>,
    /// With `encoder`: epochs of each gradual-unfreezing stage (the head
    /// alone, then one more layer group per stage, the last stage all).
    pub unfreeze: Option<Vec<u32>>,
    /// Discriminative learning rates: each layer group below the top trains
    /// at the rate above it divided by this (with `encoder`).
    pub discriminative: f32,
    /// Language models: the BPTT window.
    pub bptt: usize,
    /// Language models: every dropout of fastai's LM preset times this
    /// (fastai's `drop_mult`; a small model needs less regularising).
    pub drop_mult: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let scaler = LossScaler::default();
        TrainConfig {
            data: "fortunes8".into(),
            valid_fraction: 0.2,
            max_len: 72,
            min_freq: 2,
            model: ModelConfig::default(),
            epochs: 8,
            batch_size: 32,
            optimizer: OptimizerKind::Adam,
            lr: 3e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            clip: None,
            seed: 42,
            precision: Precision::F32,
            tier: Tier::Exact,
            loss_scale: scaler.scale,
            scale_growth_interval: scaler.growth_interval,
            max_steps: None,
            checkpoint_every: 200,
            fingerprint_every: 50,
            keep_checkpoints: 3,
            tokenizer: Tokenizer::Words,
            max_vocab: None,
            schedule: Schedule::Constant,
            encoder: None,
            unfreeze: None,
            discriminative: 2.6,
            bptt: crate::data::lm::DEFAULT_BPTT,
            drop_mult: 1.0,
        }
    }
}

/// Settings that only decide what is logged and kept, not the bits.
const NOT_IDENTITY: [&str; 5] = [
    "data",
    "encoder",
    "checkpoint_every",
    "fingerprint_every",
    "keep_checkpoints",
];

impl TrainConfig {
    /// Reads a TOML file; a field that does not exist or has the wrong type
    /// is an error naming the file and its line.
    pub fn from_toml_file(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                1 + text.as_bytes()[..s.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
            });
            Error::Data {
                file: path.display().to_string(),
                line: line as u64,
                msg: e.message().to_string(),
            }
        })
    }

    /// Checks ranges a run would otherwise fail on later.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::invalid("config", msg));
        if self.epochs == 0 {
            return fail("epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return fail(format!(
                "batch_size {}: at least 2 (BatchNorm needs two rows)",
                self.batch_size
            ));
        }
        if self.max_len == 0 {
            return fail("max_len must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return fail(format!("lr {}: must be positive", self.lr));
        }
        if !(0.0..1.0).contains(&self.valid_fraction) {
            return fail(format!(
                "valid_fraction {}: must be in [0, 1)",
                self.valid_fraction
            ));
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return fail(format!("clip {c}: must be positive"));
            }
        }
        if self.tier == Tier::Fast && self.precision != Precision::Mixed {
            return fail(
                "tier fast runs f16 GEMMs on tensor cores: it needs precision mixed".into(),
            );
        }
        if self.batch_size > 1 << 20 {
            return fail(format!("batch_size {}: at most 2^20", self.batch_size));
        }
        for (name, v) in [
            ("weight_decay", self.weight_decay),
            ("momentum", self.momentum),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return fail(format!("{name} {v}: must be finite and not negative"));
            }
        }
        if self.keep_checkpoints == 0 {
            return fail("keep_checkpoints must be at least 1 (resume needs one)".into());
        }
        if self.max_steps == Some(0) {
            return fail("max_steps must be at least 1".into());
        }
        if self.max_vocab.is_some_and(|v| v < 4) {
            return fail("max_vocab must be at least 4 (the specials and one token)".into());
        }
        if !(self.drop_mult.is_finite() && self.drop_mult >= 0.0 && self.drop_mult * 0.25 < 1.0) {
            return fail(format!(
                "drop_mult {}: must be at least 0 and keep every dropout below 1",
                self.drop_mult
            ));
        }
        if self.bptt == 0 {
            return fail("bptt must be at least 1".into());
        }
        if !(self.discriminative.is_finite() && self.discriminative >= 1.0) {
            return fail(format!(
                "discriminative {}: must be at least 1 (1: one rate for every group)",
                self.discriminative
            ));
        }
        if let Some(stages) = &self.unfreeze {
            if self.encoder.is_none() {
                return fail("unfreeze stages need a pretrained encoder (--encoder)".into());
            }
            let sum: u32 = stages.iter().sum();
            if sum != self.epochs {
                return fail(format!(
                    "unfreeze stages {stages:?} take {sum} epochs, epochs is {}",
                    self.epochs
                ));
            }
        }
        Ok(())
    }

    /// The hash of everything that decides the run's bits: this config
    /// (less the logging settings and the data's path) and the data's and
    /// vocabulary's sha256.
    pub fn identity(&self, data_sha256: &str, vocab_sha256: &str) -> String {
        let mut v = json_value(self).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut v {
            for k in NOT_IDENTITY {
                map.remove(k);
            }
        }
        let mut h = Sha256::new();
        h.update(v.to_string());
        h.update([0]);
        h.update(data_sha256);
        h.update([0]);
        h.update(vocab_sha256);
        crate::digest::hex(&h.finalize()[..16])
    }

    /// [`differences`](Self::differences) in the fields that decide the
    /// run's bits (not the logging settings or the data's path).
    pub fn identity_differences(&self, other: &TrainConfig) -> Vec<String> {
        self.differences(other)
            .into_iter()
            .filter(|d| {
                !NOT_IDENTITY
                    .iter()
                    .any(|k| d.starts_with(&format!("{k}: ")))
            })
            .collect()
    }

    /// The fields of this config that differ from `other` (dotted names,
    /// both values), for a refused resume.
    pub fn differences(&self, other: &TrainConfig) -> Vec<String> {
        let (a, b) = (
            json_value(self).unwrap_or_default(),
            json_value(other).unwrap_or_default(),
        );
        let mut out = Vec::new();
        diff_values("", &a, &b, &mut out);
        out
    }
}

fn diff_values(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::Object;
    match (a, b) {
        (Object(x), Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = serde_json::Value::Null;
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                diff_values(
                    &key,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (x, y) if x != y => out.push(format!("{prefix}: {x} vs {y}")),
        _ => {}
    }
}
