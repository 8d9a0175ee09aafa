//! `steps.jsonl`: one JSON line per training step, the run's fine-grained
//! identity. The loss is logged as its f32 bits (`loss_bits`, exact) and
//! as a decimal (for people); every `fingerprint_every` steps, and at step
//! 0 before any update, a line also carries fingerprints of all parameters
//! and of the optimizer state. Two runs that agree in every line computed
//! the same thing; [`diff`](super::diff) names the first line that does not.
//!
//! Lines are appended and flushed as steps finish; before a checkpoint the
//! file is fsynced, so every line up to the checkpoint's step is on disk. A
//! resume cuts the file back to the checkpoint's step ([`StepLog::resume`]):
//! the steps after it run again and write their lines again, the same bytes.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// One line of `steps.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Steps taken including this one (0: the state before training).
    pub step: u64,
    /// The epoch (from 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
    /// The batch index within the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// The loss, as decimal (absent when not finite: see `loss_bits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f32>,
    /// The loss's f32 bits, `0x` and 8 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_bits: Option<String>,
    /// The loss scale used by this step (mixed precision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f32>,
    /// An overflow was flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<bool>,
    /// The update was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<bool>,
    /// The learning rate of the top layer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f32>,
    /// Texts in the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// Tokens in the batch (no padding is computed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    /// Fingerprint of every parameter after this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    /// Fingerprint of the optimizer state after this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<String>,
}

impl StepRecord {
    /// `0x` and the 8 hex digits of `v`'s bits.
    pub fn bits(v: f32) -> String {
        format!("{:#010x}", v.to_bits())
    }
}

/// The appending writer of `steps.jsonl`.
pub struct StepLog {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl StepLog {
    /// A new, empty log at `path`.
    pub fn create(path: &Path) -> Result<StepLog> {
        let file = std::fs::File::create(path).map_err(|e| io(path, e))?;
        Ok(StepLog {
            path: path.to_path_buf(),
            file: std::io::BufWriter::new(file),
        })
    }

    /// The log at `path` cut back to the lines of steps `<= step` (a line
    /// half-written by a crash goes too), opened for appending. The kept
    /// lines must run from step 0 to `step` (the log is fsynced before
    /// every checkpoint, so they do unless the file was damaged): anything
    /// else is an error naming the file, and nothing is changed.
    pub fn resume(path: &Path, step: u64) -> Result<StepLog> {
        let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
        let mut kept = Vec::new();
        let mut last = None;
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(|e| io(path, e))?;
            match serde_json::from_str::<StepRecord>(&line) {
                Ok(r) if r.step <= step => {
                    last = Some(r.step);
                    kept.push(line);
                }
                _ => break,
            }
        }
        let first_is_0 = kept
            .first()
            .and_then(|l| serde_json::from_str::<StepRecord>(l).ok())
            .is_some_and(|r| r.step == 0);
        if !first_is_0 || last != Some(step) {
            return Err(Error::Data {
                file: path.display().to_string(),
                line: kept.len() as u64 + 1,
                msg: format!(
                    "the log does not run from step 0 to the checkpoint's step {step} (it reaches {})",
                    last.map_or("no step".to_string(), |s| format!("step {s}"))
                ),
            });
        }
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        crate::nn::save::write_atomically(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        Ok(StepLog {
            path: path.to_path_buf(),
            file: std::io::BufWriter::new(file),
        })
    }

    /// Appends one line and flushes it to the OS.
    pub fn append(&mut self, record: &StepRecord) -> Result<()> {
        let line = serde_json::to_string(record).map_err(|e| Error::Format {
            what: self.path.display().to_string(),
            msg: e.to_string(),
        })?;
        writeln!(self.file, "{line}").map_err(|e| io(&self.path, e))?;
        self.file.flush().map_err(|e| io(&self.path, e))
    }

    /// Flushes to disk (before a checkpoint).
    pub fn sync(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| io(&self.path, e))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(|e| io(&self.path, e))
    }
}

/// Every line of the log at `path` (a torn last line is left out); any
/// other line that does not parse is an error naming it.
pub fn read(path: &Path) -> Result<Vec<StepRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            // A last line cut short by a crash (no newline after it) is
            // what an interrupted run leaves; it is not a step.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(Error::Data {
                    file: path.display().to_string(),
                    line: i as u64 + 1,
                    msg: format!("not a step record: {e}"),
                })
            }
        }
    }
    Ok(out)
}
