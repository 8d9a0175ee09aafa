//! The classifier training loop behind `shoestring train`: data, vocab,
//! model and optimizer from a [`TrainConfig`]; steps over the deterministic
//! batcher; a validation pass per epoch; the run directory ([`crate::run`])
//! written as it goes; checkpoints ([`crate::checkpoint`]) every
//! `checkpoint_every` steps and at each epoch's end; and an exact resume
//! from the newest checkpoint that verifies.
//!
//! Everything that decides a bit is a function of the config, the data and
//! the step: the batch plan of an epoch comes from `(seed, epoch)`, dropout
//! masks from `(seed, step)`, and the checkpoint holds the model, the
//! optimizer moments, the RNG step, the loss scaler, the data cursor and
//! the loss accumulators. So a run stopped anywhere and resumed writes the
//! same `model.safetensors`, byte for byte, as a run never stopped, and so
//! does a run with any number of batch workers.

pub mod config;
pub mod eval;
pub mod lm;
pub mod schedule;
pub mod vocab_file;

pub use config::{ModelConfig, OptimizerKind, Preset, Tier, TrainConfig};
pub use eval::{evaluate, Evaluation};
pub use vocab_file::VocabFile;

use crate::amp::{LossScaler, Precision};
use crate::checkpoint::{self, CheckpointState};
use crate::data::batcher::{epoch_batches, Prefetch};
use crate::data::vocab::Vocab;
use crate::data::{self, DataSource, Dataset};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{
    HostBatch, HostTensor, LanguageModel, LmConfig, Params, TextBatch, TextClassifier,
};
use crate::optim::{Method, Optimizer};
use crate::rng::RngState;
use crate::run::manifest::{
    json_value, unix_now, DatasetInfo, DeviceInfo, ParentInfo, ResumeRecord, VocabInfo, FORMAT,
};
use crate::run::{
    self, fingerprint_optimizer, fingerprint_tensors, EpochMetrics, Manifest, RunDir, StepLog,
    StepRecord,
};
use crate::step::{diagnose_non_finite, train_step, StepConfig, StepOutcome};
use schedule::{Plan, StepSettings};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to run (none of it changes a bit of the result).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run directory.
    pub out: PathBuf,
    /// The device.
    pub device: Device,
    /// Threads building batches.
    pub workers: usize,
    /// Checkpoint after this many steps and stop, as if interrupted.
    pub stop_after_steps: Option<u64>,
    /// Continue the run in `out` from its newest valid checkpoint.
    pub resume: bool,
    /// The command line, for the manifest.
    pub command: Vec<String>,
}

