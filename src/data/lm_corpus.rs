//! `fortunes-lm`: the embedded language-model corpus, and the `--lm-data`
//! loader ([`load_lm_data`]).
//!
//! # The corpus
//!
//! `fortunes-lm` is every text of the 40 fortune files of Debian's
//! `fortunes` 1:1.99.1-7.3, split and normalised exactly as `fortunes8`'s
//! (see [`super::corpus`] and `scripts/make-fortunes8.sh`: one text per `%`
//! block, newlines folded to spaces, trimmed, empty ones skipped), minus
//! every text byte-equal to a validation text of `fortunes8`. That makes it
//! safe to pretrain on before fine-tuning the classifier on `fortunes8`:
//! **no `fortunes8` validation text is ever in `fortunes-lm`**, so a
//! validation score after pretraining does not measure memorisation.
//!
//! # How it is built and why it is composed
//!
//! The 8 files of `fortunes8` are already embedded (`data/fortunes8.csv`);
//! storing their texts a second time would double the repository's largest
//! data file. So `data/fortunes-lm-extra.csv` (header `file,text`) holds only
//! the texts of the 32 other files, in file-name order and file order
//! within, less those equal to a `fortunes8` validation text (7 of them with
//! 1:1.99.1-7.3); `scripts/make-fortunes-lm.sh` builds it and documents
//! every choice. At load time the corpus is composed as
//!
//! 1. the texts of `fortunes-lm-extra.csv`, in file order (7,624), then
//! 2. the `fortunes8` training texts, in CSV order, except any that is
//!    byte-equal to a `fortunes8` validation text (one is: a verse that is
//!    in both `songs-poems` and `men-women`), so 5,413 of the 5,414.
//!
//! # The identity
//!
//! [`LmCorpus::sha256`] is [`texts_sha256`] of the texts in order: for each
//! text, its UTF-8 byte length as a u64 little-endian, then its bytes. It
//! depends on the texts and their order only, not on the files they came
//! from (a CSV's other columns, file names), and no two different text
//! sequences share the encoding.

use super::corpus;
use super::csv_file::unterminated_quote;
use crate::digest::hex;
use crate::error::{Error, Result};
use csv::{ByteRecord, ReaderBuilder};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs;
use std::path::Path;

/// The spec that selects the embedded corpus.
pub const NAME: &str = "fortunes-lm";

/// The file name errors in the embedded CSV are reported against.
pub const EXTRA_FILE: &str = "fortunes-lm-extra.csv";

/// The texts of the 32 fortune files outside `fortunes8` (`file,text`).
pub const EXTRA_CSV: &[u8] = include_bytes!("../../data/fortunes-lm-extra.csv");

/// What `--lm-data` accepts, for error messages.
const ACCEPTED: &str = "expected `fortunes-lm` (the embedded corpus), a folder of *.txt files \
                        (one text each), or a .csv file with a `text` column";

/// Unlabelled texts for language-model pretraining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmCorpus {
    /// `fortunes-lm`, or the path as given.
    pub name: String,
    /// [`texts_sha256`] of `texts`.
    pub sha256: String,
    /// The texts, in corpus order; none is empty or only whitespace.
    pub texts: Vec<String>,
}

impl LmCorpus {
    fn new(name: &str, texts: Vec<String>) -> Result<LmCorpus> {
        if texts.is_empty() {
            return Err(Error::Format {
                what: name.to_string(),
                msg: format!("no texts (empty or whitespace-only texts are skipped); {ACCEPTED}"),
            });
        }
        Ok(LmCorpus {
            name: name.to_string(),
            sha256: texts_sha256(&texts),
            texts,
        })
    }
}

