//! Saving and loading named f32 tensors as safetensors (the `safetensors`
//! crate reads and writes the format; nothing here parses bytes by hand).
//! A file is written to a temporary name in the same folder, flushed to disk
//! and renamed over the target, so a crash leaves the old file or the new
//! one, never half of one. Loading executes nothing: a safetensors file is a
//! JSON header and raw little-endian numbers (unlike pickle-based formats).

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

/// Writes `tensors` (f32, in this order in the header's listing, which the
/// format sorts by name) and `metadata` to `path`, atomically.
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
    let meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let data = safetensors::serialize(views, Some(meta)).map_err(|e| format_error(path, e))?;
    let tmp = path.with_extension("safetensors.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
    f.write_all(&data).map_err(|e| io_error(&tmp, e))?;
    f.sync_all().map_err(|e| io_error(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

/// Reads every tensor (f32 only) and the metadata of the safetensors file at
/// `path`; tensors come back sorted by name.
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
    let metadata = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok((out, metadata))
}
