//! Datasets for the text classifier: the embedded `fortunes8` corpus, CSV
//! and aclImdb loaders, the tokenizer, the vocabulary and deterministic
//! permutations.
//!
//! Loading is a pure function of the input bytes, `valid_fraction` and
//! `seed`: rows keep their file order, classes are sorted by bytes, and a
//! random validation split is drawn from Philox ([`shuffle`]), so a dataset
//! and its [`Dataset::sha256`] identify a run's data exactly.
//!
//! - [`corpus`]: `fortunes8`, embedded with `include_bytes!`
//!   (`scripts/make-fortunes8.sh` builds it).
//! - `csv_file`: `label,text[,is_valid]` CSV files.
//! - `imdb`: the aclImdb folder layout.
//! - [`tokenizer`], [`vocab`]: text to ids.
//! - [`shuffle`]: Fisher-Yates on Philox.

pub mod batcher;
pub mod corpus;
mod csv_file;
mod imdb;
pub mod lm;
pub mod lm_corpus;
pub mod shuffle;
pub mod tokenizer;
pub mod vocab;

pub use shuffle::permutation;
pub use tokenizer::tokenize;
pub use vocab::Vocab;

pub(crate) use crate::digest::hex;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Index into [`Dataset::classes`].
    pub label: u32,
    /// The text as stored (not lowercased or trimmed).
    pub text: String,
}

/// A labelled corpus split into training and validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `fortunes8`, or the path as given.
    pub name: String,
    /// The labels of the training rows, sorted by bytes ascending; a label
    /// `u32` is an index here.
    pub classes: Vec<String>,
    /// Training examples, in file order.
    pub train: Vec<Example>,
    /// Validation examples, in file order.
    pub valid: Vec<Example>,
    /// Hex SHA-256 identifying the input: of the file's bytes for a CSV (the
    /// embedded bytes for `fortunes8`); for aclImdb, see `imdb`'s docs.
    pub sha256: String,
}

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// The embedded corpus ([`corpus`]).
    Fortunes8,
    /// A CSV file with a header naming `label`, `text` and optionally `is_valid`.
    Csv(PathBuf),
    /// An aclImdb folder: `train/<class>/*.txt`, `test/<class>/*.txt`.
    Imdb(PathBuf),
}

impl DataSource {
    /// `fortunes8` is the embedded corpus (even if a file of that name
    /// exists); a directory is an aclImdb folder; any other existing path
    /// is a CSV file. A path that cannot be read is an [`Error::Io`] naming it.
    pub fn parse(s: &str) -> Result<DataSource> {
        if s == corpus::NAME {
            return Ok(DataSource::Fortunes8);
        }
        let path = PathBuf::from(s);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Ok(DataSource::Imdb(path)),
            Ok(_) => Ok(DataSource::Csv(path)),
            Err(source) => Err(Error::Io {
                path: s.to_string(),
                source,
            }),
        }
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Fortunes8 => f.write_str(corpus::NAME),
            DataSource::Csv(p) | DataSource::Imdb(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Loads `source`.
///
/// `valid_fraction`, in `[0, 1)`, is the share of rows drawn for validation
/// when the source does not say which rows are validation (a CSV without an
/// `is_valid` column): the first `round(n * valid_fraction)` entries of
/// [`permutation`]`(seed, data_shuffle[2], 0, n)` are validation. The
/// embedded corpus and aclImdb fix their split, and a CSV with `is_valid`
/// does too; then `valid_fraction` and `seed` are not used (but
/// `valid_fraction` is still checked).
pub fn load(source: &DataSource, valid_fraction: f64, seed: u64) -> Result<Dataset> {
    if !(0.0..1.0).contains(&valid_fraction) {
        return Err(Error::invalid(
            "data::load",
            format!("valid_fraction is {valid_fraction}; expected a value in [0, 1)"),
        ));
    }
    match source {
        DataSource::Fortunes8 => corpus::load_fortunes8(),
        DataSource::Csv(path) => {
            let shown = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|source| Error::Io {
                path: shown.clone(),
                source,
            })?;
            csv_file::load(&shown, &shown, &bytes, valid_fraction, seed)
        }
        DataSource::Imdb(dir) => imdb::load(dir),
    }
}

/// A row before labels become ids.
pub(crate) struct Row {
    pub label: String,
    pub text: String,
    pub valid: bool,
}

/// Why rows could not become a [`Dataset`]; the loader turns it into an
/// error naming its place.
pub(crate) enum Unassembled {
    /// No row is a training row.
    NoTraining,
    /// Row `index` is validation with a `label` no training row has; it is
    /// the first such row.
    LabelOnlyInValid { index: usize, label: String },
}

/// Classes from the training labels (sorted by bytes), then each row's id.
pub(crate) fn assemble(
    name: String,
    rows: Vec<Row>,
    sha256: String,
) -> std::result::Result<Dataset, Unassembled> {
    let set: BTreeSet<&str> = rows
        .iter()
        .filter(|r| !r.valid)
        .map(|r| r.label.as_str())
        .collect();
    if set.is_empty() {
        return Err(Unassembled::NoTraining);
    }
    // BTreeSet<&str> iterates in byte order (str's Ord is bytewise).
    let classes: Vec<String> = set.into_iter().map(str::to_string).collect();
    if let Some(index) = rows
        .iter()
        .position(|r| r.valid && classes.binary_search(&r.label).is_err())
    {
        let label = rows[index].label.clone();
        return Err(Unassembled::LabelOnlyInValid { index, label });
    }
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for r in rows {
        // Found above; fewer than 2^32 classes since each has a row.
        let label = classes.binary_search(&r.label).unwrap_or(0) as u32;
        let ex = Example {
            label,
            text: r.text,
        };
        if r.valid {
            valid.push(ex);
        } else {
            train.push(ex);
        }
    }
    Ok(Dataset {
        name,
        classes,
        train,
        valid,
        sha256,
    })
}
