//! Saving and loading named f32 tensors as safetensors (the `safetensors`
//! crate reads and writes the format; nothing here parses bytes by hand).
//! A file is written to a temporary name in the same folder, flushed to disk
//! and renamed over the target (the folder is then flushed too), so a crash
//! leaves the old file or the new one, never half of one. Loading executes
//! nothing: a safetensors file is a JSON header and raw little-endian
//! numbers (unlike pickle-based formats).
//!
//! The same tensors and metadata always give the same bytes: the crate
//! writes its metadata map in the map's iteration order, which for its
//! `HashMap` changes from process to process, so all of our metadata goes in
//! as one entry, [`METADATA_KEY`], a JSON object with sorted keys.

use super::params::HostTensor;
use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn format_error(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Format {
        what: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// The one safetensors metadata entry we write: a JSON object of the
/// caller's metadata, keys sorted.
pub const METADATA_KEY: &str = "shoestring";

/// Writes `tensors` (f32; the format orders them by name) and `metadata` to
/// `path`, atomically; byte-identical output for identical input.
pub fn save_tensors(
    path: &Path,
    tensors: &[HostTensor],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, t.dims.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| format_error(path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_string(metadata).map_err(|e| format_error(path, e))?;
    let meta = HashMap::from([(METADATA_KEY.to_string(), json)]);
    let data = safetensors::serialize(views, Some(meta)).map_err(|e| format_error(path, e))?;
    write_atomically(path, &data)
}

/// Writes `data` to `path` through `<path>.tmp` in the same folder: write,
/// fsync, rename, then fsync the folder so that the rename itself is durable.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        let allowed = crate::fault::disk_allows(data.len());
        f.write_all(&data[..allowed])?;
        if allowed < data.len() {
            // The tests' full disk (`fault::DISK_ENV`): what a real one says.
            return Err(std::io::Error::from_raw_os_error(28));
        }
        f.sync_all()
    })();
    if let Err(e) = written {
        // A failed write (a full disk) leaves no temporary file behind, and
        // the file at `path`, if any, as it was.
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A folder opens read-only for fsync on Unix; elsewhere this may be
    // refused, and the rename is as durable as the platform makes it.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads every tensor (f32 only) and the metadata of the safetensors file at
/// `path`; tensors come back sorted by name. The metadata is ours (the
/// [`METADATA_KEY`] entry) when present, else the file's entries as they are
/// (a file from another tool).
pub fn load_tensors(path: &Path) -> Result<(Vec<HostTensor>, BTreeMap<String, String>)> {
    let data = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let st = SafeTensors::deserialize(&data).map_err(|e| format_error(path, e))?;
    let mut out = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        let t = st.tensor(&name).map_err(|e| format_error(path, e))?;
        if t.dtype() != Dtype::F32 {
            return Err(format_error(
                path,
                format!("tensor `{name}` is {:?}, expected F32", t.dtype()),
            ));
        }
        let values = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(HostTensor {
            name,
            dims: t.shape().to_vec(),
            values,
        });
    }
    let (_, meta) = SafeTensors::read_metadata(&data).map_err(|e| format_error(path, e))?;
    let raw = meta.metadata().clone().unwrap_or_default();
    let metadata = match raw.get(METADATA_KEY) {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| format_error(path, format!("metadata `{METADATA_KEY}`: {e}")))?,
        None => raw.into_iter().collect(),
    };
    Ok((out, metadata))
}

/// Writes a model file: `tensors` with PyTorch's two LSTM biases
/// ([`with_pytorch_lstm_biases`]), and the metadata `format` and `config`
/// (the model's sizes as JSON), atomically.
pub fn save_model(
    path: &Path,
    format: &str,
    config: &impl serde::Serialize,
    tensors: Vec<HostTensor>,
) -> Result<()> {
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), format.to_string());
    let config = serde_json::to_string(config).map_err(|e| Error::Format {
        what: format!("{format} config"),
        msg: e.to_string(),
    })?;
    meta.insert("config".to_string(), config);
    save_tensors(path, &with_pytorch_lstm_biases(tensors), &meta)
}

