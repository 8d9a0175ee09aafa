//! The SIMT simulator as a test bench for kernels: it refuses what a GPU
//! refuses, with the same text, and its shuffled thread order exposes a
//! missing `__syncthreads()` as a bitwise mismatch.

use shoestring::device::{test_devices, Device, DeviceBuffer, LaunchConfig};
use shoestring::ops::philox::{self, PhiloxCounter, PhiloxKey};
use shoestring::Error;

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
    use shoestring::device::{Launch, SimDevice, SimEntry};
    use std::ffi::c_void;

    extern "C" {
        // tests/kernels/racy_block_sum.cu, compiled for Sim into test targets only.
        fn shoestring_sim_entry_block_sum_synced(args: *mut *mut c_void);
        fn shoestring_sim_entry_block_sum_racy(args: *mut *mut c_void);
    }

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

    fn run(
        entry: SimEntry,
        name: &'static str,
        shuffle_seed: u64,
        workers: u32,
        x: &[f32],
    ) -> Vec<u32> {
        let dev = Device::sim_with(SimDevice {
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
        Launch::new(&dev, "tests", name, cfg)
            .with_sim_entry(entry)
            .buffer(&inp)
            .unwrap()
            .buffer_mut(&mut out)
            .unwrap()
            .run()
            .unwrap();
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
                run(
                    shoestring_sim_entry_block_sum_synced,
                    "block_sum_synced",
                    seed,
                    workers,
                    &x
                ),
                want,
                "seed {seed}"
            );
        }
    }

    #[test]
    fn a_missing_syncthreads_is_caught_by_shuffled_thread_order() {
        let x = input();
        let results: Vec<Vec<u32>> = (1..=4)
            .map(|seed| {
                run(
                    shoestring_sim_entry_block_sum_racy,
                    "block_sum_racy",
                    seed,
                    2,
                    &x,
                )
            })
            .collect();
        // The race shows: some order gives bits that differ from another order.
        assert!(
            results.iter().any(|r| r != &results[0]),
            "four shuffle seeds agreed on a racy kernel"
        );
        // And the detection is reproducible: the same seed gives the same bits,
        // whatever the number of workers.
        assert_eq!(
            run(
                shoestring_sim_entry_block_sum_racy,
                "block_sum_racy",
                3,
                1,
                &x
            ),
            results[2]
        );
    }
}

#[cfg(not(shoestring_sim))]
#[test]
fn shuffled_order_tests_need_the_simulator() {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: shuffled_order: built without a C++ compiler, no simulator"
    );
    assert!(
        std::env::var("SHOESTRING_REQUIRE_SIM").map_or(true, |v| v != "1"),
        "SHOESTRING_REQUIRE_SIM=1 but no simulator"
    );
}
