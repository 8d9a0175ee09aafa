//! The vocabulary: token strings and their ids.
//!
//! Built from the training texts only, in an order that depends on the
//! counts and the token bytes and nothing else (never a hash map's order),
//! so the same corpus gives the same ids on every machine. The run layer
//! stores [`Vocab::itos`] (as `vocab.json`) and its [`Vocab::sha256`]; this
//! module does no file I/O.

use super::tokenizer::tokenize;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A vocabulary: the specials `xxpad`, `xxunk`, `xxbos` at ids 0, 1, 2, then
/// the corpus tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    itos: Vec<String>,
    stoi: HashMap<String, u32>,
}

impl Vocab {
    /// Padding (never produced by [`Vocab::encode`]; for batchers).
    pub const PAD: u32 = 0;
    /// A token not in the vocabulary.
    pub const UNK: u32 = 1;
    /// The start of every encoded text.
    pub const BOS: u32 = 2;
    /// The specials' strings, at ids [`Vocab::PAD`], [`Vocab::UNK`], [`Vocab::BOS`].
    pub const SPECIALS: [&'static str; 3] = ["xxpad", "xxunk", "xxbos"];

    /// The vocabulary of `texts` (the training texts): the specials, then
    /// every token of [`tokenize`] seen at least `min_freq` times (0 counts
    /// as 1), by count descending, ties by token bytes ascending. A text
    /// token spelled like a special (`xxbos`) is not added again: it
    /// encodes to the special's id.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>, min_freq: usize) -> Vocab {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in texts {
            for token in tokenize(text) {
                *counts.entry(token).or_insert(0) += 1;
            }
        }
        let mut kept: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(t, c)| *c >= min_freq.max(1) && !Self::SPECIALS.contains(&t.as_str()))
            .collect();
        // A total order (tokens are distinct), so the hash order is gone.
        kept.sort_unstable_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
        });
        let itos = Self::SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(kept.into_iter().map(|(t, _)| t))
            .collect();
        Self::index(itos)
    }

    /// A vocabulary from its token list (e.g. a saved `vocab.json`). Errors
    /// unless the three specials come first in their order, no token is
    /// repeated, none is empty or holds whitespace (which no tokenizer
    /// token does, and which keeps [`Vocab::sha256`]'s `\n` join
    /// unambiguous), and the ids fit `u32`.
    pub fn from_tokens(tokens: Vec<String>) -> Result<Vocab> {
        if tokens.len() < 3 || tokens[..3] != Self::SPECIALS {
            let head: Vec<&str> = tokens.iter().take(3).map(String::as_str).collect();
            return Err(Error::invalid(
                "vocab",
                format!(
                    "a vocabulary starts with {:?}; this one starts with {head:?}",
                    Self::SPECIALS
                ),
            ));
        }
        if u32::try_from(tokens.len()).is_err() {
            return Err(Error::invalid("vocab", "more than 2^32 tokens"));
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            if t.is_empty() || t.chars().any(char::is_whitespace) {
                return Err(Error::invalid(
                    "vocab",
                    format!("token {i} ({t:?}) is empty or holds whitespace"),
                ));
            }
            if let Some(first) = seen.insert(t, i) {
                return Err(Error::invalid(
                    "vocab",
                    format!("token {t:?} is at both {first} and {i}"),
                ));
            }
        }
        Ok(Self::index(tokens))
    }

    fn index(itos: Vec<String>) -> Vocab {
        let stoi = itos
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Vocab { itos, stoi }
    }

    /// `[BOS]` and the ids of `tokenize(text)` (unknown tokens: [`Vocab::UNK`]),
    /// cut to `max_len` ids in all. `max_len` 0 counts as 1, so every text
    /// encodes to at least `[BOS]`.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let max_len = max_len.max(1);
        let mut ids = Vec::with_capacity(max_len.min(256));
        ids.push(Self::BOS);
        ids.extend(
            tokenize(text)
                .iter()
                .take(max_len - 1)
                .map(|t| self.id(t).unwrap_or(Self::UNK)),
        );
        ids
    }

    /// The number of tokens, specials included.
    pub fn len(&self) -> usize {
        self.itos.len()
    }

    /// Always false: the specials are always there. (For clippy's `len` rule.)
    pub fn is_empty(&self) -> bool {
        self.itos.is_empty()
    }

    /// The tokens by id.
    pub fn itos(&self) -> &[String] {
        &self.itos
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.stoi.get(token).copied()
    }

    /// Hex SHA-256 of the tokens joined by `\n` (no trailing newline): an
    /// identity for logs and checkpoints. Unambiguous, because no token
    /// holds whitespace.
    pub fn sha256(&self) -> String {
        super::hex(&Sha256::digest(self.itos.join("\n").as_bytes()))
    }
}
