//! The end-to-end rows, in tokens/s: the LSTM layer's forward + backward,
//! and the default classifier's training step (the `train` command's
//! config, data, model and optimizer) on two kinds of batches:
//!
//! - `sortish`: the epoch's own plan ([`epoch_batches`]), texts of similar
//!   length together, which is what `train` runs;
//! - `random`: a plain shuffle cut into batches, what a PyTorch loop with a
//!   padding collate runs (`bench/torch_reference.py` takes these very
//!   batches from [`export_batches`]).
//!
//! Each row reports real tokens/s and padded positions/s (rows x the
//! longest row, per batch: what a padded LSTM computes). Our LSTM is packed,
//! so it computes the real tokens only, on either kind of batch.

use super::{Bench, Row, Work};
use crate::autograd::Graph;
use crate::data::batcher::{epoch_batches, join_lone_last};
use crate::data::shuffle::permutation;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Linear, Lstm, LstmConfig, Params, TextBatch, TextClassifier};
use crate::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
use crate::optim::Optimizer;
use crate::rng::{RngState, Stream, StreamFamily};
use crate::seq::PackedSeq;
use crate::step::{train_step, StepConfig};
use crate::tensor::Tensor;
use crate::train::{self, Prepared, TrainConfig};
use serde::Serialize;
use std::sync::Arc;

/// (batch, steps, input, hidden) of the LSTM layer rows.
fn lstm_sizes(device: &Device, quick: bool) -> Vec<(usize, usize, usize, usize)> {
    match (device, quick) {
        (Device::Sim(_), _) => vec![(4, 8, 16, 32)],
        (Device::Cpu, true) => vec![(32, 64, 64, 128)],
        (Device::Cpu, false) => vec![(32, 64, 64, 128), (32, 64, 400, 1152)],
        (Device::Cuda(_), true) => vec![(32, 64, 64, 128), (32, 64, 400, 1152)],
        (Device::Cuda(_), false) => vec![
            (32, 64, 64, 128),
            (32, 64, 400, 400),
            (32, 64, 400, 1152),
            (128, 64, 400, 1152),
        ],
    }
}

/// One LSTM layer with a concat-pool and linear head (so that the loss
/// reads every position) on a batch of `B` sequences of `T` random inputs.
struct Layer {
    params: Params,
    lstm: Lstm,
    head: Linear,
    seq: Arc<PackedSeq>,
    x: Tensor,
    labels: Tensor,
}

impl Layer {
    fn new(
        dev: &Device,
        (batch, steps, input, hidden): (usize, usize, usize, usize),
    ) -> Result<Layer> {
        let mut params = Params::new();
        let config = LstmConfig {
            input,
            hidden: vec![hidden],
            bidirectional: false,
            input_p: 0.0,
            hidden_p: 0.0,
            weight_p: 0.0,
            checkpoint_segments: 0,
        };
        let lstm = Lstm::new(&mut params, dev, "lstm", &config, 0, 1)?;
        let head = Linear::new(&mut params, dev, "head", (3 * hidden, 2), 0, 1)?;
        let p = batch * steps;
        let x = uniform_floats(
            PhiloxKey::from_seed(11),
            PhiloxCounter::new(0, 0, 0),
            p * input,
            1.0,
        )?;
        let labels: Vec<u32> = (0..batch as u32).map(|r| r % 2).collect();
        Ok(Layer {
            params,
            lstm,
            head,
            seq: Arc::new(PackedSeq::new(dev, &vec![steps; batch])?),
            x: Tensor::from_f32(dev, &[p, input], &x)?,
            labels: Tensor::from_u32(dev, &[batch], &labels)?,
        })
    }

    /// Forward and backward (the weights' gradients; the input is a
    /// constant, as under an embedding whose gradient is not needed); the loss.
    fn step(&self, dev: &Device) -> Result<f32> {
        let mut g = Graph::new(dev)?;
        let xv = g.constant(self.x.clone())?;
        let (h, _) =
            self.lstm
                .forward(&mut g, &self.params, xv, &self.seq, &RngState::new(3), None)?;
        let z = g.concat_pool(h, &self.seq)?;
        let logits = self.head.forward(&mut g, &self.params, z)?;
        let loss = g.cross_entropy(logits, &self.labels)?;
        g.backward(loss)?;
        Ok(g.read_status()?.loss)
    }
}

