//! `vocab.json`: what turns text into the model's inputs and its outputs
//! into names. Saved next to `model.safetensors`, so that the two files are
//! all a user needs to run the model (here, or in PyTorch with
//! `scripts/load_in_pytorch.py`).

use crate::data::vocab::Vocab;
use crate::error::{Error, Result};
use crate::run::{read_json, write_json};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `format` of a vocab file.
pub const FORMAT: &str = "shoestring-vocab-v1";

/// `vocab.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocabFile {
    /// [`FORMAT`].
    pub format: String,
    /// The tokenizer (`words-v1`: lowercase, `[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]`).
    pub tokenizer: String,
    /// Tokens per text at most, `xxbos` included.
    pub max_len: usize,
    /// Token `i` is `tokens[i]`; `xxpad`, `xxunk`, `xxbos` first.
    pub tokens: Vec<String>,
    /// Class `k` is `classes[k]`.
    pub classes: Vec<String>,
}

impl VocabFile {
    /// The tokenizer name of `data::tokenizer`.
    pub const TOKENIZER: &'static str = "words-v1";

    /// The file for `vocab`, `classes` and `max_len`.
    pub fn new(vocab: &Vocab, classes: &[String], max_len: usize) -> VocabFile {
        VocabFile {
            format: FORMAT.into(),
            tokenizer: Self::TOKENIZER.into(),
            max_len,
            tokens: vocab.itos().to_vec(),
            classes: classes.to_vec(),
        }
    }

    /// The vocabulary it holds.
    pub fn vocab(&self) -> Result<Vocab> {
        Vocab::from_tokens(self.tokens.clone())
    }

    /// Writes to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> Result<VocabFile> {
        let f: VocabFile = read_json(path)?;
        if f.format != FORMAT || f.tokenizer != Self::TOKENIZER {
            return Err(Error::Format {
                what: path.display().to_string(),
                msg: format!(
                    "format `{}` with tokenizer `{}`, expected `{FORMAT}` with `{}`",
                    f.format,
                    f.tokenizer,
                    Self::TOKENIZER
                ),
            });
        }
        Ok(f)
    }
}
