//! `shoestring train`: flags, the TOML file and the defaults resolved into
//! one [`TrainConfig`], then the library's trainer, then a summary table.

use super::progress::TrainProgress;
use anyhow::Context;
use clap::Args;
use shoestring::amp::Precision;
use shoestring::data::tokenizer::Tokenizer;
use shoestring::run::{Manifest, RunDir};
use shoestring::train::schedule::Schedule;
use shoestring::train::{self, OptimizerKind, Outcome, Preset, RunOptions, Tier, TrainConfig};
use shoestring::Device;
use std::path::PathBuf;

/// `shoestring train` (every config flag overrides the `--config` file,
/// which overrides the defaults shown).
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training data: `fortunes8` (embedded, the default), a CSV file with a
    /// header `label,text[,is_valid]`, or an aclImdb-style folder
    /// (`train/<class>/*.txt`, `test/<class>/*.txt`).
    #[arg(long)]
    pub data: Option<String>,
    /// Where to train: `cpu`, `sim` (the CUDA kernels under the simulator)
    /// or `cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// `f32`, or `mixed` (f16 GEMMs with f32 master weights and a dynamic
    /// loss scale) [default: f32].
    #[arg(long, value_parser = parse_name::<Precision>)]
    pub precision: Option<Precision>,
    /// Numerics tier: `exact` (bit-identical on every device) or `fast`
    /// (tensor cores, GPU only) [default: exact].
    #[arg(long, value_parser = parse_name::<Tier>)]
    pub tier: Option<Tier>,
    /// Passes over the training texts [default: 8].
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Seed of every random draw: initialisation, shuffling, dropout
    /// [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads that build batches; the result does not depend on it.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// The run directory (must not exist or be empty) [default:
    /// runs/<data>-seed<seed>-<time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A TOML file with any of the config's fields (`shoestring train
    /// --print-config` prints them all).
    #[arg(long, conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Continue the run in RUN_DIR from its newest checkpoint that
    /// verifies; its saved config is used, and a flag that changes it is
    /// refused.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Write a checkpoint after step N (counted from the run's start) and
    /// exit, as if interrupted (train in slices; resume with --resume).
    #[arg(long, value_name = "N")]
    pub stop_after_steps: Option<u64>,
    /// End training after N steps: a complete, short run.
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Texts per batch [default: 32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate [default: 0.003].
    #[arg(long)]
    pub lr: Option<f32>,
    /// `adam` or `sgd` [default: adam].
    #[arg(long, value_parser = parse_name::<OptimizerKind>)]
    pub optimizer: Option<OptimizerKind>,
    /// Weight decay (decoupled for Adam) [default: 0].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Clip the gradient norm to this [default: no clipping].
    #[arg(long)]
    pub clip: Option<f32>,
    /// Tokens per text at most, `xxbos` included [default: 72].
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Times a word must occur in the training texts to get its own id
    /// [default: 2].
    #[arg(long)]
    pub min_freq: Option<usize>,
    /// Validation share when the data has no `is_valid` column [default: 0.2].
    #[arg(long)]
    pub valid_fraction: Option<f64>,
    /// Model preset: `small` (embedding 64, one LSTM layer of 128),
    /// `ulmfit` (embedding 128, layers of 256 and 128: the ULMFiT pipeline's,
    /// its last layer as wide as the embedding for the tied decoder) or
    /// `awd-lstm` (fastai's classifier: 400, 1152, 1152, 400) [default: small].
    #[arg(long, value_parser = parse_name::<Preset>)]
    pub preset: Option<Preset>,
    /// Embedding width.
    #[arg(long)]
    pub emb: Option<usize>,
    /// LSTM hidden units per layer, comma-separated (`128,128`: two layers).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// A bidirectional LSTM (`--bidirectional false` turns off a file's `true`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub bidirectional: Option<bool>,
    /// Weight-drop (DropConnect) on the recurrent weights.
    #[arg(long)]
    pub weight_p: Option<f32>,
    /// Gradient checkpointing of the LSTM: recompute in this many segments
    /// (0: off).
    #[arg(long)]
    pub checkpoint_segments: Option<usize>,
    /// Checkpoint every N steps, and at each epoch's end (0: only at
    /// epoch ends) [default: 200].
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Log fingerprints of all parameters and of the optimizer state every
    /// N steps [default: 50].
    #[arg(long, value_name = "N")]
    pub fingerprint_every: Option<u64>,
    /// Checkpoints kept, the newest [default: 3].
    #[arg(long, value_name = "N")]
    pub keep_checkpoints: Option<usize>,
    /// `words` (lowercased words and symbols) or `fastai` (the same split
    /// plus fastai's `xxmaj`, `xxup`, `xxrep`, `xxwrep` rules) [default: words].
    #[arg(long, value_parser = parse_name::<Tokenizer>)]
    pub tokenizer: Option<Tokenizer>,
    /// Keep at most N tokens in the vocabulary, the most frequent (specials
    /// included).
    #[arg(long, value_name = "N")]
    pub max_vocab: Option<usize>,
    /// Learning-rate schedule: `constant`, `one-cycle` (fastai's cosine
    /// one-cycle: div 25, pct_start 0.25, moms 0.8-0.7-0.8) or `stlr`
    /// (ULMFiT's slanted triangular: cut_frac 0.1, ratio 32) [default:
    /// constant; one-cycle with --encoder and for `lm`].
    #[arg(long, value_parser = parse_name::<Schedule>)]
    pub schedule: Option<Schedule>,
    /// Start the classifier's encoder (and vocabulary) from a finished
    /// `shoestring lm finetune` (or `lm pretrain`) run: ULMFiT's last stage.
    /// Sets the `ulmfit` preset, the unfreeze schedule 1,7 (the head for an
    /// epoch, then everything) and --discriminative 1 unless they are given
    /// (the recipe that measured best here; ULMFiT's own is `--unfreeze-schedule
    /// 1,1,1,5 --schedule one-cycle --lr 0.01 --discriminative 2.6`).
    #[arg(long, value_name = "LM_RUN")]
    pub encoder: Option<String>,
    /// With --encoder: epochs of each gradual-unfreezing stage, comma-separated:
    /// stage 1 trains the head alone, each next stage one more layer group
    /// (top LSTM layer first, the embedding last), the last stage all; each
    /// stage is one run of the schedule at half the previous stage's lr.
    /// Sets --epochs to their sum.
    #[arg(long, value_delimiter = ',', value_name = "EPOCHS,...")]
    pub unfreeze_schedule: Option<Vec<u32>>,
    /// With --encoder: each layer group below the top trains at the rate of
    /// the group above divided by this (ULMFiT's discriminative rates: 2.6)
    /// [default: 1].
    #[arg(long)]
    pub discriminative: Option<f32>,
    /// Language models: the BPTT window (varied per batch around it)
    /// [default: 72].
    #[arg(long)]
    pub bptt: Option<usize>,
    /// Language models: fastai's LM dropouts (output 0.1, hidden 0.15,
    /// input 0.25, embed 0.02, weight 0.2) times this [default: 1].
    #[arg(long)]
    pub drop_mult: Option<f32>,
}

