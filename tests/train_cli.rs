//! `shoestring train`, `eval`, `predict` and `diff` as a user runs them:
//! the promises of the main job, on small configs so that they stay fast.
//! Each test trains a small model on a fifth of `fortunes8` (written to a
//! CSV in a scratch folder) in well under a second per run on the CPU.

mod support;

use support::runs::*;

use std::path::Path;

#[test]
fn the_same_seed_twice_gives_byte_identical_models_and_fingerprints() {
    let s = Scratch::new("same-seed");
    let (a, o) = s.train("a", &["--max-steps", "10"]);
    ok(o);
    let (b, o) = s.train("b", &["--max-steps", "10"]);
    ok(o);
    assert_same_run(&a, &b);
    let log = String::from_utf8(read(&a.join("steps.jsonl"))).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("\"params\"")).count(),
        6,
        "fingerprints at steps 0, 2, 4, 6, 8, 10:\n{log}"
    );
}

#[test]
fn the_model_does_not_depend_on_the_number_of_batch_workers() {
    let s = Scratch::new("workers");
    let (a, o) = s.train("w1", &["--max-steps", "12", "--workers", "1"]);
    ok(o);
    let (b, o) = s.train("w4", &["--max-steps", "12", "--workers", "4"]);
    ok(o);
    assert_same_run(&a, &b);
}

/// An uninterrupted run of `steps`, and the same run stopped after `stop`
/// steps and resumed, write the same bytes.
fn stop_and_resume_is_byte_identical(test: &str, extra: &[&str]) {
    let s = Scratch::new(test);
    let mut full_args = vec!["--max-steps", "14"];
    full_args.extend_from_slice(extra);
    let (full, o) = s.train("full", &full_args);
    ok(o);
    let mut stop_args = full_args.clone();
    stop_args.extend_from_slice(&["--stop-after-steps", "7"]);
    let (part, o) = s.train("part", &stop_args);
    let o = ok(o);
    assert!(text(&o).contains("stopped after step 7"), "{}", text(&o));
    assert!(!part.join("model.safetensors").exists());
    let o = ok(shoestring(&["train", "--resume", part.to_str().unwrap()]));
    assert!(
        text(&o).contains("resuming from") && text(&o).contains("step-00000007"),
        "the resume must say which checkpoint it took\n{}",
        text(&o)
    );
    assert_same_run(&full, &part);
}

#[test]
fn stopped_and_resumed_is_byte_identical_in_f32() {
    stop_and_resume_is_byte_identical("resume-f32", &[]);
}

