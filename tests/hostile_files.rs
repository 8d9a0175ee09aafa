//! Hostile and broken files (issue 11): the model and checkpoint loaders
//! (the `safetensors` crate underneath; no hand-written parser) and the data
//! loaders return typed errors on damaged input, and never panic or
//! allocate beyond what the file's own size bounds.
//!
//! Hand-made files cover each named case; a property test mutates real
//! files (flipped bytes, truncation, inserted bytes) with a fixed seed for
//! `SHOESTRING_FUZZ_CASES` cases per loader (256 in CI; docs/reliability.md
//! gives a longer run's count).

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use shoestring::data::{self, DataSource};
use shoestring::nn::{ClassifierConfig, TextClassifier};
use shoestring::Device;
use std::path::{Path, PathBuf};

fn cases() -> u32 {
    std::env::var("SHOESTRING_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// A safetensors file: the 8-byte little-endian header length, the header,
/// the data.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn small_model_file(dir: &Path) -> PathBuf {
    let model = TextClassifier::new(&Device::Cpu, &ClassifierConfig::small(30, 3), 1).unwrap();
    let path = dir.join("model.safetensors");
    model.save(&path).unwrap();
    path
}

fn load_model(path: &Path) -> shoestring::Result<TextClassifier> {
    TextClassifier::load(&Device::Cpu, path)
}

#[test]
fn each_kind_of_broken_model_file_is_a_typed_error() {
    let dir = support::scratch_dir("hostile-model");
    let good = std::fs::read(small_model_file(&dir)).unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[8..8 + header_len])
        .unwrap()
        .to_string();
    let meta = header[header.find("\"__metadata__\"").unwrap()..]
        .trim_end_matches('}')
        .to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated header length", good[..5].to_vec()),
        ("truncated in the header", good[..8 + header_len / 2].to_vec()),
        ("truncated in the data", good[..good.len() - 7].to_vec()),
        ("header length past the end", {
            let mut b = good.clone();
            b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
            b
        }),
        ("header that is not UTF-8", safetensors_bytes("{\"a\":\u{0}\u{ff}}", &[])),
        ("header that is not JSON", safetensors_bytes("not json at all", &[])),
        (
            "a tensor that declares terabytes",
            safetensors_bytes(
                &format!("{{\"x\":{{\"dtype\":\"F32\",\"shape\":[1099511627776],\"data_offsets\":[0,4]}},{meta}}}"),
                &[0; 4],
            ),
        ),
        (
            "overlapping offsets",
            safetensors_bytes(
                &format!(
                    "{{\"a\":{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}},\
                     \"b\":{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}},{meta}}}"
                ),
                &[0; 12],
            ),
        ),
        (
            "offsets out of range",
            safetensors_bytes(
                &format!("{{\"a\":{{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}},{meta}}}"),
                &[0; 8],
            ),
        ),
        (
            "a wrong dtype",
            safetensors_bytes(
                &format!("{{\"a\":{{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}},{meta}}}"),
                &[0; 8],
            ),
        ),
        (
            "tensors that do not fit the config",
            safetensors_bytes(
                &format!("{{\"a\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}},{meta}}}"),
                &[0; 4],
            ),
        ),
        ("no metadata", {
            let h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
            safetensors_bytes(h, &[0; 4])
        }),
    ];
    for (what, bytes) in cases {
        let path = dir.join("broken.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let got = std::panic::catch_unwind(|| load_model(&path));
        match got {
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("broken.safetensors"),
                    "{what}: the error names the file: {msg}"
                );
            }
            Ok(Ok(_)) => panic!("{what}: loaded"),
            Err(_) => panic!("{what}: panicked"),
        }
    }
}

#[test]
fn mutated_model_files_never_panic() {
    let dir = support::scratch_dir("fuzz-model");
    let good = std::fs::read(small_model_file(&dir)).unwrap();
    let path = dir.join("mutated.safetensors");
    fuzz(&good, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        // Ok (a flipped bit in the data is still a model) or a typed error.
        let _ = load_model(&path);
    });
}

#[test]
fn mutated_language_model_files_never_panic() {
    use shoestring::nn::{LanguageModel, LmConfig};
    let dir = support::scratch_dir("fuzz-lm");
    let path = dir.join("lm.safetensors");
    let model = LanguageModel::new(&Device::Cpu, &LmConfig::fastai(30, 8, vec![12, 8]), 1).unwrap();
    model.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    fuzz(&good, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        // Ok (a flipped bit in the data is still a model) or a typed error.
        let _ = LanguageModel::load(&Device::Cpu, &path);
    });
}

