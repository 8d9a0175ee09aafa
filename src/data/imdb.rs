//! The aclImdb folder layout (Maas et al. 2011).
//!
//! `DIR/train/<class>/*.txt` are the training texts and
//! `DIR/test/<class>/*.txt` the validation texts; a text's label is its
//! folder's name. Every class folder under `train/` is a class (not only
//! `pos` and `neg`), except `unsup` (unlabelled reviews), which is skipped
//! like every non-folder there (`labeledBow.feat`, `urls_*.txt`). Inside a
//! class folder only `*.txt` files are read; class folders and files are
//! taken in order of their name bytes, so the file order is
//! `train/<class>/<file>` sorted, and likewise for `test/`.
//!
//! A text is the file's bytes, which must be UTF-8 and not empty or only
//! whitespace. A class under `test/` must also be under `train/`.
//!
//! The dataset's `sha256` covers every file read, sorted by relative path
//! (`train/pos/0_9.txt`, `/`-separated, compared as bytes): for each, the
//! path's byte length as u64 little-endian, the path, the content's byte
//! length as u64 little-endian, the content.

use super::{assemble, hex, Dataset, Row, Unassembled};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// Loads the aclImdb folder `dir`.
pub(crate) fn load(dir: &Path) -> Result<Dataset> {
    let shown = dir.display().to_string();
    let train = read_split(dir, "train")?;
    let test = read_split(dir, "test")?;
    let train_classes: Vec<&str> = train.iter().map(|c| c.name.as_str()).collect();
    if let Some(c) = test
        .iter()
        .find(|c| !train_classes.contains(&c.name.as_str()))
    {
        return Err(Error::Format {
            what: c.path.display().to_string(),
            msg: format!(
                "class `{}` is in test/ but not in train/ (train/ has {})",
                c.name,
                train_classes.join(", ")
            ),
        });
    }

    let mut digest_order: Vec<(String, usize)> = Vec::new();
    let mut rows = Vec::new();
    for (split, classes, valid) in [("train", train, false), ("test", test, true)] {
        for class in classes {
            for (file, text) in class.files {
                digest_order.push((format!("{split}/{}/{file}", class.name), rows.len()));
                rows.push(Row {
                    label: class.name.clone(),
                    text,
                    valid,
                });
            }
        }
    }
    digest_order.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = Sha256::new();
    for (path, i) in &digest_order {
        let text = rows[*i].text.as_bytes();
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(text);
    }
    let sha256 = hex(&h.finalize());

    assemble(shown.clone(), rows, sha256).map_err(|e| match e {
        Unassembled::NoTraining => Error::Format {
            what: shown.clone(),
            msg: "no training texts: train/<class>/ holds no .txt file".into(),
        },
        // Ruled out above (test classes are train classes), but a class
        // folder of train/ without files would land here.
        Unassembled::LabelOnlyInValid { label, .. } => Error::Format {
            what: shown.clone(),
            msg: format!("class `{label}` has test texts but no training texts"),
        },
    })
}

/// One class folder: its name, path and `(file name, text)` pairs in order.
struct Class {
    name: String,
    path: PathBuf,
    files: Vec<(String, String)>,
}

/// The classes of `dir/split`, each with its texts.
fn read_split(dir: &Path, split: &str) -> Result<Vec<Class>> {
    let root = dir.join(split);
    if !root.is_dir() {
        return Err(Error::Format {
            what: dir.display().to_string(),
            msg: format!(
                "no `{split}/` folder: an aclImdb folder holds train/<class>/*.txt \
                 and test/<class>/*.txt"
            ),
        });
    }
    let mut classes = Vec::new();
    for (name, path) in sorted_entries(&root)? {
        if name == "unsup" || !path.is_dir() {
            continue;
        }
        let name = utf8_name(name, &path)?;
        let mut files = Vec::new();
        for (file, fpath) in sorted_entries(&path)? {
            let is_txt = Path::new(&file).extension().is_some_and(|e| e == "txt");
            if !is_txt || !fpath.is_file() {
                continue;
            }
            let file = utf8_name(file, &fpath)?;
            files.push((file, read_text(&fpath)?));
        }
        classes.push(Class { name, path, files });
    }
    Ok(classes)
}

/// The entries of `dir` as `(name, path)`, sorted by name bytes.
fn sorted_entries(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let io = |source| Error::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        entries.push((entry.file_name(), entry.path()));
    }
    // OsString's order is its bytes' order on Unix (and the code units' on
    // Windows): never the directory's own order, which varies.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// A folder or file name as UTF-8 (it becomes a label or enters the digest).
fn utf8_name(name: OsString, path: &Path) -> Result<String> {
    name.into_string().map_err(|_| Error::Format {
        what: path.display().to_string(),
        msg: "the name is not valid UTF-8".into(),
    })
}

/// A file's text: UTF-8 and not empty or only whitespace.
fn read_text(path: &Path) -> Result<String> {
    let shown = path.display().to_string();
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: shown.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        Error::Data {
            file: shown.clone(),
            line: 1 + bytes[..bad].iter().filter(|&&b| b == b'\n').count() as u64,
            msg: format!("not valid UTF-8 (byte {bad} of the file)"),
        }
    })?;
    if text.trim().is_empty() {
        return Err(Error::Data {
            file: shown,
            line: 1,
            msg: "empty text".into(),
        });
    }
    Ok(text)
}