impl RunOptions {
    /// `--stop-after-steps` must lie ahead of a run at `step`.
    fn check_stop(&self, step: u64) -> Result<()> {
        match self.stop_after_steps {
            Some(stop) if stop <= step => Err(Error::invalid(
                "train",
                format!(
                    "--stop-after-steps {stop}: the run is already at step {step} (the number is the absolute step)"
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The texts of a dataset as token ids, and the vocabulary.
pub struct Prepared {
    /// The dataset as loaded.
    pub dataset: Dataset,
    /// Built from the training texts.
    pub vocab: Vocab,
    /// Training texts as ids (`xxbos` first, at most `max_len`).
    pub train: Vec<Vec<u32>>,
    /// Their labels.
    pub train_labels: Vec<u32>,
    /// Validation texts as ids.
    pub valid: Vec<Vec<u32>>,
    /// Their labels.
    pub valid_labels: Vec<u32>,
    /// With `encoder`: the pretrained encoder's tensors and sizes.
    pub encoder: Option<(Vec<HostTensor>, LmConfig)>,
    /// With `encoder`: the run it came from.
    pub parent: Option<ParentInfo>,
}

impl Prepared {
    /// The manifest's record of the dataset.
    pub fn dataset_info(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.dataset.name.clone(),
            sha256: self.dataset.sha256.clone(),
            train: self.train.len(),
            valid: self.valid.len(),
            classes: self.dataset.classes.clone(),
        }
    }

    /// What the run's identity hashes besides its config: the data's
    /// sha256, and the parent model's when there is one.
    pub fn data_identity(&self) -> String {
        match &self.parent {
            Some(p) => format!("{}+{}", self.dataset.sha256, p.model_sha256),
            None => self.dataset.sha256.clone(),
        }
    }
}

/// The vocabulary of `texts` with `config`'s tokenizer, `min_freq` and
/// `max_vocab` (the most frequent tokens kept).
pub fn build_vocab<'a>(
    config: &TrainConfig,
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<Vocab> {
    let vocab = Vocab::build_with(config.tokenizer, texts, config.min_freq);
    match config.max_vocab {
        Some(max) if vocab.len() > max => {
            Vocab::from_tokens_with(config.tokenizer, vocab.itos()[..max].to_vec())
        }
        _ => Ok(vocab),
    }
}

/// A finished run that a later stage starts from: its model, vocabulary
/// and identity.
pub struct ParentRun {
    /// The run's record for the child's manifest.
    pub info: ParentInfo,
    /// Its vocabulary.
    pub vocab: Vocab,
    /// Its language model.
    pub model: LanguageModel,
}

impl ParentRun {
    /// Reads the finished language-model run in `dir` onto `device`.
    pub fn open(dir: &str, device: &Device) -> Result<ParentRun> {
        let run = RunDir::new(Path::new(dir));
        if !run.model().exists() {
            return Err(Error::invalid(
                "parent run",
                format!(
                    "{dir} has no finished model ({}): give a language-model run that completed",
                    run.model().display()
                ),
            ));
        }
        let manifest = Manifest::read(&run.manifest())?;
        let vocab = VocabFile::read(&run.vocab())?.vocab()?;
        let model = LanguageModel::load(device, &run.model())?;
        if model.config.vocab != vocab.len() {
            return Err(Error::Format {
                what: run.model().display().to_string(),
                msg: format!(
                    "a model of {} tokens beside a vocab.json of {}",
                    model.config.vocab,
                    vocab.len()
                ),
            });
        }
        Ok(ParentRun {
            info: ParentInfo {
                run: dir.to_string(),
                model_sha256: checkpoint::file_sha256(&run.model())?,
                identity: manifest.identity,
            },
            vocab,
            model,
        })
    }
}

/// Loads the data of `config`, builds the vocabulary from its training
/// texts and encodes every text.
pub fn prepare(config: &TrainConfig) -> Result<Prepared> {
    let source = DataSource::parse(&config.data)?;
    let dataset = data::load(&source, config.valid_fraction, config.seed)?;
    let (vocab, encoder, parent) = match &config.encoder {
        Some(dir) => {
            // Read on the host: the classifier copies the tensors to its device.
            let p = ParentRun::open(dir, &Device::Cpu)?;
            if p.vocab.tokenizer() != config.tokenizer {
                return Err(Error::invalid(
                    "train --encoder",
                    format!(
                        "{dir} was tokenized with {}, this run with {}",
                        p.vocab.tokenizer().name(),
                        config.tokenizer.name()
                    ),
                ));
            }
            let tensors = p.model.encoder_tensors()?;
            (p.vocab, Some((tensors, p.model.config)), Some(p.info))
        }
        None => (
            build_vocab(config, dataset.train.iter().map(|e| e.text.as_str()))?,
            None,
            None,
        ),
    };
    let encode = |set: &[data::Example]| -> (Vec<Vec<u32>>, Vec<u32>) {
        set.iter()
            .map(|e| (vocab.encode(&e.text, config.max_len), e.label))
            .unzip()
    };
    let (train, train_labels) = encode(&dataset.train);
    let (valid, valid_labels) = encode(&dataset.valid);
    Ok(Prepared {
        dataset,
        vocab,
        train,
        train_labels,
        valid,
        valid_labels,
        encoder,
        parent,
    })
}

/// What the trainer tells whoever shows progress.
pub trait Progress {
    /// Training starts (or resumes) at `step` of about `total_steps`.
    fn start(&mut self, step: u64, total_steps: u64, epochs: u32);
    /// One step finished.
    fn step(&mut self, event: &StepEvent);
    /// An epoch's validation finished.
    fn epoch(&mut self, metrics: &EpochMetrics, seconds: f64);
    /// Something a person should read (a resume, a skipped checkpoint).
    fn message(&mut self, text: &str);
}

/// One finished step, for progress displays.
#[derive(Debug, Clone)]
pub struct StepEvent {
    /// Steps taken.
    pub step: u64,
    /// The epoch.
    pub epoch: u32,
    /// The batch within the epoch, and the epoch's batches.
    pub batch: (usize, usize),
    /// The loss.
    pub loss: f32,
    /// Tokens in the batch.
    pub tokens: usize,
    /// The loss scale (mixed precision).
    pub scale: Option<f32>,
    /// The update was skipped (overflow).
    pub skipped: bool,
}

/// How a call to [`train`] ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every epoch (or `max_steps`) done; the final model is written.
    Completed(Summary),
    /// `--stop-after-steps`: a checkpoint was written after `step`.
    Stopped {
        /// Steps taken.
        step: u64,
        /// The checkpoint folder.
        checkpoint: PathBuf,
    },
}

/// A completed run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Per-epoch metrics.
    pub metrics: Vec<EpochMetrics>,
    /// Steps taken.
    pub steps: u64,
    /// Steps whose update was skipped (mixed-precision overflow).
    pub skipped: u64,
    /// The final model.
    pub model: PathBuf,
    /// Its sha256.
    pub model_sha256: String,
    /// Tokens trained on in this process (after a resume: since it).
    pub tokens: u64,
    /// Wall seconds in this process.
    pub seconds: f64,
    /// Parameters in the model.
    pub parameters: usize,
    /// The run's device.
    pub device: String,
}

/// The trainer's accumulators, saved in every checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Accumulators {
    /// Sum over this epoch's applied steps of loss x rows (x tokens, for a
    /// language model), as f64 bits.
    loss_sum_bits: u64,
    /// Rows (tokens) in those steps.
    rows: u64,
    /// Skipped steps so far.
    skipped: u64,
    /// Metrics of the epochs done.
    metrics: Vec<EpochMetrics>,
    /// A language model's hidden state carried into the next window: per
    /// layer `[h, c]`, each `[bs, H]` as f32 bits (empty at an epoch's start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    carry: Vec<[Vec<u32>; 2]>,
}

impl Accumulators {
    /// A step: applied (its loss counts, weighted) or skipped.
    fn add(&mut self, out: &StepOutcome, weight: usize) {
        if !out.applied {
            self.skipped += 1;
            return;
        }
        let sum = f64::from_bits(self.loss_sum_bits) + f64::from(out.report.loss) * weight as f64;
        self.loss_sum_bits = sum.to_bits();
        self.rows += weight as u64;
    }

    fn mean(&self) -> f64 {
        f64::from_bits(self.loss_sum_bits) / (self.rows.max(1) as f64)
    }
}

/// A run's whole state: the model `M`, the optimizer, the loss scaler, the
/// RNG, the cursor (steps taken, the epoch and batch of the next step) and
/// the trainer's accumulators `A`. A checkpoint holds all of it.
struct State<M = TextClassifier> {
    model: M,
    opt: Optimizer,
    scaler: Option<LossScaler>,
    rng: RngState,
    step: u64,
    epoch: u32,
    batch: usize,
    acc: Accumulators,
}

impl<M: checkpoint::Checkpointed> State<M> {
    /// The state of a new run with `model`.
    fn new(config: &TrainConfig, model: M) -> Result<Self> {
        Ok(State {
            opt: new_optimizer(config, model.params()),
            model,
            scaler: new_scaler(config)?,
            rng: RngState::new(config.seed),
            step: 0,
            epoch: 0,
            batch: 0,
            acc: Accumulators::default(),
        })
    }

    /// The state a checkpoint holds.
    fn from_checkpoint(l: checkpoint::Loaded<M>) -> Result<Self> {
        let acc = progress_of(&l)?;
        Ok(State {
            opt: Optimizer::from_state(l.model.params(), &l.optimizer)?,
            model: l.model,
            scaler: l.state.scaler,
            rng: l.state.rng,
            step: l.state.step,
            epoch: l.state.epoch,
            batch: l.state.batch,
            acc,
        })
    }

    /// A log line with the fingerprints of the model and the optimizer.
    fn fingerprint_record(&self, step: u64) -> Result<StepRecord> {
        Ok(StepRecord {
            step,
            params: Some(fingerprint_tensors(&self.model.tensors()?)),
            optimizer: Some(fingerprint_optimizer(&self.opt.state()?)),
            ..StepRecord::default()
        })
    }

    /// Appends a step's line, with fingerprints every `fingerprint_every` steps.
    fn log_step(
        &self,
        config: &TrainConfig,
        log: &mut StepLog,
        mut record: StepRecord,
    ) -> Result<()> {
        if config.fingerprint_every > 0 && self.step.is_multiple_of(config.fingerprint_every) {
            let f = self.fingerprint_record(self.step)?;
            record.params = f.params;
            record.optimizer = f.optimizer;
        }
        log.append(&record)
    }

    /// A new `steps.jsonl` whose first line fingerprints the state before
    /// any step (step 0).
    fn new_log(&self, run: &RunDir) -> Result<StepLog> {
        let mut log = StepLog::create(&run.steps())?;
        log.append(&self.fingerprint_record(0)?)?;
        Ok(log)
    }

    /// The end of an epoch: its metrics reported and kept, the loss sums
    /// reset, the cursor moved to the next epoch, metrics and plot
    /// rewritten and a checkpoint written.
    fn end_epoch(
        &mut self,
        metrics: EpochMetrics,
        seconds: f64,
        (run, config, identity, title): (&RunDir, &TrainConfig, &str, &str),
        log: &mut StepLog,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        progress.epoch(&metrics, seconds);
        self.acc.metrics.push(metrics);
        self.acc.loss_sum_bits = 0;
        self.acc.rows = 0;
        self.acc.carry = Vec::new();
        self.epoch += 1;
        self.batch = 0;
        run::metrics::write(&run.metrics(), &self.acc.metrics)?;
        run::plot::write(&run.plot(), &self.acc.metrics, title)?;
        self.write_checkpoint(run, config, identity, log)?;
        Ok(())
    }

    /// The end of the run: the final model, `vocab`, metrics and plot
    /// written, the log synced, and the summary.
    fn finish(
        &self,
        (run, title): (&RunDir, &str),
        vocab: &VocabFile,
        log: &mut StepLog,
        (tokens, started, device): (u64, Instant, &Device),
    ) -> Result<Outcome> {
        crate::fault::point("final.model");
        self.model.save(&run.model())?;
        vocab.write(&run.vocab())?;
        run::metrics::write(&run.metrics(), &self.acc.metrics)?;
        run::plot::write(&run.plot(), &self.acc.metrics, title)?;
        log.sync()?;
        Ok(Outcome::Completed(Summary {
            metrics: self.acc.metrics.clone(),
            steps: self.step,
            skipped: self.acc.skipped,
            model_sha256: checkpoint::file_sha256(&run.model())?,
            model: run.model(),
            tokens,
            seconds: started.elapsed().as_secs_f64(),
            parameters: self.model.params().numel(),
            device: device.to_string(),
        }))
    }

    /// Writes a checkpoint of the whole state (after syncing the log, so
    /// that the log reaches every checkpoint) and prunes old ones.
    fn write_checkpoint(
        &self,
        run: &RunDir,
        config: &TrainConfig,
        identity: &str,
        log: &mut StepLog,
    ) -> Result<PathBuf> {
        log.sync()?;
        let cs = CheckpointState {
            format: checkpoint::FORMAT.to_string(),
            step: self.step,
            epoch: self.epoch,
            batch: self.batch,
            rng: self.rng,
            scaler: self.scaler,
            identity: identity.to_string(),
            progress: serde_json::to_value(&self.acc).map_err(|e| Error::Format {
                what: "checkpoint progress".into(),
                msg: e.to_string(),
            })?,
        };
        let dir = checkpoint::write(&run.checkpoints(), &self.model, &self.opt.state()?, &cs)?;
        checkpoint::prune(&run.checkpoints(), config.keep_checkpoints)?;
        Ok(dir)
    }
}

/// One step's line of `steps.jsonl` (without fingerprints).
fn step_record(
    step: u64,
    (epoch, batch): (u32, usize),
    out: &StepOutcome,
    scale: Option<f32>,
    lr: f32,
    (rows, tokens): (usize, usize),
) -> StepRecord {
    let loss = out.report.loss;
    StepRecord {
        step,
        epoch: Some(epoch),
        batch: Some(batch),
        loss: loss.is_finite().then_some(loss),
        loss_bits: Some(StepRecord::bits(loss)),
        scale,
        overflow: Some(out.report.overflow()),
        skipped: Some(!out.applied),
        lr: Some(lr),
        rows: Some(rows),
        tokens: Some(tokens),
        ..StepRecord::default()
    }
}

/// The optimizer `train` builds for `config` (also `shoestring bench`'s).
pub(crate) fn new_optimizer(config: &TrainConfig, params: &Params) -> Optimizer {
    match config.optimizer {
        OptimizerKind::Adam => Optimizer::adam(params, config.lr, config.weight_decay),
        OptimizerKind::Sgd => {
            let mut o = Optimizer::new(
                params,
                Method::Sgd {
                    momentum: config.momentum,
                },
                config.lr,
                config.weight_decay,
            );
            o.set_discriminative_lr(config.lr, 1.0);
            o
        }
    }
}

/// The loss scaler of a new run (mixed precision).
fn new_scaler(config: &TrainConfig) -> Result<Option<LossScaler>> {
    let scaler = (config.precision == Precision::Mixed).then(|| LossScaler {
        scale: config.loss_scale,
        growth_interval: config.scale_growth_interval,
        ..LossScaler::default()
    });
    if let Some(s) = &scaler {
        s.validate()?;
    }
    Ok(scaler)
}

/// The classifier of a new run: drawn from the seed, its encoder then
/// replaced by the pretrained one's when there is one (whose sizes it
/// takes).
pub(crate) fn new_classifier(
    config: &TrainConfig,
    device: &Device,
    prepared: &Prepared,
) -> Result<TextClassifier> {
    let classes = prepared.dataset.classes.len();
    let mut c = config.model.resolve(prepared.vocab.len(), classes);
    if let Some((_, lm)) = &prepared.encoder {
        c.emb = lm.emb;
        c.hidden = lm.hidden.clone();
        c.bidirectional = false;
    }
    let mut model = TextClassifier::new(device, &c, config.seed)?;
    if let Some((tensors, _)) = &prepared.encoder {
        model.load_encoder(tensors)?;
    }
    Ok(model)
}

fn fresh_state(config: &TrainConfig, device: &Device, prepared: &Prepared) -> Result<State> {
    State::new(config, new_classifier(config, device, prepared)?)
}

/// A refused resume: what differs between the run's saved config and this one.
fn refuse_resume(
    run: &RunDir,
    manifest: &Manifest,
    config: &TrainConfig,
    prepared: &Prepared,
) -> Error {
    let mut why = Vec::new();
    match serde_json::from_value::<TrainConfig>(manifest.config.clone()) {
        Ok(saved) => why.extend(saved.identity_differences(config)),
        Err(e) => why.push(format!("the saved config does not parse: {e}")),
    }
    if manifest.dataset.sha256 != prepared.dataset.sha256 {
        why.push(format!(
            "dataset sha256: {} vs {}",
            manifest.dataset.sha256, prepared.dataset.sha256
        ));
    }
    if manifest.vocab.sha256 != prepared.vocab.sha256() {
        why.push(format!(
            "vocab sha256: {} vs {}",
            manifest.vocab.sha256,
            prepared.vocab.sha256()
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
}

/// The code that wrote a run must be the code that resumes it: another
/// crate version or other kernels may compute other bits.
fn check_same_code(run: &RunDir, manifest: &Manifest) -> Result<()> {
    let (kernels, origin) = Manifest::kernels();
    let version = env!("CARGO_PKG_VERSION");
    let what = if manifest.crate_version != version {
        format!("shoestring {} (this is {version})", manifest.crate_version)
    } else if manifest.kernels_origin == origin && manifest.kernels_sha256 != kernels {
        format!("kernels {} (these are {kernels})", manifest.kernels_sha256)
    } else {
        return Ok(());
    };
    Err(Error::invalid(
        "resume",
        format!(
            "{} was started by {what}: resuming with other code would not give the run's bits",
            run.root.display()
        ),
    ))
}

/// The run directory's lock: held (an OS file lock on `RUN_DIR/.lock`,
/// released by the OS when the process ends, however it ends) for as long
/// as the trainer writes there, so that two processes never write one run.
struct RunLock {
    _file: std::fs::File,
    /// The pid in the lock file when it was taken: a process that held the
    /// run and ended without releasing it by hand (killed, crashed).
    taken_over: Option<u32>,
}

impl RunLock {
    fn take(run: &RunDir) -> Result<RunLock> {
        let path = run.root.join(".lock");
        let io = |e| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let previous = std::fs::read_to_string(&path).unwrap_or_default();
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(Error::invalid(
                    "train",
                    format!(
                        "{} is in use by another shoestring process (pid {}); wait for it or stop it",
                        run.root.display(),
                        holder.trim()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        use std::io::Write;
        file.set_len(0).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        // The OS released the lock of a process that died; say whose it was.
        let stale = previous
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&pid| pid != std::process::id());
        Ok(RunLock {
            _file: file,
            taken_over: stale,
        })
    }
}

impl Drop for RunLock {
    /// A process that ends normally (or with an error) empties the lock
    /// file, so only a killed one leaves its pid behind.
    fn drop(&mut self) {
        let _ = self._file.set_len(0);
    }
}

/// The manifest of a new run.
fn new_manifest(
    config: &TrainConfig,
    opts: &RunOptions,
    (dataset, vocab): (DatasetInfo, &Vocab),
    identity: &str,
    model_config: &impl Serialize,
    parent: Option<ParentInfo>,
) -> Result<Manifest> {
    let json = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| Error::Format {
            what: "manifest".into(),
            msg: e.to_string(),
        })
    };
    let (kernels_sha256, kernels_origin) = Manifest::kernels();
    Ok(Manifest {
        format: FORMAT.into(),
        identity: identity.to_string(),
        config: json(json_value(config))?,
        model: json(json_value(model_config))?,
        dataset,
        vocab: VocabInfo {
            size: vocab.len(),
            sha256: vocab.sha256(),
        },
        seed: config.seed,
        tier: match config.tier {
            Tier::Exact => "exact".into(),
            Tier::Fast => "fast".into(),
        },
        precision: match config.precision {
            Precision::F32 => "f32".into(),
            Precision::Mixed => "mixed".into(),
        },
        device: DeviceInfo::of(&opts.device),
        crate_version: env!("CARGO_PKG_VERSION").into(),
        kernels_sha256,
        kernels_origin,
        command: opts.command.clone(),
        unix_time: unix_now(),
        resumes: Vec::new(),
        parent,
    })
}

/// A new run in `run`: the state is built (so that a bad model config
/// fails before anything is written), then the directory, its lock, the
/// manifest and the log's step-0 line.
fn start_run(
    run: &RunDir,
    config: &TrainConfig,
    opts: &RunOptions,
    prepared: &Prepared,
    identity: &str,
) -> Result<(State, StepLog, RunLock)> {
    let state = fresh_state(config, &opts.device, prepared)?;
    let manifest = new_manifest(
        config,
        opts,
        (prepared.dataset_info(), &prepared.vocab),
        identity,
        &state.model.config,
        prepared.parent.clone(),
    )?;
    let lock = create_run_dir(run)?;
    manifest.write(&run.manifest())?;
    let log = state.new_log(run)?;
    Ok((state, log, lock))
}

/// Creates the folder of a new run (refusing one that holds anything but
/// a dead run's lock and temporary files) and takes its lock.
fn create_run_dir(run: &RunDir) -> Result<RunLock> {
    // A run killed before its manifest was written left at most its lock
    // and temporary files: that folder starts again as if empty.
    let nonempty = std::fs::read_dir(&run.root)
        .map(|d| {
            d.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name != ".lock" && !name.ends_with(".tmp")
            })
        })
        .unwrap_or(false);
    if nonempty {
        return Err(Error::invalid(
            "train",
            format!(
                "{} exists and is not empty: continue it with --resume, or pick another --out",
                run.root.display()
            ),
        ));
    }
    std::fs::create_dir_all(&run.root).map_err(|e| Error::Io {
        path: run.root.display().to_string(),
        source: e,
    })?;
    RunLock::take(run)
}

/// The run in `run` continued from its newest checkpoint that verifies
/// (newer ones that do not are set aside, with a message each), or from
/// step 0 when it has no checkpoint at all.
fn resume_run(
    run: &RunDir,
    config: &TrainConfig,
    opts: &RunOptions,
    prepared: &Prepared,
    identity: &str,
    progress: &mut dyn Progress,
) -> Result<(State, StepLog, RunLock)> {
    let (lock, mut manifest) = open_for_resume(run, identity, progress, |m| {
        refuse_resume(run, m, config, prepared)
    })?;
    let title = plot_title(run, config, &prepared.dataset.name);
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

/// The second half of every resume: the state of the newest valid
/// checkpoint (or `fresh`'s, when there is none), the log cut to it, the
/// files of a later point removed, metrics and plot rewritten, and the
/// resume recorded in the manifest.
fn resume_state<M: checkpoint::Checkpointed>(
    run: &RunDir,
    opts: &RunOptions,
    config: &TrainConfig,
    (identity, title): (&str, &str),
    manifest: &mut Manifest,
    progress: &mut dyn Progress,
    fresh: impl FnOnce() -> Result<State<M>>,
) -> Result<(State<M>, StepLog)> {
    let Some(l) = newest_checkpoint::<M>(run, &opts.device, identity, progress)? else {
        let state = fresh()?;
        let log = state.new_log(run)?;
        record_resume(run, manifest, 0, opts, config)?;
        return Ok((state, log));
    };
    let state = State::<M>::from_checkpoint(l)?;
    let log = StepLog::resume(&run.steps(), state.step)?;
    remove_final_files(run)?;
    run::metrics::write(&run.metrics(), &state.acc.metrics)?;
    run::plot::write(&run.plot(), &state.acc.metrics, title)?;
    record_resume(run, manifest, state.step, opts, config)?;
    Ok((state, log))
}

/// The first half of every resume: the run directory must exist; its lock
/// is taken (saying whose it was, when a dead process held it); its
/// manifest must have this run's identity (else `refuse` says what
/// differs) and have been written by this code.
fn open_for_resume(
    run: &RunDir,
    identity: &str,
    progress: &mut dyn Progress,
    refuse: impl FnOnce(&Manifest) -> Error,
) -> Result<(RunLock, Manifest)> {
    if !RunDir::exists(&run.root) {
        return Err(Error::invalid(
            "resume",
            format!(
                "{} is not a run directory (it has no manifest.json; a run killed before it \
                 wrote one starts again with the same command and --out)",
                run.root.display()
            ),
        ));
    }
    let lock = RunLock::take(run)?;
    if let Some(pid) = lock.taken_over {
        progress.message(&format!(
            "{} was last held by pid {pid}, which is no longer running: taking it over",
            run.root.display()
        ));
    }
    let manifest = Manifest::read(&run.manifest())?;
    if manifest.identity != identity {
        return Err(refuse(&manifest));
    }
    check_same_code(run, &manifest)?;
    Ok((lock, manifest))
}

/// The newest checkpoint of `run` that verifies (newer ones that do not
/// are set aside, with a message each), or `None` when the run has no
/// checkpoint at all (it starts again from step 0); an error when it has
/// some and none verifies.
fn newest_checkpoint<M: checkpoint::Checkpointed>(
    run: &RunDir,
    device: &Device,
    identity: &str,
    progress: &mut dyn Progress,
) -> Result<Option<checkpoint::Loaded<M>>> {
    let (loaded, skipped) = checkpoint::newest_valid::<M>(&run.checkpoints(), device)?;
    let Some(l) = loaded else {
        if !skipped.is_empty() {
            let list: Vec<String> = skipped
                .iter()
                .map(|(d, why)| format!("{}: {why}", d.display()))
                .collect();
            return Err(Error::invalid(
                "resume",
                format!(
                    "no checkpoint of {} verifies ({}); to train it again from step 0, delete {}",
                    run.root.display(),
                    list.join("; "),
                    run.checkpoints().display()
                ),
            ));
        }
        progress.message(&format!(
            "{} has no checkpoint (stopped before the first): starting the run again from step 0",
            run.root.display()
        ));
        return Ok(None);
    };
    for (dir, why) in &skipped {
        let to = checkpoint::set_aside(dir)?;
        progress.message(&format!(
            "skipping checkpoint {} (moved to {}): {why}",
            dir.display(),
            to.display()
        ));
    }
    if l.state.identity != identity {
        return Err(Error::Format {
            what: l.dir.display().to_string(),
            msg: format!(
                "checkpoint of run {}, this run is {identity}",
                l.state.identity
            ),
        });
    }
    progress.message(&format!(
        "resuming from {} (step {}, epoch {}, batch {})",
        l.dir.display(),
        l.state.step,
        l.state.epoch + 1,
        l.state.batch
    ));
    Ok(Some(l))
}

/// A checkpoint's trainer accumulators.
fn progress_of<M, A: serde::de::DeserializeOwned>(l: &checkpoint::Loaded<M>) -> Result<A> {
    serde_json::from_value(l.state.progress.clone()).map_err(|e| Error::Format {
        what: l.dir.join("state.json").display().to_string(),
        msg: format!("progress: {e}"),
    })
}

/// Files of a later point of the run than its checkpoint go: they will be
/// written again, the same.
fn remove_final_files(run: &RunDir) -> Result<()> {
    for stale in [run.model(), run.vocab()] {
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| Error::Io {
                path: stale.display().to_string(),
                source: e,
            })?;
        }
    }
    Ok(())
}

/// The error for a step whose loss or gradients were not finite: the step,
/// the first op and tensor where an inf or NaN appeared (found by replaying
/// the step with every value read back), and the last good checkpoint.
fn numerical_fault(
    run: &RunDir,
    state: &mut State,
    step_config: &StepConfig,
    scale: f32,
    batch: &TextBatch,
    rng_before: &RngState,
    loss: f32,
) -> Error {
    let place = match diagnose_non_finite(&mut state.model, step_config, scale, batch, rng_before) {
        Ok(Some(p)) => format!("the first non-finite value is {p}"),
        Ok(None) => {
            "the replay found every value finite (the gradient norm or an update overflowed)".into()
        }
        Err(e) => format!("the replay to find the first non-finite value failed: {e}"),
    };
    let last = match checkpoint::list(&run.checkpoints()) {
        Ok(l) => l
            .first()
            .map_or("none yet".to_string(), |(_, d)| d.display().to_string()),
        Err(e) => format!("unknown ({e})"),
    };
    Error::NumericalFault {
        step: state.step,
        msg: format!(
            "the loss is {loss} or a gradient is not finite, so the weights were not updated; \
             {place}; last good checkpoint: {last}. A resume would repeat this step bit for bit: \
             start a new run with a lower --lr, --clip, or --precision mixed"
        ),
    }
}

fn plot_title(run: &RunDir, config: &TrainConfig, data: &str) -> String {
    format!(
        "{} on {}: {} epochs, seed {}",
        run.root.display(),
        data,
        config.epochs,
        config.seed
    )
}

/// Appends this resume to the manifest: its step, device, and the settings
/// that may change on a resume (logging and keeping) that it changed.
fn record_resume(
    run: &RunDir,
    manifest: &mut Manifest,
    step: u64,
    opts: &RunOptions,
    config: &TrainConfig,
) -> Result<()> {
    let changed = serde_json::from_value::<TrainConfig>(manifest.config.clone())
        .map(|saved| saved.differences(config))
        .unwrap_or_default();
    manifest.resumes.push(ResumeRecord {
        step,
        device: DeviceInfo::of(&opts.device),
        unix_time: unix_now(),
        changed,
    });
    manifest.write(&run.manifest())
}

/// Sets a step's learning rates, frozen groups and (one-cycle) Adam
/// `beta1` on `opt`; returns the top group's rate.
fn apply_plan(opt: &mut Optimizer, s: &StepSettings) -> f32 {
    for (g, &lr) in opt.groups.iter_mut().zip(&s.lrs) {
        g.lr = lr;
    }
    opt.freeze_to(s.trainable_from);
    if let (Some(b1), Method::Adam { beta1, .. }) = (s.beta1, &mut opt.method) {
        *beta1 = b1;
    }
    s.lrs.last().copied().unwrap_or(0.0)
}

/// Trains (or resumes) the run in `opts.out`.
pub fn train(
    config: &TrainConfig,
    opts: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<Outcome> {
    config.validate()?;
    if config.tier == Tier::Fast && !matches!(opts.device, Device::Cuda(_)) {
        return Err(Error::Unsupported {
            op: "train --tier fast",
            device: opts.device.to_string(),
            reason: "the fast tier runs on tensor cores: use --device cuda, or the exact tier"
                .into(),
        });
    }
    let run = RunDir::new(&opts.out);
    let device = &opts.device;
    let prepared = prepare(config)?;
    if prepared.valid.is_empty() {
        return Err(Error::invalid(
            "train",
            format!(
                "{} has no validation texts: give it an is_valid column or a --valid-fraction above 0",
                prepared.dataset.name
            ),
        ));
    }
    let identity = config.identity(&prepared.data_identity(), &prepared.vocab.sha256());
    let (mut state, mut log, _lock) = if opts.resume {
        resume_run(&run, config, opts, &prepared, &identity, progress)?
    } else {
        start_run(&run, config, opts, &prepared, &identity)?
    };
    opts.check_stop(state.step)?;

    let lengths: Vec<usize> = prepared.train.iter().map(Vec::len).collect();
    let per_epoch = epoch_batches(&lengths, config.batch_size, config.seed, 0)?.len() as u64;
    let mut total = per_epoch * u64::from(config.epochs);
    if let Some(m) = config.max_steps {
        total = total.min(m);
    }
    progress.start(state.step, total, config.epochs);
    let step_config = StepConfig {
        precision: config.precision,
        clip: config.clip,
        tier: config.tier,
    };
    let started = Instant::now();
    let mut tokens_seen = 0u64;
    let title = plot_title(&run, config, &prepared.dataset.name);
    let stages = Plan {
        epochs: config
            .unfreeze
            .clone()
            .unwrap_or_else(|| vec![config.epochs]),
        schedule: config.schedule,
        lr: config.lr,
        factor: if config.encoder.is_some() {
            config.discriminative
        } else {
            1.0
        },
        groups: state.model.params.groups(),
    };
    stages.validate()?;

    while state.epoch < config.epochs && config.max_steps.is_none_or(|m| state.step < m) {
        let epoch = state.epoch;
        let epoch_start = Instant::now();
        let plan = epoch_batches(&lengths, config.batch_size, config.seed, epoch)?;
        let (train_texts, train_labels) = (&prepared.train, &prepared.train_labels);
        let plan_ref = &plan;
        // Workers gather, sort and pack; the trainer's thread only uploads.
        let build = move |i: usize| -> Result<HostBatch> {
            let (texts, labels): (Vec<Vec<u32>>, Vec<u32>) = plan_ref[i]
                .iter()
                .map(|&j| (train_texts[j].clone(), train_labels[j]))
                .unzip();
            HostBatch::pack(&texts, &labels)
        };
        let mut finished = false;
        let mut stop: Option<PathBuf> = None;
        std::thread::scope(|s| -> Result<()> {
            let batches = Prefetch::new(s, opts.workers, state.batch, plan.len(), build);
            for (bi, host) in batches {
                let host = host?;
                let rows = host.labels.len();
                let batch = TextBatch::from_host(device, host)?;
                let scale = state.scaler.map(|s| s.scale);
                let rng_before = state.rng;
                let lr = apply_plan(&mut state.opt, &stages.at(epoch, bi as u64, per_epoch));
                let out = train_step(
                    &mut state.model,
                    &mut state.opt,
                    state.scaler.as_mut(),
                    &step_config,
                    &batch,
                    &mut state.rng,
                )?;
                state.step += 1;
                state.batch = bi + 1;
                let tokens = batch.seq.total();
                tokens_seen += tokens as u64;
                let loss = out.report.loss;
                state.acc.add(&out, rows);
                let record = step_record(state.step, (epoch, bi), &out, scale, lr, (rows, tokens));
                state.log_step(config, &mut log, record)?;
                // f32 has no loss scale to back off: an overflow there, or a
                // non-finite loss in either precision, ends the run (the
                // update was not applied).
                let overflow_f32 = config.precision == Precision::F32 && out.report.overflow();
                if overflow_f32 || !loss.is_finite() {
                    log.sync()?;
                    return Err(numerical_fault(
                        &run,
                        &mut state,
                        &step_config,
                        scale.unwrap_or(1.0),
                        &batch,
                        &rng_before,
                        loss,
                    ));
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
                if opts.stop_after_steps == Some(state.step) {
                    stop = Some(state.write_checkpoint(&run, config, &identity, &mut log)?);
                    break;
                }
                // At the epoch's last batch the epoch-end checkpoint follows.
                if config.checkpoint_every > 0
                    && state.step % config.checkpoint_every == 0
                    && bi + 1 < plan.len()
                {
                    state.write_checkpoint(&run, config, &identity, &mut log)?;
                }
            }
            Ok(())
        })?;
        if let Some(checkpoint) = stop {
            return Ok(Outcome::Stopped {
                step: state.step,
                checkpoint,
            });
        }
        let valid = evaluate(
            &mut state.model,
            device,
            config.precision,
            &prepared.valid,
            &prepared.valid_labels,
            config.batch_size,
        )?;
        let metrics = EpochMetrics {
            epoch,
            step: state.step,
            train_loss: state.acc.mean(),
            valid_loss: valid.loss,
            valid_accuracy: valid.accuracy,
            valid_perplexity: None,
            partial: state.batch < plan.len(),
        };
        let seconds = epoch_start.elapsed().as_secs_f64();
        let at = (&run, config, identity.as_str(), title.as_str());
        state.end_epoch(metrics, seconds, at, &mut log, progress)?;
        if finished {
            break;
        }
    }
    let vocab = VocabFile::new(&prepared.vocab, &prepared.dataset.classes, config.max_len);
    state.finish(
        (&run, &title),
        &vocab,
        &mut log,
        (tokens_seen, started, device),
    )
}
