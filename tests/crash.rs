//! Crash consistency (issue 11): a training run interrupted at 20 moments,
//! each time resumed, ends with the bytes (model, logs, metrics) of a run
//! never interrupted. The moments come from a fixed seed and are spread
//! over the run:
//! - a SIGKILL right after the start (before the manifest exists), then one
//!   before the first checkpoint, then 10 more SIGKILLs, each once the log
//!   shows the run a drawn number of steps past its last resume;
//! - 8 aborts at named points inside checkpoint writes and before the final
//!   model (`shoestring::fault`), where a random time would rarely land.
//!
//! Every interrupted process must really have been interrupted (killed or
//! aborted, never finished), and each next start resumes from the newest
//! checkpoint that verifies, or from step 0.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::runs::*;

/// About 600 steps of the small model, a checkpoint every 3 steps.
const RUN: &[&str] = &["--max-steps", "600", "--keep-checkpoints", "2"];

/// A small deterministic generator for the schedule (SplitMix64).
struct Schedule(u64);

impl Schedule {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The step of the last whole line of `steps.jsonl` (0 when none).
fn logged_step(run: &Path) -> u64 {
    let text = std::fs::read_to_string(run.join("steps.jsonl")).unwrap_or_default();
    text.lines()
        .rev()
        .filter(|_| text.ends_with('\n'))
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

fn finish(mut child: Child) -> (ExitStatus, String) {
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status, err)
}

#[test]
fn a_run_interrupted_at_20_moments_and_resumed_each_time_writes_the_uninterrupted_bytes() {
    let s = Scratch::new("crash-20");
    let (full, o) = s.train("full", RUN);
    ok(o);

    let run = s.run_dir("crashed");
    let mut sched = Schedule(0x5eed_c4a5);
    let mut history = Vec::new();
    for k in 0..20u64 {
        let mut args: Vec<&str> = if run.join("manifest.json").exists() {
            vec!["train", "--resume", run.to_str().unwrap()]
        } else {
            s.args(&run, RUN)
        };
        if k % 2 == 1 {
            args.extend_from_slice(&["--workers", "3"]); // changes no bit
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoestring"));
        cmd.args(&args).stdout(Stdio::null()).stderr(Stdio::piped());
        let start_step = logged_step(&run);
        let how;
        let (status, err) = if k % 5 == 2 || k % 5 == 4 || k == 19 {
            // Abort inside a write: a checkpoint file's point at one of the
            // child's first passes, or (last) just before the final model.
            let (point, pass) = if k == 19 {
                ("final.model", 1)
            } else {
                (
                    shoestring::fault::POINTS[(sched.next() % 4) as usize],
                    sched.between(1, 3),
                )
            };
            how = format!("abort at {point}:{pass}");
            cmd.env(shoestring::fault::ENV, format!("{point}:{pass}"));
            finish(cmd.spawn().unwrap())
        } else {
            let mut child = cmd.spawn().unwrap();
            if k == 0 {
                how = "SIGKILL at once".to_string();
            } else {
                // Before the first checkpoint (k = 1), else 5..40 steps on.
                let ahead = if k == 1 { 1 } else { sched.between(5, 40) };
                let target = start_step + ahead;
                how = format!("SIGKILL at step {target}");
                let t0 = Instant::now();
                while logged_step(&run) < target && t0.elapsed() < Duration::from_secs(60) {
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            let _ = child.kill();
            finish(child)
        };
        history.push(format!(
            "{k}: from step {start_step}, {how}: {status}, log at step {}",
            logged_step(&run)
        ));
        assert!(
            !status.success() && status.code().is_none(),
            "interruption {k} did not interrupt (the run ended or failed by itself):\n{err}\n{}",
            history.join("\n")
        );
    }
    let o = shoestring(&["train", "--resume", run.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "the final resume failed\n{}\n{}",
        text(&o),
        history.join("\n")
    );
    eprintln!("interruptions:\n{}", history.join("\n"));
    assert_same_run(&full, &run);
}
