//! The SIMT simulator as a test bench for kernels: it refuses what a GPU
//! refuses, with the same text, and its shuffled thread order exposes a
//! missing `__syncthreads()` as a bitwise mismatch.

mod support;

use shoestring::device::{Device, DeviceBuffer, LaunchConfig};
use shoestring::ops::philox::{self, PhiloxCounter, PhiloxKey};
use shoestring::Error;
use support::test_devices;

#[test]
fn cuda_probe_returns_an_error_instead_of_panicking() {
    match Device::cuda(0) {
        Ok(dev) => assert!(dev.runs_kernels()),
        Err(Error::CudaUnavailable(why)) => assert!(!why.is_empty()),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
    // An ordinal no machine has is always an error, never a panic.
    assert!(Device::cuda(4096).is_err());
}

#[test]
fn a_block_of_2048_threads_is_refused_with_the_same_text_on_every_device() {
    let expected =
        "launch of `philox_blocks_u32` refused: block of 2048x1x1 = 2048 threads exceeds \
                    the limit of 1024 threads per block";
    for dev in test_devices("a_block_of_2048_threads_is_refused_with_the_same_text_on_every_device")
    {
        let mut out = DeviceBuffer::zeros(&dev, 4 * 4096).unwrap();
        let err = philox::philox_blocks_u32_with_shape(
            &dev,
            PhiloxKey::from_seed(1),
            PhiloxCounter::new(0, 0, 0),
            4096,
            &mut out,
            (2048, 2),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), expected, "{dev}");
    }
}

#[test]
fn launch_configs_a_gpu_refuses_are_refused() {
    let cases = [
        (
            LaunchConfig {
                grid: [1, 1, 1],
                block: [0, 1, 1],
                dynamic_shared_bytes: 0,
            },
            "zero extent",
        ),
        (
            LaunchConfig {
                grid: [1, 1, 1],
                block: [1, 1, 65],
                dynamic_shared_bytes: 0,
            },
            "per-axis limit",
        ),
        (
            LaunchConfig {
                grid: [1, 65_536, 1],
                block: [32, 1, 1],
                dynamic_shared_bytes: 0,
            },
            "grid dimension",
        ),
        (
            LaunchConfig {
                grid: [1, 1, 1],
                block: [32, 1, 1],
                dynamic_shared_bytes: 48 * 1024 + 1,
            },
            "dynamic shared memory",
        ),
    ];
    for (cfg, what) in cases {
        let err = cfg.validate("k").unwrap_err().to_string();
        assert!(err.contains(what), "{cfg:?}: {err}");
    }
    assert!(LaunchConfig {
        grid: [2_147_483_647, 65_535, 65_535],
        block: [1024, 1, 1],
        dynamic_shared_bytes: 49_152
    }
    .validate("k")
    .is_ok());
}

#[cfg(shoestring_sim)]
mod shuffled_order {
    use super::*;
    // tests/kernels/racy_block_sum.cu, in the test binaries' registry only.
    use shoestring::device::{Launch, SimOptions};

    const ROWS: usize = 64;

    fn input() -> Vec<f32> {
        // Distinct values with many significant bits, so a sum over another
        // set of partial sums rounds differently.
        (0..ROWS * 256)
            .map(|i| {
                let w = shoestring::ops::philox::cpu::philox_block(
                    PhiloxKey::from_seed(9),
                    PhiloxCounter::new(i as u64, 0, 0),
                )[0];
                (w >> 8) as f32 / (1u32 << 24) as f32
            })
            .collect()
    }

    fn reference(x: &[f32]) -> Vec<u32> {
        x.chunks(256)
            .map(|row| {
                let mut s = row.to_vec();
                let mut stride = 128;
                while stride > 0 {
                    for t in 0..stride {
                        s[t] += s[t + stride];
                    }
                    stride /= 2;
                }
                s[0].to_bits()
            })
            .collect()
    }

    fn run(name: &'static str, shuffle_seed: u64, workers: u32, x: &[f32]) -> Vec<u32> {
        let dev = Device::sim_with(SimOptions {
            shuffle_seed,
            workers,
        })
        .unwrap();
        let inp = DeviceBuffer::copy_htod(&dev, x).unwrap();
        let mut out = DeviceBuffer::<f32>::zeros(&dev, ROWS).unwrap();
        let cfg = LaunchConfig {
            grid: [ROWS as u32, 1, 1],
            block: [256, 1, 1],
            dynamic_shared_bytes: 0,
        };
        let launch = Launch::new(&dev, "tests", name, cfg)
            .buffer(&inp)
            .unwrap()
            .buffer_mut(&mut out)
            .unwrap();
        // SAFETY: both kernels take (in, out); in holds ROWS blocks of 256
        // floats, out one float per block.
        unsafe { launch.run() }.unwrap();
        out.copy_dtoh()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    #[test]
    fn a_correct_block_reduction_gives_the_same_bits_under_every_thread_order() {
        let x = input();
        let want = reference(&x);
        for (seed, workers) in [(0, 1), (0, 2), (1, 1), (2, 2), (0xdead_beef, 2)] {
            assert_eq!(
                run("block_sum_synced", seed, workers, &x),
                want,
                "seed {seed}"
            );
        }
    }

    #[test]
    fn a_missing_syncthreads_is_caught_by_shuffled_thread_order() {
        let x = input();
        let results: Vec<Vec<u32>> = (1..=4)
            .map(|seed| run("block_sum_racy", seed, 2, &x))
            .collect();
        // The race shows: some order gives bits that differ from another order.
        assert!(
            results.iter().any(|r| r != &results[0]),
            "four shuffle seeds agreed on a racy kernel"
        );
        // And the detection is reproducible: the same seed gives the same bits,
        // whatever the number of workers.
        assert_eq!(run("block_sum_racy", 3, 1, &x), results[2]);
    }
}

#[cfg(shoestring_sim)]
mod f16_conversions {
    use super::*;
    // tests/kernels/f16_convert.cu, in the test binaries' registry only.
    use shoestring::device::{Element, Launch, SimOptions};

