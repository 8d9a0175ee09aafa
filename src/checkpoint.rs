//! Checkpoints: everything a training run needs to continue bit for bit.
//!
//! A checkpoint is a folder `step-NNNNNNNN/` holding
//! - `model.safetensors`: the model ([`Checkpointed::save`]: a classifier
//!   or a language model);
//! - `optimizer.safetensors`: the optimizer's moments, named after the
//!   parameters with PyTorch's slot names (`exp_avg`, `exp_avg_sq`,
//!   `momentum_buffer`), and its settings and per-slot step counts as
//!   metadata (f32 bits, never decimal text, so nothing is rounded);
//! - `state.json`: [`CheckpointState`] (data cursor, RNG state, loss scaler,
//!   the run's identity hash, the trainer's accumulators);
//! - `checksums.json`: the sha256 of each of the three, written last.
//!
//! The folder is written as `.step-NNNNNNNN.partial/`, each file fsynced,
//! then renamed into place and the parent fsynced: a crash leaves either no
//! checkpoint or a whole one, and a partial folder is never read. Loading
//! verifies every checksum first ([`verify`]); [`newest_valid`] walks back
//! from the newest checkpoint to the first one that verifies.

use crate::amp::LossScaler;
use crate::device::Device;
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::fault;
use crate::nn::params::HostTensor;
use crate::nn::save::{load_tensors, save_tensors, write_atomically};
use crate::nn::{LanguageModel, Params, TextClassifier};
use crate::optim::{Method, OptimizerState, SlotState};
use crate::rng::RngState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `state.json`'s `format`.
pub const FORMAT: &str = "shoestring-checkpoint-v1";

/// The files of a checkpoint that `checksums.json` covers, in order.
pub const FILES: [&str; 3] = ["model.safetensors", "optimizer.safetensors", "state.json"];

/// Where a run stands: enough, with the model and the optimizer, to take
/// the next step exactly as an uninterrupted run would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// [`FORMAT`].
    pub format: String,
    /// Steps taken so far (applied or skipped).
    pub step: u64,
    /// The epoch of the next batch.
    pub epoch: u32,
    /// The index of the next batch within its epoch's plan.
    pub batch: usize,
    /// The RNG state (seed and step counter).
    pub rng: RngState,
    /// The loss scaler, in mixed precision.
    pub scaler: Option<LossScaler>,
    /// The hash of the run's config and data; a resume must match it.
    pub identity: String,
    /// The trainer's own accumulators (opaque here).
    pub progress: serde_json::Value,
}

/// A model a checkpoint can hold.
pub trait Checkpointed: Sized {
    /// Writes the model file, atomically.
    fn save(&self, path: &Path) -> Result<()>;
    /// Reads a model file onto `device`.
    fn load(device: &Device, path: &Path) -> Result<Self>;
    /// The parameters (their names name the optimizer's slots).
    fn params(&self) -> &Params;
    /// Every tensor that defines the model, in order (for fingerprints).
    fn tensors(&self) -> Result<Vec<HostTensor>>;
}

impl Checkpointed for TextClassifier {
    fn save(&self, path: &Path) -> Result<()> {
        TextClassifier::save(self, path)
    }
    fn load(device: &Device, path: &Path) -> Result<Self> {
        TextClassifier::load(device, path)
    }
    fn params(&self) -> &Params {
        &self.params
    }
    fn tensors(&self) -> Result<Vec<HostTensor>> {
        TextClassifier::tensors(self)
    }
}

impl Checkpointed for LanguageModel {
    fn save(&self, path: &Path) -> Result<()> {
        LanguageModel::save(self, path)
    }
    fn load(device: &Device, path: &Path) -> Result<Self> {
        LanguageModel::load(device, path)
    }
    fn params(&self) -> &Params {
        &self.params
    }
    fn tensors(&self) -> Result<Vec<HostTensor>> {
        LanguageModel::tensors(self)
    }
}

/// A checkpoint read back from disk.
pub struct Loaded<M = TextClassifier> {
    /// The folder it came from.
    pub dir: PathBuf,
    /// The model.
    pub model: M,
    /// The optimizer state (fit it to the model with `Optimizer::from_state`).
    pub optimizer: OptimizerState,
    /// Cursor, RNG, scaler and accumulators.
    pub state: CheckpointState,
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        what: path.display().to_string(),
        msg: msg.into(),
    }
}

