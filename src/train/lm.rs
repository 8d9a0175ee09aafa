//! The language-model stages of ULMFiT behind `shoestring lm pretrain` and
//! `shoestring lm finetune`: the classifier trainer's run directory,
//! checkpoints, log and resume, over [`LanguageModel`] steps on BPTT
//! windows ([`crate::data::lm`]).
//!
//! - **pretrain**: a language model drawn from the seed, on a corpus
//!   ([`load_lm_data`]: the embedded `fortunes-lm`, a folder of `.txt`
//!   files, a CSV's `text` column), its vocabulary built from the corpus's
//!   training texts.
//! - **finetune** ([`LmStage::Finetune`]): the pretrained model on the
//!   target dataset's *training* texts only (its validation texts are never
//!   read), its vocabulary extended with the target's new tokens
//!   ([`Vocab::extended`]) and each new row set to the mean of the old
//!   ones ([`extend_vocab`]). The manifest names the parent model's sha256.
//!
//! Both hold out `valid_fraction` of their texts (seeded,
//! [`hold_out`]) to measure perplexity after every epoch, with the hidden
//! state carried across fixed `bptt` windows and no dropout.
//!
//! Resuming is exact: the carried hidden state is part of the checkpoint
//! (as f32 bits in `state.json`), with the window cursor, the RNG step,
//! the optimizer and the loss accumulators.

use super::{
    apply_plan, build_vocab, create_run_dir, new_manifest, open_for_resume, plot_title,
    resume_state, step_record, Outcome, ParentRun, Progress, RunLock, RunOptions, State, StepEvent,
    TrainConfig, VocabFile,
};
use crate::amp::Precision;
use crate::autograd::{Graph, LstmState};
use crate::data::lm::{epoch_stream, hold_out, windows, LmRows};
use crate::data::lm_corpus::load_lm_data;
use crate::data::vocab::Vocab;
use crate::data::{self, DataSource};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::language_model::extend_vocab;
use crate::nn::{LanguageModel, LmBatch, LmConfig};
use crate::rng::RngState;
use crate::run::manifest::{DatasetInfo, ParentInfo};
use crate::run::{EpochMetrics, RunDir, StepLog};
use crate::step::{finish_step, StepConfig};
use crate::tensor::Tensor;
use std::time::Instant;

use super::schedule::Plan;

/// Which language-model stage a run is.
#[derive(Debug, Clone, PartialEq)]
pub enum LmStage {
    /// From a model drawn from the seed, on `config.data` (an LM corpus).
    Pretrain,
    /// From the finished language-model run `from`, on the training texts
    /// of `config.data` (a classification dataset).
    Finetune {
        /// The parent run directory.
        from: String,
    },
}

/// A stage's texts as ids, its vocabulary, and its starting model.
pub struct LmPrepared {
    /// The corpus's name.
    pub name: String,
    /// Its sha256 (with the parent model's, for a fine-tune).
    pub sha256: String,
    /// The vocabulary.
    pub vocab: Vocab,
    /// Training texts as ids (`xxbos` first).
    pub train: Vec<Vec<u32>>,
    /// Held-out texts as ids.
    pub valid: Vec<Vec<u32>>,
    /// The model to start from (fine-tune), on the host.
    pub start: Option<LanguageModel>,
    /// The parent run (fine-tune).
    pub parent: Option<ParentInfo>,
}

/// Loads a stage's texts, builds (or extends) the vocabulary, and encodes
/// every text whole.
pub fn prepare(config: &TrainConfig, stage: &LmStage) -> Result<LmPrepared> {
    let (name, data_sha, texts, parent) = match stage {
        LmStage::Pretrain => {
            let c = load_lm_data(&config.data)?;
            (c.name, c.sha256, c.texts, None)
        }
        LmStage::Finetune { from } => {
            let source = DataSource::parse(&config.data)?;
            let d = data::load(&source, config.valid_fraction, config.seed)?;
            // The target's training texts only: its validation texts are
            // the classifier's, never seen before it is measured on them.
            let texts = d.train.into_iter().map(|e| e.text).collect();
            (
                d.name,
                d.sha256,
                texts,
                Some(ParentRun::open(from, &Device::Cpu)?),
            )
        }
    };
    let (train_idx, valid_idx) = hold_out(texts.len(), config.valid_fraction, config.seed);
    let train_texts = train_idx.iter().map(|&i| texts[i].as_str());
    let (vocab, start, info, sha256) = match parent {
        None => (build_vocab(config, train_texts)?, None, None, data_sha),
        Some(p) => {
            if p.vocab.tokenizer() != config.tokenizer {
                return Err(Error::invalid(
                    "lm finetune",
                    format!(
                        "{} was tokenized with {}, this run with {}",
                        p.info.run,
                        p.vocab.tokenizer().name(),
                        config.tokenizer.name()
                    ),
                ));
            }
            let target = build_vocab(config, train_texts)?;
            let vocab = p.vocab.extended(&target)?;
            let model = extend_vocab(&p.model, vocab.len())?;
            let sha = format!("{data_sha}+{}", p.info.model_sha256);
            (vocab, Some(model), Some(p.info), sha)
        }
    };
    let encode = |idx: &[usize]| -> Vec<Vec<u32>> {
        idx.iter()
            .map(|&i| vocab.encode(&texts[i], usize::MAX))
            .collect()
    };
    Ok(LmPrepared {
        name,
        sha256,
        train: encode(&train_idx),
        valid: encode(&valid_idx),
        vocab,
        start,
        parent: info,
    })
}

