//! The tokenizer: lowercase, then words, numbers and single symbols.
//!
//! It is the regex `[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]` applied left to right
//! to the lowercased text (leftmost-longest, as the regex engine would),
//! written by hand so that it needs no regex crate and its behaviour is
//! spelled out here: a run of ASCII letters and digits, optionally followed
//! by `'` and at least one ASCII letter (`don't`, `it's`), is one token; any
//! other character that is not whitespace (`char::is_whitespace`) is a token
//! of its own: punctuation, a non-ASCII letter, a control character such as
//! backspace. Whitespace separates tokens and is dropped.

/// The tokens of `text`, in order. Lowercases with [`str::to_lowercase`]
/// first, so the tokens never contain an ASCII capital.
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let b = lower.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_word_byte(b[i]) {
            let start = i;
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            // `'` joins only when at least one ASCII letter follows it.
            if i + 1 < b.len() && b[i] == b'\'' && b[i + 1].is_ascii_lowercase() {
                i += 1;
                while i < b.len() && b[i].is_ascii_lowercase() {
                    i += 1;
                }
            }
            tokens.push(lower[start..i].to_string());
            continue;
        }
        // Not an ASCII letter or digit: one character, a token unless it is
        // whitespace. `i` is always on a char boundary: word runs consist of
        // ASCII bytes only, and other steps move by whole chars.
        let Some(c) = lower[i..].chars().next() else {
            break;
        };
        if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
        i += c.len_utf8();
    }
    tokens
}

/// `[a-z0-9]`: the bytes of a word run (after lowercasing).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
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
}
