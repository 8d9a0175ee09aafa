//! CSV datasets: a header naming `label`, `text` and optionally `is_valid`.
//!
//! Columns are found by name, in any order; other columns are ignored (a
//! CSV exported with an id or a source column loads as it is), but a
//! repeated `label`, `text` or `is_valid` is an error. Quoting is RFC 4180
//! (`"` doubled inside quotes); records end at `\n` or `\r\n`; a UTF-8 byte
//! order mark before the header is skipped. Fields are kept as they are:
//! `text` and `label` must be UTF-8 and not empty or only whitespace;
//! `is_valid` is `True`/`False` (any case) or `1`/`0`.
//!
//! Every problem is an [`Error::Data`] naming the file and the 1-based line
//! where the record starts (the csv crate's `Position::line`), except the
//! unterminated quote, which names the line of its opening `"`, and "no
//! training rows", an [`Error::Format`] for the whole file.

use super::{assemble, hex, permutation, Dataset, Row, Unassembled};
use crate::error::{Error, Result};
use crate::rng::{Stream, StreamFamily};
use csv::{ByteRecord, ErrorKind, ReaderBuilder};
use sha2::{Digest, Sha256};

/// The stream of the random validation split: `data_shuffle[2]`, step 0.
const SPLIT_STREAM: Stream = Stream::new(StreamFamily::DataShuffle, 2);

/// A record before the split.
struct CsvRow {
    label: String,
    text: String,
    line: u64,
    is_valid: Option<bool>,
}

/// Loads a CSV's `bytes` as dataset `name`, naming `file` in errors. Without
/// an `is_valid` column the split is drawn by `seed` (see [`super::load`]).
pub(crate) fn load(
    name: &str,
    file: &str,
    bytes: &[u8],
    valid_fraction: f64,
    seed: u64,
) -> Result<Dataset> {
    let sha256 = hex(&Sha256::digest(bytes));
    let (rows, has_is_valid) = parse(file, bytes)?;
    let mut valid: Vec<bool> = rows.iter().map(|r| r.is_valid == Some(true)).collect();
    if !has_is_valid {
        let n = rows.len();
        let k = ((n as f64 * valid_fraction).round() as usize).min(n);
        for &i in &permutation(seed, SPLIT_STREAM, 0, n)[..k] {
            valid[i] = true;
        }
    }
    let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
    let n = rows.len();
    let rows: Vec<Row> = rows
        .into_iter()
        .zip(valid)
        .map(|(r, valid)| Row {
            label: r.label,
            text: r.text,
            valid,
        })
        .collect();
    let split = if has_is_valid {
        "is_valid"
    } else {
        "the random split (valid_fraction, seed)"
    };
    assemble(name.to_string(), rows, sha256).map_err(|e| match e {
        Unassembled::NoTraining => Error::Format {
            what: file.to_string(),
            msg: if n == 0 {
                "no rows after the header".to_string()
            } else {
                format!("no training rows: all {n} rows are validation by {split}")
            },
        },
        Unassembled::LabelOnlyInValid { index, label } => Error::Data {
            file: file.to_string(),
            line: lines[index],
            msg: format!(
                "label `{label}` is only in validation rows (by {split}); \
                 a classifier cannot learn a class it never trains on"
            ),
        },
    })
}

