//! A training run's directory and what identifies a run: the manifest, the
//! per-step log with parameter fingerprints, the per-epoch metrics and their
//! plot, and [`diff`] of two runs.
//!
//! ```text
//! RUN_DIR/
//!   manifest.json      what ran: config, data and vocab sha256, seed, tier, device, kernels
//!   steps.jsonl        one line per step (loss bits, scale, overflow, lr), fingerprints
//!   metrics.json       per epoch: train loss, validation loss and accuracy
//!   plot.svg           the metrics, for a person
//!   checkpoints/       step-NNNNNNNN/ (see `checkpoint`)
//!   model.safetensors  the final model (PyTorch's parameter names)
//!   vocab.json         its tokens and class names
//! ```

pub mod diff;
pub mod log;
pub mod manifest;
pub mod metrics;
pub mod plot;

pub use log::{StepLog, StepRecord};
pub use manifest::Manifest;
pub use metrics::EpochMetrics;

use crate::error::{Error, Result};
use crate::nn::save::write_atomically;
use crate::nn::HostTensor;
use crate::optim::OptimizerState;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    /// `manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }
    /// `steps.jsonl`.
    pub fn steps(&self) -> PathBuf {
        self.root.join("steps.jsonl")
    }
    /// `metrics.json`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }
    /// `plot.svg`.
    pub fn plot(&self) -> PathBuf {
        self.root.join("plot.svg")
    }
    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// `model.safetensors`, written when the run completes.
    pub fn model(&self) -> PathBuf {
        self.root.join("model.safetensors")
    }
    /// `vocab.json`, written with the model.
    pub fn vocab(&self) -> PathBuf {
        self.root.join("vocab.json")
    }
    /// Whether `path` looks like a run directory (it has a manifest).
    pub fn exists(path: &Path) -> bool {
        path.join("manifest.json").is_file()
    }
}

/// A short fingerprint of tensors: the first 16 bytes (hex) of the sha256
/// of every name, dims and value bits, in the order given. Equal
/// fingerprints mean equal bits (short of a sha256 collision).
pub fn fingerprint_tensors(tensors: &[HostTensor]) -> String {
    let mut h = Sha256::new();
    for t in tensors {
        h.update(t.name.as_bytes());
        h.update([0]);
        for d in &t.dims {
            h.update((*d as u64).to_le_bytes());
        }
        for v in &t.values {
            h.update(v.to_bits().to_le_bytes());
        }
    }
    hex16(&h.finalize())
}

/// The fingerprint of an optimizer's state: its settings (as JSON), every
/// slot's step count and the bits of every moment.
pub fn fingerprint_optimizer(state: &OptimizerState) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_string(&(&state.method, &state.groups)).unwrap_or_default());
    for slot in &state.slots {
        match slot {
            None => h.update([0]),
            Some(s) => {
                h.update([1]);
                h.update(s.steps.to_le_bytes());
                for v in s.first.iter().chain(s.second.iter().flatten()) {
                    h.update(v.to_bits().to_le_bytes());
                }
            }
        }
    }
    hex16(&h.finalize())
}

fn hex16(digest: &[u8]) -> String {
    crate::digest::hex(&digest[..16])
}

/// Reads the JSON file at `path` as a `T`; a parse error names the file,
/// line and column.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Data {
        file: path.display().to_string(),
        line: e.line() as u64,
        msg: e.to_string(),
    })
}

/// Writes `value` to `path` as pretty JSON with a final newline, atomically
/// (`nn::save::write_atomically`).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Format {
        what: path.display().to_string(),
        msg: e.to_string(),
    })?;
    write_atomically(path, format!("{text}\n").as_bytes())
}
