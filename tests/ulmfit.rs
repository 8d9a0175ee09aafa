//! The ULMFiT pipeline as a user runs it: `lm pretrain`, `lm finetune`,
//! `train --encoder`, on tiny configs (a fifth of fortunes8 as the corpus,
//! embedding 16, layers of 24 and 16, windows of 12). Each stage run twice
//! gives the same bytes, and so does each stage stopped in the middle and
//! resumed; the manifests chain the stages by model sha256; gradual
//! unfreezing leaves frozen groups bit-untouched; discriminative rates are
//! applied per group.

mod support;

use shoestring::checkpoint;
use shoestring::nn::{LanguageModel, TextClassifier};
use shoestring::run::Manifest;
use shoestring::train::schedule::pow;
use shoestring::Device;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::runs::*;

/// The tiny model and data every stage uses (flag and value pairs).
const TINY: &[&str] = &[
    "--batch-size",
    "8",
    "--emb",
    "16",
    "--hidden",
    "24,16",
    "--bptt",
    "12",
    "--max-vocab",
    "400",
    "--checkpoint-every",
    "4",
    "--fingerprint-every",
    "3",
];

struct Pipeline {
    scratch: Scratch,
    pre: PathBuf,
    ft: PathBuf,
}

/// `stage` (subcommand words, then flag and value pairs) with `out`,
/// TINY and `extra`; a flag `extra` gives replaces the stage's or TINY's.
fn run(stage: &[&str], out: &Path, extra: &[&str]) -> std::process::Output {
    let words = stage.iter().take_while(|a| !a.starts_with("--")).count();
    let mut a: Vec<&str> = stage[..words].to_vec();
    a.extend_from_slice(&["--out", out.to_str().unwrap()]);
    for pair in stage[words..].chunks(2).chain(TINY.chunks(2)) {
        if !extra.contains(&pair[0]) {
            a.extend_from_slice(pair);
        }
    }
    a.extend_from_slice(extra);
    ok(shoestring(&a))
}

fn pretrain_args(s: &Scratch) -> Vec<&str> {
    vec!["lm", "pretrain", "--lm-data", &s.data, "--epochs", "2"]
}

/// One pretrained and one fine-tuned run, shared by the tests.
fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        let scratch = Scratch::new("ulmfit");
        let pre = scratch.run_dir("pre");
        run(&pretrain_args(&scratch), &pre, &[]);
        let ft = scratch.run_dir("ft");
        run(&finetune_args(&scratch, &pre), &ft, &[]);
        Pipeline { scratch, pre, ft }
    })
}

fn finetune_args<'a>(s: &'a Scratch, pre: &'a Path) -> Vec<&'a str> {
    vec![
        "lm",
        "finetune",
        "--from",
        pre.to_str().unwrap(),
        "--data",
        &s.data,
        "--epochs",
        "2",
    ]
}

fn classifier_args<'a>(s: &'a Scratch, ft: &'a Path) -> Vec<&'a str> {
    vec![
        "train",
        "--encoder",
        ft.to_str().unwrap(),
        "--data",
        &s.data,
        "--unfreeze-schedule",
        "1,1,1",
        "--discriminative",
        "2.6",
    ]
}

/// The stage `args` run again into `name`, and once more stopped after
/// step 5 (mid-epoch, past a checkpoint) and resumed: both byte-identical
/// to `reference`.
fn assert_repeatable(p: &Pipeline, args: &[&str], reference: &Path, name: &str) {
    let again = p.scratch.run_dir(&format!("{name}-again"));
    run(args, &again, &[]);
    assert_same_run(reference, &again);
    let stopped = p.scratch.run_dir(&format!("{name}-stopped"));
    let o = run(args, &stopped, &["--stop-after-steps", "5"]);
    assert!(text(&o).contains("--resume"), "{}", text(&o));
    assert!(!stopped.join("model.safetensors").exists());
    // The saved config is used (a fine-tune's parent comes from its manifest).
    let mut resume: Vec<&str> = args
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .copied()
        .collect();
    resume.extend_from_slice(&["--resume", stopped.to_str().unwrap()]);
    ok(shoestring(&resume));
    assert_same_run(reference, &stopped);
}

#[test]
fn pretraining_is_byte_identical_when_repeated_and_when_resumed() {
    let p = pipeline();
    assert_repeatable(p, &pretrain_args(&p.scratch), &p.pre, "pre");
    let m: serde_json::Value = serde_json::from_slice(&read(&p.pre.join("metrics.json"))).unwrap();
    let ppl = m[1]["valid_perplexity"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0, "{m}");
}

#[test]
fn fine_tuning_is_byte_identical_when_repeated_and_when_resumed() {
    let p = pipeline();
    assert_repeatable(p, &finetune_args(&p.scratch, &p.pre), &p.ft, "ft");
}

