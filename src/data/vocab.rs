//! The vocabulary: token strings and their ids.
//!
//! Built from the training texts only, in an order that depends on the
//! counts and the token bytes and nothing else (never a hash map's order),
//! so the same corpus gives the same ids on every machine. The run layer
//! stores [`Vocab::itos`] (as `vocab.json`) and its [`Vocab::sha256`]; this
//! module does no file I/O.
//!
//! A vocabulary carries the [`Tokenizer`] it was built with, and
//! [`Vocab::encode`] uses it: ids are only meaningful for the tokens of that
//! tokenizer.

use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A vocabulary: the specials `xxpad`, `xxunk`, `xxbos` at ids 0, 1, 2, then
/// the corpus tokens, with the [`Tokenizer`] that makes its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    itos: Vec<String>,
    stoi: HashMap<String, u32>,
    tokenizer: Tokenizer,
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

    /// [`Vocab::build_with`] the default tokenizer, [`Tokenizer::Words`].
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>, min_freq: usize) -> Vocab {
        Self::build_with(Tokenizer::Words, texts, min_freq)
    }

    /// The vocabulary of `texts` (the training texts) under `tokenizer`: the
    /// specials, then every token of [`Tokenizer::tokenize`] seen at least
    /// `min_freq` times (0 counts as 1), by count descending, ties by token
    /// bytes ascending. A text token spelled like a special (`xxbos`) is not
    /// added again: it encodes to the special's id.
    pub fn build_with<'a>(
        tokenizer: Tokenizer,
        texts: impl IntoIterator<Item = &'a str>,
        min_freq: usize,
    ) -> Vocab {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in texts {
            for token in tokenizer.tokenize(text) {
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
        Self::index(itos, tokenizer)
    }

    /// [`Vocab::from_tokens_with`] the default tokenizer, [`Tokenizer::Words`].
    pub fn from_tokens(tokens: Vec<String>) -> Result<Vocab> {
        Self::from_tokens_with(Tokenizer::Words, tokens)
    }

    /// A vocabulary of `tokenizer`'s tokens from its token list (e.g. a
    /// saved `vocab.json`, whose tokenizer name says which). Errors
    /// unless the three specials come first in their order, no token is
    /// repeated, none is empty or holds whitespace (which no tokenizer
    /// token does, and which keeps [`Vocab::sha256`]'s `\n` join
    /// unambiguous), and the ids fit `u32`.
    pub fn from_tokens_with(tokenizer: Tokenizer, tokens: Vec<String>) -> Result<Vocab> {
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
        Ok(Self::index(tokens, tokenizer))
    }

    fn index(itos: Vec<String>, tokenizer: Tokenizer) -> Vocab {
        let stoi = itos
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Vocab {
            itos,
            stoi,
            tokenizer,
        }
    }

    /// ULMFiT's vocabulary extension, for fine-tuning a model trained on
    /// this vocabulary on `target`'s corpus: this vocabulary's tokens in
    /// their order (so every id of `self` is unchanged), then every token of
    /// `target` not in this one, in `target`'s order. The specials are in
    /// both, so never repeated. The tokenizer is this one's; the caller must
    /// have built `target` with the same tokenizer, and it is an error if
    /// the two tokenizers differ (the tokens would not be comparable), or
    /// if the result would not fit `u32` ids.
    pub fn extended(&self, target: &Vocab) -> Result<Vocab> {
        if target.tokenizer != self.tokenizer {
            return Err(Error::invalid(
                "vocab",
                format!(
                    "cannot extend a `{}` vocabulary with a `{}` one",
                    self.tokenizer.name(),
                    target.tokenizer.name()
                ),
            ));
        }
        let mut itos = self.itos.clone();
        itos.extend(
            target
                .itos
                .iter()
                .filter(|t| !self.stoi.contains_key(t.as_str()))
                .cloned(),
        );
        if u32::try_from(itos.len()).is_err() {
            return Err(Error::invalid("vocab", "more than 2^32 tokens"));
        }
        Ok(Self::index(itos, self.tokenizer))
    }

    /// The tokenizer whose tokens this vocabulary holds.
    pub fn tokenizer(&self) -> Tokenizer {
        self.tokenizer
    }

    /// `[BOS]` and the ids of the vocabulary's [`Vocab::tokenizer`]'s tokens
    /// of `text` (unknown tokens: [`Vocab::UNK`]),
    /// cut to `max_len` ids in all. `max_len` 0 counts as 1, so every text
    /// encodes to at least `[BOS]`.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let max_len = max_len.max(1);
        let mut ids = Vec::with_capacity(max_len.min(256));
        ids.push(Self::BOS);
        ids.extend(
            self.tokenizer
                .tokenize(text)
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
    ///
    /// For the default tokenizer ([`Tokenizer::Words`]) that is all, so the
    /// hashes of vocabularies from before there was a choice of tokenizer
    /// stay the same. For any other, the hashed bytes are the tokenizer's
    /// [`Tokenizer::name`] and `\n` followed by that join (`fastai-v1\n`
    /// then the tokens), so two vocabularies with the same tokens but
    /// different tokenizers (which encode texts differently) differ.
    pub fn sha256(&self) -> String {
        let join = self.itos.join("\n");
        let bytes = match self.tokenizer {
            Tokenizer::Words => join,
            other => format!("{}\n{join}", other.name()),
        };
        super::hex(&Sha256::digest(bytes.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(ts: &[&str]) -> Vec<String> {
        ts.iter().map(|s| s.to_string()).collect()
    }

    fn vocab(tokenizer: Tokenizer, extra: &[&str]) -> Vocab {
        let mut tokens = strings(&Vocab::SPECIALS);
        tokens.extend(strings(extra));
        Vocab::from_tokens_with(tokenizer, tokens).unwrap()
    }

    #[test]
    fn build_and_from_tokens_default_to_words() {
        let v = Vocab::build(["Hello HELLO"], 1);
        assert_eq!(v.tokenizer(), Tokenizer::Words);
        assert_eq!(v, Vocab::build_with(Tokenizer::Words, ["Hello HELLO"], 1));
        assert_eq!(v.itos()[3..], ["hello"]);
        let back = Vocab::from_tokens(v.itos().to_vec()).unwrap();
        assert_eq!(back.tokenizer(), Tokenizer::Words);
        assert_eq!(back, v);
    }

    #[test]
    fn a_fastai_vocab_builds_and_encodes_with_fastai_tokens() {
        let v = Vocab::build_with(Tokenizer::Fastai, ["Hello HELLO!!!", "hello"], 1);
        assert_eq!(v.tokenizer(), Tokenizer::Fastai);
        // hello 3, then by bytes: ! 3 xxmaj xxrep xxup (once each).
        assert_eq!(v.itos()[3..], ["hello", "!", "3", "xxmaj", "xxrep", "xxup"]);
        let id = |t: &str| v.id(t).unwrap();
        assert_eq!(
            v.encode("HELLO world", 10),
            [Vocab::BOS, id("xxup"), id("hello"), Vocab::UNK]
        );
        // The same tokens under Words encode differently.
        let w = Vocab::from_tokens(v.itos().to_vec()).unwrap();
        assert_ne!(w.encode("HELLO world", 10), v.encode("HELLO world", 10));
        assert_ne!(w, v);
    }

    #[test]
    fn sha256_is_unchanged_for_words_and_names_other_tokenizers() {
        let words = vocab(Tokenizer::Words, &["a"]);
        let fastai = vocab(Tokenizer::Fastai, &["a"]);
        // printf '%s' "xxpad\nxxunk\nxxbos\na" | sha256sum
        assert_eq!(
            words.sha256(),
            "c275ae0b6d663109a390dbb0ff9dd3e75907e9b82ea34d7f3528d2f6fe2725c5"
        );
        // printf '%s' "fastai-v1\nxxpad\nxxunk\nxxbos\na" | sha256sum
        assert_eq!(
            fastai.sha256(),
            "1afd3e932e0c3b46995e03f8efeffb05ef193373d997f4a968d9e8fd233b8907"
        );
    }

    #[test]
    fn extended_keeps_old_ids_and_appends_new_tokens_in_target_order() {
        let base = vocab(Tokenizer::Fastai, &["the", "movie", "xxmaj"]);
        let target = vocab(
            Tokenizer::Fastai,
            &["film", "the", "zebra", "movie", "apple"],
        );
        let ext = base.extended(&target).unwrap();
        assert_eq!(ext.tokenizer(), Tokenizer::Fastai);
        assert_eq!(ext.itos()[..base.len()], *base.itos());
        for (i, t) in base.itos().iter().enumerate() {
            assert_eq!(ext.id(t), Some(i as u32));
        }
        assert_eq!(ext.itos()[base.len()..], ["film", "zebra", "apple"]);
        // Specials once each, no token twice, every target token present.
        assert_eq!(ext.len(), 9);
        let mut sorted = ext.itos().to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ext.len());
        assert!(target.itos().iter().all(|t| ext.id(t).is_some()));
        // A valid vocabulary: it round-trips through from_tokens_with.
        assert_eq!(
            Vocab::from_tokens_with(Tokenizer::Fastai, ext.itos().to_vec()).unwrap(),
            ext
        );
        // Extending with itself (or a subset) changes nothing.
        assert_eq!(base.extended(&base).unwrap(), base);
    }

    #[test]
    fn extended_refuses_a_target_of_another_tokenizer() {
        let base = vocab(Tokenizer::Words, &["a"]);
        let target = vocab(Tokenizer::Fastai, &["b"]);
        let msg = base.extended(&target).unwrap_err().to_string();
        assert!(
            msg.contains("words-v1") && msg.contains("fastai-v1"),
            "{msg}"
        );
        assert!(target.extended(&base).is_err());
    }
}
