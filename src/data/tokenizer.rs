//! The tokenizers: [`Tokenizer::Words`] (the default, [`tokenize`]) and
//! [`Tokenizer::Fastai`] (the same word splitting plus fastai's special
//! tokens).
//!
//! # Words (`words-v1`)
//!
//! Lowercase, then words, numbers and single symbols. It is the regex
//! `[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]` applied left to right
//! to the lowercased text (leftmost-longest, as the regex engine would),
//! written by hand so that it needs no regex crate and its behaviour is
//! spelled out here: a run of ASCII letters and digits, optionally followed
//! by `'` and at least one ASCII letter (`don't`, `it's`), is one token; any
//! other character that is not whitespace (`char::is_whitespace`) is a token
//! of its own: punctuation, a non-ASCII letter, a control character such as
//! backspace. Whitespace separates tokens and is dropped.
//!
//! # Fastai (`fastai-v1`)
//!
//! fastai's tokenization rules (`defaults.text_proc_rules` with the
//! `replace_all_caps` and `replace_maj` rules applied to tokens, as fastai
//! v1's post-rules did), on OUR word splitting: the split above, case
//! insensitive (`[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]`) and applied to
//! the text as given, not lowercased. It does NOT reproduce spaCy's word
//! splitting (fastai's default tokenizer is spaCy), only the special-token
//! rules, so its tokens are not fastai's token for token. In order:
//!
//! 1. `replace_rep` on the text: a non-whitespace character repeated 3 or
//!    more times in a row becomes `xxrep n c` (`cooool` gives `c xxrep 4 o l`).
//! 2. The split.
//! 3. `replace_wrep`: a word token repeated 3 or more times in a row
//!    (compared lowercased) becomes `xxwrep n w`, `w` its first occurrence.
//! 4. `replace_all_caps`: `xxup w` for an all-caps token longer than one
//!    character.
//! 5. `replace_maj`: `xxmaj w` for a token of a capital then lowercase.
//! 6. `lowercase`: every token lowercased.
//!
//! The count `n` is a decimal token (`4`). No `xxbos` is added here: the
//! vocabulary's encoder adds it.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Which tokenizer turns a text into tokens. The default, [`Tokenizer::Words`],
/// is [`tokenize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tokenizer {
    /// `words-v1`: [`tokenize`].
    #[default]
    Words,
    /// `fastai-v1`: our split with fastai's special-token rules (module docs).
    Fastai,
}

impl Tokenizer {
    /// Every tokenizer, in [`Tokenizer::parse`]'s error message order.
    const ALL: [Tokenizer; 2] = [Tokenizer::Words, Tokenizer::Fastai];

    /// The versioned name, as stored in `vocab.json`: `words-v1`, `fastai-v1`.
    pub const fn name(self) -> &'static str {
        match self {
            Tokenizer::Words => "words-v1",
            Tokenizer::Fastai => "fastai-v1",
        }
    }

    /// The short name (`words`, `fastai`).
    fn short_name(self) -> &'static str {
        match self {
            Tokenizer::Words => "words",
            Tokenizer::Fastai => "fastai",
        }
    }

    /// The tokenizer called `s`: its short name (`words`, `fastai`) or its
    /// versioned [`Tokenizer::name`] (`words-v1`, `fastai-v1`). Exact,
    /// case-sensitive match.
    pub fn parse(s: &str) -> Result<Tokenizer> {
        Self::ALL
            .into_iter()
            .find(|t| s == t.short_name() || s == t.name())
            .ok_or_else(|| {
                let choices: Vec<String> = Self::ALL
                    .iter()
                    .map(|t| format!("`{}` (`{}`)", t.short_name(), t.name()))
                    .collect();
                Error::invalid(
                    "tokenizer",
                    format!(
                        "unknown tokenizer {s:?}; the choices are {}",
                        choices.join(", ")
                    ),
                )
            })
    }

    /// The tokens of `text`, in order.
    pub fn tokenize(self, text: &str) -> Vec<String> {
        match self {
            Tokenizer::Words => tokenize(text),
            Tokenizer::Fastai => fastai(text),
        }
    }
}

