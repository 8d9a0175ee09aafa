//! `metrics.json`: per epoch, the mean training loss and the validation
//! loss and accuracy. Deterministic like the model (no times in it), so two
//! identical runs write identical files.

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// The epoch (from 0).
    pub epoch: u32,
    /// Steps taken by the end of it.
    pub step: u64,
    /// The mean training loss over its applied steps, each weighted by its
    /// rows (the dropout-on loss the steps saw).
    pub train_loss: f64,
    /// The mean validation loss (no dropout, running statistics).
    pub valid_loss: f64,
    /// The fraction of validation texts whose top class is right.
    pub valid_accuracy: f64,
    /// Language models: `exp(valid_loss)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_perplexity: Option<f64>,
    /// The epoch stopped early (`--max-steps`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// Writes `metrics` to `path`, atomically.
pub fn write(path: &Path, metrics: &[EpochMetrics]) -> Result<()> {
    super::write_json(path, &metrics)
}

/// Reads `path`.
pub fn read(path: &Path) -> Result<Vec<EpochMetrics>> {
    super::read_json(path)
}