    fn convert<A: Element, B: Element>(name: &'static str, input: &[A]) -> Vec<B> {
        let dev = Device::sim_with(SimOptions {
            shuffle_seed: 0,
            workers: 0,
        })
        .unwrap();
        let inp = DeviceBuffer::copy_htod(&dev, input).unwrap();
        let mut out = DeviceBuffer::<B>::zeros(&dev, input.len()).unwrap();
        let n = input.len() as u32;
        let launch = Launch::new(
            &dev,
            "tests",
            name,
            LaunchConfig::linear(u64::from(n), 256, 1024),
        )
        .buffer(&inp)
        .unwrap()
        .buffer_mut(&mut out)
        .unwrap()
        .param(&n);
        // SAFETY: (in, out, n) as f16_convert.cu declares them; the two tests
        // call each kernel with its own element types, n elements each.
        unsafe { launch.run() }.unwrap();
        out.copy_dtoh().unwrap()
    }

    #[test]
    fn kernel_f16_to_f32_matches_the_half_crate_on_every_half() {
        let halves: Vec<u16> = (0..=u16::MAX).collect();
        let got: Vec<f32> = convert("f16_bits_to_f32", &halves);
        for (h, g) in halves.iter().zip(&got) {
            let want = half::f16::from_bits(*h).to_f32();
            assert_eq!(g.to_bits(), want.to_bits(), "half {h:#06x}");
        }
    }

    #[test]
    fn kernel_f32_to_f16_rounds_like_the_half_crate() {
        // Every float whose low 9 bits are a fixed pattern (2^23 values spread
        // over the whole range, every exponent, ties and near-ties included
        // via the patterns), plus the specials.
        let mut floats: Vec<f32> = Vec::with_capacity(1 << 24);
        for pattern in [0u32, 0x1ff] {
            floats.extend((0..1u32 << 23).map(|i| f32::from_bits((i << 9) | pattern)));
        }
        floats.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            65504.0,
            65520.0,
            65519.99,
            5.96e-8,
            2.98e-8,
            2.99e-8,
        ]);
        let got: Vec<u16> = convert("f32_to_f16_bits", &floats);
        for (x, g) in floats.iter().zip(&got) {
            let want = half::f16::from_f32(*x).to_bits();
            assert_eq!(*g, want, "float {:#010x}", x.to_bits());
        }
    }
}

#[cfg(not(shoestring_sim))]
#[test]
fn shuffled_order_tests_need_the_simulator() {
    support::skip(
        "shuffled_order",
        "built without a C++ compiler, no simulator",
        Some("SHOESTRING_REQUIRE_SIM"),
    );
}

#[test]
fn the_simulator_is_instrumented_exactly_when_asan_was_asked_for() {
    let asked = std::env::var("SHOESTRING_SIM_ASAN").is_ok_and(|v| v == "1");
    if shoestring::device::sim_available() {
        assert_eq!(
            shoestring::device::sim_asan(),
            asked,
            "SHOESTRING_SIM_ASAN={asked} at test time"
        );
    }
}

/// Under `SHOESTRING_SIM_ASAN=1` (CI's `asan` step) a kernel's out-of-bounds
/// write is reported with the kernel's file and line. The bad launch runs in a
/// child process (this test binary again), since ASan ends the process.
#[cfg(shoestring_sim)]
#[test]
fn asan_reports_an_out_of_bounds_kernel_write_with_its_source_line() {
    use shoestring::device::{Launch, SimOptions};
    const NAME: &str = "asan_reports_an_out_of_bounds_kernel_write_with_its_source_line";
    if !shoestring::device::sim_asan() {
        support::skip(
            NAME,
            "not an AddressSanitizer build (SHOESTRING_SIM_ASAN=1, docs/simulator.md)",
            None,
        );
        return;
    }
    if std::env::var_os("SHOESTRING_ASAN_CHILD").is_some() {
        let dev = Device::sim_with(SimOptions::default()).unwrap();
        let n = 100u32;
        let mut out = DeviceBuffer::<f32>::zeros(&dev, n as usize).unwrap();
        let launch = Launch::new(
            &dev,
            "tests",
            "write_one_past_the_end",
            LaunchConfig::linear(128, 128, 1),
        )
        .buffer_mut(&mut out)
        .unwrap()
        .param(&n);
        // SAFETY: not upheld, on purpose: the kernel writes one float past
        // `out`. This child process exists for ASan to catch that write.
        let _ = unsafe { launch.run() };
        return; // not reached: ASan aborts the process
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("SHOESTRING_ASAN_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        !child.status.success(),
        "the out-of-bounds write went unreported:\n{stderr}"
    );
    assert!(stderr.contains("heap-buffer-overflow"), "{stderr}");
    assert!(
        stderr.contains("oob_write.cu:9"),
        "no kernel line in the report:\n{stderr}"
    );
}