type LmState = State<LanguageModel>;

/// The model of a new stage: the parent's, extended, or drawn from the seed.
fn new_model(
    config: &TrainConfig,
    device: &Device,
    prepared: &LmPrepared,
) -> Result<LanguageModel> {
    match &prepared.start {
        Some(m) => {
            // The parent's sizes, with this stage's dropouts.
            let c = m.config.clone();
            let lm = LmConfig::fastai(c.vocab, c.emb, c.hidden).scaled_dropouts(config.drop_mult);
            let mut model = LanguageModel::new(device, &lm, config.seed)?;
            model.params.load_host(&m.tensors()?)?;
            Ok(model)
        }
        None => {
            let c = config.model.resolve(prepared.vocab.len(), 1);
            LanguageModel::new(
                device,
                &LmConfig::fastai(c.vocab, c.emb, c.hidden),
                config.seed,
            )
        }
    }
}

fn fresh_state(config: &TrainConfig, device: &Device, prepared: &LmPrepared) -> Result<LmState> {
    State::new(config, new_model(config, device, prepared)?)
}

/// The carried state as bits.
fn carry_bits(state: &[LstmState]) -> Result<Vec<[Vec<u32>; 2]>> {
    state
        .iter()
        .map(|s| {
            let bits = |t: &Tensor| -> Result<Vec<u32>> {
                Ok(t.to_vec_f32()?.into_iter().map(f32::to_bits).collect())
            };
            Ok([bits(&s.h)?, bits(&s.c)?])
        })
        .collect()
}

/// The carried state from bits (a checkpoint's), or zeros.
fn carry_from(
    model: &LanguageModel,
    device: &Device,
    bs: usize,
    bits: &[[Vec<u32>; 2]],
) -> Result<Vec<LstmState>> {
    if bits.is_empty() {
        return model.zero_state(device, bs);
    }
    if bits.len() != model.config.hidden.len() {
        return Err(Error::invalid(
            "resume",
            format!(
                "the checkpoint carries {} layers' states, the model has {}",
                bits.len(),
                model.config.hidden.len()
            ),
        ));
    }
    bits.iter()
        .zip(&model.config.hidden)
        .map(|([h, c], &width)| {
            let t = |b: &Vec<u32>| -> Result<Tensor> {
                let v: Vec<f32> = b.iter().map(|&x| f32::from_bits(x)).collect();
                Tensor::from_f32(device, &[bs, width], &v)
            };
            Ok(LstmState { h: t(h)?, c: t(c)? })
        })
        .collect()
}

fn start(
    run: &RunDir,
    config: &TrainConfig,
    opts: &RunOptions,
    prepared: &LmPrepared,
    identity: &str,
) -> Result<(LmState, StepLog, RunLock)> {
    let state = fresh_state(config, &opts.device, prepared)?;
    let manifest = new_manifest(
        config,
        opts,
        (dataset_info(prepared), &prepared.vocab),
        identity,
        &state.model.config,
        prepared.parent.clone(),
    )?;
    let lock = create_run_dir(run)?;
    manifest.write(&run.manifest())?;
    let log = state.new_log(run)?;
    Ok((state, log, lock))
}

fn dataset_info(p: &LmPrepared) -> DatasetInfo {
    DatasetInfo {
        name: p.name.clone(),
        sha256: p.sha256.clone(),
        train: p.train.len(),
        valid: p.valid.len(),
        classes: Vec::new(),
    }
}

