//! `shoestring lm pretrain` and `shoestring lm finetune`: ULMFiT's
//! language-model stages, with the classifier's flags (`TrainArgs`) and
//! defaults of their own.

use super::train::{parent_tokenizer, resolve_config_from, run_with, TrainArgs};
use clap::{Args, Subcommand};
use shoestring::train::lm::{train_lm, LmStage};
use shoestring::train::schedule::Schedule;
use shoestring::train::{Preset, TrainConfig};

/// The language-model stages.
#[derive(Subcommand)]
pub enum LmCommand {
    /// Pretrain an AWD-LSTM language model (tied decoder, fastai's LM
    /// dropouts, BPTT windows from a named Philox stream) on a corpus: by
    /// default the embedded `fortunes-lm` (Debian's 40 fortune files less
    /// fortunes8's validation texts). Prints and logs validation perplexity
    /// per epoch on a seeded held-out tenth of the texts.
    ///
    /// The flags are `train`'s, but the defaults shown below are the
    /// classifier's: a language model defaults to the `ulmfit` preset
    /// (embedding 128, layers 256 and 128), fastai's LM dropouts times 0.3,
    /// 6 epochs, lr 0.005 on a one-cycle schedule, weight decay 0.01, clip
    /// 0.25, min_freq 3, at most 8,000 tokens, valid_fraction 0.1
    /// (`--print-config` prints them).
    Pretrain(Box<PretrainArgs>),
    /// Fine-tune a finished language-model run on a classification
    /// dataset's training texts only (never its validation texts), its
    /// vocabulary extended with the dataset's new tokens (new rows: the
    /// mean embedding). Then: `shoestring train --encoder FT_RUN`.
    ///
    /// The flags are `train`'s, but the defaults shown below are the
    /// classifier's: a fine-tune takes its sizes and tokenizer from the
    /// parent and defaults to fastai's LM dropouts times 0.3, 4 epochs, lr
    /// 0.002 on a one-cycle schedule, weight decay 0.01, clip 0.25,
    /// min_freq 3 for the new tokens, valid_fraction 0.1 (`--print-config`
    /// prints them).
    Finetune(Box<FinetuneArgs>),
}

/// `shoestring lm pretrain`.
#[derive(Args)]
pub struct PretrainArgs {
    /// The corpus: `fortunes-lm` (embedded, the default), a folder of
    /// `.txt` files (one text each), or a CSV file's `text` column.
    #[arg(long)]
    pub lm_data: Option<String>,
    #[command(flatten)]
    pub common: TrainArgs,
}

/// `shoestring lm finetune`.
#[derive(Args)]
pub struct FinetuneArgs {
    /// The pretrained run (`shoestring lm pretrain --out LM_RUN`).
    #[arg(long, value_name = "LM_RUN", required_unless_present = "resume")]
    pub from: Option<String>,
    #[command(flatten)]
    pub common: TrainArgs,
}

/// The language-model defaults: the `ulmfit` preset's sizes with fastai's
/// LM dropouts times 0.3 (a model this small underfits with fastai's
/// full dropouts: its training loss stayed above its validation loss), 32
/// rows of BPTT 72, Adam (weight decay 0.01, fastai's) on a one-cycle
/// schedule, gradient norm clipped to 0.25 (AWD-LSTM), a tenth of the
/// texts held out, words seen 3 times (fastai's `min_freq`), at most 8,000
/// of them (the decoder's softmax is most of a step's time).
fn lm_defaults(data: &str, epochs: u32, lr: f32) -> TrainConfig {
    let mut c = TrainConfig {
        data: data.into(),
        valid_fraction: 0.1,
        min_freq: 3,
        max_vocab: Some(8000),
        epochs,
        lr,
        weight_decay: 0.01,
        clip: Some(0.25),
        schedule: Schedule::OneCycle,
        drop_mult: 0.3,
        ..TrainConfig::default()
    };
    c.model.preset = Preset::Ulmfit;
    c
}

/// Runs `shoestring lm ...`.
pub fn run(cmd: LmCommand) -> anyhow::Result<()> {
    match cmd {
        LmCommand::Pretrain(a) => {
            let mut base = lm_defaults("fortunes-lm", 6, 5e-3);
            if let Some(d) = &a.lm_data {
                base.data = d.clone();
            }
            let mut config = resolve_config_from(&a.common, base)?;
            if let Some(d) = &a.lm_data {
                config.data = d.clone();
            }
            run_with(
                &a.common,
                config,
                ("pretraining a language model", "shoestring lm pretrain"),
                |c, o, p| train_lm(c, &LmStage::Pretrain, o, p),
            )
        }
        LmCommand::Finetune(a) => {
            let from = match (&a.from, &a.common.resume) {
                (Some(f), _) => f.clone(),
                (None, Some(run)) => parent_of(run)?,
                (None, None) => anyhow::bail!("--from LM_RUN is required"),
            };
            let mut base = lm_defaults("fortunes8", 4, 2e-3);
            base.tokenizer = parent_tokenizer(&from)?;
            let config = resolve_config_from(&a.common, base)?;
            run_with(
                &a.common,
                config,
                ("fine-tuning a language model", "shoestring lm finetune"),
                |c, o, p| train_lm(c, &LmStage::Finetune { from }, o, p),
            )
        }
    }
}

/// The parent run a fine-tune run's manifest names.
fn parent_of(run: &std::path::Path) -> anyhow::Result<String> {
    let m = shoestring::run::Manifest::read(&shoestring::run::RunDir::new(run).manifest())?;
    m.parent
        .map(|p| p.run)
        .ok_or_else(|| anyhow::anyhow!("{}: the manifest names no parent run", run.display()))
}
