//! The `fortunes-lm` corpus and the `--lm-data` loader.

use shoestring::data::corpus::load_fortunes8;
use shoestring::data::lm_corpus::*;
use shoestring::digest::sha256_hex;
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

/// Printed by `scripts/make-fortunes-lm.sh` with fortunes 1:1.99.1-7.3.
const EXTRA_SHA256: &str = "e68e42bbc1e924a4ccbd74419e604227b29e23429335983e4ec96bf56a311b50";
/// `texts_sha256` of the composed corpus (also computed independently in
/// python from the two CSVs).
const CORPUS_SHA256: &str = "25d8608469b63da10585ebc065efe250deae5069ad45676196df9d7941f02b8f";
/// Rows of the extra CSV.
const EXTRA_TEXTS: usize = 7624;

/// A fresh, empty folder under the system temp dir, unique to this test.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoestring-lm-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_extra_csv_is_the_one_the_script_printed() {
    assert_eq!(sha256_hex(EXTRA_CSV), EXTRA_SHA256);
}

#[test]
fn fortunes_lm_is_extra_then_training_without_validation_texts() {
    let lm = load_lm_data(NAME).unwrap();
    assert_eq!(lm, load_fortunes_lm().unwrap());
    assert_eq!(lm.name, NAME);
    assert_eq!(lm.sha256, CORPUS_SHA256);
    assert_eq!(lm.sha256, texts_sha256(&lm.texts));

    let f8 = load_fortunes8().unwrap();
    assert_eq!(f8.train.len(), 5414);
    let valid: HashSet<&str> = f8.valid.iter().map(|e| e.text.as_str()).collect();
    for (i, t) in lm.texts.iter().enumerate() {
        assert!(!valid.contains(t.as_str()), "text {i} is a validation text");
        assert!(!t.trim().is_empty(), "text {i} is empty");
    }
    // Training texts equal to a validation text (one: a verse in both
    // songs-poems and men-women) are the only ones left out, and the
    // training texts come last, in CSV order.
    let kept: Vec<&str> = f8
        .train
        .iter()
        .map(|e| e.text.as_str())
        .filter(|t| !valid.contains(t))
        .collect();
    assert_eq!(kept.len(), 5413);
    assert_eq!(lm.texts.len(), EXTRA_TEXTS + kept.len());
    let tail: Vec<&str> = lm.texts[EXTRA_TEXTS..].iter().map(String::as_str).collect();
    assert_eq!(tail, kept);
    let all: HashSet<&str> = lm.texts.iter().map(String::as_str).collect();
    for e in &f8.train {
        assert!(all.contains(e.text.as_str()) || valid.contains(e.text.as_str()));
    }
}

#[test]
fn a_folder_loads_its_txt_files_in_name_order_skipping_empty_ones() {
    let dir = temp_dir("folder");
    fs::write(dir.join("b.txt"), "second text\n").unwrap();
    fs::write(dir.join("a.txt"), "first text").unwrap();
    fs::write(dir.join("B.txt"), "upper case sorts first").unwrap();
    fs::write(dir.join("c.txt"), " \n\t ").unwrap();
    fs::write(dir.join("d.txt"), "").unwrap();
    fs::write(dir.join("notes.md"), "not a text").unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(dir.join("sub").join("e.txt"), "not read: in a subfolder").unwrap();
    let spec = dir.to_str().unwrap();
    let lm = load_lm_data(spec).unwrap();
    assert_eq!(lm.name, spec);
    assert_eq!(
        lm.texts,
        ["upper case sorts first", "first text", "second text\n"]
    );
    assert_eq!(lm.sha256, texts_sha256(&lm.texts));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_without_texts_is_an_error() {
    let dir = temp_dir("empty");
    fs::write(dir.join("a.txt"), "  ").unwrap();
    let err = load_lm_data(dir.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("no texts"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_non_utf8_txt_file_is_an_error_naming_it() {
    let dir = temp_dir("utf8");
    fs::write(dir.join("good.txt"), "fine").unwrap();
    fs::write(dir.join("bad.txt"), b"line one\nbad \xff byte").unwrap();
    let err = load_lm_data(dir.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("bad.txt"), "{err}");
    assert!(err.contains("UTF-8"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_csv_loads_its_text_column() {
    let dir = temp_dir("csv");
    let path = dir.join("corpus.csv");
    fs::write(
        &path,
        "id,text,source\n1,\"one, \"\"quoted\"\"\",x\n2,\"  \",y\r\n3,two,z\n",
    )
    .unwrap();
    let spec = path.to_str().unwrap();
    let lm = load_lm_data(spec).unwrap();
    assert_eq!(lm.name, spec);
    assert_eq!(lm.texts, ["one, \"quoted\"", "two"]);
    assert_eq!(lm.sha256, texts_sha256(&["one, \"quoted\"", "two"]));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_csv_without_a_text_column_is_an_error_naming_it() {
    let dir = temp_dir("notext");
    let path = dir.join("labels.csv");
    fs::write(&path, "label,body\na,hello\n").unwrap();
    let err = load_lm_data(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("labels.csv"), "{err}");
    assert!(err.contains("`text`"), "{err}");
    assert!(err.contains("`label`, `body`"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_csv_with_an_unterminated_quote_is_an_error_naming_its_line() {
    let dir = temp_dir("quote");
    let path = dir.join("q.csv");
    fs::write(&path, "text\nfine\n\"never closed\nmore\n").unwrap();
    let err = load_lm_data(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("q.csv:3:"), "{err}");
    assert!(err.contains("unterminated quote"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_path_or_another_file_is_an_error_saying_what_is_accepted() {
    let dir = temp_dir("missing");
    let missing = dir.join("nope");
    let err = load_lm_data(missing.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    assert!(err.contains("fortunes-lm"), "{err}");
    let other = dir.join("corpus.json");
    fs::write(&other, "{}").unwrap();
    let err = load_lm_data(other.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("corpus.json"), "{err}");
    assert!(err.contains(".csv"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}