fn resume(
    run: &RunDir,
    config: &TrainConfig,
    opts: &RunOptions,
    prepared: &LmPrepared,
    identity: &str,
    progress: &mut dyn Progress,
) -> Result<(LmState, StepLog, RunLock)> {
    let (lock, mut manifest) = open_for_resume(run, identity, progress, |m| {
        let mut why = Vec::new();
        if let Ok(saved) = serde_json::from_value::<TrainConfig>(m.config.clone()) {
            why.extend(saved.identity_differences(config));
        }
        if m.dataset.sha256 != prepared.sha256 {
            why.push(format!(
                "data sha256: {} vs {}",
                m.dataset.sha256, prepared.sha256
            ));
        }
        Error::invalid(
            "resume",
            format!(
                "{} was trained with another config or data; differs (saved vs now): {}",
                run.root.display(),
                if why.is_empty() {
                    "the identity hash".to_string()
                } else {
                    why.join("; ")
                }
            ),
        )
    })?;
    let title = plot_title(run, config, &prepared.name);
    let (state, log) = resume_state(
        run,
        opts,
        config,
        (identity, &title),
        &mut manifest,
        progress,
        || fresh_state(config, &opts.device, prepared),
    )?;
    Ok((state, log, lock))
}

/// Validation of a language model: the held-out texts as one stream in
/// `bs` rows, fixed `bptt` windows, the state carried, no dropout. Each
/// window's mean cross-entropy comes from the softmax family (exact tier:
/// the same bits on every device) and is summed, times its tokens, in f64
/// in window order; the next-token accuracy compares the logits' argmax
/// (read back) with the targets. Returns (mean loss, accuracy).
pub fn evaluate_lm(
    model: &LanguageModel,
    device: &Device,
    precision: Precision,
    texts: &[Vec<u32>],
    bs: usize,
    bptt: usize,
) -> Result<(f64, f64)> {
    let stream = epoch_stream(texts, 0, 0, false);
    let bs = bs.min(stream.len().saturating_sub(1) / 2).max(1);
    let rows = LmRows::new(stream, bs)?;
    let rng = RngState::new(0); // no dropout in inference: never drawn
    let mut state = model.zero_state(device, bs)?;
    let (mut loss, mut right, mut n) = (0.0f64, 0u64, 0u64);
    let v = model.config.vocab;
    let mut at = 0;
    for t in windows(0, 0, bptt, rows.len, false) {
        let w = rows.window(at, t);
        at += t;
        let batch = LmBatch::new(device, &w)?;
        let mut g = Graph::inference(device, precision)?;
        let (logits, next) = model.forward(&mut g, &batch, &rng, &state)?;
        let mean = g.cross_entropy(logits, &batch.targets)?;
        let mean = g.value(mean).to_host_f32()?[0];
        loss += f64::from(mean) * w.targets.len() as f64;
        let values = g.value(logits).to_host_f32()?;
        for (row, &target) in values.chunks(v).zip(&w.targets) {
            right += u64::from(super::eval::argmax(row) == target);
        }
        n += w.targets.len() as u64;
        g.read_status()?.check_inputs()?;
        state = next;
    }
    let n = n.max(1) as f64;
    Ok((loss / n, right as f64 / n))
}

