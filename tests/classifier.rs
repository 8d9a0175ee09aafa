//! The text classifier end to end: its forward against an independent f64
//! implementation written here from the equations (no shared code), packed
//! rows against rows run alone, dropout determinism (bidirectional, every
//! dropout on), gradient checkpointing, and whole training steps bit for bit
//! across devices and precisions, with the one-read / no-allocation budget.

mod support;

use shoestring::amp::{LossScaler, Precision};
use shoestring::autograd::{Graph, ParamId};
use shoestring::device::Device;
use shoestring::nn::{ClassifierConfig, TextBatch, TextClassifier};
use shoestring::optim::Optimizer;
use shoestring::rng::RngState;
use shoestring::step::{train_step, StepConfig};
use support::test_devices;

/// Token sequences of varied lengths (Philox-free: a fixed formula).
fn texts(n: usize, vocab: usize, max_len: usize) -> (Vec<Vec<u32>>, Vec<u32>) {
    let mut t = Vec::new();
    for i in 0..n {
        let len = 1 + (i * 7 + 3) % max_len;
        t.push(
            (0..len)
                .map(|j| ((i * 31 + j * 17 + 5) % vocab) as u32)
                .collect(),
        );
    }
    let labels = (0..n).map(|i| (i % 3) as u32).collect();
    (t, labels)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The bits of every tensor that defines the model: parameters, then the
/// head's BatchNorm running statistics (last).
fn state_bits(model: &TextClassifier) -> Vec<Vec<u32>> {
    model
        .tensors()
        .unwrap()
        .iter()
        .map(|t| bits(&t.values))
        .collect()
}

fn grads_bits(
    model: &mut TextClassifier,
    dev: &Device,
    batch: &TextBatch,
    rng: &RngState,
) -> Vec<Vec<u32>> {
    let mut g = Graph::new(dev).unwrap();
    let loss = model.loss(&mut g, batch, rng).unwrap();
    let grads = g.backward(loss).unwrap();
    (0..model.params.len())
        .map(|i| bits(&grads.get(ParamId(i)).unwrap().to_vec_f32().unwrap()))
        .collect()
}

// ---------------------------------------------------------------------------
// An independent forward, in f64, from the equations.
// ---------------------------------------------------------------------------

struct RefModel {
    p: std::collections::BTreeMap<String, (Vec<usize>, Vec<f64>)>,
}

impl RefModel {
    fn get(&self, name: &str) -> &[f64] {
        &self.p[name].1
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// One LSTM direction over one sequence: gates = W_ih x + b + W_hh h,
    /// in the order i, f, g, o.
    fn lstm_dir(&self, prefix: &str, suffix: &str, xs: &[Vec<f64>], h: usize) -> Vec<Vec<f64>> {
        let (wi, wh, b) = (
            self.get(&format!("{prefix}.weight_ih_{suffix}")),
            self.get(&format!("{prefix}.weight_hh_{suffix}")),
            self.get(&format!("{prefix}.bias_ih_{suffix}")),
        );
        let i_len = xs[0].len();
        let (mut hs, mut c) = (vec![0.0; h], vec![0.0; h]);
        let mut out = Vec::new();
        for x in xs {
            let mut gates = vec![0.0; 4 * h];
            for (r, gate) in gates.iter_mut().enumerate() {
                let mut s = b[r];
                for k in 0..i_len {
                    s += wi[r * i_len + k] * x[k];
                }
                for k in 0..h {
                    s += wh[r * h + k] * hs[k];
                }
                *gate = s;
            }
            for j in 0..h {
                let ig = Self::sigmoid(gates[j]);
                let fg = Self::sigmoid(gates[h + j]);
                let gg = gates[2 * h + j].tanh();
                let og = Self::sigmoid(gates[3 * h + j]);
                c[j] = fg * c[j] + ig * gg;
                hs[j] = og * c[j].tanh();
            }
            out.push(hs.clone());
        }
        out
    }

    fn forward(&self, cfg: &ClassifierConfig, texts: &[Vec<u32>]) -> Vec<Vec<f64>> {
        let emb = self.get("encoder.embedding.weight");
        // Encoder, per sequence.
        let mut pooled: Vec<Vec<f64>> = Vec::new();
        for t in texts {
            let mut xs: Vec<Vec<f64>> = t
                .iter()
                .map(|&id| emb[id as usize * cfg.emb..(id as usize + 1) * cfg.emb].to_vec())
                .collect();
            for (l, &h) in cfg.hidden.iter().enumerate() {
                let fwd = self.lstm_dir(&format!("encoder.lstm.{l}"), "l0", &xs, h);
                xs = if cfg.bidirectional {
                    let rev: Vec<Vec<f64>> = xs.iter().rev().cloned().collect();
                    let mut bwd =
                        self.lstm_dir(&format!("encoder.lstm.{l}"), "l0_reverse", &rev, h);
                    bwd.reverse();
                    fwd.iter()
                        .zip(&bwd)
                        .map(|(a, b)| [a.clone(), b.clone()].concat())
                        .collect()
                } else {
                    fwd
                };
            }
            let f = xs[0].len();
            let n = xs.len() as f64;
            let last = xs.last().unwrap().clone();
            let max: Vec<f64> = (0..f)
                .map(|j| xs.iter().map(|x| x[j]).fold(f64::MIN, f64::max))
                .collect();
            let mean: Vec<f64> = (0..f)
                .map(|j| xs.iter().map(|x| x[j]).sum::<f64>() / n)
                .collect();
            pooled.push([last, max, mean].concat());
        }
        // Head: BatchNorm (batch statistics) -> Linear -> ReLU ... -> logits.
        let mut z = pooled;
        let blocks = cfg.head_hidden.len() + 1;
        for k in 0..blocks {
            let f = z[0].len();
            let (gm, bt) = (
                self.get(&format!("head.{k}.bn.weight")),
                self.get(&format!("head.{k}.bn.bias")),
            );
            let rows = z.len() as f64;
            for j in 0..f {
                let m = z.iter().map(|r| r[j]).sum::<f64>() / rows;
                let v = z.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / rows;
                for r in z.iter_mut() {
                    r[j] = gm[j] * (r[j] - m) / (v + 1e-5).sqrt() + bt[j];
                }
            }
            let (w, b) = (
                self.get(&format!("head.{k}.linear.weight")),
                self.get(&format!("head.{k}.linear.bias")),
            );
            let out = b.len();
            z = z
                .iter()
                .map(|r| {
                    (0..out)
                        .map(|o| {
                            let s = b[o] + (0..f).map(|j| w[o * f + j] * r[j]).sum::<f64>();
                            if k + 1 < blocks {
                                s.max(0.0)
                            } else {
                                s
                            }
                        })
                        .collect()
                })
                .collect();
        }
        z
    }
}

fn tiny_config(bidirectional: bool) -> ClassifierConfig {
    ClassifierConfig {
        vocab: 23,
        classes: 3,
        emb: 5,
        hidden: vec![6, 4],
        bidirectional,
        embed_p: 0.0,
        input_p: 0.0,
        hidden_p: 0.0,
        weight_p: 0.0,
        head_hidden: vec![7],
        head_dropouts: vec![0.0, 0.0],
        checkpoint_segments: 0,
    }
}

#[test]
fn classifier_forward_matches_an_independent_f64_implementation_within_1e_5() {
    for bidirectional in [false, true] {
        let cfg = tiny_config(bidirectional);
        let dev = Device::Cpu;
        let mut model = TextClassifier::new(&dev, &cfg, 42).unwrap();
        let (texts, labels) = texts(6, cfg.vocab, 9);
        let batch = TextBatch::new(&dev, &texts, &labels).unwrap();
        let mut g = Graph::new(&dev).unwrap();
        let logits = model.forward(&mut g, &batch, &RngState::new(1)).unwrap();
        let got = g.value(logits).to_vec_f32().unwrap();
        let reference = RefModel {
            p: model
                .params
                .to_host()
                .unwrap()
                .into_iter()
                .map(|t| {
                    (
                        t.name,
                        (t.dims, t.values.into_iter().map(f64::from).collect()),
                    )
                })
                .collect(),
        };
        let sorted: Vec<Vec<u32>> = batch.order.iter().map(|&i| texts[i].clone()).collect();
        let want = reference.forward(&cfg, &sorted);
        let scale = want.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
        for (r, row) in want.iter().enumerate() {
            for (c, &w) in row.iter().enumerate() {
                let x = f64::from(got[r * cfg.classes + c]);
                assert!(
                    (x - w).abs() <= 1e-5 * scale.max(1.0),
                    "bidirectional={bidirectional} logit ({r},{c}): {x} vs {w}"
                );
            }
        }
    }
}

/// Inference (no dropout, running statistics): every row of a packed batch
/// gives the bits it gives alone: no padding is ever computed.
#[test]
fn packed_rows_give_the_bits_of_the_same_rows_run_alone() {
    let cfg = tiny_config(true);
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices(
        "packed_rows_give_the_bits_of_the_same_rows_run_alone",
    ));
    for dev in &devices {
        let mut model = TextClassifier::new(dev, &cfg, 7).unwrap();
        let (texts, labels) = texts(7, cfg.vocab, 11);
        let batch = TextBatch::new(dev, &texts, &labels).unwrap();
        let rng = RngState::new(1);
        let mut g = Graph::inference(dev, Precision::F32).unwrap();
        let logits = model.forward(&mut g, &batch, &rng).unwrap();
        let all = g.value(logits).to_vec_f32().unwrap();
        for (row, &i) in batch.order.iter().enumerate() {
            let one = TextBatch::new(dev, &texts[i..i + 1], &labels[i..i + 1]).unwrap();
            let mut g1 = Graph::inference(dev, Precision::F32).unwrap();
            let l1 = model.forward(&mut g1, &one, &rng).unwrap();
            let alone = g1.value(l1).to_vec_f32().unwrap();
            assert_eq!(
                bits(&alone),
                bits(&all[row * cfg.classes..(row + 1) * cfg.classes]),
                "{dev}: text {i} (length {})",
                texts[i].len()
            );
        }
    }
}

fn all_dropout_config() -> ClassifierConfig {
    ClassifierConfig {
        embed_p: 0.1,
        input_p: 0.3,
        hidden_p: 0.25,
        weight_p: 0.4,
        head_dropouts: vec![0.3, 0.1],
        ..tiny_config(true)
    }
}

#[test]
fn bidirectional_dropout_gradients_repeat_at_one_rng_state_and_change_at_the_next() {
    let dev = Device::Cpu;
    let cfg = all_dropout_config();
    let mut model = TextClassifier::new(&dev, &cfg, 3).unwrap();
    let (texts, labels) = texts(8, cfg.vocab, 10);
    let batch = TextBatch::new(&dev, &texts, &labels).unwrap();
    let mut rng = RngState::new(99);
    let a = grads_bits(&mut model, &dev, &batch, &rng);
    let b = grads_bits(&mut model, &dev, &batch, &rng);
    assert_eq!(a, b, "same RNG state, same masks, same gradients");
    rng.advance().unwrap();
    let c = grads_bits(&mut model, &dev, &batch, &rng);
    // Every dropped parameter path sees new masks: the embedding's, every
    // LSTM direction's recurrent weights, and the head's.
    for (i, (x, y)) in a.iter().zip(&c).enumerate() {
        let name = &model.params.get(ParamId(i)).name;
        if name.contains("weight_hh")
            || name.contains("embedding")
            || name.contains("head.0.linear.weight")
        {
            assert_ne!(x, y, "{name}: the next step must draw new masks");
        }
    }
}

#[test]
fn gradient_checkpointing_with_1_2_4_segments_gives_bitwise_equal_gradients() {
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices(
        "gradient_checkpointing_with_1_2_4_segments_gives_bitwise_equal_gradients",
    ));
    for dev in &devices {
        let (texts, labels) = texts(8, 23, 13);
        let batch = TextBatch::new(dev, &texts, &labels).unwrap();
        let rng = RngState::new(5);
        let mut want = None;
        for k in [0usize, 1, 2, 4] {
            let cfg = ClassifierConfig {
                checkpoint_segments: k,
                ..all_dropout_config()
            };
            let mut model = TextClassifier::new(dev, &cfg, 3).unwrap();
            let got = grads_bits(&mut model, dev, &batch, &rng);
            match &want {
                None => want = Some(got),
                Some(w) => assert!(w == &got, "{dev}: K = {k} differs from no checkpointing"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Whole steps.
// ---------------------------------------------------------------------------

fn small_setup(dev: &Device) -> (TextClassifier, Optimizer, TextBatch) {
    let cfg = ClassifierConfig::small(300, 4);
    let model = TextClassifier::new(dev, &cfg, 2024).unwrap();
    let mut opt = Optimizer::adam(&model.params, 3e-3, 0.01);
    opt.set_discriminative_lr(3e-3, 2.6);
    let (texts, labels) = texts(12, cfg.vocab, 20);
    let labels: Vec<u32> = labels.iter().map(|l| l % 4).collect();
    let batch = TextBatch::new(dev, &texts, &labels).unwrap();
    (model, opt, batch)
}

/// Runs `steps` steps and returns the losses' bits and the final parameters' bits.
fn train(dev: &Device, precision: Precision, steps: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let (mut model, mut opt, batch) = small_setup(dev);
    let mut scaler = LossScaler {
        scale: 1024.0,
        ..LossScaler::default()
    };
    let config = StepConfig {
        precision,
        clip: Some(0.5),
        ..StepConfig::default()
    };
    let mut rng = RngState::new(77);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let s = train_step(
            &mut model,
            &mut opt,
            Some(&mut scaler),
            &config,
            &batch,
            &mut rng,
        )
        .unwrap();
        assert!(s.applied);
        losses.push(s.report.loss.to_bits());
    }
    let params = model
        .params
        .iter()
        .map(|(_, p)| bits(&p.value.to_vec_f32().unwrap()))
        .collect();
    (losses, params)
}

#[test]
fn training_steps_of_the_small_classifier_are_bitwise_equal_on_every_device_in_f32_and_mixed() {
    for precision in [Precision::F32, Precision::Mixed] {
        let want = train(&Device::Cpu, precision, 3);
        assert!(want.0.windows(2).any(|w| w[0] != w[1]), "the loss moves");
        for dev in test_devices("training_steps_bitwise_equal") {
            let got = train(&dev, precision, 3);
            assert_eq!(got.0, want.0, "{dev} {precision:?}: losses");
            assert!(
                got.1 == want.1,
                "{dev} {precision:?}: parameters after 3 steps"
            );
        }
    }
}

/// After a first step (which fills the pool), a step of the same shapes
/// allocates nothing and reads the device exactly once (the status block).
#[test]
fn a_steady_state_step_reads_the_device_once_and_allocates_nothing() {
    for dev in test_devices("a_steady_state_step_reads_the_device_once_and_allocates_nothing") {
        for precision in [Precision::F32, Precision::Mixed] {
            let (mut model, mut opt, batch) = small_setup(&dev);
            let mut scaler = LossScaler::default();
            let config = StepConfig {
                precision,
                clip: Some(1.0),
                ..StepConfig::default()
            };
            let mut rng = RngState::new(1);
            for step in 0..4 {
                let before = dev.counters();
                train_step(
                    &mut model,
                    &mut opt,
                    Some(&mut scaler),
                    &config,
                    &batch,
                    &mut rng,
                )
                .unwrap();
                let d = dev.counters().since(&before);
                if step >= 2 {
                    // Step 0 allocates everything; step 1 the optimizer's
                    // state (created at the first update); then nothing.
                    assert_eq!(d.allocations, 0, "{dev} {precision:?} step {step}: {d:?}");
                    assert_eq!(d.dtoh_copies, 1, "{dev} {precision:?} step {step}: {d:?}");
                }
            }
        }
    }
}

#[test]
fn a_forced_overflow_skips_exactly_that_step_and_leaves_every_weight_bit() {
    let dev = Device::Cpu;
    let (mut model, mut opt, batch) = small_setup(&dev);
    let config = StepConfig {
        precision: Precision::Mixed,
        clip: None,
        ..StepConfig::default()
    };
    let mut rng = RngState::new(3);
    // A scale far too large: the f16 gradients overflow.
    let mut scaler = LossScaler {
        scale: 1e36,
        growth_interval: 3,
        ..LossScaler::default()
    };
    let before = state_bits(&model);
    let s = train_step(
        &mut model,
        &mut opt,
        Some(&mut scaler),
        &config,
        &batch,
        &mut rng,
    )
    .unwrap();
    assert!(s.report.overflow() && !s.applied, "{s:?}");
    assert_eq!(
        (scaler.scale, scaler.skipped_steps, scaler.good_steps),
        (5e35, 1, 0)
    );
    assert!(
        state_bits(&model) == before,
        "an overflowed step changed a weight or a BatchNorm running statistic"
    );
    // A sane scale: an applied step moves the running statistics (so the
    // comparison above could fail), and exactly growth_interval good steps
    // double the scale.
    scaler.scale = 256.0;
    for i in 1..=3u32 {
        let s = train_step(
            &mut model,
            &mut opt,
            Some(&mut scaler),
            &config,
            &batch,
            &mut rng,
        )
        .unwrap();
        assert!(s.applied);
        if i == 1 {
            let moved = state_bits(&model);
            let n = moved.len();
            assert_ne!(moved[n - 2..], before[n - 2..], "running statistics move");
        }
        if i < 3 {
            assert_eq!((scaler.scale, scaler.good_steps), (256.0, i));
        }
    }
    assert_eq!((scaler.scale, scaler.good_steps), (512.0, 0));
    let json = serde_json::to_string(&scaler).unwrap();
    let back: LossScaler = serde_json::from_str(&json).unwrap();
    assert_eq!(back, scaler, "the scaler's whole state round-trips: {json}");
}

// ---------------------------------------------------------------------------
// Saving and loading.
// ---------------------------------------------------------------------------

fn logits_bits(model: &mut TextClassifier, dev: &Device, batch: &TextBatch) -> Vec<u32> {
    let mut g = Graph::inference(dev, Precision::F32).unwrap();
    let z = model.forward(&mut g, batch, &RngState::new(0)).unwrap();
    bits(&g.value(z).to_vec_f32().unwrap())
}

#[test]
fn a_saved_classifier_loads_with_every_bit_on_every_device() {
    let path = support::scratch_dir("a_saved_classifier_loads").join("classifier.safetensors");
    let (mut model, mut opt, batch) = small_setup(&Device::Cpu);
    // Train a step so the head's running statistics are not their initial values.
    let config = StepConfig {
        precision: Precision::F32,
        clip: None,
        ..StepConfig::default()
    };
    train_step(
        &mut model,
        &mut opt,
        None,
        &config,
        &batch,
        &mut RngState::new(4),
    )
    .unwrap();
    model.save(&path).unwrap();
    let want_tensors = model.tensors().unwrap();
    let want_logits = logits_bits(&mut model, &Device::Cpu, &batch);
    let devices = std::iter::once(Device::Cpu).chain(test_devices("saved_classifier_loads"));
    for dev in devices {
        let mut loaded = TextClassifier::load(&dev, &path).unwrap();
        assert_eq!(loaded.config, model.config);
        let got = loaded.tensors().unwrap();
        assert_eq!(got.len(), want_tensors.len());
        for (a, b) in got.iter().zip(&want_tensors) {
            assert_eq!((&a.name, &a.dims), (&b.name, &b.dims));
            assert!(bits(&a.values) == bits(&b.values), "{dev}: `{}`", a.name);
        }
        let (texts, labels) = texts(12, model.config.vocab, 20);
        let labels: Vec<u32> = labels.iter().map(|l| l % 4).collect();
        let batch = TextBatch::new(&dev, &texts, &labels).unwrap();
        assert_eq!(
            logits_bits(&mut loaded, &dev, &batch),
            want_logits,
            "{dev}: logits"
        );
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn loading_a_damaged_or_foreign_file_is_an_error_naming_the_file() {
    let dir = support::scratch_dir("loading_a_damaged_file");
    let good = dir.join("classifier-good.safetensors");
    let model = TextClassifier::new(&Device::Cpu, &tiny_config(false), 1).unwrap();
    model.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.join("classifier-truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 7]).unwrap();
    let foreign = dir.join("classifier-foreign.safetensors");
    shoestring::nn::save::save_tensors(&foreign, &model.tensors().unwrap(), &Default::default())
        .unwrap();
    let missing = dir.join("classifier-does-not-exist.safetensors");

    for (path, says) in [
        (&truncated, ""),
        (&foreign, "not a shoestring-text-classifier-v1 file"),
        (&missing, ""),
    ] {
        let err = TextClassifier::load(&Device::Cpu, path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(says), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn saving_the_same_model_gives_the_same_bytes_every_time() {
    let dir = support::scratch_dir("saving_the_same_model");
    let model = TextClassifier::new(&Device::Cpu, &tiny_config(true), 1).unwrap();
    let twin = TextClassifier::new(&Device::Cpu, &tiny_config(true), 1).unwrap();
    let first = dir.join("first.safetensors");
    model.save(&first).unwrap();
    let want = std::fs::read(&first).unwrap();
    // Eight saves of the model and of a twin built from the same seed: a
    // metadata map written in hash order would differ in some of them.
    for i in 0..8 {
        let path = dir.join(format!("again-{i}.safetensors"));
        if i % 2 == 0 { &model } else { &twin }.save(&path).unwrap();
        assert!(std::fs::read(&path).unwrap() == want, "save {i} differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parameter_count_predicts_the_built_model() {
    let mut deep = tiny_config(true);
    deep.hidden = vec![3, 5, 2];
    deep.head_hidden = vec![4, 6];
    deep.head_dropouts = vec![0.1, 0.0, 0.2];
    for cfg in [
        tiny_config(false),
        tiny_config(true),
        deep,
        ClassifierConfig::small(300, 4),
        ClassifierConfig::fastai_awd_lstm(100, 2),
    ] {
        let model = TextClassifier::new(&Device::Cpu, &cfg, 0).unwrap();
        assert_eq!(cfg.parameter_count(), Some(model.params.numel()), "{cfg:?}");
    }
    let huge = ClassifierConfig {
        vocab: usize::MAX / 2,
        ..tiny_config(false)
    };
    assert_eq!(huge.parameter_count(), None);
}

#[test]
fn a_file_whose_config_does_not_describe_its_tensors_is_refused_before_allocating() {
    let dir = support::scratch_dir("config_does_not_describe");
    let model = TextClassifier::new(&Device::Cpu, &tiny_config(false), 1).unwrap();
    // A config claiming a vast vocabulary next to the tiny model's tensors:
    // building from it first would try to allocate terabytes.
    for vocab in [1usize << 40, 24] {
        let lie = ClassifierConfig {
            vocab,
            ..tiny_config(false)
        };
        let meta = std::collections::BTreeMap::from([
            (
                "format".to_string(),
                "shoestring-text-classifier-v1".to_string(),
            ),
            ("config".to_string(), serde_json::to_string(&lie).unwrap()),
        ]);
        let path = dir.join(format!("lie-{vocab}.safetensors"));
        shoestring::nn::save::save_tensors(&path, &model.tensors().unwrap(), &meta).unwrap();
        let err = TextClassifier::load(&Device::Cpu, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the config describes"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_training_batch_of_one_text_is_refused_and_changes_nothing() {
    let dev = Device::Cpu;
    let (mut model, mut opt, _) = small_setup(&dev);
    let one = TextBatch::new(&dev, &[vec![1, 2, 3]], &[0]).unwrap();
    let before = state_bits(&model);
    let mut rng = RngState::new(1);
    let config = StepConfig {
        precision: Precision::F32,
        clip: None,
        ..StepConfig::default()
    };
    let err = train_step(&mut model, &mut opt, None, &config, &one, &mut rng).unwrap_err();
    assert!(err.to_string().contains("at least 2 rows"), "{err}");
    assert!(state_bits(&model) == before);
    assert_eq!(
        rng,
        RngState::new(1),
        "a failed step does not advance the RNG"
    );
    // Inference on one text is fine (running statistics, not batch ones).
    assert_eq!(logits_bits(&mut model, &dev, &one).len(), 4);
}

#[test]
fn more_layers_than_the_dropout_streams_can_name_is_an_error_at_construction() {
    let cfg = ClassifierConfig {
        hidden: vec![1; 129],
        ..tiny_config(true)
    };
    let err = TextClassifier::new(&Device::Cpu, &cfg, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 128"), "{err}");
}