#[test]
fn stopped_and_resumed_is_byte_identical_in_mixed_precision_with_the_loss_scale() {
    // A scale far too high with a short growth interval: steps overflow and
    // are skipped, the scale halves and grows again across the stop.
    let s = support::scratch_dir("resume-mixed-config");
    let cfg = s.join("mixed.toml");
    std::fs::write(
        &cfg,
        "precision = \"mixed\"\nloss_scale = 1e6\nscale_growth_interval = 3\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    stop_and_resume_is_byte_identical("resume-mixed", &["--config", &cfg]);
    let log = String::from_utf8(read(
        &support::scratch_dir("resume-mixed").join("part/steps.jsonl"),
    ))
    .unwrap();
    assert!(
        log.contains("\"skipped\":true"),
        "no step overflowed:\n{log}"
    );
    assert!(log.contains("\"skipped\":false"), "no step applied:\n{log}");
}

/// A run of `args` SIGKILLed once its first checkpoint (step 3) is on disk
/// and resumed writes the bytes of an uninterrupted run.
fn killed_after_first_checkpoint_resumes_byte_identical(test: &str, args: &[&str]) {
    let s = Scratch::new(test);
    let (full, o) = s.train("full", args);
    ok(o);
    let killed = s.run_dir("killed");
    let mut child = spawn_train(&s.args(&killed, args));
    let first = killed.join("checkpoints/step-00000003");
    wait_for(&first, &mut child);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(first.exists(), "no checkpoint within a minute");
    assert!(
        !killed.join("model.safetensors").exists(),
        "the run finished before it was killed: give it more steps"
    );
    ok(shoestring(&["train", "--resume", killed.to_str().unwrap()]));
    assert_same_run(&full, &killed);
}

#[test]
fn a_run_killed_after_its_first_checkpoint_resumes_byte_identical() {
    killed_after_first_checkpoint_resumes_byte_identical("sigkill", &["--max-steps", "200"]);
}

#[test]
fn a_run_without_a_valid_checkpoint_restarts_from_step_0_and_a_corrupt_one_is_skipped() {
    let s = Scratch::new("restart");
    let (full, o) = s.train("full", &["--max-steps", "10"]);
    ok(o);
    // Stopped at 7: checkpoints at 3, 6 and 7. Corrupt the newest.
    let (part, o) = s.train("part", &["--max-steps", "10", "--stop-after-steps", "7"]);
    ok(o);
    let newest = part.join("checkpoints/step-00000007/model.safetensors");
    let mut bytes = read(&newest);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    let o = ok(shoestring(&["train", "--resume", part.to_str().unwrap()]));
    let t = text(&o);
    assert!(
        t.contains("skipping checkpoint") && t.contains("checksum mismatch"),
        "{t}"
    );
    assert!(t.contains("step-00000006"), "{t}");
    assert_same_run(&full, &part);

    // No checkpoint at all (killed before the first): from step 0.
    let (empty, o) = s.train("empty", &["--max-steps", "10", "--stop-after-steps", "2"]);
    ok(o);
    std::fs::remove_dir_all(empty.join("checkpoints")).unwrap();
    let o = ok(shoestring(&["train", "--resume", empty.to_str().unwrap()]));
    assert!(
        text(&o).contains("starting the run again from step 0"),
        "{}",
        text(&o)
    );
    assert_same_run(&full, &empty);
}

#[test]
fn resuming_with_another_config_is_refused_naming_what_differs() {
    let s = Scratch::new("refuse");
    let (part, o) = s.train("part", &["--max-steps", "10", "--stop-after-steps", "3"]);
    ok(o);
    let o = shoestring(&["train", "--resume", part.to_str().unwrap(), "--lr", "0.01"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("lr: 0.003 vs 0.01"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // What does not decide the bits may change, and the manifest says so.
    let run = part.to_str().unwrap();
    ok(shoestring(&[
        "train",
        "--resume",
        run,
        "--checkpoint-every",
        "5",
    ]));
    let m: serde_json::Value = serde_json::from_slice(&read(&part.join("manifest.json"))).unwrap();
    assert_eq!(
        m["resumes"][0]["changed"],
        serde_json::json!(["checkpoint_every: 3 vs 5"]),
        "{m}"
    );
}

#[test]
fn diff_says_identical_for_equal_runs_and_finds_another_seed_at_step_0() {
    let s = Scratch::new("diff");
    let (a, o) = s.train("a", &["--max-steps", "6"]);
    ok(o);
    let (b, o) = s.train("b", &["--max-steps", "6"]);
    ok(o);
    let (c, o) = s.train("c", &["--max-steps", "6", "--seed", "7"]);
    ok(o);
    let same = shoestring(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(
        text(&same).contains("verdict: identical"),
        "{}",
        text(&same)
    );

    let other = shoestring(&["diff", a.to_str().unwrap(), c.to_str().unwrap()]);
    assert_eq!(other.status.code(), Some(1), "{}", text(&other));
    let t = text(&other);
    assert!(t.contains("config.seed"), "{t}");
    assert!(
        t.contains("first difference at step 0 (params fingerprint"),
        "{t}"
    );
    assert!(t.contains("encoder.embedding.weight"), "{t}");

    let missing = shoestring(&["diff", a.to_str().unwrap(), "/nonexistent/run"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

#[test]
fn the_model_file_uses_pytorch_names_and_layouts() {
    let s = Scratch::new("names");
    let (a, o) = s.train("a", &["--max-steps", "2", "--bidirectional"]);
    ok(o);
    let (tensors, _) = shoestring::nn::save::load_tensors(&a.join("model.safetensors")).unwrap();
    let dims = |n: &str| {
        tensors
            .iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("no `{n}`"))
            .dims
            .clone()
    };
    let vocab = dims("encoder.embedding.weight")[0];
    assert_eq!(dims("encoder.embedding.weight"), [vocab, 16]);
    for sfx in ["", "_reverse"] {
        assert_eq!(dims(&format!("encoder.lstm.0.weight_ih_l0{sfx}")), [96, 16]);
        assert_eq!(dims(&format!("encoder.lstm.0.weight_hh_l0{sfx}")), [96, 24]);
        assert_eq!(dims(&format!("encoder.lstm.0.bias_ih_l0{sfx}")), [96]);
        let hh = tensors
            .iter()
            .find(|t| t.name == format!("encoder.lstm.0.bias_hh_l0{sfx}"))
            .unwrap();
        assert!(
            hh.values.iter().all(|v| v.to_bits() == 0),
            "bias_hh is zeros"
        );
    }
    // Linear weights are [out, in]; BatchNorm has weight, bias and stats.
    assert_eq!(dims("head.0.linear.weight"), [50, 3 * 48]);
    assert_eq!(dims("head.1.linear.weight"), [8, 50]);
    for p in ["weight", "bias", "running_mean", "running_var"] {
        assert_eq!(dims(&format!("head.0.bn.{p}")), [3 * 48]);
    }
}

#[test]
fn eval_and_predict_use_a_finished_run() {
    let s = Scratch::new("eval");
    let (a, o) = s.train("a", &["--max-steps", "8"]);
    ok(o);
    let run = a.to_str().unwrap();
    let o = ok(shoestring(&["eval", "--model", run]));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("valid texts of") && t.contains("accuracy"),
        "{t}"
    );
    assert!(
        t.contains("| computers |") && t.contains("confusion matrix"),
        "{t}"
    );
    let o = ok(shoestring(&[
        "predict",
        "--model",
        run,
        "--top",
        "2",
        "my computer crashed",
    ]));
    let t = String::from_utf8_lossy(&o.stdout);
    let line = t.lines().next().unwrap_or_default();
    assert!(line.ends_with("\tmy computer crashed"), "{t}");
    assert_eq!(line.split("  ").count(), 2, "two classes: {t}");
}

#[test]
fn bad_data_is_one_error_line_naming_the_file_and_line() {
    let dir = support::scratch_dir("bad-data");
    let csv = dir.join("bad.csv");
    std::fs::write(
        &csv,
        "label,text\ncomputers,fine\nwork,\"unterminated\nmore\n",
    )
    .unwrap();
    let out = dir.join("run");
    let _ = std::fs::remove_dir_all(&out);
    let o = shoestring(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("bad.csv:3"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let o = shoestring(&["train", "--data", "/no/such/file.csv"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/file.csv"));
}

#[test]
fn a_config_file_with_an_unknown_field_names_its_line() {
    let dir = support::scratch_dir("bad-config");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "epochs = 2\n\n[model]\nhiden = [64]\n").unwrap();
    let o = shoestring(&["train", "--config", cfg.to_str().unwrap(), "--print-config"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("c.toml:4") && err.contains("hiden"), "{err}");
}

#[test]
fn flags_override_the_config_file() {
    let dir = support::scratch_dir("override");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "epochs = 2\nlr = 0.01\n").unwrap();
    let o = ok(shoestring(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--lr",
        "0.02",
        "--print-config",
    ]));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("epochs = 2") && t.contains("lr = 0.02"), "{t}");
}

#[test]
fn an_existing_run_directory_is_not_overwritten() {
    let s = Scratch::new("exists");
    let (a, o) = s.train("a", &["--max-steps", "2"]);
    ok(o);
    let before = read(&a.join("model.safetensors"));
    let o = shoestring(&s.args(&a, &["--max-steps", "2", "--seed", "1"]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    assert_eq!(read(&a.join("model.safetensors")), before);
}

/// The exact tier on the simulator (and on the GPU when there is one)
/// trains to the CPU's bytes.
fn devices_train_the_cpus_model(test: &str, extra: &[&str]) {
    let s = Scratch::new(test);
    let mut args = vec!["--max-steps", "3"];
    args.extend_from_slice(extra);
    let (cpu, o) = s.train("cpu", &args);
    ok(o);
    let mut devices = Vec::new();
    if shoestring::device::sim_available() {
        devices.push("sim");
    } else {
        support::skip(
            test,
            "no simulator in this build",
            Some("SHOESTRING_REQUIRE_SIM"),
        );
    }
    if support::gpu_for_test(test).is_some() {
        devices.push("cuda");
    }
    for d in devices {
        let mut a = args.clone();
        a.extend_from_slice(&["--device", d]);
        let (run, o) = s.train(d, &a);
        ok(o);
        assert_same_run(&cpu, &run);
        let diff = shoestring(&["diff", cpu.to_str().unwrap(), run.to_str().unwrap()]);
        assert_eq!(diff.status.code(), Some(0), "{}", text(&diff));
        assert!(text(&diff).contains("device.kind"), "{}", text(&diff));
    }
}

#[test]
fn sim_and_gpu_train_the_cpus_model_bit_for_bit_in_f32() {
    devices_train_the_cpus_model("devices-f32", &[]);
}

#[test]
fn sim_and_gpu_train_the_cpus_model_bit_for_bit_in_mixed_precision() {
    devices_train_the_cpus_model("devices-mixed", &["--precision", "mixed"]);
}

#[test]
fn the_fast_tier_needs_mixed_precision_and_a_gpu() {
    let s = Scratch::new("fast-refused");
    let (_, o) = s.train("f32", &["--tier", "fast", "--max-steps", "2"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs precision mixed"),
        "{}",
        text(&o)
    );
    let (_, o) = s.train(
        "cpu",
        &["--tier", "fast", "--precision", "mixed", "--max-steps", "2"],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--device cuda"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_fast_tier_trains_on_the_gpu_repeatably_and_near_the_exact_tier() {
    let test = "fast-gpu";
    if support::gpu_for_test(test).is_none() {
        return;
    }
    let s = Scratch::new(test);
    let fast = [
        "--max-steps",
        "6",
        "--precision",
        "mixed",
        "--device",
        "cuda",
        "--tier",
        "fast",
    ];
    let (a, o) = s.train("a", &fast);
    ok(o);
    let (b, o) = s.train("b", &fast);
    ok(o);
    assert_same_run(&a, &b);
    let manifest = String::from_utf8(read(&a.join("manifest.json"))).unwrap();
    assert!(manifest.contains("\"tier\": \"fast\""), "{manifest}");
    // Step 1 starts from the same weights: its loss is the exact tier's
    // within f16 rounding of the forward GEMMs.
    let (exact, o) = s.train("exact", &["--max-steps", "6", "--precision", "mixed"]);
    ok(o);
    let first_loss = |run: &Path| -> f64 {
        let log = String::from_utf8(read(&run.join("steps.jsonl"))).unwrap();
        let line = log.lines().nth(1).unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["loss"].as_f64().unwrap()
    };
    let (lf, le) = (first_loss(&a), first_loss(&exact));
    assert!(
        (lf - le).abs() <= 1e-2 * le.abs(),
        "fast {lf} vs exact {le}"
    );
}

/// Steps in one epoch of the small data at batch 8, read from a run's log
/// (the first step of epoch 1, less one).
fn steps_per_epoch(run: &Path) -> u64 {
    let log = String::from_utf8(read(&run.join("steps.jsonl"))).unwrap();
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["epoch"] == 1)
        .and_then(|v| v["step"].as_u64())
        .expect("the run reaches epoch 1")
        - 1
}

#[test]
fn stops_at_an_epochs_last_step_and_just_after_it_resume_byte_identical() {
    let s = Scratch::new("epoch-edge");
    let (full, o) = s.train("full", &["--max-steps", "150", "--checkpoint-every", "0"]);
    ok(o);
    let per_epoch = steps_per_epoch(&full);
    assert!(per_epoch < 150, "{per_epoch} steps per epoch");
    for stop in [per_epoch, per_epoch + 1] {
        let stop = stop.to_string();
        // A checkpoint every epoch's length: the step checkpoint and the
        // epoch-end one fall on one step.
        let every = per_epoch.to_string();
        let (part, o) = s.train(
            &format!("stop-{stop}"),
            &[
                "--max-steps",
                "150",
                "--checkpoint-every",
                &every,
                "--stop-after-steps",
                &stop,
            ],
        );
        ok(o);
        ok(shoestring(&["train", "--resume", part.to_str().unwrap()]));
        assert_same_run(&full, &part);
    }
}

#[test]
fn a_mixed_precision_run_killed_after_its_first_checkpoint_resumes_byte_identical() {
    killed_after_first_checkpoint_resumes_byte_identical(
        "sigkill-mixed",
        &["--max-steps", "200", "--precision", "mixed"],
    );
}

#[test]
fn a_run_whose_only_checkpoint_is_corrupt_is_not_restarted_silently() {
    let s = Scratch::new("only-corrupt");
    let (part, o) = s.train(
        "part",
        &[
            "--max-steps",
            "10",
            "--stop-after-steps",
            "7",
            "--keep-checkpoints",
            "1",
        ],
    );
    ok(o);
    let only = part.join("checkpoints/step-00000007/optimizer.safetensors");
    let mut bytes = read(&only);
    bytes[100] ^= 1;
    std::fs::write(&only, bytes).unwrap();
    let log_before = read(&part.join("steps.jsonl"));
    let o = shoestring(&["train", "--resume", part.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no checkpoint") && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(
        only.exists(),
        "the checkpoint stays for a person to look at"
    );
    assert_eq!(
        read(&part.join("steps.jsonl")),
        log_before,
        "the log is untouched"
    );
}

#[test]
fn a_run_in_use_by_a_live_process_is_refused() {
    let s = Scratch::new("locked");
    let busy = s.run_dir("busy");
    let mut child = spawn_train(&s.args(&busy, &["--max-steps", "100000"]));
    wait_for(&busy.join("checkpoints"), &mut child);
    let o = shoestring(&["train", "--resume", busy.to_str().unwrap()]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("in use by another shoestring process")
            && err.contains(&child.id().to_string()),
        "{err}"
    );
    // Its holder is dead now: the lock is free, and the run resumes.
    ok(shoestring(&[
        "train",
        "--resume",
        busy.to_str().unwrap(),
        "--stop-after-steps",
        "999999",
    ]));
}

#[test]
fn resuming_with_other_code_or_an_old_step_is_refused() {
    let s = Scratch::new("other-code");
    let (part, o) = s.train("part", &["--max-steps", "10", "--stop-after-steps", "4"]);
    ok(o);
    let run = part.to_str().unwrap();
    let o = shoestring(&["train", "--resume", run, "--stop-after-steps", "4"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already at step 4"),
        "{}",
        text(&o)
    );
    let manifest = part.join("manifest.json");
    let m = String::from_utf8(read(&manifest)).unwrap();
    let version = format!("\"crate_version\": \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(m.contains(&version), "{m}");
    std::fs::write(
        &manifest,
        m.replace(&version, "\"crate_version\": \"0.0.1-old\""),
    )
    .unwrap();
    let o = shoestring(&["train", "--resume", run]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shoestring 0.0.1-old"),
        "{}",
        text(&o)
    );
}
