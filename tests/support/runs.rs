//! Helpers for tests that run the `shoestring` binary: a scratch folder
//! with a fifth of fortunes8 as a CSV, `train` with a small model, and the
//! comparison of two run directories byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The small model and schedule every test trains: 8 texts per batch,
/// embedding 16, one LSTM layer of 24, a checkpoint every 3 steps and
/// fingerprints every 2 (flag and value pairs; a test's own flag wins).
pub const SMALL: &[&str] = &[
    "--batch-size",
    "8",
    "--emb",
    "16",
    "--hidden",
    "24",
    "--checkpoint-every",
    "3",
    "--fingerprint-every",
    "2",
];

pub fn shoestring(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shoestring"))
        .args(args)
        .output()
        .expect("run shoestring")
}

pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "shoestring failed\n{}", text(&o));
    o
}

/// A fifth of fortunes8 (rows whose index mod 25 is below 5, so training
/// and validation rows of every class), as a CSV in `dir`.
pub fn small_csv(dir: &Path) -> PathBuf {
    let all = std::str::from_utf8(shoestring::data::corpus::CSV).unwrap();
    let mut lines = all.lines();
    let mut out = vec![lines.next().unwrap().to_string()];
    out.extend(
        lines
            .enumerate()
            .filter(|(i, _)| i % 25 < 5)
            .map(|(_, l)| l.to_string()),
    );
    let path = dir.join("small.csv");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

pub struct Scratch {
    /// The folder.
    pub dir: PathBuf,
    /// The small CSV in it.
    pub data: String,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = super::scratch_dir(test);
        let data = small_csv(&dir).display().to_string();
        Scratch { dir, data }
    }

    pub fn run_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    /// `train --data <small> --out <dir>/<name> SMALL extra`.
    pub fn train(&self, name: &str, extra: &[&str]) -> (PathBuf, Output) {
        let out = self.run_dir(name);
        let o = shoestring(&self.args(&out, extra));
        (out, o)
    }

    pub fn args<'a>(&'a self, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "train",
            "--data",
            &self.data,
            "--out",
            out.to_str().unwrap(),
        ];
        // SMALL's settings, less those that `extra` gives itself.
        for pair in SMALL.chunks(2) {
            if !extra.contains(&pair[0]) {
                a.extend_from_slice(pair);
            }
        }
        a.extend_from_slice(extra);
        a
    }
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn assert_same_run(a: &Path, b: &Path) {
    for f in [
        "model.safetensors",
        "steps.jsonl",
        "metrics.json",
        "vocab.json",
    ] {
        assert!(
            read(&a.join(f)) == read(&b.join(f)),
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// `shoestring train` with `args` as a child process, its output discarded.
pub fn spawn_train(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_shoestring"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start shoestring")
}

/// Waits (at most a minute) until `path` exists or `child` has ended.
pub fn wait_for(path: &Path, child: &mut std::process::Child) {
    let t0 = std::time::Instant::now();
    while !path.exists() && t0.elapsed().as_secs() < 60 && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