/// The tokens of `text`, in order, by [`Tokenizer::Words`]. Lowercases with
/// [`str::to_lowercase`] first, so the tokens never contain an ASCII capital.
pub fn tokenize(text: &str) -> Vec<String> {
    split(&text.to_lowercase())
}

/// The word splitting of both tokenizers, case insensitive and without
/// changing case: `[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]`, leftmost
/// longest. On lowercased text (Words) it is the module docs' lowercase
/// regex, since lowercased text holds no ASCII capital.
fn split(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_word_byte(b[i]) {
            let start = i;
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            // `'` joins only when at least one ASCII letter follows it.
            if i + 1 < b.len() && b[i] == b'\'' && b[i + 1].is_ascii_alphabetic() {
                i += 1;
                while i < b.len() && b[i].is_ascii_alphabetic() {
                    i += 1;
                }
            }
            tokens.push(text[start..i].to_string());
            continue;
        }
        // Not an ASCII letter or digit: one character, a token unless it is
        // whitespace. `i` is always on a char boundary: word runs consist of
        // ASCII bytes only, and other steps move by whole chars.
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
        i += c.len_utf8();
    }
    tokens
}

/// `[A-Za-z0-9]`: the bytes of a word run.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// A repeated character (fastai `TK_REP`).
pub const TK_REP: &str = "xxrep";
/// A repeated word (fastai `TK_WREP`).
pub const TK_WREP: &str = "xxwrep";
/// The next token was all caps (fastai `TK_UP`).
pub const TK_UP: &str = "xxup";
/// The next token was capitalized (fastai `TK_MAJ`).
pub const TK_MAJ: &str = "xxmaj";

/// [`Tokenizer::Fastai`]: the rules of the module docs, in their order.
fn fastai(text: &str) -> Vec<String> {
    let tokens = split(&replace_rep(text));
    lowercase(replace_maj(replace_all_caps(replace_wrep(tokens))))
}

/// Rule: a non-whitespace character `c` repeated `n >= 3` times in a row
/// becomes ` xxrep n c ` in the text (so `c` stands alone as a token, even
/// inside a word: `cooool` gives `c xxrep 4 o l`). Mirrors fastai's
/// `replace_rep` (regex `(\S)(\1{2,})`, character level); whitespace is
/// [`char::is_whitespace`], as in the split.
fn replace_rep(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let mut n = 1usize;
        while chars.peek() == Some(&c) {
            chars.next();
            n += 1;
        }
        if n >= 3 && !c.is_whitespace() {
            // Writing to a String cannot fail.
            let _ = write!(out, " {TK_REP} {n} {c} ");
        } else {
            out.extend(std::iter::repeat_n(c, n));
        }
    }
    out
}

/// A word token: a run of ASCII letters and digits (with its `'` tail), not
/// a symbol.
fn is_word(token: &str) -> bool {
    token.as_bytes().first().is_some_and(|b| is_word_byte(*b))
}

/// Rule: a word token repeated `n >= 3` times in a row, compared ignoring
/// case, becomes `xxwrep n w`, with `w` its first occurrence as written (the
/// case rules then apply to it). Symbols are never words here. Mirrors
/// fastai's `replace_wrep` (regex `(\w+)` repeated, on the text), but on
/// tokens and case insensitive.
fn replace_wrep(tokens: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let mut j = i + 1;
        if is_word(t) {
            // Word tokens are ASCII, so ASCII case folding is all of it.
            while j < tokens.len() && tokens[j].eq_ignore_ascii_case(t) {
                j += 1;
            }
        }
        let n = j - i;
        if n >= 3 {
            out.extend([TK_WREP.to_string(), n.to_string(), t.clone()]);
        } else {
            out.extend_from_slice(&tokens[i..j]);
        }
        i = j;
    }
    out
}

/// Python's `str.isupper`: some character is uppercase and none lowercase.
fn is_upper(s: &str) -> bool {
    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)
}

/// Python's `str.islower`: some character is lowercase and none uppercase.
fn is_lower(s: &str) -> bool {
    s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase)
}