/// A config enum from its name in the TOML file (`f32`, `awd-lstm`, ...):
/// serde knows the names, so flags and files spell them alike.
fn parse_name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}

/// The config: the run's saved one (resume) or the file's or the defaults,
/// then every flag given.
pub fn resolve_config(a: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let mut base = TrainConfig::default();
    if a.encoder.is_some() {
        // The recipe that measured best on fortunes8 (docs/ulmfit.md): the
        // head alone for an epoch, then everything at one constant rate.
        base.model.preset = Preset::Ulmfit;
        base.unfreeze = Some(vec![1, 7]);
        base.discriminative = 1.0;
        base.epochs = 8;
    }
    resolve_config_from(a, base)
}

/// [`resolve_config`] with `base` as the defaults.
pub fn resolve_config_from(a: &TrainArgs, base: TrainConfig) -> anyhow::Result<TrainConfig> {
    let mut c = match (&a.config, &a.resume) {
        (Some(path), _) => TrainConfig::from_toml_file(path)?,
        (None, Some(run)) => {
            let m = Manifest::read(&RunDir::new(run).manifest())?;
            serde_json::from_value(m.config)
                .with_context(|| format!("{}: the saved config", run.display()))?
        }
        (None, None) => base,
    };
    macro_rules! set {
        ($($field:ident),*) => {$(
            if let Some(v) = a.$field.clone() {
                c.$field = v.into();
            }
        )*};
    }
    set!(
        data,
        precision,
        tier,
        epochs,
        seed,
        batch_size,
        lr,
        optimizer,
        weight_decay
    );
    set!(
        max_len,
        min_freq,
        valid_fraction,
        checkpoint_every,
        fingerprint_every,
        keep_checkpoints
    );
    if let Some(v) = a.clip {
        c.clip = Some(v);
    }
    if let Some(v) = a.max_steps {
        c.max_steps = Some(v);
    }
    if let Some(v) = a.preset {
        c.model.preset = v;
    }
    if let Some(v) = a.emb {
        c.model.emb = Some(v);
    }
    if let Some(v) = &a.hidden {
        c.model.hidden = Some(v.clone());
    }
    if let Some(v) = a.bidirectional {
        c.model.bidirectional = Some(v);
    }
    if let Some(v) = a.weight_p {
        c.model.weight_p = Some(v);
    }
    if let Some(v) = a.checkpoint_segments {
        c.model.checkpoint_segments = Some(v);
    }
    set!(tokenizer, schedule, discriminative, bptt, drop_mult);
    if let Some(v) = a.max_vocab {
        c.max_vocab = Some(v);
    }
    if let Some(v) = &a.encoder {
        c.encoder = Some(v.clone());
        if a.tokenizer.is_none() {
            c.tokenizer = parent_tokenizer(v)?;
        }
    }
    if let Some(v) = &a.unfreeze_schedule {
        c.unfreeze = Some(v.clone());
        if a.epochs.is_none() {
            c.epochs = v.iter().sum();
        }
    } else if a.epochs.is_some() && a.encoder.is_some() && a.config.is_none() && a.resume.is_none()
    {
        // --epochs with the default stages: the last stage takes the rest.
        let e = c.epochs;
        anyhow::ensure!(
            e >= 2,
            "--epochs {e}: the default unfreeze schedule 1,N needs at least 2 (or give --unfreeze-schedule)"
        );
        c.unfreeze = Some(vec![1, e - 1]);
    }
    c.validate()?;
    Ok(c)
}

