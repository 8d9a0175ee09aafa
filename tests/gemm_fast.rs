//! Fast-tier GEMM (tensor cores, `kernels/gemm_tc.cu`): a typed error on Cpu and
//! Sim; on a GPU, within a stated bound of the exact tier on the CPU for odd
//! shapes, every transpose, f16 and f32 output, with and without bias; bitwise
//! identical over repeated launches; the overflow flag; and the launcher's
//! opt-in to more than 48 KiB of dynamic shared memory (which the fast kernels
//! need), on Sim and on the GPU.
//!
//! The bound. Every f16 x f16 product is exact in f32, so the fast and exact
//! tiers differ only in how the k products are added: the exact tier is one
//! fma chain (error <= k u S, u = 2^-24, S = sum_kk |a b|), the tensor cores
//! add in an unspecified order with f32 (possibly truncating) accumulation
//! (error <= about k 2u S). So per output
//!   |fast - exact| <= |alpha| (k + 4) 2^-21 S + 2^-22 |y| (+ 2^-24 for bias-free
//!   zero results)
//! where the `2^-22 |y|` covers the epilogue's own rounding on each side; for
//! f16 output one f16 ulp of the larger result is added (the two may round to
//! neighbours). A NaN or an unwritten (poisoned) element never passes.
//!
//! The bench-only variants (other tile shapes, no overflow check) are tested in
//! `tests/gemm_dev.rs` (`--features dev-kernels`).

mod gemm_support;
mod support;

use gemm_support::fast::{assert_within_bound, magnitudes, operands, run_exact, run_fast, Out};
use shoestring::device::abi::ss_philox_blocks_params;
use shoestring::device::{
    sim_available, Device, DeviceBuffer, Launch, LaunchConfig, SimOptions,
    MAX_DYNAMIC_SHARED_DEFAULT, MAX_DYNAMIC_SHARED_SIM,
};
use shoestring::numerics::float_to_half_rn;
use shoestring::ops::gemm::fast::gemm_fast;
use shoestring::ops::gemm::{Gemm, Op};
use shoestring::ops::philox::{PhiloxCounter, PhiloxKey};
use shoestring::status::Status;
use shoestring::Error;
use support::gpu_for_test;

const OPS: [(Op, Op); 4] = [
    (Op::N, Op::N),
    (Op::N, Op::T),
    (Op::T, Op::N),
    (Op::T, Op::T),
];

// ---- Cpu and Sim: the fast tier is refused with a typed error ----

#[test]
fn fast_tier_is_a_typed_error_on_cpu_and_sim() {
    let mut devices = vec![Device::Cpu];
    if sim_available() {
        devices.push(Device::sim_with(SimOptions::default()).unwrap());
    }
    let g = Gemm::new(3, 5, 7);
    for dev in &devices {
        let a = DeviceBuffer::<u16>::zeros(dev, 21).unwrap();
        let b = DeviceBuffer::<u16>::zeros(dev, 35).unwrap();
        let mut c = DeviceBuffer::<f32>::zeros(dev, 15).unwrap();
        let mut flag = Status::new(dev).unwrap();
        let e = gemm_fast(dev, &g, &a, &b, None, &mut c, &mut flag).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Unsupported {
                    op: "gemm_fast",
                    ..
                }
            ),
            "{dev}: {e:?}"
        );
        assert!(e.to_string().contains("needs a CUDA device"), "{dev}: {e}");
        // Wrong lengths are still reported as such, first.
        let short = DeviceBuffer::<u16>::zeros(dev, 20).unwrap();
        let e = gemm_fast(dev, &g, &short, &b, None, &mut c, &mut flag).unwrap_err();
        assert!(matches!(e, Error::Length { name: "a", .. }), "{dev}: {e:?}");
    }
}

// ---- The launcher's dynamic shared memory opt-in (Sim here, the GPU too) ----

/// philox_blocks_u32 (which ignores dynamic shared memory) with `bytes` of it.
fn philox_with_shared(dev: &Device, bytes: u32) -> shoestring::Result<Vec<u32>> {
    let params = ss_philox_blocks_params {
        key: PhiloxKey::from_seed(5),
        base: PhiloxCounter::new(0, 1, 2),
        n_blocks: 1000,
    };
    let mut out = DeviceBuffer::<u32>::zeros(dev, 4000)?;
    let mut config = LaunchConfig::linear(1000, 128, 8);
    config.dynamic_shared_bytes = bytes;
    let launch = Launch::new(dev, "philox", "philox_blocks_u32", config)
        .param(&params)
        .buffer_mut(&mut out)?;
    // SAFETY: (params, out) as philox.cu declares them; out holds the 4000
    // words of the 1000 blocks asked for.
    unsafe { launch.run() }?;
    out.copy_dtoh()
}