/// Rule: a token longer than one character that is all caps (it has
/// letters, none lowercase: `HELLO`, `DON'T`, `A1`) becomes `xxup` and the
/// token lowercased. Mirrors fastai's `replace_all_caps` (v1's token rule
/// `t.isupper() and len(t) > 1`). A lone capital (`I`) is left to
/// [`lowercase`].
fn replace_all_caps(tokens: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        if t.chars().nth(1).is_some() && is_upper(&t) {
            out.push(TK_UP.to_string());
            out.push(t.to_lowercase());
        } else {
            out.push(t);
        }
    }
    out
}

/// Rule: a token whose first character is uppercase and whose rest is
/// lowercase (`Hello`, `It's`; so longer than one character) becomes
/// `xxmaj` and the token lowercased. Mirrors fastai's `replace_maj` (v1's
/// `deal_caps`: `t[0].isupper() and len(t) > 1 and t[1:].islower()`);
/// mixed case such as `McDonald` is only lowercased.
fn replace_maj(tokens: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        let mut chars = t.chars();
        let maj = chars.next().is_some_and(char::is_uppercase) && is_lower(chars.as_str());
        if maj {
            out.push(TK_MAJ.to_string());
            out.push(t.to_lowercase());
        } else {
            out.push(t);
        }
    }
    out
}