/// The LSTM layer's forward + backward at each size, in tokens/s.
pub fn lstm_layer(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    for sizes in lstm_sizes(&dev, b.options.quick) {
        let (batch, steps, input, hidden) = sizes;
        let layer = Layer::new(&dev, sizes)?;
        let loss = layer.step(&dev)?;
        check_loss("lstm layer", loss, 2)?;
        let check = if matches!(dev, Device::Cpu) {
            "loss near ln 2"
        } else {
            let twin = Layer::new(&Device::Cpu, sizes)?.step(&Device::Cpu)?;
            super::same_bits("lstm layer loss", &[loss.to_bits()], &[twin.to_bits()])?;
            "loss bits = cpu twin"
        };
        let s = b.clock.median(|_| layer.step(&dev).map(|_| ()))?;
        let tokens = (batch * steps) as u64;
        b.push(Row::new(
            "lstm",
            "layer fwd+bwd",
            format!("B {batch}, T {steps}, in {input}, H {hidden}"),
            s,
            Work::Tokens {
                real: tokens,
                padded: tokens,
            },
            None,
            check,
        ));
    }
    Ok(())
}

/// An initial loss must be finite and near ln(classes) (within 0.5).
fn check_loss(op: &str, loss: f32, classes: usize) -> Result<()> {
    let want = (classes as f32).ln();
    if loss.is_nan() || (loss - want).abs() > 0.5 {
        return Err(Error::BenchCheck {
            op: op.into(),
            msg: format!("initial loss {loss}, expected near ln {classes} = {want}"),
        });
    }
    Ok(())
}

/// A plain shuffle of `n` texts cut into batches of `batch_size` (a last
/// batch of one joins the one before, as BatchNorm needs two rows).
pub fn random_batches(n: usize, batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
    let order = permutation(seed, Stream::new(StreamFamily::User, 1), 0, n);
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    join_lone_last(&mut batches);
    batches
}

/// Real tokens and padded positions of `batches` of `texts`.
fn token_counts(texts: &[Vec<u32>], batches: &[Vec<usize>]) -> (u64, u64) {
    let mut real = 0u64;
    let mut padded = 0u64;
    for bt in batches {
        let longest = bt.iter().map(|&i| texts[i].len()).max().unwrap_or(0);
        real += bt.iter().map(|&i| texts[i].len() as u64).sum::<u64>();
        padded += (bt.len() * longest) as u64;
    }
    (real, padded)
}

/// The default `train` run's data, and the two plans of epoch 0.
pub struct DefaultRun {
    /// `train`'s default config.
    pub config: TrainConfig,
    /// Its data and vocabulary.
    pub prepared: Prepared,
    /// The epoch's sortish plan.
    pub sortish: Vec<Vec<usize>>,
    /// A plain shuffle, cut into batches.
    pub random: Vec<Vec<usize>>,
}

impl DefaultRun {
    /// Loads the embedded data as `train` does with no arguments.
    pub fn load() -> Result<DefaultRun> {
        let config = TrainConfig::default();
        let prepared = train::prepare(&config)?;
        let lengths: Vec<usize> = prepared.train.iter().map(Vec::len).collect();
        let sortish = epoch_batches(&lengths, config.batch_size, config.seed, 0)?;
        let random = random_batches(lengths.len(), config.batch_size, config.seed);
        Ok(DefaultRun {
            config,
            prepared,
            sortish,
            random,
        })
    }

    /// `batches` packed on `device`.
    fn upload(&self, device: &Device, batches: &[Vec<usize>]) -> Result<Vec<TextBatch>> {
        batches
            .iter()
            .map(|bt| {
                let texts: Vec<Vec<u32>> =
                    bt.iter().map(|&i| self.prepared.train[i].clone()).collect();
                let labels: Vec<u32> = bt.iter().map(|&i| self.prepared.train_labels[i]).collect();
                TextBatch::new(device, &texts, &labels)
            })
            .collect()
    }

