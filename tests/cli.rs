//! The command line as a user meets it.

mod support;

use std::process::Command;

fn shoestring(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shoestring"))
        .args(args)
        .output()
        .expect("run shoestring")
}

#[test]
fn doctor_exits_zero_and_says_whether_cuda_is_usable() {
    let out = shoestring(&["doctor"]);
    assert!(
        out.status.success(),
        "doctor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let cuda = text
        .lines()
        .find(|l| l.starts_with("cuda: "))
        .expect("a `cuda:` line");
    assert!(
        cuda == "cuda: usable" || cuda.starts_with("cuda: not usable: "),
        "{cuda}"
    );
    assert!(
        text.contains(&format!(
            "kernels sha256: {}",
            shoestring::device::kernels::SHA256
        )),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("cpu: ")), "{text}");
}

#[test]
fn unknown_subcommand_prints_one_error_and_exits_non_zero() {
    let out = shoestring(&["frobnicate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}

#[test]
fn verify_on_the_simulator_reports_every_family_bitwise_equal() {
    if !shoestring::device::sim_available() {
        support::skip(
            "verify on sim",
            "no simulator in this build",
            Some("SHOESTRING_REQUIRE_SIM"),
        );
        return;
    }
    let out = shoestring(&["verify", "--device", "sim", "--log2-elements", "16"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (family, _) in shoestring::ops::VERIFY {
        assert!(
            text.lines()
                .any(|l| l.starts_with(family) && l.contains("bitwise equal")),
            "no `{family} ... bitwise equal` line in:\n{text}"
        );
    }
}

#[test]
fn verify_with_an_unknown_device_says_what_is_expected() {
    let out = shoestring(&["verify", "--device", "tpu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected cpu, sim, cuda or cuda:N"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