/// The folder name of the checkpoint after `step` steps.
pub fn dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The hex sha256 of the file at `path`.
pub fn file_sha256(path: &Path) -> Result<String> {
    Ok(sha256_hex(&std::fs::read(path).map_err(|e| io(path, e))?))
}

/// Slot tensor names: PyTorch's optimizer state keys.
fn slot_names(method: Method) -> (&'static str, &'static str) {
    match method {
        Method::Adam { .. } => ("exp_avg", "exp_avg_sq"),
        Method::Sgd { .. } => ("momentum_buffer", "unused"),
    }
}

#[derive(Serialize, Deserialize)]
struct OptimizerMeta {
    method: Method,
    groups: Vec<crate::optim::Group>,
    /// Per parameter: `None` before its first update, else its step count.
    steps: Vec<Option<u64>>,
}

/// Writes `optimizer` to `path` as safetensors, its tensors named
/// `{parameter name}.{slot}` (`names` in parameter order).
pub fn save_optimizer(path: &Path, names: &[String], optimizer: &OptimizerState) -> Result<()> {
    if names.len() != optimizer.slots.len() {
        return Err(Error::invalid(
            "save_optimizer",
            format!("{} names for {} slots", names.len(), optimizer.slots.len()),
        ));
    }
    let (first, second) = slot_names(optimizer.method);
    let mut tensors = Vec::new();
    for (name, slot) in names.iter().zip(&optimizer.slots) {
        if let Some(s) = slot {
            let n = s.first.len();
            tensors.push(HostTensor {
                name: format!("{name}.{first}"),
                dims: vec![n],
                values: s.first.clone(),
            });
            if let Some(v) = &s.second {
                tensors.push(HostTensor {
                    name: format!("{name}.{second}"),
                    dims: vec![n],
                    values: v.clone(),
                });
            }
        }
    }
    let meta = OptimizerMeta {
        method: optimizer.method,
        groups: optimizer.groups.clone(),
        steps: optimizer
            .slots
            .iter()
            .map(|s| s.as_ref().map(|s| s.steps))
            .collect(),
    };
    let json = serde_json::to_string(&meta).map_err(|e| bad(path, e.to_string()))?;
    let metadata = BTreeMap::from([
        ("format".to_string(), "shoestring-optimizer-v1".to_string()),
        ("optimizer".to_string(), json),
    ]);
    save_tensors(path, &tensors, &metadata)
}

/// Reads what [`save_optimizer`] wrote; `names` are the model's parameter
/// names in order.
pub fn load_optimizer(path: &Path, names: &[String]) -> Result<OptimizerState> {
    let (tensors, metadata) = load_tensors(path)?;
    let meta: OptimizerMeta = serde_json::from_str(
        metadata
            .get("optimizer")
            .ok_or_else(|| bad(path, "no `optimizer` metadata"))?,
    )
    .map_err(|e| bad(path, format!("optimizer metadata: {e}")))?;
    if meta.steps.len() != names.len() {
        return Err(bad(
            path,
            format!(
                "state for {} parameters, the model has {}",
                meta.steps.len(),
                names.len()
            ),
        ));
    }
    let mut by_name: BTreeMap<String, Vec<f32>> =
        tensors.into_iter().map(|t| (t.name, t.values)).collect();
    let (first, second) = slot_names(meta.method);
    let adam = matches!(meta.method, Method::Adam { .. });
    let mut slots = Vec::with_capacity(names.len());
    for (name, steps) in names.iter().zip(&meta.steps) {
        slots.push(match steps {
            None => None,
            Some(steps) => {
                let mut take = |slot: &str| {
                    let key = format!("{name}.{slot}");
                    by_name
                        .remove(&key)
                        .ok_or_else(|| bad(path, format!("no tensor `{key}`")))
                };
                Some(SlotState {
                    steps: *steps,
                    first: take(first)?,
                    second: if adam { Some(take(second)?) } else { None },
                })
            }
        });
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(bad(path, format!("unexpected tensor `{extra}`")));
    }
    Ok(OptimizerState {
        method: meta.method,
        groups: meta.groups,
        slots,
    })
}