#[test]
fn the_classifier_on_the_encoder_is_byte_identical_when_repeated_and_when_resumed() {
    let p = pipeline();
    let cls = p.scratch.run_dir("cls");
    run(&classifier_args(&p.scratch, &p.ft), &cls, &[]);
    assert_repeatable(p, &classifier_args(&p.scratch, &p.ft), &cls, "cls");
    // The chain: each manifest names its parent's model by sha256.
    let sha = |run: &Path| checkpoint::file_sha256(&run.join("model.safetensors")).unwrap();
    let parent = |run: &Path| {
        Manifest::read(&run.join("manifest.json"))
            .unwrap()
            .parent
            .unwrap()
    };
    assert_eq!(parent(&p.ft).model_sha256, sha(&p.pre));
    assert_eq!(parent(&cls).model_sha256, sha(&p.ft));
    assert!(Manifest::read(&p.pre.join("manifest.json"))
        .unwrap()
        .parent
        .is_none());
    // diff works on every stage.
    for run in [&p.pre, &p.ft, &cls] {
        let o = shoestring(&["diff", run.to_str().unwrap(), run.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
}

#[test]
fn fine_tuning_extends_the_vocabulary_and_reads_no_validation_text() {
    let p = pipeline();
    let vocab = |run: &Path| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&read(&run.join("vocab.json"))).unwrap();
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    let (pre, ft) = (vocab(&p.pre), vocab(&p.ft));
    assert_eq!(ft[..pre.len()], pre[..], "the pretrained ids are kept");
    let m = Manifest::read(&p.ft.join("manifest.json")).unwrap();
    let all = shoestring::data::load(
        &shoestring::data::DataSource::parse(&p.scratch.data).unwrap(),
        0.2,
        42,
    )
    .unwrap();
    // Held-out and training texts of the fine-tune are the dataset's training texts.
    assert_eq!(m.dataset.train + m.dataset.valid, all.train.len());
    let lm = LanguageModel::load(&Device::Cpu, &p.ft.join("model.safetensors")).unwrap();
    assert_eq!(lm.config.vocab, ft.len());
}

/// The group learning rates and frozen flags a checkpoint's optimizer holds.
fn groups(dir: &Path) -> Vec<(f32, bool)> {
    let l = checkpoint::load::<TextClassifier>(dir, &Device::Cpu).unwrap();
    l.optimizer
        .groups
        .iter()
        .map(|g| (g.lr, g.frozen))
        .collect()
}

fn tensor_bits(tensors: &[shoestring::nn::HostTensor], prefix: &str) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<(String, Vec<u32>)> = tensors
        .iter()
        .filter(|t| t.name.starts_with(prefix))
        .map(|t| {
            (
                t.name.clone(),
                t.values.iter().map(|x| x.to_bits()).collect(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn gradual_unfreezing_leaves_frozen_groups_bit_untouched_and_rates_are_discriminative() {
    let p = pipeline();
    let run_dir = p.scratch.run_dir("unfreeze");
    // Four groups (embedding, two LSTM layers, head); stages of one epoch
    // each: the head, then the top LSTM layer too, then everything.
    run(
        &classifier_args(&p.scratch, &p.ft),
        &run_dir,
        &["--checkpoint-every", "0"],
    );
    let lm = LanguageModel::load(&Device::Cpu, &p.ft.join("model.safetensors")).unwrap();
    let lm_tensors = lm.encoder_tensors().unwrap();
    let ckpts = checkpoint::list(&run_dir.join("checkpoints")).unwrap();
    assert_eq!(ckpts.len(), 3, "one checkpoint per epoch: {ckpts:?}");
    let model_after = |i: usize| {
        let dir = &ckpts[ckpts.len() - 1 - i].1;
        TextClassifier::load(&Device::Cpu, &dir.join("model.safetensors"))
            .unwrap()
            .tensors()
            .unwrap()
    };
    // After stage 1 (head only): the whole encoder is the fine-tuned one.
    let e1 = model_after(0);
    assert_eq!(
        tensor_bits(&e1, "encoder."),
        tensor_bits(&lm_tensors, "encoder.")
    );
    // After stage 2: the top layer moved, the embedding and layer 0 did not.
    let e2 = model_after(1);
    assert_eq!(
        tensor_bits(&e2, "encoder.embedding"),
        tensor_bits(&lm_tensors, "encoder.embedding")
    );
    assert_eq!(
        tensor_bits(&e2, "encoder.lstm.0."),
        tensor_bits(&lm_tensors, "encoder.lstm.0.")
    );
    assert_ne!(
        tensor_bits(&e2, "encoder.lstm.1."),
        tensor_bits(&lm_tensors, "encoder.lstm.1.")
    );
    // After stage 3: everything moved.
    let e3 = model_after(2);
    assert_ne!(
        tensor_bits(&e3, "encoder.embedding"),
        tensor_bits(&lm_tensors, "encoder.embedding")
    );
    // Frozen flags and rates by stage: the top group at the schedule's
    // rate, each one below it divided by 2.6.
    for (i, frozen_below) in [(0, 3), (1, 2), (2, 0)] {
        let g = groups(&ckpts[ckpts.len() - 1 - i].1);
        assert_eq!(g.len(), 4);
        for (k, &(lr, frozen)) in g.iter().enumerate() {
            assert_eq!(frozen, k < frozen_below, "stage {i} group {k}: {g:?}");
            assert_eq!(lr, g[3].0 / pow(2.6, 3 - k), "stage {i} group {k}: {g:?}");
        }
    }
}

#[test]
fn discriminative_rates_move_each_group_by_its_own_rate() {
    let p = pipeline();
    let run_dir = p.scratch.run_dir("disc");
    // One stage (everything trains) of one Adam step at a constant rate:
    // Adam's first step moves every weight with a gradient by about its
    // group's rate (|m / sqrt(v)| = 1), so each group's largest move is its rate.
    run(
        &classifier_args(&p.scratch, &p.ft),
        &run_dir,
        &[
            "--unfreeze-schedule",
            "1",
            "--schedule",
            "constant",
            "--lr",
            "0.01",
            "--max-steps",
            "1",
        ],
    );
    let lm = LanguageModel::load(&Device::Cpu, &p.ft.join("model.safetensors")).unwrap();
    let before = lm.encoder_tensors().unwrap();
    let after = TextClassifier::load(&Device::Cpu, &run_dir.join("model.safetensors"))
        .unwrap()
        .tensors()
        .unwrap();
    let max_move = |prefix: &str| -> f32 {
        let mut m = 0f32;
        for b in before.iter().filter(|t| t.name.starts_with(prefix)) {
            let a = after.iter().find(|t| t.name == b.name).unwrap();
            for (x, y) in a.values.iter().zip(&b.values) {
                m = m.max((x - y).abs());
            }
        }
        m
    };
    for (prefix, below_top) in [
        ("encoder.lstm.1.", 1),
        ("encoder.lstm.0.", 2),
        ("encoder.embedding", 3),
    ] {
        let want = 0.01 / pow(2.6, below_top);
        let got = max_move(prefix);
        assert!(
            (got - want).abs() < want * 0.02,
            "{prefix}: moved {got}, rate {want}"
        );
    }
}

#[test]
fn frozen_groups_get_no_gradient_and_the_others_the_same_bits() {
    use shoestring::autograd::Graph;
    use shoestring::nn::{ClassifierConfig, TextBatch};
    use shoestring::rng::RngState;
    let cpu = Device::Cpu;
    let config = ClassifierConfig::ulmfit_small(50, 3);
    let texts: Vec<Vec<u32>> = (0..6)
        .map(|i| (0..4 + i).map(|j| ((i * 7 + j * 3) % 50) as u32).collect())
        .collect();
    let batch = TextBatch::new(&cpu, &texts, &[0, 1, 2, 0, 1, 2]).unwrap();
    let rng = RngState::new(3);
    let grads = |freeze: &[shoestring::autograd::ParamId]| {
        let mut model = TextClassifier::new(&cpu, &config, 9).unwrap();
        let mut g = Graph::new(&cpu).unwrap();
        g.freeze(freeze);
        let loss = model.loss(&mut g, &batch, &rng).unwrap();
        let grads = g.backward(loss).unwrap();
        model
            .params
            .iter()
            .map(|(id, _)| {
                grads.get(id).map(|t| {
                    t.to_vec_f32()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect::<Vec<u32>>()
                })
            })
            .collect::<Vec<_>>()
    };
    let model = TextClassifier::new(&cpu, &config, 9).unwrap();
    // Everything below the head frozen (stage 1 of gradual unfreezing).
    let head = model.params.groups() - 1;
    let frozen: Vec<_> = model
        .params
        .iter()
        .filter(|(_, p)| p.group < head)
        .map(|(id, _)| id)
        .collect();
    let (all, some) = (grads(&[]), grads(&frozen));
    for ((id, p), (a, s)) in model.params.iter().zip(all.iter().zip(&some)) {
        if frozen.contains(&id) {
            assert!(s.is_none(), "{}: a frozen parameter got a gradient", p.name);
        } else {
            assert!(a.is_some() && a == s, "{}: the gradient changed", p.name);
        }
    }
}