/// The hex sha256 of a text sequence: for each text in order, its byte
/// length as u64 little-endian, then its UTF-8 bytes.
pub fn texts_sha256<S: AsRef<str>>(texts: &[S]) -> String {
    let mut h = Sha256::new();
    for t in texts {
        let b = t.as_ref().as_bytes();
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    hex(&h.finalize())
}

/// The embedded corpus: the extra texts, then the `fortunes8` training
/// texts that equal no `fortunes8` validation text (see the module docs).
pub fn load_fortunes_lm() -> Result<LmCorpus> {
    let mut texts = csv_texts(EXTRA_FILE, EXTRA_CSV)?;
    let f8 = corpus::load_fortunes8()?;
    let valid: HashSet<&str> = f8.valid.iter().map(|e| e.text.as_str()).collect();
    // The extra CSV is built without validation texts; checked here too, so
    // the guarantee does not rest on the script alone.
    if let Some(i) = texts.iter().position(|t| valid.contains(t.as_str())) {
        return Err(Error::Format {
            what: EXTRA_FILE.to_string(),
            msg: format!("text {i} (from 0) is a fortunes8 validation text"),
        });
    }
    texts.extend(
        f8.train
            .iter()
            .filter(|e| !valid.contains(e.text.as_str()))
            .map(|e| e.text.clone()),
    );
    LmCorpus::new(NAME, texts)
}

/// Loads `--lm-data`:
///
/// - `fortunes-lm`: the embedded corpus (even if a file of that name exists);
/// - a folder: every `*.txt` file directly in it (not in subfolders), in
///   order of the file names' bytes (never the directory's own order), each
///   file one text, kept as it is; it must be UTF-8 (the error names the
///   file), and empty or whitespace-only files are skipped;
/// - a `.csv` file (any case): its `text` column, read like the classifier's
///   CSVs (header required, RFC 4180 quoting, `\n` or `\r\n` record ends, a
///   UTF-8 byte order mark skipped, other columns ignored); texts must be
///   UTF-8, and empty or whitespace-only ones are skipped. Errors name the
///   file and the line.
///
/// Anything else, and a source with no text, is an error. The corpus's
/// name is the spec as given.
pub fn load_lm_data(spec: &str) -> Result<LmCorpus> {
    if spec == NAME {
        return load_fortunes_lm();
    }
    let path = Path::new(spec);
    let meta = fs::metadata(path).map_err(|e| Error::Format {
        what: spec.to_string(),
        msg: format!("cannot read it ({e}); {ACCEPTED}"),
    })?;
    if meta.is_dir() {
        return LmCorpus::new(spec, folder_texts(path)?);
    }
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if meta.is_file() && is_csv {
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: spec.to_string(),
            source,
        })?;
        return LmCorpus::new(spec, csv_texts(spec, &bytes)?);
    }
    Err(Error::Format {
        what: spec.to_string(),
        msg: format!("neither a folder nor a .csv file; {ACCEPTED}"),
    })
}

/// The texts of the `*.txt` files directly in `dir`, by name bytes.
fn folder_texts(dir: &Path) -> Result<Vec<String>> {
    let io = |path: &Path, source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "txt") && path.is_file() {
            files.push((entry.file_name(), path));
        }
    }
    // OsString's order is its bytes' order on Unix.
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut texts = Vec::new();
    for (_, path) in files {
        let bytes = fs::read(&path).map_err(|e| io(&path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let bad = e.utf8_error().valid_up_to();
            Error::Data {
                file: path.display().to_string(),
                line: 1 + e.as_bytes()[..bad].iter().filter(|&&b| b == b'\n').count() as u64,
                msg: format!("not valid UTF-8 (byte {bad} of the file)"),
            }
        })?;
        if !text.trim().is_empty() {
            texts.push(text);
        }
    }
    Ok(texts)
}

/// The non-empty `text` fields of a CSV's `bytes`, naming `file` in errors.
fn csv_texts(file: &str, bytes: &[u8]) -> Result<Vec<String>> {
    let data = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let err = |line: u64, msg: String| Error::Data {
        file: file.to_string(),
        line,
        msg,
    };
    let csv_err = |e: csv::Error| err(e.position().map_or(0, |p| p.line()), e.to_string());
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let header = reader.byte_headers().map_err(csv_err)?.clone();
    let hits: Vec<usize> = (0..header.len())
        .filter(|&i| header.get(i) == Some(b"text".as_slice()))
        .collect();
    let col = match hits.as_slice() {
        [i] => *i,
        [] => {
            let found: Vec<String> = header
                .iter()
                .map(|f| format!("`{}`", String::from_utf8_lossy(f)))
                .collect();
            return Err(err(
                1,
                format!(
                    "no `text` column: the header has {} (an LM corpus CSV needs a `text` \
                     column; other columns are ignored)",
                    if found.is_empty() {
                        "no columns".to_string()
                    } else {
                        found.join(", ")
                    }
                ),
            ));
        }
        _ => {
            return Err(err(
                1,
                format!("column `text` appears {} times in the header", hits.len()),
            ))
        }
    };
    let mut texts = Vec::new();
    let mut record = ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(csv_err)? {
        let (line, start) = record.position().map_or((0, 0), |p| (p.line(), p.byte()));
        // An unterminated quote swallows the rest of the file into this
        // record without a csv error.
        if let Some(open) = unterminated_quote(data, start as usize) {
            let line = 1 + data[..open].iter().filter(|&&b| b == b'\n').count() as u64;
            return Err(err(
                line,
                "unterminated quote: the quoted field opened on this line runs to the end \
                 of the file without its closing `\"`"
                    .to_string(),
            ));
        }
        let raw = record.get(col).unwrap_or_default();
        let text = std::str::from_utf8(raw).map_err(|e| {
            err(
                line,
                format!(
                    "text is not valid UTF-8 (byte {} of the field)",
                    e.valid_up_to()
                ),
            )
        })?;
        if !text.trim().is_empty() {
            texts.push(text.to_string());
        }
    }
    Ok(texts)
}
