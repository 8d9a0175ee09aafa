//! The optimizer's promises over a real model's gradients: discriminative
//! learning rates reach each group, frozen groups keep every bit, clipping
//! reports the true norm and scales to the limit, and a run saved (model,
//! optimizer state, scaler, RNG state) and resumed continues bit for bit.

mod support;

use shoestring::amp::{LossScaler, Precision};
use shoestring::autograd::{Grads, Graph, ParamId};
use shoestring::device::Device;
use shoestring::nn::{ClassifierConfig, TextBatch, TextClassifier};
use shoestring::optim::{Optimizer, OptimizerState};
use shoestring::rng::RngState;
use shoestring::status::Status;
use shoestring::step::{train_step, StepConfig};
use support::test_devices;

fn setup(dev: &Device) -> (TextClassifier, TextBatch) {
    let cfg = ClassifierConfig::small(200, 3);
    let model = TextClassifier::new(dev, &cfg, 99).unwrap();
    let texts: Vec<Vec<u32>> = (0..6)
        .map(|i| {
            (0..3 + i * 2)
                .map(|j| ((i * 13 + j * 7) % 200) as u32)
                .collect()
        })
        .collect();
    let labels: Vec<u32> = (0..6).map(|i| (i % 3) as u32).collect();
    let batch = TextBatch::new(dev, &texts, &labels).unwrap();
    (model, batch)
}

fn gradients(model: &mut TextClassifier, dev: &Device, batch: &TextBatch) -> Grads {
    let mut g = Graph::new(dev).unwrap();
    let loss = model.loss(&mut g, batch, &RngState::new(5)).unwrap();
    g.backward(loss).unwrap()
}