/// The tokenizer of a finished run's `vocab.json` (a later stage uses it).
pub fn parent_tokenizer(run: &str) -> anyhow::Result<Tokenizer> {
    let path = RunDir::new(std::path::Path::new(run)).vocab();
    let vocab = shoestring::train::VocabFile::read(&path)
        .with_context(|| format!("{run}: not a finished language-model run"))?;
    Ok(vocab.vocab()?.tokenizer())
}

fn default_out(c: &TrainConfig) -> PathBuf {
    let data = std::path::Path::new(&c.data)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("data")
        .to_string();
    let t = shoestring::run::manifest::unix_now();
    let (days, secs) = (t / 86_400, t % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    PathBuf::from("runs").join(format!(
        "{data}-seed{}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        c.seed,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    ))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, which std does not offer).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Runs `shoestring train`.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let config = resolve_config(&a)?;
    run_with(&a, config, ("training", "shoestring train"), |c, o, p| {
        train::train(c, o, p)
    })
}

/// Prints the config (`--print-config`) or runs `trainer` with the run
/// options of `a` and prints its summary.
pub fn run_with(
    a: &TrainArgs,
    config: TrainConfig,
    (what, command): (&str, &str),
    trainer: impl FnOnce(&TrainConfig, &RunOptions, &mut TrainProgress) -> shoestring::Result<Outcome>,
) -> anyhow::Result<()> {
    if a.print_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    let device = Device::parse(&a.device)?;
    let out = match (&a.resume, &a.out) {
        (Some(r), _) => r.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => default_out(&config),
    };
    let opts = RunOptions {
        out: out.clone(),
        device,
        workers: a.workers.max(1),
        stop_after_steps: a.stop_after_steps,
        resume: a.resume.is_some(),
        command: std::env::args().collect(),
    };
    println!(
        "{what} on {} with {} ({} epochs, batch {}, seed {}, {} precision) into {}",
        config.data,
        opts.device,
        config.epochs,
        config.batch_size,
        config.seed,
        match config.precision {
            Precision::F32 => "f32",
            Precision::Mixed => "mixed",
        },
        out.display()
    );
    let mut progress = TrainProgress::new();
    let outcome = trainer(&config, &opts, &mut progress)?;
    drop(progress);
    match outcome {
        Outcome::Stopped { step, checkpoint } => {
            println!(
                "stopped after step {step} (--stop-after-steps); checkpoint {}; continue with: {command} --resume {}",
                checkpoint.display(),
                out.display()
            );
        }
        Outcome::Completed(s) => {
            let lm = s.metrics.iter().any(|m| m.valid_perplexity.is_some());
            println!();
            if lm {
                println!("| epoch | train loss | valid loss | valid perplexity | valid accuracy |");
                println!("|------:|-----------:|-----------:|-----------------:|---------------:|");
            } else {
                println!("| epoch | train loss | valid loss | valid accuracy |");
                println!("|------:|-----------:|-----------:|---------------:|");
            }
            for m in &s.metrics {
                let ppl = m
                    .valid_perplexity
                    .map_or(String::new(), |p| format!(" {p:>16.2} |"));
                println!(
                    "| {:>5} | {:>10.4} | {:>10.4} |{ppl} {:>14.4} |",
                    format!("{}{}", m.epoch + 1, if m.partial { "*" } else { "" }),
                    m.train_loss,
                    m.valid_loss,
                    m.valid_accuracy
                );
            }
            println!();
            let rate = s.tokens as f64 / s.seconds.max(1e-9);
            println!(
                "{} steps ({} skipped), {} parameters, {:.1} s on {} ({rate:.0} tokens/s)",
                s.steps, s.skipped, s.parameters, s.seconds, s.device
            );
            println!("model: {} (sha256 {})", s.model.display(), s.model_sha256);
            println!(
                "run:   {} (manifest.json, steps.jsonl, metrics.json, plot.svg, vocab.json)",
                out.display()
            );
        }
    }
    Ok(())
}
