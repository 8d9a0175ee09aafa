//! `vocab.json`: what turns text into the model's inputs and its outputs
//! into names. Saved next to `model.safetensors`, so that the two files are
//! all a user needs to run the model (here, or in PyTorch with
//! `scripts/load_in_pytorch.py`).

use crate::data::tokenizer::Tokenizer;
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
    /// The tokenizer's [`Tokenizer::name`]: `words-v1` (lowercase,
    /// `[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]`) or `fastai-v1` (the same split,
    /// with fastai's `xxrep`, `xxwrep`, `xxup`, `xxmaj` rules; see
    /// `data::tokenizer`).
    pub tokenizer: String,
    /// Tokens per text at most, `xxbos` included.
    pub max_len: usize,
    /// Token `i` is `tokens[i]`; `xxpad`, `xxunk`, `xxbos` first.
    pub tokens: Vec<String>,
    /// Class `k` is `classes[k]`.
    pub classes: Vec<String>,
}

impl VocabFile {
    /// The name of the default tokenizer, [`Tokenizer::Words`].
    pub const TOKENIZER: &'static str = Tokenizer::Words.name();

    /// The tokenizers a file may name, by their [`Tokenizer::name`].
    const TOKENIZERS: [Tokenizer; 2] = [Tokenizer::Words, Tokenizer::Fastai];

    /// The file for `vocab` (with its tokenizer), `classes` and `max_len`.
    pub fn new(vocab: &Vocab, classes: &[String], max_len: usize) -> VocabFile {
        VocabFile {
            format: FORMAT.into(),
            tokenizer: vocab.tokenizer().name().into(),
            max_len,
            tokens: vocab.itos().to_vec(),
            classes: classes.to_vec(),
        }
    }

    /// The tokenizer named `name` exactly (`words-v1`, `fastai-v1`).
    fn tokenizer_named(name: &str) -> Option<Tokenizer> {
        Self::TOKENIZERS.into_iter().find(|t| t.name() == name)
    }

    /// The accepted tokenizer names, for error messages.
    fn tokenizer_names() -> String {
        Self::TOKENIZERS
            .iter()
            .map(|t| format!("`{}`", t.name()))
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// The vocabulary it holds, with the file's tokenizer. Errors if the
    /// tokenizer name is not one [`VocabFile::read`] accepts.
    pub fn vocab(&self) -> Result<Vocab> {
        let tokenizer = Self::tokenizer_named(&self.tokenizer).ok_or_else(|| {
            Error::invalid(
                "vocab",
                format!(
                    "tokenizer `{}`, expected {}",
                    self.tokenizer,
                    Self::tokenizer_names()
                ),
            )
        })?;
        Vocab::from_tokens_with(tokenizer, self.tokens.clone())
    }

    /// Writes to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Reads `path`. Its tokenizer must be `words-v1` or `fastai-v1`.
    pub fn read(path: &Path) -> Result<VocabFile> {
        let f: VocabFile = read_json(path)?;
        if f.format != FORMAT || Self::tokenizer_named(&f.tokenizer).is_none() {
            return Err(Error::Format {
                what: path.display().to_string(),
                msg: format!(
                    "format `{}` with tokenizer `{}`, expected `{FORMAT}` with {}",
                    f.format,
                    f.tokenizer,
                    Self::tokenizer_names()
                ),
            });
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_tokenizer_name_is_words() {
        assert_eq!(VocabFile::TOKENIZER, Tokenizer::Words.name());
    }

    #[test]
    fn files_carry_the_vocab_tokenizer_and_refuse_unknown_ones() {
        let dir =
            std::env::temp_dir().join(format!("shoestring-vocab-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let classes = vec!["neg".to_string(), "pos".to_string()];
        for tokenizer in [Tokenizer::Words, Tokenizer::Fastai] {
            let vocab = Vocab::build_with(tokenizer, ["Good GOOD film!!!"], 1);
            let file = VocabFile::new(&vocab, &classes, 64);
            assert_eq!(file.tokenizer, tokenizer.name());
            let path = dir.join(format!("{}.json", tokenizer.name()));
            file.write(&path).unwrap();
            let back = VocabFile::read(&path).unwrap();
            assert_eq!(back, file);
            let v = back.vocab().unwrap();
            assert_eq!(v.tokenizer(), tokenizer);
            assert_eq!(v, vocab);
            assert_eq!(v.sha256(), vocab.sha256());
        }
        let mut bad = VocabFile::new(&Vocab::build(["a"], 1), &classes, 8);
        bad.tokenizer = "fastai".into();
        let msg = bad.vocab().unwrap_err().to_string();
        assert!(
            msg.contains("words-v1") && msg.contains("fastai-v1"),
            "{msg}"
        );
        let path = dir.join("bad.json");
        bad.write(&path).unwrap();
        let msg = VocabFile::read(&path).unwrap_err().to_string();
        assert!(
            msg.contains("words-v1") && msg.contains("fastai-v1"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
