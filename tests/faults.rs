//! Numerical and environment faults (issue 11): each is one clear message
//! and a non-zero exit, and nothing saved before is damaged.

mod support;

use shoestring::amp::{LossScaler, Precision};
use shoestring::nn::{ClassifierConfig, TextBatch, TextClassifier};
use shoestring::optim::Optimizer;
use shoestring::rng::RngState;
use shoestring::step::{train_step, StepConfig};
use shoestring::Device;
use support::runs::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn an_f32_run_whose_loss_becomes_non_finite_stops_naming_the_step_the_op_and_the_checkpoint() {
    let s = Scratch::new("nan-f32");
    let (run, o) = s.train(
        "run",
        &[
            "--max-steps",
            "50",
            "--lr",
            "1e30",
            "--checkpoint-every",
            "1",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: step 2: "), "{err}");
    assert!(err.contains("the weights were not updated"), "{err}");
    assert!(
        err.contains("the first non-finite value is the output of `"),
        "{err}"
    );
    assert!(err.contains("tape node"), "{err}");
    assert!(
        err.contains("step-00000001"),
        "the last good checkpoint: {err}"
    );
    // The step was logged as skipped, and the checkpoint before it verifies
    // and holds finite weights.
    let log = String::from_utf8(read(&run.join("steps.jsonl"))).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["step"].as_u64(), last["skipped"].as_bool()),
        (Some(2), Some(true))
    );
    let ckpt = run.join("checkpoints/step-00000001");
    shoestring::checkpoint::verify(&ckpt).unwrap();
    let (tensors, _) = shoestring::nn::save::load_tensors(&ckpt.join("model.safetensors")).unwrap();
    assert!(tensors
        .iter()
        .flat_map(|t| &t.values)
        .all(|v| v.is_finite()));
}

#[test]
fn mixed_precision_with_a_far_too_high_loss_scale_never_writes_a_non_finite_weight() {
    let device = Device::Cpu;
    let texts: Vec<Vec<u32>> = (0..16u32)
        .map(|i| (0..3 + i % 5).map(|j| (i * 7 + j) % 50).collect())
        .collect();
    let labels: Vec<u32> = (0..16).map(|i| i % 3).collect();
    let batch = TextBatch::new(&device, &texts, &labels).unwrap();
    let mut model = TextClassifier::new(&device, &ClassifierConfig::small(50, 3), 1).unwrap();
    let mut opt = Optimizer::adam(&model.params, 1e-2, 0.0);
    let mut scaler = LossScaler {
        scale: 1.0e12,
        growth_interval: 2,
        ..LossScaler::default()
    };
    let config = StepConfig {
        precision: Precision::Mixed,
        ..StepConfig::default()
    };
    let mut rng = RngState::new(3);
    let (mut skipped, mut applied) = (0, 0);
    for step in 0..60 {
        let before = model.tensors().unwrap();
        let out = train_step(
            &mut model,
            &mut opt,
            Some(&mut scaler),
            &config,
            &batch,
            &mut rng,
        )
        .unwrap();
        let after = model.tensors().unwrap();
        assert!(
            after.iter().flat_map(|t| &t.values).all(|v| v.is_finite()),
            "step {step}: a non-finite weight"
        );
        if out.applied {
            applied += 1;
        } else {
            skipped += 1;
            assert_eq!(
                before, after,
                "step {step}: a skipped step changed the model"
            );
        }
    }
    assert!(
        skipped >= 10,
        "the scale must start far too high: {skipped} skipped"
    );
    assert!(
        applied >= 5,
        "and come down to one that works: {applied} applied"
    );
    assert_eq!(scaler.skipped_steps, skipped as u64);
}

#[test]
fn cuda_without_a_usable_gpu_is_one_clear_error() {
    if Device::cuda(0).is_ok() {
        support::skip("cuda-missing", "a GPU is present", None);
        return;
    }
    let o = shoestring(&["train", "--device", "cuda", "--max-steps", "1"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("CUDA is not usable"), "{err}");
}

/// A run stopped at step 7 (checkpoints 3, 6, 7) and resumed with the
/// fault `env = value` fails with one last line that `check` accepts;
/// afterwards every checkpoint verifies and holds no temporary file, and a
/// resume without the fault writes the uninterrupted bytes.
fn a_fault_fails_cleanly_and_damages_nothing(
    test: &str,
    env: &str,
    value: &str,
    check: impl Fn(&str) -> bool,
) {
    let s = Scratch::new(test);
    let (full, o) = s.train("full", &["--max-steps", "12"]);
    ok(o);
    let (run, o) = s.train("run", &["--max-steps", "12", "--stop-after-steps", "7"]);
    ok(o);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_shoestring"))
        .args(["train", "--resume", run.to_str().unwrap()])
        .env(env, value)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: ") && check(last), "{err}");
    for (_, dir) in shoestring::checkpoint::list(&run.join("checkpoints")).unwrap() {
        shoestring::checkpoint::verify(&dir).unwrap();
        for f in std::fs::read_dir(&dir).unwrap() {
            let name = f.unwrap().file_name();
            assert!(
                !name.to_string_lossy().ends_with(".tmp"),
                "{name:?} in {}",
                dir.display()
            );
        }
    }
    ok(shoestring(&["train", "--resume", run.to_str().unwrap()]));
    assert_same_run(&full, &run);
}

#[test]
fn a_full_disk_while_checkpointing_fails_cleanly_and_damages_nothing_saved_before() {
    // The disk fills during the next checkpoint's files.
    a_fault_fails_cleanly_and_damages_nothing(
        "disk-full",
        shoestring::fault::DISK_ENV,
        "100000",
        |last| last.contains(".tmp") && last.matches("No space left on device").count() == 1,
    );
}

#[test]
fn out_of_device_memory_is_one_clear_error_and_damages_nothing_saved_before() {
    // A device too small for the run (a budget of live bytes).
    a_fault_fails_cleanly_and_damages_nothing(
        "oom",
        shoestring::fault::DEVICE_ENV,
        "1000000",
        |last| {
            last.starts_with("error: out of memory on cpu: could not allocate")
                && last.contains("--batch-size")
        },
    );
}

#[test]
fn a_lock_left_by_a_killed_process_is_taken_over_with_a_message() {
    let s = Scratch::new("stale-lock");
    let run = s.run_dir("run");
    let mut child = spawn_train(&s.args(&run, &["--max-steps", "100000"]));
    wait_for(&run.join("checkpoints"), &mut child);
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let o = shoestring(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--stop-after-steps",
        "999999",
    ]);
    ok(o.clone());
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "last held by pid {pid}, which is no longer running"
        )),
        "{t}"
    );
    // A run that stopped normally leaves no pid: no message next time.
    let o = shoestring(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--stop-after-steps",
        "1000000",
    ]);
    ok(o.clone());
    assert!(!text(&o).contains("no longer running"), "{}", text(&o));
}