#[test]
fn launches_above_48_kib_opt_in_up_to_the_device_limit() {
    let mut devices = Vec::new();
    if sim_available() {
        devices.push(Device::sim_with(SimOptions::default()).unwrap());
    }
    devices.extend(gpu_for_test("gemm_fast_shared_opt_in"));
    for dev in &devices {
        let limit = match dev {
            Device::Cuda(d) => d.info().max_shared_per_block_optin,
            _ => MAX_DYNAMIC_SHARED_SIM,
        };
        assert!(limit > MAX_DYNAMIC_SHARED_DEFAULT, "{dev}: limit {limit}");
        let plain = philox_with_shared(dev, 0).unwrap();
        for bytes in [MAX_DYNAMIC_SHARED_DEFAULT + 16, 81_920, limit] {
            let got = philox_with_shared(dev, bytes).unwrap_or_else(|e| panic!("{dev}: {e}"));
            assert_eq!(got, plain, "{dev}: {bytes} bytes of dynamic shared memory");
        }
        let e = philox_with_shared(dev, limit + 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "launch of `philox_blocks_u32` refused: dynamic shared memory of {} bytes \
                 exceeds the limit of {limit} bytes",
                limit + 1
            ),
            "{dev}"
        );
    }
    // Without the opt-in (LaunchConfig::validate) the limit is still 48 KiB.
    let mut config = LaunchConfig::linear(1, 32, 1);
    config.dynamic_shared_bytes = MAX_DYNAMIC_SHARED_DEFAULT + 1;
    assert!(config.validate("k").is_err());
    assert!(config.validate_for("k", MAX_DYNAMIC_SHARED_SIM).is_ok());
}

// ---- GPU ----

/// Odd shapes, all four transposes, f16 and f32 output, bias and none: the fast
/// tier within the bound of the exact tier (module docs).
fn fast_within_bound_of_exact<O: Out>(label: &str) {
    let Some(dev) = gpu_for_test(label) else {
        return;
    };
    // (m, n, k): single elements, odd everything (slow loader path: a
    // contiguous dimension not a multiple of 8), multiples of 8 but not of the
    // tiles (cp.async path, ragged tiles), a long k, a column, a tall matrix.
    let shapes: [(usize, usize, usize); 8] = [
        (1, 1, 1),
        (3, 5, 7),
        (127, 129, 255),
        (200, 136, 72),
        (1000, 1, 1000),
        (1, 1000, 1000),
        (136, 264, 520),
        (4096, 40, 136),
    ];
    for (s, &(m, n, k)) in shapes.iter().enumerate() {
        for (o, &(oa, ob)) in OPS.iter().enumerate() {
            let alpha = if o % 2 == 0 { 1.0 } else { -0.75 };
            let g = Gemm::new(m, n, k).ops(oa, ob).alpha(alpha);
            let (a, b, bias) = operands(&g, 100 + 10 * s as u32);
            let mag = magnitudes(&g, &a, &b);
            for with_bias in [false, true] {
                let bias = with_bias.then_some(bias.as_slice());
                let (want, wf) = run_exact::<O>(&g, &a, &b, bias);
                let (got, gf) = run_fast::<O>(&dev, &g, &a, &b, bias);
                let what = format!("{label} {g:?} bias={with_bias}");
                assert_within_bound(&what, &g, &got, &want, &mag);
                assert!(!wf && !gf, "{what}: no overflow expected");
            }
        }
    }
}

#[test]
fn fast_f16_to_f32_is_within_the_accumulation_bound_of_the_exact_tier() {
    fast_within_bound_of_exact::<f32>("gemm_fast_f32");
}

#[test]
fn fast_f16_to_f16_is_within_the_accumulation_bound_of_the_exact_tier() {
    fast_within_bound_of_exact::<u16>("gemm_fast_f16");
}

