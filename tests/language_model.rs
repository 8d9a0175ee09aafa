//! The AWD-LSTM language model as a library: its tied decoder, the
//! vocabulary extension of a fine-tune, and one training step on the CUDA
//! kernel sources (the simulator, and a GPU when there is one) bit for bit
//! the CPU's.

mod support;

use shoestring::amp::Precision;
use shoestring::autograd::Graph;
use shoestring::data::lm::{LmRows, LmWindow};
use shoestring::nn::language_model::extend_vocab;
use shoestring::nn::{LanguageModel, LmBatch, LmConfig};
use shoestring::optim::Optimizer;
use shoestring::rng::RngState;
use shoestring::step::{finish_step, StepConfig};
use shoestring::Device;
use support::test_devices;

const VOCAB: usize = 40;

fn tiny() -> LmConfig {
    LmConfig::fastai(VOCAB, 8, vec![12, 8])
}

/// A window of 5 steps over 3 rows of a stream that uses ids 3..23 only.
fn window() -> LmWindow {
    let stream: Vec<u32> = (0..40).map(|i| 3 + (i * 7 % 20)).collect();
    LmRows::new(stream, 3).unwrap().window(2, 5)
}

fn bits(model: &LanguageModel) -> Vec<Vec<u32>> {
    model
        .tensors()
        .unwrap()
        .into_iter()
        .map(|t| t.values.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// One Adam step on `window()` from `model`, on `device`; the new model.
fn one_step(model: &LanguageModel, device: &Device) -> LanguageModel {
    let mut m = LanguageModel::new(device, &model.config, 0).unwrap();
    m.params.load_host(&model.tensors().unwrap()).unwrap();
    let mut opt = Optimizer::adam(&m.params, 1e-2, 0.01);
    let batch = LmBatch::new(device, &window()).unwrap();
    let mut rng = RngState::new(7);
    let state = m.zero_state(device, batch.bs).unwrap();
    let mut g = Graph::with_precision(device, Precision::F32).unwrap();
    let (loss, next) = m.loss(&mut g, &batch, &rng, &state).unwrap();
    assert_eq!(next.len(), 2, "one carried state per layer");
    let config = StepConfig {
        clip: Some(0.25),
        ..StepConfig::default()
    };
    let out = finish_step(g, loss, &mut m.params, &mut opt, None, &config, &mut rng).unwrap();
    assert!(out.applied && out.report.loss.is_finite());
    m
}

#[test]
fn the_decoder_is_the_embedding_so_one_step_moves_both_uses() {
    let cpu = Device::Cpu;
    let model = LanguageModel::new(&cpu, &tiny(), 3).unwrap();
    let names: Vec<String> = model.params.iter().map(|(_, p)| p.name.clone()).collect();
    assert!(!names.iter().any(|n| n == "decoder.weight"), "{names:?}");
    let after = one_step(&model, &cpu);
    let e = |m: &LanguageModel| -> Vec<f32> {
        m.params.get(m.embedding.weight).value.to_vec_f32().unwrap()
    };
    let (before, after) = (e(&model), e(&after));
    let row = |v: &[f32], r: usize| v[r * 8..(r + 1) * 8].to_vec();
    // Id 30 is never an input, only a decoder column: it moves by the
    // decoder's gradient alone (a model whose embedding moved only by
    // lookups would leave it). An input's row moves too.
    let inputs = window().inputs;
    let input = inputs[0] as usize;
    assert!(!inputs.contains(&30));
    assert_ne!(row(&before, 30), row(&after, 30));
    assert_ne!(row(&before, input), row(&after, input));
}

#[test]
fn vocabulary_extension_keeps_old_rows_bit_for_bit_and_new_rows_are_the_mean() {
    let cpu = Device::Cpu;
    let model = LanguageModel::new(&cpu, &tiny(), 5).unwrap();
    // A non-zero bias, so that its mean is a real check.
    let trained = one_step(&model, &cpu);
    let grown = extend_vocab(&trained, VOCAB + 3).unwrap();
    assert_eq!(grown.config.vocab, VOCAB + 3);
    let get = |m: &LanguageModel, name: &str| -> Vec<f32> {
        let id = m.params.find(name).unwrap();
        m.params.get(id).value.to_vec_f32().unwrap()
    };
    for (name, width) in [("encoder.embedding.weight", 8), ("decoder.bias", 1)] {
        let (old, new) = (get(&trained, name), get(&grown, name));
        let old_bits: Vec<u32> = old.iter().map(|v| v.to_bits()).collect();
        let kept: Vec<u32> = new[..old.len()].iter().map(|v| v.to_bits()).collect();
        assert_eq!(old_bits, kept, "{name}: old rows changed");
        for j in 0..width {
            let sum: f64 = (0..VOCAB).map(|r| f64::from(old[r * width + j])).sum();
            let mean = (sum / VOCAB as f64) as f32;
            for r in VOCAB..VOCAB + 3 {
                assert_eq!(
                    new[r * width + j].to_bits(),
                    mean.to_bits(),
                    "{name} row {r} col {j}"
                );
            }
        }
    }
    // Every other tensor is untouched.
    for (a, b) in trained
        .tensors()
        .unwrap()
        .iter()
        .zip(grown.tensors().unwrap().iter())
    {
        if a.dims == b.dims {
            assert_eq!(a.values, b.values, "{}", a.name);
        }
    }
    assert!(extend_vocab(&trained, VOCAB - 1).is_err());
}

#[test]
fn a_language_model_step_on_the_cuda_kernels_is_bitwise_the_cpus() {
    let cpu = Device::Cpu;
    let model = LanguageModel::new(&cpu, &tiny(), 11).unwrap();
    let want = bits(&one_step(&model, &cpu));
    for device in test_devices("a_language_model_step_on_the_cuda_kernels_is_bitwise_the_cpus") {
        let got = bits(&one_step(&model, &device));
        assert!(
            got == want,
            "{device}: the step's parameters differ from the CPU's"
        );
    }
}

#[test]
fn the_tied_config_is_checked_and_a_saved_model_loads_back_bit_for_bit() {
    let bad = LmConfig::fastai(VOCAB, 8, vec![12, 10]);
    let err = LanguageModel::new(&Device::Cpu, &bad, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tied"), "{err}");
    let model = one_step(
        &LanguageModel::new(&Device::Cpu, &tiny(), 2).unwrap(),
        &Device::Cpu,
    );
    let dir = support::scratch_dir("lm_save");
    let path = dir.join("lm.safetensors");
    model.save(&path).unwrap();
    let back = LanguageModel::load(&Device::Cpu, &path).unwrap();
    assert_eq!(bits(&back), bits(&model));
    assert_eq!(back.config, model.config);
}