#[test]
fn mutated_language_model_corpora_never_panic() {
    let dir = support::scratch_dir("fuzz-lm-corpus");
    let good = b"id,text\n1,\"one text, quoted\"\n2,another text\n3,a third\n".to_vec();
    let path = dir.join("corpus.csv");
    fuzz(&good, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let _ = shoestring::data::lm_corpus::load_lm_data(path.to_str().unwrap());
    });
}

#[test]
fn mutated_checkpoints_never_panic_and_never_verify() {
    let s = support::runs::Scratch::new("fuzz-checkpoint");
    let (run, o) = s.train("run", &["--max-steps", "3", "--keep-checkpoints", "1"]);
    support::runs::ok(o);
    let dir = run.join("checkpoints/step-00000003");
    for file in ["optimizer.safetensors", "state.json"] {
        let good = std::fs::read(dir.join(file)).unwrap();
        fuzz(&good, |bytes| {
            std::fs::write(dir.join(file), bytes).unwrap();
            let verified = shoestring::checkpoint::verify(&dir).is_ok();
            assert_eq!(
                verified,
                bytes == good.as_slice(),
                "{file}: only the original verifies"
            );
            let _ =
                shoestring::checkpoint::load::<shoestring::nn::TextClassifier>(&dir, &Device::Cpu);
        });
        std::fs::write(dir.join(file), &good).unwrap();
    }
}

#[test]
fn mutated_csv_files_never_panic() {
    let dir = support::scratch_dir("fuzz-csv");
    let csv = support::runs::small_csv(&dir);
    // A few hundred rows keep each case fast.
    let text = std::fs::read_to_string(&csv).unwrap();
    let good: Vec<u8> = text
        .lines()
        .take(300)
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes();
    let path = dir.join("mutated.csv");
    fuzz(&good, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        if let Err(e) = data::load(&DataSource::Csv(path.clone()), 0.2, 1) {
            assert!(
                e.to_string().contains("mutated.csv"),
                "the error names the file: {e}"
            );
        }
    });
}

#[test]
fn mutated_imdb_files_never_panic() {
    let dir = support::scratch_dir("fuzz-imdb");
    for (sub, name, text) in [
        (
            "train/pos",
            "0_9.txt",
            "A fine film, well acted.<br />Go see it.",
        ),
        ("train/neg", "1_2.txt", "Dull."),
        ("test/pos", "2_8.txt", "Loved it."),
        ("test/neg", "3_1.txt", "Not for me."),
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join(name), text).unwrap();
    }
    let target = dir.join("train/pos/0_9.txt");
    let good = std::fs::read(&target).unwrap();
    fuzz(&good, |bytes| {
        std::fs::write(&target, bytes).unwrap();
        if let Err(e) = data::load(&DataSource::Imdb(dir.clone()), 0.2, 1) {
            assert!(
                e.to_string().contains("0_9.txt"),
                "the error names the file: {e}"
            );
        }
    });
}

#[test]
fn mutated_vocab_files_never_panic() {
    let s = support::runs::Scratch::new("fuzz-vocab");
    let (run, o) = s.train("run", &["--max-steps", "2"]);
    support::runs::ok(o);
    let good = std::fs::read(run.join("vocab.json")).unwrap();
    let path = s.dir.join("vocab.json");
    fuzz(&good, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        if let Ok(v) = shoestring::train::VocabFile::read(&path) {
            let _ = v.vocab();
        }
    });
}

#[test]
fn mutated_config_files_never_panic() {
    let dir = support::scratch_dir("fuzz-toml");
    let good =
        b"epochs = 2\nlr = 0.01\nprecision = \"mixed\"\n\n[model]\nhidden = [64, 64]\n".to_vec();
    let path = dir.join("mutated.toml");
    fuzz(&good, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let _ = shoestring::train::TrainConfig::from_toml_file(&path);
    });
}

/// Runs `check` on `cases()` mutations of `good` (a fixed seed), each a
/// set of byte flips, an optional truncation and optional inserted bytes;
/// a panic fails the test with the case that caused it.
fn fuzz(good: &[u8], check: impl Fn(&[u8])) {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let n = good.len().max(1);
    let strategy = (
        prop::collection::vec((0..n, any::<u8>()), 0..8),
        prop::option::of(0..n),
        prop::option::of((0..n, prop::collection::vec(any::<u8>(), 1..16))),
    );
    runner
        .run(&strategy, |(flips, cut, insert)| {
            let mut bytes = good.to_vec();
            for (i, b) in flips {
                if i < bytes.len() {
                    bytes[i] ^= b;
                }
            }
            if let Some((at, extra)) = insert {
                let at = at.min(bytes.len());
                bytes.splice(at..at, extra);
            }
            if let Some(c) = cut {
                bytes.truncate(c);
            }
            check(&bytes);
            Ok(())
        })
        .unwrap();
}