/// The rows of a CSV, every field checked, and whether it has `is_valid`.
fn parse(file: &str, bytes: &[u8]) -> Result<(Vec<CsvRow>, bool)> {
    let data = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let err = |line: u64, msg: String| Error::Data {
        file: file.to_string(),
        line,
        msg,
    };
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let header = reader
        .byte_headers()
        .map_err(|e| csv_error(file, data, &e))?
        .clone();
    let find = |name: &str| -> Result<Option<usize>> {
        let hits: Vec<usize> = (0..header.len())
            .filter(|&i| header.get(i) == Some(name.as_bytes()))
            .collect();
        match hits.as_slice() {
            [] => Ok(None),
            [i] => Ok(Some(*i)),
            _ => Err(err(
                1,
                format!("column `{name}` appears {} times in the header", hits.len()),
            )),
        }
    };
    let (label_col, text_col, valid_col) = (find("label")?, find("text")?, find("is_valid")?);
    let (Some(label_col), Some(text_col)) = (label_col, text_col) else {
        let found: Vec<String> = header
            .iter()
            .map(|f| format!("`{}`", String::from_utf8_lossy(f)))
            .collect();
        let missing: Vec<&str> = [("label", label_col), ("text", text_col)]
            .iter()
            .filter(|(_, c)| c.is_none())
            .map(|(n, _)| *n)
            .collect();
        return Err(err(
            1,
            format!(
                "missing column `{}`: the header has {} (expected `label`, `text` and optionally `is_valid`)",
                missing.join("` and `"),
                if found.is_empty() { "no columns".to_string() } else { found.join(", ") }
            ),
        ));
    };

    let mut rows = Vec::new();
    let mut record = ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(file, data, &e)),
        }
        let (line, start) = record.position().map_or((0, 0), |p| (p.line(), p.byte()));
        // An unterminated quote swallows the rest of the file into this
        // record without a csv error; find it before the fields are judged.
        if let Some(open) = unterminated_quote(data, start as usize) {
            return Err(unterminated_error(file, data, open));
        }
        let field = |col: usize, what: &str| -> Result<String> {
            let raw = record.get(col).unwrap_or_default();
            let s = std::str::from_utf8(raw).map_err(|e| {
                err(
                    line,
                    format!(
                        "{what} is not valid UTF-8 (byte {} of the field)",
                        e.valid_up_to()
                    ),
                )
            })?;
            if s.trim().is_empty() {
                return Err(err(line, format!("empty {what}")));
            }
            Ok(s.to_string())
        };
        let label = field(label_col, "label")?;
        let text = field(text_col, "text")?;
        let is_valid = match valid_col {
            None => None,
            Some(c) => Some(
                parse_bool(record.get(c).unwrap_or_default()).ok_or_else(|| {
                    err(
                        line,
                        format!(
                            "is_valid is `{}`; expected True, False (any case), 1 or 0",
                            String::from_utf8_lossy(record.get(c).unwrap_or_default())
                        ),
                    )
                })?,
            ),
        };
        rows.push(CsvRow {
            label,
            text,
            line,
            is_valid,
        });
    }
    Ok((rows, valid_col.is_some()))
}

/// `True`/`False` in any case, `1`/`0`.
fn parse_bool(raw: &[u8]) -> Option<bool> {
    if raw == b"1" || raw.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if raw == b"0" || raw.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// A csv crate error as ours. A ragged record is reported as such, unless
/// it is ragged because a quote in it is never closed.
fn csv_error(file: &str, data: &[u8], e: &csv::Error) -> Error {
    let line = e.position().map_or(0, |p| p.line());
    match e.kind() {
        ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => {
            if let Some(open) = pos
                .as_ref()
                .and_then(|p| unterminated_quote(data, p.byte() as usize))
            {
                return unterminated_error(file, data, open);
            }
            Error::Data {
                file: file.to_string(),
                line,
                msg: format!("the record has {len} fields; the header has {expected_len}"),
            }
        }
        _ => Error::Data {
            file: file.to_string(),
            line,
            msg: e.to_string(),
        },
    }
}

fn unterminated_error(file: &str, data: &[u8], open: usize) -> Error {
    let line = 1 + data[..open].iter().filter(|&&b| b == b'\n').count() as u64;
    Error::Data {
        file: file.to_string(),
        line,
        msg: "unterminated quote: the quoted field opened on this line runs to the end of \
              the file without its closing `\"`"
            .to_string(),
    }
}

/// The offset of the opening `"` of a quoted field that runs to the end of
/// `data`, scanning one record from `start` (a record's first byte) the way
/// the csv crate reads it: a `"` opens a quoted field only as a field's
/// first byte, `""` inside one is a quote, and the record ends at an
/// unquoted `\n` or `\r`.
pub(super) fn unterminated_quote(data: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let mut field_start = true;
    while i < data.len() {
        if field_start && data[i] == b'"' {
            let open = i;
            i += 1;
            loop {
                match data.get(i) {
                    None => return Some(open),
                    Some(b'"') if data.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            field_start = false;
            i += 1;
            continue;
        }
        match data[i] {
            b',' => field_start = true,
            b'\n' | b'\r' => return None,
            _ => field_start = false,
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unterminated_quote_is_found_only_when_it_reaches_the_end() {
        assert_eq!(unterminated_quote(b"a,\"x\ny,z\n", 0), Some(2));
        assert_eq!(unterminated_quote(b"a,\"x\"\"\ny\"\n", 0), None);
        assert_eq!(unterminated_quote(b"a,b\"c\n", 0), None);
        assert_eq!(unterminated_quote(b"a,\"x\"\"", 0), Some(2));
    }

    #[test]
    fn is_valid_accepts_both_spellings() {
        assert_eq!(parse_bool(b"True"), Some(true));
        assert_eq!(parse_bool(b"false"), Some(false));
        assert_eq!(parse_bool(b"1"), Some(true));
        assert_eq!(parse_bool(b"0"), Some(false));
        assert_eq!(parse_bool(b"yes"), None);
        assert_eq!(parse_bool(b""), None);
    }
}
