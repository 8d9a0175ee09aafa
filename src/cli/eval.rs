//! `shoestring eval` and `shoestring predict`: a trained run's model and
//! vocabulary applied to a dataset (accuracy, per-class precision and
//! recall, confusion matrix) or to texts (top classes with probabilities).

use anyhow::Context;
use clap::Args;
use shoestring::amp::Precision;
use shoestring::data::{self, DataSource};
use shoestring::nn::TextClassifier;
use shoestring::run::{Manifest, RunDir};
use shoestring::train::eval::{evaluate, logits, probabilities};
use shoestring::train::{TrainConfig, VocabFile};
use shoestring::Device;
use std::io::BufRead;
use std::path::PathBuf;

/// `shoestring eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A finished run directory (its model.safetensors and vocab.json).
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// The data: `fortunes8`, a CSV file or an aclImdb folder [default: the
    /// run's own data].
    #[arg(long)]
    pub data: Option<String>,
    /// Which texts: `valid`, `train` or `all`.
    #[arg(long, default_value = "valid", value_parser = ["valid", "train", "all"])]
    pub split: String,
    /// `cpu`, `sim` or `cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `shoestring predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A finished run directory.
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// Texts to classify; without any, one text per line of stdin.
    pub texts: Vec<String>,
    /// Classes shown per text.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// `cpu`, `sim` or `cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// One JSON object per text instead: the text and every class's
    /// probability at full precision.
    #[arg(long)]
    pub json: bool,
}

struct Loaded {
    model: TextClassifier,
    vocab: VocabFile,
    /// The run's config, when its manifest reads.
    config: Option<TrainConfig>,
    device: Device,
}

impl Loaded {
    fn precision(&self) -> Precision {
        self.config.as_ref().map_or(Precision::F32, |c| c.precision)
    }
}

fn load(run: &std::path::Path, device: &str) -> anyhow::Result<Loaded> {
    let dir = RunDir::new(run);
    anyhow::ensure!(
        dir.model().is_file(),
        "{}: no model.safetensors (is the run finished? `shoestring train --resume {}` completes it)",
        run.display(),
        run.display()
    );
    let device = Device::parse(device)?;
    let model = TextClassifier::load(&device, &dir.model())?;
    let vocab = VocabFile::read(&dir.vocab())?;
    anyhow::ensure!(
        vocab.classes.len() == model.config.classes && vocab.tokens.len() == model.config.vocab,
        "{}: vocab.json ({} tokens, {} classes) does not fit the model ({} tokens, {} classes)",
        run.display(),
        vocab.tokens.len(),
        vocab.classes.len(),
        model.config.vocab,
        model.config.classes
    );
    let config = Manifest::read(&dir.manifest())
        .ok()
        .and_then(|m| serde_json::from_value::<TrainConfig>(m.config).ok());
    Ok(Loaded {
        model,
        vocab,
        config,
        device,
    })
}

/// Runs `shoestring eval`.
pub fn eval(a: EvalArgs) -> anyhow::Result<()> {
    let mut l = load(&a.model, &a.device)?;
    // The run's own config: its data, and its split of a CSV without is_valid.
    let config = l.config.clone().with_context(|| {
        format!(
            "{}: no readable manifest.json with its config",
            a.model.display()
        )
    })?;
    let data_name = a.data.clone().unwrap_or_else(|| config.data.clone());
    let dataset = data::load(
        &DataSource::parse(&data_name)?,
        config.valid_fraction,
        config.seed,
    )?;
    let examples: Vec<&data::Example> = match a.split.as_str() {
        "valid" => dataset.valid.iter().collect(),
        "train" => dataset.train.iter().collect(),
        "all" => dataset.train.iter().chain(&dataset.valid).collect(),
        s => anyhow::bail!("--split {s}: expected valid, train or all"),
    };
    anyhow::ensure!(!examples.is_empty(), "{data_name}: no {} texts", a.split);
    // The data's class names, mapped to the model's class indices.
    let mut to_model = Vec::with_capacity(dataset.classes.len());
    for c in &dataset.classes {
        let k = l
            .vocab
            .classes
            .iter()
            .position(|m| m == c)
            .with_context(|| {
                format!(
                    "{data_name}: class `{c}` is not one the model knows ({})",
                    l.vocab.classes.join(", ")
                )
            })?;
        to_model.push(k);
    }
    let vocab = l.vocab.vocab()?;
    let texts: Vec<Vec<u32>> = examples
        .iter()
        .map(|e| vocab.encode(&e.text, l.vocab.max_len))
        .collect();
    let labels: Vec<u32> = examples
        .iter()
        .map(|e| to_model[e.label as usize] as u32)
        .collect();
    let precision = l.precision();
    let e = evaluate(&mut l.model, &l.device, precision, &texts, &labels, 64)?;
    let c = &e.confusion;
    let n = c.total();
    println!(
        "{n} {} texts of {data_name}: accuracy {:.4} ({}/{n}), loss {:.4}",
        a.split,
        e.accuracy,
        c.correct(),
        e.loss
    );
    println!();
    println!("| class | texts | precision | recall |");
    println!("|---|---:|---:|---:|");
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for (i, name) in l.vocab.classes.iter().enumerate() {
        println!(
            "| {name} | {} | {} | {} |",
            c.support(i),
            show(c.precision(i)),
            show(c.recall(i))
        );
    }
    println!();
    println!("confusion matrix (rows: true class, columns: predicted, in the order above):");
    let w = l.vocab.classes.iter().map(String::len).max().unwrap_or(5);
    for (i, name) in l.vocab.classes.iter().enumerate() {
        let cells: Vec<String> = c.counts[i].iter().map(|n| format!("{n:>5}")).collect();
        println!("  {name:<w$} {}", cells.join(""));
    }
    Ok(())
}

/// Runs `shoestring predict`.
pub fn predict(a: PredictArgs) -> anyhow::Result<()> {
    let mut l = load(&a.model, &a.device)?;
    let texts: Vec<String> = if a.texts.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .context("reading stdin")?
    } else {
        a.texts.clone()
    };
    let vocab = l.vocab.vocab()?;
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| vocab.encode(t, l.vocab.max_len))
        .collect();
    let precision = l.precision();
    let all = logits(&mut l.model, &l.device, precision, &ids, 64)?;
    for (text, row) in texts.iter().zip(&all) {
        let p = probabilities(row);
        if a.json {
            let probs: serde_json::Map<String, serde_json::Value> = l
                .vocab
                .classes
                .iter()
                .zip(&p)
                .map(|(c, &p)| (c.clone(), serde_json::Value::from(p)))
                .collect();
            println!(
                "{}",
                serde_json::json!({ "text": text, "probabilities": probs })
            );
            continue;
        }
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&x, &y| p[y].total_cmp(&p[x]).then(x.cmp(&y)));
        let top: Vec<String> = order
            .iter()
            .take(a.top.max(1))
            .map(|&i| format!("{} {:.3}", l.vocab.classes[i], p[i]))
            .collect();
        println!("{}\t{}", top.join("  "), text);
    }
    Ok(())
}