/// Reads a model file that [`save_model`] wrote with `format`: its config,
/// and its tensors with each `bias_hh` folded back ([`fold_hidden_biases`]).
/// `in_file` checks the config against the tensors (their values, less any
/// `.bn.running_` statistics) before the caller allocates from it: the
/// config's parameter count, or `None` on overflow.
pub fn load_model<C: serde::de::DeserializeOwned>(
    path: &Path,
    format: &str,
    count: impl FnOnce(&C) -> Option<usize>,
) -> Result<(C, Vec<HostTensor>)> {
    let (tensors, meta) = load_tensors(path)?;
    let bad = |msg: String| format_error(path, msg);
    if meta.get("format").map(String::as_str) != Some(format) {
        return Err(bad(format!("not a {format} file (metadata `format`)")));
    }
    let config: C = serde_json::from_str(
        meta.get("config")
            .ok_or_else(|| bad("no `config` metadata".into()))?,
    )
    .map_err(|e| bad(format!("config: {e}")))?;
    let tensors = fold_hidden_biases(tensors).map_err(bad)?;
    // The config decides what gets allocated: it must describe the
    // tensors the file holds before anything is built from it.
    let in_file: usize = tensors
        .iter()
        .filter(|t| !t.name.contains(".bn.running_"))
        .map(|t| t.values.len())
        .sum();
    match count(&config) {
        Some(n) if n == in_file => Ok((config, tensors)),
        n => Err(bad(format!(
            "the config describes {} parameter values, the file holds {in_file}",
            n.map_or("more than usize::MAX".to_string(), |n| n.to_string())
        ))),
    }
}

/// Tensors as a model file holds them: PyTorch's `nn.LSTM` has two biases,
/// so each `bias_ih_l0[_reverse]` (our one bias) is joined by a
/// `bias_hh_l0[_reverse]` of zeros; `b_ih + 0` is `b_ih` in PyTorch, and
/// [`fold_hidden_biases`] folds a non-zero one back in on loading.
pub fn with_pytorch_lstm_biases(tensors: Vec<HostTensor>) -> Vec<HostTensor> {
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let hh = t.name.contains(".bias_ih_l").then(|| HostTensor {
            name: t.name.replace(".bias_ih_l", ".bias_hh_l"),
            dims: t.dims.clone(),
            values: vec![0.0; t.values.len()],
        });
        out.push(t);
        out.extend(hh);
    }
    out
}

/// Folds each `bias_hh_l0[_reverse]` of a file into its `bias_ih_l0`:
/// PyTorch's LSTM adds both, ours has one. Zeros (what we write) leave
/// `bias_ih` bit for bit; another tool's non-zero `bias_hh` is added once,
/// rounded to f32.
pub fn fold_hidden_biases(
    tensors: Vec<HostTensor>,
) -> std::result::Result<Vec<HostTensor>, String> {
    let (hh, mut rest): (Vec<HostTensor>, Vec<HostTensor>) = tensors
        .into_iter()
        .partition(|t| t.name.contains(".bias_hh_l"));
    for h in hh {
        let ih_name = h.name.replace(".bias_hh_l", ".bias_ih_l");
        let ih = rest
            .iter_mut()
            .find(|t| t.name == ih_name)
            .ok_or_else(|| format!("`{}` without `{ih_name}`", h.name))?;
        if ih.dims != h.dims {
            return Err(format!(
                "`{}` has dims {:?}, `{ih_name}` {:?}",
                h.name, h.dims, ih.dims
            ));
        }
        if h.values.iter().any(|v| *v != 0.0) {
            ih.values
                .iter_mut()
                .zip(&h.values)
                .for_each(|(a, b)| *a += b);
        }
    }
    Ok(rest)
}