/// Rule: every token lowercased ([`str::to_lowercase`]). Mirrors fastai's
/// `lowercase`, which runs on the whole text last.
fn lowercase(tokens: Vec<String>) -> Vec<String> {
    tokens.into_iter().map(|t| t.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        tokenize(s)
    }

    #[test]
    fn apostrophes_join_only_a_following_letter_run() {
        assert_eq!(toks("don't"), ["don't"]);
        assert_eq!(toks("rock'n'roll"), ["rock'n", "'", "roll"]);
        assert_eq!(toks("'tis"), ["'", "tis"]);
        assert_eq!(toks("x'"), ["x", "'"]);
        assert_eq!(toks("a'1"), ["a", "'", "1"]);
        assert_eq!(toks("It's"), ["it's"]);
    }

    #[test]
    fn letters_and_digits_form_one_run() {
        assert_eq!(toks("42 abc123 1,000"), ["42", "abc123", "1", ",", "000"]);
    }

    #[test]
    fn punctuation_is_one_token_per_character() {
        assert_eq!(toks("Hello, World!?"), ["hello", ",", "world", "!", "?"]);
        assert_eq!(toks("--"), ["-", "-"]);
    }

    #[test]
    fn non_ascii_letters_are_one_token_each() {
        assert_eq!(toks("Café über"), ["caf", "é", "ü", "ber"]);
        assert_eq!(toks("日本"), ["日", "本"]);
    }

    #[test]
    fn control_characters_are_tokens_and_whitespace_is_dropped() {
        assert_eq!(toks("a\u{8}_\u{7}"), ["a", "\u{8}", "_", "\u{7}"]);
        assert_eq!(toks(" \t\n a \u{a0}b\r\n"), ["a", "b"]);
        assert!(toks("").is_empty());
    }

    fn fast(s: &str) -> Vec<String> {
        Tokenizer::Fastai.tokenize(s)
    }

    #[test]
    fn words_tokenizer_is_the_free_function() {
        for s in [
            "Hello, World!!!",
            "DON'T stop",
            "very very very",
            "Café",
            "",
        ] {
            assert_eq!(Tokenizer::Words.tokenize(s), tokenize(s));
        }
        assert_eq!(Tokenizer::default(), Tokenizer::Words);
    }

    #[test]
    fn parse_and_name_round_trip() {
        for t in [Tokenizer::Words, Tokenizer::Fastai] {
            assert_eq!(Tokenizer::parse(t.name()).unwrap(), t);
        }
        assert_eq!(Tokenizer::Words.name(), "words-v1");
        assert_eq!(Tokenizer::Fastai.name(), "fastai-v1");
        assert_eq!(Tokenizer::parse("words").unwrap(), Tokenizer::Words);
        assert_eq!(Tokenizer::parse("fastai").unwrap(), Tokenizer::Fastai);
        for bad in ["", "Fastai", "spacy", "words-v2", " words"] {
            let msg = Tokenizer::parse(bad).unwrap_err().to_string();
            assert!(
                msg.contains("words-v1") && msg.contains("fastai-v1"),
                "{msg}"
            );
        }
    }

    #[test]
    fn serde_names_are_kebab_case() {
        let json = serde_json::to_string(&[Tokenizer::Words, Tokenizer::Fastai]).unwrap();
        assert_eq!(json, r#"["words","fastai"]"#);
        let back: Vec<Tokenizer> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [Tokenizer::Words, Tokenizer::Fastai]);
    }

    #[test]
    fn fastai_split_keeps_the_words_split() {
        assert_eq!(
            fast("don't rock'n'roll 1,050"),
            toks("don't rock'n'roll 1,050")
        );
        assert_eq!(fast("a\u{8}_ 日本"), toks("a\u{8}_ 日本"));
        assert!(fast("").is_empty());
        assert!(fast(" \t\n").is_empty());
    }

    #[test]
    fn rule_rep_counts_a_repeated_character() {
        assert_eq!(fast("!!!!"), ["xxrep", "4", "!"]);
        assert_eq!(fast("wow!!!"), ["wow", "xxrep", "3", "!"]);
        assert_eq!(fast("cooool"), ["c", "xxrep", "4", "o", "l"]);
        assert_eq!(fast("1000"), ["1", "xxrep", "3", "0"]);
        // Two in a row is not a repeat; whitespace never is.
        assert_eq!(fast("cool !!"), ["cool", "!", "!"]);
        assert_eq!(fast("a    b\n\n\nc"), ["a", "b", "c"]);
        assert_eq!(fast("ééé"), ["xxrep", "3", "é"]);
    }

    #[test]
    fn rule_wrep_counts_a_repeated_word() {
        assert_eq!(fast("very very very good"), ["xxwrep", "3", "very", "good"]);
        assert_eq!(fast("no no no no no"), ["xxwrep", "5", "no"]);
        assert_eq!(fast("1 1 1"), ["xxwrep", "3", "1"]);
        // Twice is not a repeat; symbols are not words.
        assert_eq!(fast("very very good"), ["very", "very", "good"]);
        assert_eq!(fast(". . ."), [".", ".", "."]);
        assert_eq!(fast("a a b b b a"), ["a", "a", "xxwrep", "3", "b", "a"]);
    }

    #[test]
    fn rule_up_marks_all_caps_tokens() {
        assert_eq!(fast("HELLO world"), ["xxup", "hello", "world"]);
        assert_eq!(fast("DON'T"), ["xxup", "don't"]);
        assert_eq!(fast("A1"), ["xxup", "a1"]);
        // One character is only lowercased.
        assert_eq!(fast("I am"), ["i", "am"]);
    }

    #[test]
    fn rule_maj_marks_capitalized_tokens() {
        assert_eq!(fast("Hello world"), ["xxmaj", "hello", "world"]);
        assert_eq!(fast("It's"), ["xxmaj", "it's"]);
        assert_eq!(fast("Ab1"), ["xxmaj", "ab1"]);
        // Mixed case is neither all caps nor capitalized: only lowercased.
        assert_eq!(fast("McDonald iPhone"), ["mcdonald", "iphone"]);
    }

    #[test]
    fn rule_lowercase_applies_to_every_token() {
        assert_eq!(fast("É Ü x"), ["é", "ü", "x"]);
        assert_eq!(fast("Café"), ["xxmaj", "caf", "é"]);
    }

    #[test]
    fn rules_interact_in_order() {
        // rep before the split, then caps.
        assert_eq!(fast("HELLO!!!"), ["xxup", "hello", "xxrep", "3", "!"]);
        assert_eq!(fast("LOOOL"), ["l", "xxrep", "3", "o", "l"]);
        assert_eq!(fast("Yesss"), ["xxmaj", "ye", "xxrep", "3", "s"]);
        // wrep compares lowercased and keeps the first occurrence, which
        // the caps rules then mark.
        assert_eq!(fast("Hello hello hello"), ["xxwrep", "3", "xxmaj", "hello"]);
        assert_eq!(fast("NO no No!"), ["xxwrep", "3", "xxup", "no", "!"]);
        assert_eq!(fast("Hello hello"), ["xxmaj", "hello", "hello"]);
        // rep inside each word: the pieces differ, so no wrep.
        assert_eq!(
            fast("sooo sooo sooo"),
            ["s", "xxrep", "3", "o", "s", "xxrep", "3", "o", "s", "xxrep", "3", "o"]
        );
    }
}