/// Writes a checkpoint under `root` (created if needed) and returns its
/// folder. An existing checkpoint of the same step is replaced.
pub fn write<M: Checkpointed>(
    root: &Path,
    model: &M,
    optimizer: &OptimizerState,
    state: &CheckpointState,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let name = dir_name(state.step);
    let partial = root.join(format!(".{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| io(&partial, e))?;
    }
    std::fs::create_dir(&partial).map_err(|e| io(&partial, e))?;
    model.save(&partial.join(FILES[0]))?;
    fault::point("checkpoint.model");
    let names: Vec<String> = model.params().iter().map(|(_, p)| p.name.clone()).collect();
    save_optimizer(&partial.join(FILES[1]), &names, optimizer)?;
    fault::point("checkpoint.optimizer");
    let json = serde_json::to_string_pretty(state).map_err(|e| bad(&partial, e.to_string()))?;
    write_atomically(&partial.join(FILES[2]), json.as_bytes())?;
    fault::point("checkpoint.state");
    let mut sums = BTreeMap::new();
    for f in FILES {
        sums.insert(f.to_string(), file_sha256(&partial.join(f))?);
    }
    let sums = serde_json::to_string_pretty(&sums).map_err(|e| bad(&partial, e.to_string()))?;
    write_atomically(&partial.join("checksums.json"), sums.as_bytes())?;
    fault::point("checkpoint.checksums");
    let dir = root.join(&name);
    // Replacing a checkpoint of the same step (the epoch-end one after a
    // stop at an epoch's last batch): the old one is moved aside first, and
    // `list` falls back to it, so at every instant one whole checkpoint of
    // this step is found.
    let old = root.join(format!(".{name}.old"));
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        std::fs::rename(&dir, &old).map_err(|e| io(&old, e))?;
        fault::point("checkpoint.replace");
    }
    std::fs::rename(&partial, &dir).map_err(|e| io(&dir, e))?;
    sync_dir(root);
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    }
    Ok(dir)
}

/// Flushes a folder's entries (renames) to disk, where the platform allows.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Checks every checksum of the checkpoint in `dir`.
pub fn verify(dir: &Path) -> Result<()> {
    let sums_path = dir.join("checksums.json");
    let text = std::fs::read_to_string(&sums_path).map_err(|e| io(&sums_path, e))?;
    let sums: BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| bad(&sums_path, e.to_string()))?;
    for f in FILES {
        let want = sums
            .get(f)
            .ok_or_else(|| bad(&sums_path, format!("no checksum for {f}")))?;
        let got = file_sha256(&dir.join(f))?;
        if &got != want {
            return Err(bad(
                &dir.join(f),
                format!("checksum mismatch: sha256 {got}, checksums.json says {want}"),
            ));
        }
    }
    Ok(())
}

/// Loads the checkpoint in `dir` onto `device`, after [`verify`].
pub fn load<M: Checkpointed>(dir: &Path, device: &Device) -> Result<Loaded<M>> {
    verify(dir)?;
    let model = M::load(device, &dir.join(FILES[0]))?;
    let names: Vec<String> = model.params().iter().map(|(_, p)| p.name.clone()).collect();
    let optimizer = load_optimizer(&dir.join(FILES[1]), &names)?;
    let state_path = dir.join(FILES[2]);
    let text = std::fs::read_to_string(&state_path).map_err(|e| io(&state_path, e))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| bad(&state_path, e.to_string()))?;
    if state.format != FORMAT {
        return Err(bad(
            &state_path,
            format!("format `{}`, expected `{FORMAT}`", state.format),
        ));
    }
    Ok(Loaded {
        dir: dir.to_path_buf(),
        model,
        optimizer,
        state,
    })
}

/// The step of a checkpoint folder name: `step-N` (N at least 8 digits), or
/// `.step-N.old` (a checkpoint being replaced, see [`write`]); `None` for
/// anything else (partial folders, folders set aside by [`set_aside`]).
fn parse_name(name: &str) -> Option<(u64, bool)> {
    let (digits, old) = match name.strip_prefix(".step-") {
        Some(rest) => (rest.strip_suffix(".old")?, true),
        None => (name.strip_prefix("step-")?, false),
    };
    if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(|step| (step, old))
}