/// Trains (or resumes) a language-model stage in `opts.out`.
pub fn train_lm(
    config: &TrainConfig,
    stage: &LmStage,
    opts: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<Outcome> {
    config.validate()?;
    if config.encoder.is_some() || config.unfreeze.is_some() {
        return Err(Error::invalid(
            "lm",
            "--encoder and --unfreeze-schedule are for the classifier (`shoestring train`)",
        ));
    }
    let run = RunDir::new(&opts.out);
    let device = &opts.device;
    let prepared = prepare(config, stage)?;
    if prepared.valid.is_empty() {
        return Err(Error::invalid(
            "lm",
            format!(
                "{}: no held-out texts; give a --valid-fraction above 0",
                prepared.name
            ),
        ));
    }
    let identity = config.identity(&prepared.sha256, &prepared.vocab.sha256());
    let (mut state, mut log, _lock) = if opts.resume {
        resume(&run, config, opts, &prepared, &identity, progress)?
    } else {
        start(&run, config, opts, &prepared, &identity)?
    };
    opts.check_stop(state.step)?;
    let bs = config.batch_size;
    // Every epoch's windows: the schedule runs over all of them.
    let stream_len: usize = prepared.train.iter().map(Vec::len).sum();
    let row_len = stream_len.saturating_sub(1) / bs.max(1);
    let plans: Vec<Vec<usize>> = (0..config.epochs)
        .map(|e| windows(config.seed, e, config.bptt, row_len, true))
        .collect();
    let mut total: u64 = plans.iter().map(|p| p.len() as u64).sum();
    if let Some(m) = config.max_steps {
        total = total.min(m);
    }
    let all_windows: u64 = plans.iter().map(|p| p.len() as u64).sum();
    // One stage over every window of the run, one rate for every group.
    let schedule = Plan {
        epochs: vec![1],
        schedule: config.schedule,
        lr: config.lr,
        factor: 1.0,
        groups: state.model.params.groups(),
    };
    progress.start(state.step, total, config.epochs);
    let step_config = StepConfig {
        precision: config.precision,
        clip: config.clip,
        tier: config.tier,
    };
    let started = Instant::now();
    let mut tokens_seen = 0u64;
    let title = plot_title(&run, config, &prepared.name);
    let mut carry = carry_from(&state.model, device, bs, &state.acc.carry)?;

    while state.epoch < config.epochs && config.max_steps.is_none_or(|m| state.step < m) {
        let epoch = state.epoch;
        let epoch_start = Instant::now();
        let rows = LmRows::new(epoch_stream(&prepared.train, config.seed, epoch, true), bs)?;
        let plan = &plans[epoch as usize];
        let mut at: usize = plan[..state.batch].iter().sum();
        let mut finished = false;
        let mut stopped = None;
        for bi in state.batch..plan.len() {
            let w = rows.window(at, plan[bi]);
            at += plan[bi];
            let batch = LmBatch::new(device, &w)?;
            let done_before: u64 = plans[..epoch as usize].iter().map(|p| p.len() as u64).sum();
            let lr = apply_plan(
                &mut state.opt,
                &schedule.at(0, done_before + bi as u64, all_windows),
            );
            let scale = state.scaler.map(|s| s.scale);
            let mut g = Graph::with_precision(device, config.precision)?.with_tier(config.tier)?;
            let (loss, next) = state.model.loss(&mut g, &batch, &state.rng, &carry)?;
            let out = finish_step(
                g,
                loss,
                &mut state.model.params,
                &mut state.opt,
                state.scaler.as_mut(),
                &step_config,
                &mut state.rng,
            )?;
            // Truncated BPTT: the next window starts from these values.
            carry = next;
            state.step += 1;
            state.batch = bi + 1;
            let tokens = w.inputs.len();
            tokens_seen += tokens as u64;
            let loss = out.report.loss;
            state.acc.add(&out, tokens);
            let record = step_record(state.step, (epoch, bi), &out, scale, lr, (w.bs, tokens));
            state.log_step(config, &mut log, record)?;
            let overflow_f32 = config.precision == Precision::F32 && out.report.overflow();
            if overflow_f32 || !loss.is_finite() {
                log.sync()?;
                return Err(Error::NumericalFault {
                    step: state.step,
                    msg: format!(
                        "the language model's loss is {loss} or a gradient is not finite, so the \
                         weights were not updated; start a new run with a lower --lr or a --clip"
                    ),
                });
            }
            progress.step(&StepEvent {
                step: state.step,
                epoch,
                batch: (bi, plan.len()),
                loss,
                tokens,
                scale,
                skipped: !out.applied,
            });
            if config.max_steps == Some(state.step) {
                finished = true;
                break;
            }
            let checkpoint_due = opts.stop_after_steps == Some(state.step)
                || (config.checkpoint_every > 0
                    && state.step % config.checkpoint_every == 0
                    && bi + 1 < plan.len());
            if checkpoint_due {
                state.acc.carry = carry_bits(&carry)?;
                let dir = state.write_checkpoint(&run, config, &identity, &mut log)?;
                if opts.stop_after_steps == Some(state.step) {
                    stopped = Some(dir);
                    break;
                }
            }
        }
        if let Some(checkpoint) = stopped {
            return Ok(Outcome::Stopped {
                step: state.step,
                checkpoint,
            });
        }
        let (valid_loss, valid_accuracy) = evaluate_lm(
            &state.model,
            device,
            config.precision,
            &prepared.valid,
            bs,
            config.bptt,
        )?;
        let metrics = EpochMetrics {
            epoch,
            step: state.step,
            train_loss: state.acc.mean(),
            valid_loss,
            valid_accuracy,
            // detmath's exp: the same bits on every host (metrics.json is
            // compared byte for byte).
            valid_perplexity: Some(f64::from(crate::detmath::exp(valid_loss as f32))),
            partial: state.batch < plan.len(),
        };
        let seconds = epoch_start.elapsed().as_secs_f64();
        let at = (&run, config, identity.as_str(), title.as_str());
        state.end_epoch(metrics, seconds, at, &mut log, progress)?;
        // Each epoch's rows are a new layout of the texts: start from zeros.
        carry = state.model.zero_state(device, bs)?;
        if finished {
            break;
        }
    }
    let vocab = VocabFile::new(&prepared.vocab, &[], usize::MAX);
    state.finish(
        (&run, &title),
        &vocab,
        &mut log,
        (tokens_seen, started, device),
    )
}