#[test]
fn fast_is_bitwise_identical_over_repeated_launches() {
    let Some(dev) = gpu_for_test("gemm_fast_repeat") else {
        return;
    };
    // Several blocks in m and n, k not a multiple of the k tile.
    let g = Gemm::new(300, 520, 1000).alpha(0.5);
    let (a, b, bias) = operands(&g, 700);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (first, _) = run_fast::<f32>(&dev, &g, &a, &b, Some(&bias));
    for rep in 0..3 {
        let (again, _) = run_fast::<f32>(&dev, &g, &a, &b, Some(&bias));
        assert_eq!(bits(&again), bits(&first), "f32 output, launch {rep}");
    }
    let (first16, _) = run_fast::<u16>(&dev, &g, &a, &b, None);
    for rep in 0..3 {
        let (again, _) = run_fast::<u16>(&dev, &g, &a, &b, None);
        assert_eq!(again, first16, "f16 output, launch {rep}");
    }
}

#[test]
fn flag_is_set_by_exactly_one_f16_overflow_or_a_nan_input_and_clear_otherwise() {
    let Some(dev) = gpu_for_test("gemm_fast_flag") else {
        return;
    };
    // 130 x 140 by 140 x 150 (several tiles, ragged), small values except
    // A[0][0] = B[0][2] = 256: C[0][2] = 65536 + small > 65504 overflows f16;
    // every other output is at most 256 * 0.01 + 140 * 1e-4.
    let g = Gemm::new(130, 150, 140);
    let small = float_to_half_rn(0.01);
    let mut a = vec![small; g.m * g.k];
    let mut b = vec![small; g.k * g.n];
    a[0] = float_to_half_rn(256.0);
    b[2] = float_to_half_rn(256.0);
    let (c, flag) = run_fast::<u16>(&dev, &g, &a, &b, None);
    let inf: Vec<usize> = (0..c.len()).filter(|&i| c[i] & 0x7fff == 0x7c00).collect();
    assert_eq!(inf, [2], "exactly C[0][2] overflows f16");
    assert!(flag, "one f16 overflow sets the flag");
    // The same GEMM into f32 stores 65536.x, finite: flag clear.
    let (c32, flag) = run_fast::<f32>(&dev, &g, &a, &b, None);
    assert!(c32[2] > 65504.0 && c32[2].is_finite());
    assert!(!flag, "f32 output does not overflow");
    // Without the big values: clear.
    let plain_a = vec![small; g.m * g.k];
    let (_, flag) = run_fast::<u16>(&dev, &g, &plain_a, &b, None);
    assert!(!flag, "no overflow, flag clear");
    // A NaN operand: row 1 of C is NaN, stored as the canonical NaN (0x7e00 in
    // f16, 0x7fc00000 in f32), and the flag is set.
    let mut nan_a = plain_a.clone();
    nan_a[g.k + 3] = 0x7e01;
    let (c, flag) = run_fast::<u16>(&dev, &g, &nan_a, &b, None);
    assert!(flag, "NaN input sets the flag (f16 output)");
    assert!(
        c[g.n..2 * g.n].iter().all(|&h| h == 0x7e00),
        "row 1 is 0x7e00"
    );
    assert!(
        c[..g.n].iter().all(|&h| h & 0x7c00 != 0x7c00),
        "row 0 finite"
    );
    let (c, flag) = run_fast::<f32>(&dev, &g, &nan_a, &b, None);
    assert!(flag, "NaN input sets the flag (f32 output)");
    assert!(c[g.n..2 * g.n].iter().all(|x| x.to_bits() == 0x7fc0_0000));
}

#[test]
fn fast_refuses_mismatched_buffers_on_the_gpu() {
    let Some(dev) = gpu_for_test("gemm_fast_lengths") else {
        return;
    };
    let g = Gemm::new(2, 3, 4);
    let a = DeviceBuffer::<u16>::zeros(&dev, 8).unwrap();
    let b = DeviceBuffer::<u16>::zeros(&dev, 11).unwrap();
    let mut c = DeviceBuffer::<u16>::zeros(&dev, 6).unwrap();
    let mut flag = Status::new(&dev).unwrap();
    let e = gemm_fast(&dev, &g, &a, &b, None, &mut c, &mut flag).unwrap_err();
    assert_eq!(
        e.to_string(),
        "gemm_fast: buffer `b` has 11 elements, expected 12"
    );
    let cpu_a = DeviceBuffer::<u16>::zeros(&Device::Cpu, 8).unwrap();
    let b = DeviceBuffer::<u16>::zeros(&dev, 12).unwrap();
    let e = gemm_fast(&dev, &g, &cpu_a, &b, None, &mut c, &mut flag).unwrap_err();
    assert!(
        matches!(e, Error::DeviceMismatch { name: "a", .. }),
        "{e:?}"
    );
}
