//! `manifest.json`: what a run is. Written when the run starts; a resume
//! appends to `resumes`. [`diff`](super::diff) compares two manifests field
//! by field, ignoring the fields that say when and how a run was started
//! ([`Manifest::VOLATILE`]).

use crate::device::{kernels, Device};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `format` of a manifest.
pub const FORMAT: &str = "shoestring-run-v1";

/// The dataset a run trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// `fortunes8` or the path given.
    pub name: String,
    /// sha256 of the data as read (see `data::Dataset::sha256`).
    pub sha256: String,
    /// Training texts.
    pub train: usize,
    /// Validation texts.
    pub valid: usize,
    /// Class names; label `k` is `classes[k]`.
    pub classes: Vec<String>,
}

/// The vocabulary a run built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocabInfo {
    /// Tokens, the specials included.
    pub size: usize,
    /// `Vocab::sha256`.
    pub sha256: String,
}

/// The device a run (or a resumed part of it) ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `cpu`, `cuda` or `sim`.
    pub kind: String,
    /// The device as printed (`cuda:0 (NVIDIA H100 ...)`).
    pub name: String,
    /// The CUDA driver version (`13.0`), on a GPU.
    pub driver: Option<String>,
}

impl DeviceInfo {
    /// The description of `device`.
    pub fn of(device: &Device) -> DeviceInfo {
        let (kind, driver) = match device {
            Device::Cpu => ("cpu", None),
            Device::Sim(_) => ("sim", None),
            Device::Cuda(d) => {
                let v = d.info().driver_version;
                ("cuda", Some(format!("{}.{}", v / 1000, (v % 1000) / 10)))
            }
        };
        DeviceInfo {
            kind: kind.to_string(),
            name: device.to_string(),
            driver,
        }
    }
}

/// A resume: from which checkpoint, on which device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeRecord {
    /// The checkpoint's step.
    pub step: u64,
    /// The device the run continued on.
    pub device: DeviceInfo,
    /// Seconds since the Unix epoch.
    pub unix_time: u64,
    /// Settings this resume changed (`checkpoint_every: 200 vs 50`): only
    /// those that do not decide the run's bits may change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The hash of everything that decides the run's bits (config, data);
    /// a resume must match it.
    pub identity: String,
    /// The training config, as resolved from flags, file and defaults.
    pub config: serde_json::Value,
    /// The model's sizes (derived from the config and the vocab).
    pub model: serde_json::Value,
    /// The dataset.
    pub dataset: DatasetInfo,
    /// The vocabulary.
    pub vocab: VocabInfo,
    /// The seed of every random draw.
    pub seed: u64,
    /// `exact` or `fast`.
    pub tier: String,
    /// `f32` or `mixed`.
    pub precision: String,
    /// The device the run started on.
    pub device: DeviceInfo,
    /// The crate version.
    pub crate_version: String,
    /// sha256 of the kernels this binary embeds, and their origin.
    pub kernels_sha256: String,
    /// `nvcc PTX ...` or `NVRTC ...`.
    pub kernels_origin: String,
    /// The command line that started the run.
    pub command: Vec<String>,
    /// Seconds since the Unix epoch when the run started.
    pub unix_time: u64,
    /// Each resume, in order.
    #[serde(default)]
    pub resumes: Vec<ResumeRecord>,
    /// The run whose model this one started from (ULMFiT's stages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentInfo>,
}

/// The model a run started from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentInfo {
    /// Its run directory, as given.
    pub run: String,
    /// The sha256 of its `model.safetensors`.
    pub model_sha256: String,
    /// Its run's identity hash.
    pub identity: String,
}

impl Manifest {
    /// Top-level fields that describe when and how the run was started,
    /// not what it computes; `diff` skips them.
    pub const VOLATILE: [&'static str; 3] = ["command", "unix_time", "resumes"];

    /// The kernel fields of this binary.
    pub fn kernels() -> (String, String) {
        (kernels::SHA256.to_string(), kernels::ORIGIN.to_string())
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Manifest> {
        let m: Manifest = super::read_json(path)?;
        if m.format != FORMAT {
            return Err(Error::Format {
                what: path.display().to_string(),
                msg: format!("format `{}`, expected `{FORMAT}`", m.format),
            });
        }
        Ok(m)
    }

    /// Writes to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        super::write_json(path, self)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `value` as a JSON tree, its f32 fields written as the shortest decimal
/// that reads back to the same f32 (`0.003`, where `serde_json::to_value`
/// would widen to f64 first and give `0.003000000026077032`).
pub fn json_value<T: Serialize>(value: &T) -> serde_json::Result<serde_json::Value> {
    serde_json::from_str(&serde_json::to_string(value)?)
}