/// The checkpoints under `root`, newest (highest step) first: each step's
/// `step-N` folder, or its `.step-N.old` when a crash came between the two
/// renames of a replacement. Partial folders are never listed.
pub fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found: BTreeMap<u64, (bool, PathBuf)> = BTreeMap::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io(root, e))?;
        let name = entry.file_name();
        if let Some((step, old)) = name.to_str().and_then(parse_name) {
            let keep = match found.get(&step) {
                Some((existing_old, _)) => *existing_old && !old,
                None => true,
            };
            if keep {
                found.insert(step, (old, entry.path()));
            }
        }
    }
    Ok(found
        .into_iter()
        .rev()
        .map(|(step, (_, p))| (step, p))
        .collect())
}

/// Why [`newest_valid`] passed over a checkpoint.
pub type Skipped = (PathBuf, Error);

/// The newest checkpoint under `root` whose checksums verify, loaded, and
/// each newer one skipped with why. A checkpoint that verifies but does not
/// load (a device out of memory, an unreadable file) is an error, not a
/// skip: it is whole, and resuming from an older one would waste it.
pub fn newest_valid<M: Checkpointed>(
    root: &Path,
    device: &Device,
) -> Result<(Option<Loaded<M>>, Vec<Skipped>)> {
    let mut skipped = Vec::new();
    for (_, dir) in list(root)? {
        match verify(&dir) {
            Ok(()) => return Ok((Some(load(&dir, device)?), skipped)),
            Err(e) => skipped.push((dir, e)),
        }
    }
    Ok((None, skipped))
}

/// Moves a checkpoint that did not verify out of the way, to
/// `.bad-step-N` beside it (kept for a person to inspect; never listed,
/// never pruned), and returns where it went.
pub fn set_aside(dir: &Path) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint")
        .trim_start_matches('.')
        .trim_end_matches(".old");
    let to = dir.with_file_name(format!(".bad-{name}"));
    if to.exists() {
        std::fs::remove_dir_all(&to).map_err(|e| io(&to, e))?;
    }
    std::fs::rename(dir, &to).map_err(|e| io(&to, e))?;
    Ok(to)
}

/// Deletes all but the newest `keep` checkpoints (at least one is kept) and
/// any partial folder left by a crash.
pub fn prune(root: &Path, keep: usize) -> Result<()> {
    for (_, dir) in list(root)?.into_iter().skip(keep.max(1)) {
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_str().unwrap_or_default();
            let partial = name.starts_with(".step-") && name.ends_with(".partial");
            // An old folder whose replacement is in place is no longer needed.
            let replaced = parse_name(name).is_some_and(|(step, old)| {
                old && root.join(dir_name(step)).join("checksums.json").is_file()
            });
            if partial || replaced {
                let p = entry.path();
                std::fs::remove_dir_all(&p).map_err(|e| io(&p, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_eight_or_more_digits_and_old_folders_count() {
        assert_eq!(parse_name("step-00000012"), Some((12, false)));
        assert_eq!(parse_name("step-123456789"), Some((123_456_789, false)));
        assert_eq!(parse_name(".step-00000012.old"), Some((12, true)));
        assert_eq!(parse_name(".step-00000012.partial"), None);
        assert_eq!(parse_name(".bad-step-00000012"), None);
        assert_eq!(parse_name("step-12"), None);
        assert_eq!(parse_name("step-0000001x"), None);
    }

    #[test]
    fn a_replacement_interrupted_between_its_renames_still_lists_the_step() {
        let root =
            std::env::temp_dir().join(format!("shoestring-ckpt-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(".step-00000005.old")).unwrap();
        std::fs::create_dir_all(root.join("step-00000003")).unwrap();
        std::fs::create_dir_all(root.join(".step-00000009.partial")).unwrap();
        let l = list(&root).unwrap();
        assert_eq!(l.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [5, 3]);
        assert!(l[0].1.ends_with(".step-00000005.old"));
        // Both present: the new folder wins.
        std::fs::create_dir_all(root.join("step-00000005")).unwrap();
        assert!(list(&root).unwrap()[0].1.ends_with("step-00000005"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
