//! `fortunes8`: the embedded default corpus.
//!
//! 6,765 fortune-cookie texts in 8 classes (the fortune files `computers`,
//! `definitions`, `people`, `politics`, `science`, `songs-poems`, `work`,
//! `men-women` of Debian's `fortunes` 1:1.99.1-7.3), one row per text with
//! its newlines folded to spaces; every fifth text of each file is
//! validation (5,414 training, 1,351 validation). `scripts/make-fortunes8.sh`
//! builds `data/fortunes8.csv` and documents every choice. Embedded so that
//! the default run needs no network and no file.

use super::{csv_file, Dataset};
use crate::error::Result;

/// The source name that selects this corpus.
pub const NAME: &str = "fortunes8";

/// The file name errors in the embedded CSV are reported against.
pub const FILE: &str = "fortunes8.csv";

/// The CSV's bytes (`label,text,is_valid`).
pub const CSV: &[u8] = include_bytes!("../../data/fortunes8.csv");

/// The embedded corpus as a [`Dataset`]; its split is fixed by `is_valid`.
pub fn load_fortunes8() -> Result<Dataset> {
    // The CSV has an is_valid column, so the fraction and seed are unused.
    csv_file::load(NAME, FILE, CSV, 0.0, 0)
}