fn param_values(model: &TextClassifier) -> Vec<Vec<f32>> {
    model
        .params
        .iter()
        .map(|(_, p)| p.value.to_vec_f32().unwrap())
        .collect()
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|t| t.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// With momentum 0 and no weight decay an SGD update is `fma(-lr, g, w)`;
/// each parameter must have moved by its own group's rate, `lr / 2.6^(top - k)`.
#[test]
fn discriminative_rates_reach_each_group_exactly() {
    for dev in std::iter::once(Device::Cpu).chain(test_devices("discriminative_rates")) {
        let (mut model, batch) = setup(&dev);
        let mut opt = Optimizer::sgd(&model.params, 0.0, 0.0);
        opt.set_discriminative_lr(0.01, 2.6);
        let top = opt.groups.len() - 1;
        assert!(top >= 2, "the small classifier has several groups");
        for (k, g) in opt.groups.iter().enumerate() {
            assert_eq!(g.lr, 0.01 / 2.6f32.powi((top - k) as i32));
        }
        let before = param_values(&model);
        let grads = gradients(&mut model, &dev, &batch);
        opt.step(&mut model.params, &grads).unwrap();
        let after = param_values(&model);
        for (i, (_, p)) in model.params.iter().enumerate() {
            let lr = opt.groups[p.group].lr;
            let g = grads.get(ParamId(i)).unwrap().to_vec_f32().unwrap();
            for j in 0..g.len() {
                let want = (-lr).mul_add(g[j], before[i][j]);
                assert_eq!(
                    after[i][j].to_bits(),
                    want.to_bits(),
                    "{dev}: `{}`[{j}] in group {}",
                    p.name,
                    p.group
                );
            }
        }
    }
}

#[test]
fn frozen_groups_keep_every_bit_and_are_left_out_of_the_clipped_norm() {
    for dev in std::iter::once(Device::Cpu).chain(test_devices("frozen_groups")) {
        let (mut model, batch) = setup(&dev);
        let mut opt = Optimizer::adam(&model.params, 1e-2, 0.01);
        let top = opt.groups.len() - 1;
        opt.freeze_to(top);
        let before = bits(&param_values(&model));
        let mut grads = gradients(&mut model, &dev, &batch);

        // The norm over the head's gradients only, on the host in f64.
        let mut sumsq = 0.0f64;
        for (i, (_, p)) in model.params.iter().enumerate() {
            if p.group == top {
                let g = grads.get(ParamId(i)).unwrap().to_vec_f32().unwrap();
                sumsq += g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
            }
        }
        let mut status = Status::new(&dev).unwrap();
        opt.clip_grad_norm(&dev, &model.params, &mut grads, 1e9, &mut status)
            .unwrap();
        let norm = status.read().unwrap().grad_norm as f64;
        assert!(
            (norm - sumsq.sqrt()).abs() <= 1e-5 * sumsq.sqrt(),
            "{dev}: {norm} vs {}",
            sumsq.sqrt()
        );

        opt.step(&mut model.params, &grads).unwrap();
        let after = bits(&param_values(&model));
        for (i, (_, p)) in model.params.iter().enumerate() {
            if p.group == top {
                assert_ne!(after[i], before[i], "{dev}: `{}` is trained", p.name);
            } else {
                assert_eq!(after[i], before[i], "{dev}: `{}` is frozen", p.name);
            }
        }
        let state = opt.state().unwrap();
        for (i, (_, p)) in model.params.iter().enumerate() {
            assert_eq!(
                state.slots[i].is_some(),
                p.group == top,
                "{dev}: `{}`: frozen parameters get no optimizer state",
                p.name
            );
        }
    }
}

fn global_norm(grads: &Grads) -> f64 {
    grads
        .iter()
        .flat_map(|(_, g)| g.to_vec_f32().unwrap())
        .map(|x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn clipping_scales_to_the_limit_and_leaves_small_gradients_bitwise_alone() {
    for dev in std::iter::once(Device::Cpu).chain(test_devices("clipping")) {
        let (mut model, batch) = setup(&dev);
        let opt = Optimizer::adam(&model.params, 1e-3, 0.0);
        let grads = gradients(&mut model, &dev, &batch);
        let norm = global_norm(&grads);
        assert!(norm > 0.0);

        // A limit above the norm: the coefficient is exactly 1.
        let mut loose = gradients(&mut model, &dev, &batch);
        let mut status = Status::new(&dev).unwrap();
        opt.clip_grad_norm(
            &dev,
            &model.params,
            &mut loose,
            2.0 * norm as f32,
            &mut status,
        )
        .unwrap();
        for ((_, a), (_, b)) in grads.iter().zip(loose.iter()) {
            let (a, b) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{dev}: unclipped gradients keep their bits"
            );
        }

        // A limit a quarter of the norm: the clipped norm is the limit.
        let mut tight = gradients(&mut model, &dev, &batch);
        let limit = (norm / 4.0) as f32;
        let mut status = Status::new(&dev).unwrap();
        opt.clip_grad_norm(&dev, &model.params, &mut tight, limit, &mut status)
            .unwrap();
        let report = status.read().unwrap();
        assert!(!report.overflow());
        assert!(((report.grad_norm as f64) - norm).abs() <= 1e-5 * norm);
        let clipped = global_norm(&tight);
        assert!(
            (clipped - limit as f64).abs() <= 1e-5 * limit as f64,
            "{dev}: clipped norm {clipped} vs limit {limit}"
        );
    }
}

/// Everything a resume needs, as it would sit on disk.
struct Saved {
    model_file: std::path::PathBuf,
    optimizer_json: String,
    scaler_json: String,
    rng: RngState,
}

fn run(
    model: &mut TextClassifier,
    opt: &mut Optimizer,
    scaler: &mut LossScaler,
    rng: &mut RngState,
    batch: &TextBatch,
    steps: usize,
) -> Vec<u32> {
    let config = StepConfig {
        precision: Precision::Mixed,
        clip: Some(0.25),
        ..StepConfig::default()
    };
    (0..steps)
        .map(|_| {
            train_step(model, opt, Some(scaler), &config, batch, rng)
                .unwrap()
                .report
                .loss
                .to_bits()
        })
        .collect()
}

#[test]
fn a_run_saved_and_resumed_continues_bit_for_bit() {
    let dir = support::scratch_dir("a_run_saved_and_resumed");
    let devices = std::iter::once(Device::Cpu).chain(test_devices("saved_and_resumed"));
    for (d, dev) in devices.enumerate() {
        for sgd in [false, true] {
            let fresh = |dev: &Device| {
                let (model, batch) = setup(dev);
                let mut opt = if sgd {
                    Optimizer::sgd(&model.params, 0.05, 0.9)
                } else {
                    Optimizer::adam(&model.params, 3e-3, 0.01)
                };
                opt.set_discriminative_lr(opt.groups[0].lr, 2.6);
                let scaler = LossScaler {
                    scale: 256.0,
                    growth_interval: 2,
                    ..LossScaler::default()
                };
                (model, batch, opt, scaler, RngState::new(8))
            };

            // Straight through: 5 steps.
            let (mut model, batch, mut opt, mut scaler, mut rng) = fresh(&dev);
            let straight = run(&mut model, &mut opt, &mut scaler, &mut rng, &batch, 5);
            let straight_params = bits(&param_values(&model));

            // 3 steps, save everything, drop it all, load and do 2 more.
            let (mut model, batch, mut opt, mut scaler, mut rng) = fresh(&dev);
            let mut losses = run(&mut model, &mut opt, &mut scaler, &mut rng, &batch, 3);
            let saved = Saved {
                model_file: dir.join(format!("resume-{d}-{sgd}.safetensors")),
                optimizer_json: serde_json::to_string(&opt.state().unwrap()).unwrap(),
                scaler_json: serde_json::to_string(&scaler).unwrap(),
                rng,
            };
            model.save(&saved.model_file).unwrap();
            drop((model, opt, scaler));

            let mut model = TextClassifier::load(&dev, &saved.model_file).unwrap();
            let state: OptimizerState = serde_json::from_str(&saved.optimizer_json).unwrap();
            let mut opt = Optimizer::from_state(&model.params, &state).unwrap();
            let mut scaler: LossScaler = serde_json::from_str(&saved.scaler_json).unwrap();
            let mut rng = saved.rng;
            losses.extend(run(&mut model, &mut opt, &mut scaler, &mut rng, &batch, 2));

            assert_eq!(losses, straight, "{dev} sgd={sgd}: losses");
            assert!(
                bits(&param_values(&model)) == straight_params,
                "{dev} sgd={sgd}: parameters after resuming"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn optimizer_state_for_another_model_is_refused() {
    let (model, _) = setup(&Device::Cpu);
    let opt = Optimizer::adam(&model.params, 1e-3, 0.0);
    let mut state = opt.state().unwrap();
    state.slots.pop();
    let err = Optimizer::from_state(&model.params, &state).unwrap_err();
    assert!(err.to_string().contains("slots for"), "{err}");
}

/// A step that cannot complete (the graph still holds the parameters, or
/// the gradients belong to another model) fails before touching anything.
#[test]
fn a_step_that_cannot_complete_changes_nothing() {
    let dev = Device::Cpu;
    let (mut model, batch) = setup(&dev);
    let mut opt = Optimizer::adam(&model.params, 1e-2, 0.0);
    let before = bits(&param_values(&model));

    let mut g = Graph::new(&dev).unwrap();
    let loss = model.loss(&mut g, &batch, &RngState::new(5)).unwrap();
    let grads = g.backward(loss).unwrap();
    let err = opt.step(&mut model.params, &grads).unwrap_err().to_string();
    assert!(err.contains("shared"), "{err}");
    assert!(bits(&param_values(&model)) == before);
    assert!(opt.state().unwrap().slots.iter().all(Option::is_none));
    drop(g);

    // Gradients of a bigger model: ids past this model's parameters.
    let cfg = ClassifierConfig {
        hidden: vec![8, 8],
        ..ClassifierConfig::small(200, 3)
    };
    let mut other = TextClassifier::new(&dev, &cfg, 1).unwrap();
    let foreign = gradients(&mut other, &dev, &batch);
    assert!(foreign.len() > model.params.len());
    let err = opt
        .step(&mut model.params, &foreign)
        .unwrap_err()
        .to_string();
    // Refused for the first mismatch it meets (a shape here, before the ids
    // run past this model's), with nothing updated.
    assert!(
        err.contains("another model") || err.contains("expected"),
        "{err}"
    );
    assert!(bits(&param_values(&model)) == before);
    assert!(opt.state().unwrap().slots.iter().all(Option::is_none));

    // Then the real step goes through, each step count at 1.
    opt.step(&mut model.params, &grads).unwrap();
    assert!(bits(&param_values(&model)) != before);
    let state = opt.state().unwrap();
    assert!(state.slots.iter().flatten().all(|s| s.steps == 1));
}

#[test]
fn gradients_for_ids_past_the_model_are_an_error_not_a_panic() {
    let dev = Device::Cpu;
    let (mut model, batch) = setup(&dev);
    let mut opt = Optimizer::sgd(&model.params, 0.1, 0.0);
    let grads = gradients(&mut model, &dev, &batch);
    // The same model minus its last parameter: the last gradient's id is
    // past it.
    let mut fewer = shoestring::nn::Params::new();
    for (_, p) in model.params.iter().take(model.params.len() - 1) {
        fewer
            .add(
                &dev,
                &p.name,
                p.value.dims(),
                p.group,
                shoestring::nn::Init::Constant(0.0),
            )
            .unwrap();
    }
    let mut opt_fewer = Optimizer::sgd(&fewer, 0.1, 0.0);
    let err = opt_fewer.step(&mut fewer, &grads).unwrap_err().to_string();
    assert!(err.contains("another model"), "{err}");
    let mut status = Status::new(&dev).unwrap();
    let mut grads = grads;
    let err = opt_fewer
        .clip_grad_norm(&dev, &fewer, &mut grads, 1.0, &mut status)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another model"), "{err}");
    opt.step(&mut model.params, &grads).unwrap();
}
