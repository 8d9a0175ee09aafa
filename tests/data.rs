//! The data layer's promises: the embedded corpus is the pinned file with
//! the documented counts; every kind of bad input is an error that names
//! the file, the line and what was wrong (never a panic); the random split
//! is a function of the seed; the vocabulary's order and encoding.

use shoestring::data::{self, DataSource, Dataset, Vocab};
use shoestring::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh folder under the system temp dir, unique to this process and call.
fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shoestring-data-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` to a fresh CSV file and returns its path.
fn csv_file(tag: &str, bytes: &[u8]) -> PathBuf {
    let path = temp_dir(tag).join(format!("{tag}.csv"));
    fs::write(&path, bytes).unwrap();
    path
}

fn load_csv(path: &Path) -> shoestring::Result<Dataset> {
    data::load(&DataSource::Csv(path.to_path_buf()), 0.2, 1)
}

/// Loads `bytes` as a CSV and returns the error's (file, line, message).
fn csv_error(tag: &str, bytes: &[u8]) -> (String, String, u64, String) {
    let path = csv_file(tag, bytes);
    match load_csv(&path) {
        Err(Error::Data { file, line, msg }) => (path.display().to_string(), file, line, msg),
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

/// Asserts the error names the file and `line`, and its message holds `what`.
fn assert_data_error(tag: &str, bytes: &[u8], line: u64, what: &str) {
    let (path, file, got_line, msg) = csv_error(tag, bytes);
    assert_eq!(file, path, "{msg}");
    assert_eq!(got_line, line, "{msg}");
    assert!(msg.contains(what), "`{msg}` does not say `{what}`");
}

// ---- the embedded corpus ----

#[test]
fn the_embedded_corpus_is_the_pinned_file() {
    let ds = data::load(&DataSource::Fortunes8, 0.0, 0).unwrap();
    // sha256 of data/fortunes8.csv as printed by scripts/make-fortunes8.sh.
    let pinned = "a7fbea5e3e087b191d59de52d2f796b855264da27039c33f41518688c5e22a92";
    assert_eq!(ds.sha256, pinned);
    assert_eq!(ds.name, "fortunes8");
}

#[test]
fn the_embedded_corpus_has_the_documented_counts_and_sorted_classes() {
    let ds = data::load(&DataSource::Fortunes8, 0.0, 0).unwrap();
    assert_eq!(ds.train.len() + ds.valid.len(), 6765);
    assert_eq!(ds.train.len(), 5414);
    assert_eq!(ds.valid.len(), 1351);
    let expected = [
        ("computers", 1051),
        ("definitions", 1203),
        ("men-women", 582),
        ("people", 1251),
        ("politics", 703),
        ("science", 625),
        ("songs-poems", 720),
        ("work", 630),
    ];
    let names: Vec<&str> = expected.iter().map(|e| e.0).collect();
    assert_eq!(ds.classes, names);
    for (id, (name, count)) in expected.iter().enumerate() {
        let n = ds
            .train
            .iter()
            .chain(&ds.valid)
            .filter(|e| e.label == id as u32)
            .count();
        let v = ds.valid.iter().filter(|e| e.label == id as u32).count();
        assert_eq!(n, *count, "{name}");
        // Every fifth text of a file (i % 5 == 4) is validation.
        assert_eq!(v, count / 5, "{name}");
    }
    // The bytes are kept: overstrike backspaces survive in 62 texts.
    let with_backspace = ds
        .train
        .iter()
        .chain(&ds.valid)
        .filter(|e| e.text.contains('\u{8}'))
        .count();
    assert_eq!(with_backspace, 62);
}

#[test]
fn the_embedded_split_ignores_fraction_and_seed() {
    let a = data::load(&DataSource::Fortunes8, 0.0, 0).unwrap();
    let b = data::load(&DataSource::Fortunes8, 0.5, 99).unwrap();
    assert_eq!(a, b);
}

#[test]
fn parse_names_the_embedded_corpus_a_folder_and_a_file() {
    assert_eq!(
        DataSource::parse("fortunes8").unwrap(),
        DataSource::Fortunes8
    );
    let dir = temp_dir("parse");
    assert_eq!(
        DataSource::parse(dir.to_str().unwrap()).unwrap(),
        DataSource::Imdb(dir.clone())
    );
    let file = csv_file("parse", b"label,text\na,b\n");
    assert_eq!(
        DataSource::parse(file.to_str().unwrap()).unwrap(),
        DataSource::Csv(file.clone())
    );
}

#[test]
fn a_missing_path_is_an_io_error_naming_it() {
    let missing = temp_dir("missing").join("nope.csv");
    let shown = missing.display().to_string();
    match DataSource::parse(&shown) {
        Err(Error::Io { path, .. }) => assert_eq!(path, shown),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    match load_csv(&missing) {
        Err(Error::Io { path, .. }) => assert_eq!(path, shown),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

// ---- CSV loading ----

#[test]
fn a_csv_with_is_valid_keeps_file_order_and_extra_columns_are_ignored() {
    let path = csv_file(
        "ok",
        b"id,is_valid,text,label\n1,0,\"b, one\",b\n2,True,\"a \"\"q\"\"\nline\",a\n3,false,a two,a\n4,1,b two,b\n",
    );
    let ds = load_csv(&path).unwrap();
    assert_eq!(ds.classes, ["a", "b"]);
    let train: Vec<(u32, &str)> = ds
        .train
        .iter()
        .map(|e| (e.label, e.text.as_str()))
        .collect();
    let valid: Vec<(u32, &str)> = ds
        .valid
        .iter()
        .map(|e| (e.label, e.text.as_str()))
        .collect();
    assert_eq!(train, [(1, "b, one"), (0, "a two")]);
    assert_eq!(valid, [(0, "a \"q\"\nline"), (1, "b two")]);
    assert_eq!(ds.name, path.display().to_string());
}

#[test]
fn a_missing_column_is_an_error_on_line_1_listing_the_columns_found() {
    let (_, _, line, msg) = csv_error("nocol", b"label,txt\na,b\n");
    assert_eq!(line, 1);
    assert!(msg.contains("missing column `text`"), "{msg}");
    assert!(msg.contains("`label`, `txt`"), "{msg}");
    assert_data_error("emptyfile", b"", 1, "missing column `label` and `text`");
    assert_data_error("dupcol", b"label,text,text\na,b,c\n", 1, "appears 2 times");
}

#[test]
fn invalid_utf8_is_an_error_naming_its_line_and_byte() {
    assert_data_error(
        "utf8",
        b"label,text\na,fine\na,\"two\nlines\"\nb,ok \xff here\n",
        5,
        "text is not valid UTF-8 (byte 3 of the field)",
    );
    assert_data_error(
        "utf8label",
        b"label,text\n\xc3,x\n",
        2,
        "label is not valid UTF-8",
    );
}

#[test]
fn an_empty_text_or_label_is_an_error_naming_its_line() {
    assert_data_error("emptytext", b"label,text\na,x\nb,\"  \"\n", 3, "empty text");
    assert_data_error("emptylabel", b"label,text\na,x\n,y\n", 3, "empty label");
}

#[test]
fn a_bad_is_valid_value_is_an_error_naming_its_line() {
    assert_data_error(
        "isvalid",
        b"label,text,is_valid\na,x,True\na,y,maybe\n",
        3,
        "is_valid is `maybe`",
    );
}

#[test]
fn a_ragged_row_is_an_error_naming_its_line() {
    assert_data_error(
        "ragged",
        b"label,text\na,x\nb,y,z\n",
        3,
        "the record has 3 fields; the header has 2",
    );
}

#[test]
fn an_unterminated_quote_is_an_error_naming_the_line_it_opens() {
    // Swallowing the rest of the file would give a valid-looking record.
    assert_data_error(
        "quote",
        b"label,text\na,x\nb,\"never closed\nc,z\nd,w\n",
        3,
        "unterminated quote",
    );
    // Swallowing makes the record ragged; the quote is still the reason.
    assert_data_error(
        "quote3",
        b"label,text,is_valid\na,x,0\nb,\"never closed,0\nc,z,1\n",
        3,
        "unterminated quote",
    );
    // Opened on a later line of a multi-line record.
    assert_data_error(
        "quote_late",
        b"label,text,is_valid\na,\"two\nlines\",\"0\n",
        3,
        "unterminated quote",
    );
}

#[test]
fn a_label_seen_only_in_validation_is_an_error_naming_its_line() {
    let (_, _, line, msg) = csv_error(
        "validonly",
        b"label,text,is_valid\na,x,0\nb,y,1\nc,z,1\nc,w,0\n",
    );
    assert_eq!(line, 3);
    assert!(msg.contains("label `b` is only in validation"), "{msg}");
}

#[test]
fn no_training_rows_is_a_format_error() {
    let path = csv_file("notrain", b"label,text,is_valid\na,x,1\n");
    match load_csv(&path) {
        Err(Error::Format { what, msg }) => {
            assert_eq!(what, path.display().to_string());
            assert!(msg.contains("no training rows"), "{msg}");
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
    let header_only = csv_file("headeronly", b"label,text,is_valid\n");
    match load_csv(&header_only) {
        Err(Error::Format { msg, .. }) => {
            assert!(msg.contains("no rows after the header"), "{msg}")
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

#[test]
fn valid_fraction_outside_0_to_1_is_an_invalid_argument() {
    for f in [-0.1, 1.0, f64::NAN] {
        assert!(matches!(
            data::load(&DataSource::Fortunes8, f, 0),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

/// A CSV without is_valid: 200 rows over two labels, text = row number.
fn unsplit_csv() -> PathBuf {
    let mut s = String::from("label,text\n");
    for i in 0..200 {
        s += &format!("{},row {i}\n", ["x", "y"][i % 2]);
    }
    csv_file("unsplit", s.as_bytes())
}

fn split_of(path: &Path, fraction: f64, seed: u64) -> Vec<String> {
    let ds = data::load(&DataSource::Csv(path.to_path_buf()), fraction, seed).unwrap();
    assert_eq!(ds.train.len() + ds.valid.len(), 200);
    ds.valid.iter().map(|e| e.text.clone()).collect()
}

#[test]
fn the_random_split_is_a_function_of_the_seed() {
    let path = unsplit_csv();
    let a = split_of(&path, 0.25, 7);
    assert_eq!(a.len(), 50);
    assert_eq!(a, split_of(&path, 0.25, 7));
    assert_ne!(a, split_of(&path, 0.25, 8));
    // Validation keeps file order and is the permutation's first entries.
    let perm = data::permutation(
        7,
        shoestring::rng::Stream::new(shoestring::rng::StreamFamily::DataShuffle, 2),
        0,
        200,
    );
    let mut first: Vec<usize> = perm[..50].to_vec();
    first.sort_unstable();
    let expected: Vec<String> = first.iter().map(|i| format!("row {i}")).collect();
    assert_eq!(a, expected);
    assert!(split_of(&path, 0.0, 7).is_empty());
}

// ---- aclImdb ----

/// Writes `files` (relative path, bytes) under a fresh folder.
fn imdb_tree(tag: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = temp_dir(tag);
    for (rel, bytes) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
    dir
}

fn load_imdb(dir: &Path) -> shoestring::Result<Dataset> {
    data::load(&DataSource::Imdb(dir.to_path_buf()), 0.0, 0)
}

#[test]
fn an_imdb_folder_loads_in_sorted_order_skipping_unsup_and_non_text() {
    let dir = imdb_tree(
        "imdb",
        &[
            ("train/pos/10_9.txt", b"great"),
            ("train/pos/1_8.txt", b"good"),
            ("train/neg/0_1.txt", b"bad"),
            ("train/unsup/0_0.txt", b"unlabelled"),
            ("train/neg/notes.md", b"not a text"),
            ("train/labeledBow.feat", b"0 0:1"),
            ("test/neg/3_2.txt", b"poor"),
            ("test/pos/2_7.txt", b"fine"),
        ],
    );
    let ds = load_imdb(&dir).unwrap();
    assert_eq!(ds.classes, ["neg", "pos"]);
    let texts = |v: &[data::Example]| -> Vec<(u32, String)> {
        v.iter().map(|e| (e.label, e.text.clone())).collect()
    };
    assert_eq!(
        texts(&ds.train),
        [(0, "bad".into()), (1, "great".into()), (1, "good".into())]
    );
    assert_eq!(texts(&ds.valid), [(0, "poor".into()), (1, "fine".into())]);
    // The digest is over content: one changed byte changes it.
    let again = load_imdb(&dir).unwrap();
    assert_eq!(again.sha256, ds.sha256);
    fs::write(dir.join("test/pos/2_7.txt"), b"fina").unwrap();
    assert_ne!(load_imdb(&dir).unwrap().sha256, ds.sha256);
}

#[test]
fn an_imdb_folder_without_train_is_an_error() {
    let dir = imdb_tree("imdb_notrain", &[("test/pos/0_9.txt", b"x")]);
    match load_imdb(&dir) {
        Err(Error::Format { msg, .. }) => assert!(msg.contains("no `train/` folder"), "{msg}"),
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

#[test]
fn an_imdb_file_with_invalid_utf8_names_the_line_of_the_bad_byte() {
    let dir = imdb_tree(
        "imdb_utf8",
        &[
            ("train/pos/0_9.txt", b"one\ntwo\nth\xffree"),
            ("test/pos/0_9.txt", b"x"),
        ],
    );
    match load_imdb(&dir) {
        Err(Error::Data { file, line, msg }) => {
            assert!(
                file.ends_with("0_9.txt") && file.contains("train"),
                "{file}"
            );
            assert_eq!(line, 3);
            assert!(msg.contains("not valid UTF-8 (byte 10"), "{msg}");
        }
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

#[test]
fn an_empty_imdb_file_is_an_error_naming_it() {
    let dir = imdb_tree(
        "imdb_empty",
        &[("train/pos/0_9.txt", b" \n"), ("test/pos/0_9.txt", b"x")],
    );
    match load_imdb(&dir) {
        Err(Error::Data { file, msg, .. }) => {
            assert!(file.ends_with("0_9.txt"), "{file}");
            assert!(msg.contains("empty text"), "{msg}");
        }
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

#[test]
fn an_imdb_test_label_not_in_train_is_an_error_naming_it() {
    let dir = imdb_tree(
        "imdb_label",
        &[("train/pos/0_9.txt", b"x"), ("test/meh/0_5.txt", b"y")],
    );
    match load_imdb(&dir) {
        Err(Error::Format { what, msg }) => {
            assert!(what.ends_with("meh"), "{what}");
            assert!(
                msg.contains("class `meh` is in test/ but not in train/"),
                "{msg}"
            );
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

// ---- vocabulary ----

#[test]
fn vocab_orders_by_count_then_bytes_after_the_specials() {
    let v = Vocab::build(["b a c b", "a b z", "Z xxbos"], 1);
    // b:3, a:2, z:2 (Z lowercases), c:1; xxbos is the special.
    assert_eq!(v.itos(), ["xxpad", "xxunk", "xxbos", "b", "a", "z", "c"]);
    assert_eq!((Vocab::PAD, Vocab::UNK, Vocab::BOS), (0, 1, 2));
    assert_eq!(v.id("z"), Some(5));
    assert_eq!(v.id("q"), None);
    assert_eq!(v.len(), 7);
}

#[test]
fn vocab_min_freq_drops_rare_tokens() {
    let v = Vocab::build(["b a c b", "a b z"], 2);
    assert_eq!(v.itos(), ["xxpad", "xxunk", "xxbos", "b", "a"]);
}

#[test]
fn encode_starts_with_bos_maps_unknowns_to_unk_and_truncates() {
    let v = Vocab::build(["the cat sat"], 1);
    let (the, cat) = (v.id("the").unwrap(), v.id("cat").unwrap());
    assert_eq!(v.encode("The dog, cat", 100), [Vocab::BOS, the, 1, 1, cat]);
    assert_eq!(v.encode("The dog, cat", 2), [Vocab::BOS, the]);
    assert_eq!(v.encode("The dog, cat", 1), [Vocab::BOS]);
    assert_eq!(v.encode("", 5), [Vocab::BOS]);
}

#[test]
fn vocab_from_tokens_round_trips_and_validates() {
    let v = Vocab::build(["b a c b"], 1);
    let back = Vocab::from_tokens(v.itos().to_vec()).unwrap();
    assert_eq!(back, v);
    assert_eq!(back.sha256(), v.sha256());
    let specials = || Vocab::SPECIALS.iter().map(|s| s.to_string());
    let with = |extra: &[&str]| -> Vec<String> {
        specials()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    assert!(Vocab::from_tokens(with(&["a", "b"])).is_ok());
    for bad in [
        with(&["a", "a"]),
        with(&[""]),
        with(&["a b"]),
        with(&["xxpad"]),
        vec!["xxunk".into(), "xxpad".into(), "xxbos".into()],
        vec!["xxpad".into()],
    ] {
        assert!(
            matches!(
                Vocab::from_tokens(bad.clone()),
                Err(Error::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn vocab_sha256_is_of_the_tokens_joined_by_newlines() {
    let v = Vocab::from_tokens(
        ["xxpad", "xxunk", "xxbos", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
    .unwrap();
    // sha256 of "xxpad\nxxunk\nxxbos\na" (printf '%s' ... | sha256sum).
    assert_eq!(v.sha256(), SHA_OF_FOUR_TOKENS);
}

const SHA_OF_FOUR_TOKENS: &str = "c275ae0b6d663109a390dbb0ff9dd3e75907e9b82ea34d7f3528d2f6fe2725c5";