    /// A fresh model and optimizer as `train` builds them.
    fn model(&self, device: &Device) -> Result<(TextClassifier, Optimizer)> {
        let model = train::new_classifier(&self.config, device, &self.prepared)?;
        let opt = train::new_optimizer(&self.config, &model.params);
        Ok((model, opt))
    }
}

/// Steps per timed call of the training-step rows.
fn steps_per_call(device: &Device, quick: bool) -> usize {
    match (device, quick) {
        (Device::Sim(_), _) => 2,
        (_, true) => 24,
        (_, false) => 96,
    }
}

/// The default classifier's training step, on sortish and on random batches.
pub fn classifier_step(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    let run = DefaultRun::load()?;
    let step_config = StepConfig {
        precision: run.config.precision,
        clip: run.config.clip,
        tier: run.config.tier,
    };
    let k = steps_per_call(&dev, b.options.quick);
    for (name, plan) in [("sortish", &run.sortish), ("random", &run.random)] {
        let plan = &plan[..k.min(plan.len())];
        let batches = run.upload(&dev, plan)?;
        let (real, padded) = token_counts(&run.prepared.train, plan);
        let (mut model, mut opt) = run.model(&dev)?;
        let mut rng = RngState::new(run.config.seed);
        // The first step's loss: near ln(classes), and on Cuda and Sim the
        // CPU twin's bits.
        let first = train_step(
            &mut model,
            &mut opt,
            None,
            &step_config,
            &batches[0],
            &mut rng,
        )?;
        let classes = run.prepared.dataset.classes.len();
        check_loss("train step", first.report.loss, classes)?;
        let check = if matches!(dev, Device::Cpu) {
            "first loss near ln(classes)".to_string()
        } else {
            let cpu_batch = run.upload(&Device::Cpu, &plan[..1])?;
            let (mut cm, mut co) = run.model(&Device::Cpu)?;
            let mut crng = RngState::new(run.config.seed);
            let twin = train_step(
                &mut cm,
                &mut co,
                None,
                &step_config,
                &cpu_batch[0],
                &mut crng,
            )?;
            super::same_bits(
                "train step loss",
                &[first.report.loss.to_bits()],
                &[twin.report.loss.to_bits()],
            )?;
            "first loss bits = cpu twin".to_string()
        };
        let s = b.clock.median(|_| {
            for batch in &batches {
                train_step(&mut model, &mut opt, None, &step_config, batch, &mut rng)?;
            }
            Ok(())
        })?;
        b.push(Row::new(
            "train",
            format!("classifier step, {name} batches"),
            format!("{} batches of {}", plan.len(), run.config.batch_size),
            s,
            Work::Tokens { real, padded },
            None,
            check,
        ));
    }
    Ok(())
}

/// What `bench/torch_reference.py` reads: the default run's model sizes and
/// hyperparameters, its training texts as token ids, and both plans.
#[derive(Serialize)]
struct Export<'a> {
    format: &'static str,
    vocab: usize,
    classes: usize,
    emb: usize,
    hidden: &'a [usize],
    head_hidden: &'a [usize],
    input_p: f32,
    head_dropouts: &'a [f32],
    lr: f32,
    batch_size: usize,
    texts: &'a [Vec<u32>],
    labels: &'a [u32],
    sortish: &'a [Vec<usize>],
    random: &'a [Vec<usize>],
}

/// Writes the default run's batches for `bench/torch_reference.py` to `path`.
pub fn export_batches(path: &std::path::Path) -> Result<()> {
    let run = DefaultRun::load()?;
    let classes = run.prepared.dataset.classes.len();
    let model = run.config.model.resolve(run.prepared.vocab.len(), classes);
    let export = Export {
        format: "shoestring-bench-batches-v1",
        vocab: model.vocab,
        classes,
        emb: model.emb,
        hidden: &model.hidden,
        head_hidden: &model.head_hidden,
        input_p: model.input_p,
        head_dropouts: &model.head_dropouts,
        lr: run.config.lr,
        batch_size: run.config.batch_size,
        texts: &run.prepared.train,
        labels: &run.prepared.train_labels,
        sortish: &run.sortish,
        random: &run.random,
    };
    let text = serde_json::to_string(&export).map_err(|e| Error::Format {
        what: path.display().to_string(),
        msg: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}
