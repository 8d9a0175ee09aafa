//! Test-only helpers shared by every test binary (`mod support;`): the one
//! place that decides whether a device test runs or is skipped. Not library API.
//!
//! Without a usable GPU a GPU test prints `skipped: <test>: <reason>` and
//! returns; with `SHOESTRING_REQUIRE_GPU=1` (set by the GPU bundle) it fails
//! instead, so a run on a GPU machine can never pass by skipping. The same
//! holds for the simulator with `SHOESTRING_REQUIRE_SIM=1` (set by CI).

#![allow(dead_code)] // each test binary uses a subset

pub mod runs;

use shoestring::device::{Device, SimOptions};
use std::io::Write;

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Writes past the test harness's output capture, so skips show in CI logs.
fn say_skipped(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {reason}");
}

/// Reports that `test` is skipped because of `reason`, or, when the variable
/// `required_by` is `1` (CI and the GPU bundle set these), fails it instead.
/// Every test that can skip goes through here or through [`gpu_for_test`] /
/// [`test_devices`].
///
/// # Panics
/// When `required_by` names a variable that is set to `1`.
pub fn skip(test: &str, reason: &str, required_by: Option<&str>) {
    if let Some(var) = required_by.filter(|v| required(v)) {
        panic!("{test}: {var}=1 but {reason}");
    }
    say_skipped(test, reason);
}

/// GPU 0, or `None` after printing why the test is skipped.
///
/// # Panics
/// When `SHOESTRING_REQUIRE_GPU=1` and no GPU is usable.
pub fn gpu_for_test(test: &str) -> Option<Device> {
    match Device::cuda(0) {
        Ok(d) => Some(d),
        Err(e) if required("SHOESTRING_REQUIRE_GPU") => {
            panic!("{test}: SHOESTRING_REQUIRE_GPU=1 but no GPU is usable: {e}")
        }
        Err(e) => {
            say_skipped(test, &e.to_string());
            None
        }
    }
}

/// Every device that runs the CUDA kernel sources here: the simulator under two
/// thread orders (in-order with 2 workers; shuffled with 1 worker), and GPU 0
/// when one is usable. Skips are reported as by [`gpu_for_test`].
///
/// # Panics
/// When a required device (`SHOESTRING_REQUIRE_GPU`, `SHOESTRING_REQUIRE_SIM`) is missing.
pub fn test_devices(test: &str) -> Vec<Device> {
    let mut out = Vec::new();
    let orders = [
        SimOptions {
            shuffle_seed: 0,
            workers: 2,
        },
        SimOptions {
            shuffle_seed: 0x5eed_0001,
            workers: 1,
        },
    ];
    for o in orders {
        match Device::sim_with(o) {
            Ok(d) => out.push(d),
            Err(e) if required("SHOESTRING_REQUIRE_SIM") => {
                panic!("{test}: SHOESTRING_REQUIRE_SIM=1 but the simulator is unavailable: {e}")
            }
            Err(e) => {
                say_skipped(test, &e.to_string());
                break;
            }
        }
    }
    out.extend(gpu_for_test(test));
    out
}

/// A fresh folder for `test`'s files under the system's temp dir (not
/// `CARGO_TARGET_TMPDIR`: that is a build-machine path, absent where the GPU
/// bundle runs), unique to this process.
pub fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shoestring-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{test}: {}: {e}", dir.display()));
    dir
}

/// Runs the test binary again for the one test `test` (exact name), with
/// `env` set and `out_env` naming a file in `dir` for the child to write,
/// and returns what the child wrote there. For tests that compare this
/// process with a child on another CPU path.
///
/// # Panics
/// When the child cannot start, fails, or writes nothing.
pub fn rerun_self(test: &str, env: (&str, &str), out_env: &str, dir: &std::path::Path) -> Vec<u8> {
    let file = dir.join(format!("{}-{}.bin", env.0, env.1));
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .env(out_env, &file)
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{test}: child with {}={} failed:\n{}",
        env.0,
        env.1,
        String::from_utf8_lossy(&child.stderr)
    );
    std::fs::read(&file).unwrap_or_else(|e| panic!("{test}: {}: {e}", file.display()))
}
