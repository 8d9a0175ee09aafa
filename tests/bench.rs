//! `shoestring bench`: what its rows promise (a reference timed beside each
//! memory-bound and GEMM row, outputs checked before timing, bits against
//! the CPU twin on the kernel devices), the batches it exports for the
//! PyTorch reference, and its errors. No timing is asserted: speed is shown
//! by the bench itself, never by a test.

mod support;

use shoestring::bench::{self, BenchOptions, Row, Work};
use shoestring::device::Device;
use support::{scratch_dir, test_devices};

fn run(dev: &Device, only: &[&str]) -> Vec<Row> {
    let options = BenchOptions {
        quick: true,
        only: only.iter().map(|s| s.to_string()).collect(),
    };
    let mut seen = 0usize;
    let rows = bench::run(dev, &options, &mut |_| seen += 1)
        .unwrap_or_else(|e| panic!("{dev}: bench failed: {e}"));
    assert_eq!(seen, rows.len(), "one progress call per row");
    rows
}

/// The memory-bound families: the first eight of the bench's list.
fn memory_bound() -> &'static [&'static str] {
    &bench::FAMILIES[..8]
}

/// Every memory-bound row carries its copy reference and the ratio of the
/// two, the throughput is the work over the median, and on the simulator
/// and the GPU every op's output was checked bit for bit against the CPU
/// twin first (a mismatch is an error, not a row).
#[test]
fn bench_rows_carry_a_same_process_reference_and_are_checked_against_the_cpu_twin() {
    // One simulator thread order (the rows' checks already compare bits),
    // and the GPU where there is one.
    let devices = test_devices("bench_rows_carry_a_same_process_reference");
    let (sims, gpus): (Vec<Device>, Vec<Device>) = devices
        .into_iter()
        .partition(|d| matches!(d, Device::Sim(_)));
    for dev in sims.into_iter().take(1).chain(gpus) {
        let rows = run(&dev, memory_bound());
        let families: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.family).collect();
        assert_eq!(families.len(), memory_bound().len(), "{dev}: {families:?}");
        assert!(!families.contains("gemm"), "{families:?}");
        for r in &rows {
            let reference = r
                .reference
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no reference", r.op));
            assert!(r.median_ms > 0.0 && reference.median_ms > 0.0, "{r:?}");
            let ratio = r.ratio.expect("a ratio");
            assert!(
                (ratio - reference.median_ms / r.median_ms).abs() < 1e-9 * ratio,
                "{r:?}"
            );
            let Work::Bytes(bytes) = r.work else {
                panic!("{}: memory-bound rows count bytes", r.op)
            };
            let gbs = bytes as f64 / (r.median_ms * 1e-3) / 1e9;
            assert!((r.throughput - gbs).abs() <= 1e-9 * gbs, "{r:?}");
            assert!(
                r.check.starts_with("bits = cpu twin"),
                "{}: {}",
                r.op,
                r.check
            );
        }
    }
}

/// On the CPU the GEMM rows name both libraries, and the training-step rows
/// count real tokens and padded positions: the random batches pad far more
/// than the sortish ones, the real tokens of both are whole texts.
#[test]
fn bench_cpu_gemm_and_training_rows_name_their_references_and_tokens() {
    let rows = run(&Device::Cpu, &["gemm", "train"]);
    let gemm: Vec<&Row> = rows.iter().filter(|r| r.family == "gemm").collect();
    for name in ["matrixmultiply", "gemm crate"] {
        assert!(
            gemm.iter()
                .any(|r| r.reference.as_ref().is_some_and(|x| x.name == name)),
            "no {name} reference"
        );
    }
    let tokens = |batches: &str| -> (u64, u64) {
        let r = rows
            .iter()
            .find(|r| r.family == "train" && r.op.contains(batches))
            .unwrap_or_else(|| panic!("no {batches} row"));
        match r.work {
            Work::Tokens { real, padded } => (real, padded),
            w => panic!("{w:?}"),
        }
    };
    let (sortish_real, sortish_padded) = tokens("sortish");
    let (random_real, random_padded) = tokens("random");
    assert!(sortish_real > 0 && random_real > 0);
    assert!(sortish_padded >= sortish_real && random_padded >= random_real);
    assert!(
        random_padded as f64 / random_real as f64
            > 1.5 * (sortish_padded as f64 / sortish_real as f64),
        "sortish {sortish_real}/{sortish_padded}, random {random_real}/{random_padded}"
    );
    let table = bench::table("cpu", &rows);
    assert_eq!(table.lines().count(), rows.len() + 3, "{table}");
}

/// The export holds every training text once in each plan, with the
/// default model's sizes: what `bench/torch_reference.py` rebuilds.
#[test]
fn bench_export_holds_the_default_runs_texts_and_both_plans() {
    let dir = scratch_dir("bench_export");
    let path = dir.join("batches.json");
    bench::train::export_batches(&path).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["format"], "shoestring-bench-batches-v1");
    let texts = v["texts"].as_array().unwrap().len();
    assert_eq!(v["labels"].as_array().unwrap().len(), texts);
    for plan in ["sortish", "random"] {
        let mut seen: Vec<u64> = v[plan]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| b.as_array().unwrap().iter().map(|i| i.as_u64().unwrap()))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..texts as u64).collect::<Vec<_>>(), "{plan}");
    }
    assert_eq!(v["emb"], 64);
    assert_eq!(v["hidden"], serde_json::json!([128]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An unknown family is refused with the list of known ones.
#[test]
fn bench_refuses_an_unknown_family_naming_the_known_ones() {
    let options = BenchOptions {
        quick: true,
        only: vec!["dropuot".into()],
    };
    let err = bench::run(&Device::Cpu, &options, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dropuot") && err.contains("dropout, elementwise"),
        "{err}"
    );
}

/// The command line: a table on stdout, `--json` with every row, and a
/// `--json` path that cannot be written refused before anything runs.
#[test]
fn bench_cli_prints_a_table_and_writes_json_and_refuses_an_unwritable_path_first() {
    let dir = scratch_dir("bench_cli");
    let json = dir.join("bench.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoestring"))
        .args(["bench", "--quick", "--only", "reduce", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("reduce sum") && stdout.contains("copy_from_slice"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["format"], "shoestring-bench-v1");
    assert_eq!(v["rows"].as_array().unwrap().len(), 1, "{v}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoestring"))
        .args(["bench", "--quick", "--json"])
        .arg(dir.join("no-such-dir").join("b.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no-such-dir"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("philox"),
        "it ran rows before failing: {stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
