//! Exact-tier GEMM: the CPU twin against a naive triple loop (bit for bit),
//! against f64 (within a stated bound), the overflow flag, and every kernel
//! device (Sim under two thread orders, the GPU when present) against the CPU
//! twin, bit for bit, for odd shapes and every transpose combination.

mod support;

use shoestring::device::{Device, DeviceBuffer};
use shoestring::numerics::{float_to_half_rn, half_to_float};
use shoestring::ops::gemm::{self, Gemm, GemmIn, GemmOut, Op};
use shoestring::status::Status;
use support::test_devices;

mod gemm_support;
use gemm_support::{naive, operands, run, to_f16};

const OPS: [(Op, Op); 4] = [
    (Op::N, Op::N),
    (Op::N, Op::T),
    (Op::T, Op::N),
    (Op::T, Op::T),
];

fn bits<O: GemmOut>(v: &[O]) -> Vec<u32> {
    v.iter().map(|&x| x.bits()).collect()
}

const SHAPES: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (3, 5, 7),
    (1, 1, 0),
    (17, 1, 33),
    (130, 129, 17),
    (127, 129, 255),
    (1000, 1, 1000),
];

#[test]
fn cpu_twin_equals_the_naive_triple_loop_bitwise_for_odd_shapes_and_every_transpose() {
    for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
        for (o, &(oa, ob)) in OPS.iter().enumerate() {
            let g = Gemm::new(m, n, k)
                .ops(oa, ob)
                .alpha(if o % 2 == 0 { 1.0 } else { -0.75 });
            let (a, b, bias) = operands(&g, 100 + 10 * s as u32);
            for with_bias in [false, true] {
                let bias = with_bias.then_some(bias.as_slice());
                let (want, wf) = naive::<f32, f32>(&g, &a, &b, bias);
                let (got, gf) = run::<f32, f32>(&Device::Cpu, &g, &a, &b, bias);
                assert_eq!(bits(&got), bits(&want), "f32 {g:?} bias={with_bias}");
                assert_eq!(gf, wf);
                let (a16, b16) = (to_f16(&a), to_f16(&b));
                let (want, _) = naive::<u16, u16>(&g, &a16, &b16, bias);
                let (got, _) = run::<u16, u16>(&Device::Cpu, &g, &a16, &b16, bias);
                assert_eq!(bits(&got), bits(&want), "f16->f16 {g:?} bias={with_bias}");
                let (want, _) = naive::<u16, f32>(&g, &a16, &b16, bias);
                let (got, _) = run::<u16, f32>(&Device::Cpu, &g, &a16, &b16, bias);
                assert_eq!(bits(&got), bits(&want), "f16->f32 {g:?} bias={with_bias}");
            }
        }
    }
}

#[test]
fn cpu_twin_is_within_the_fma_chain_error_bound_of_f64() {
    // Each fma rounds once: |err| <= k * u * sum |a_ik b_kj| (+ u |result| for
    // the epilogue), u = 2^-24.
    let g = Gemm::new(67, 45, 523).ops(Op::T, Op::N).alpha(0.5);
    let (a, b, _) = operands(&g, 900);
    let (got, _) = run::<f32, f32>(&Device::Cpu, &g, &a, &b, None);
    let u = 1.0 / 16_777_216.0f64;
    for i in 0..g.m {
        for j in 0..g.n {
            let (mut exact, mut mag) = (0.0f64, 0.0f64);
            for kk in 0..g.k {
                let p = f64::from(a[kk * g.m + i]) * f64::from(b[kk * g.n + j]);
                exact += p;
                mag += p.abs();
            }
            exact *= 0.5;
            let bound = 0.5 * (g.k as f64 + 1.0) * u * mag + u * exact.abs();
            let err = (f64::from(got[i * g.n + j]) - exact).abs();
            assert!(err <= bound, "({i},{j}): err {err:e} > bound {bound:e}");
        }
    }
}

#[test]
fn flag_is_set_by_exactly_one_f16_overflow_and_clear_without_one() {
    // 4 x 3 by 3 x 2 with f16 output: one output is 3 * 150 * 150 = 67500 >
    // 65504, the others stay small.
    let g = Gemm::new(4, 2, 3);
    let mut a = vec![0.5f32; 12];
    a[6..9].copy_from_slice(&[150.0, 150.0, 150.0]);
    let mut b = vec![0.25f32; 6];
    b[0] = 150.0;
    b[2] = 150.0;
    b[4] = 150.0;
    let (a16, b16) = (to_f16(&a), to_f16(&b));
    for dev in [Device::Cpu].into_iter().chain(test_devices("gemm_flag")) {
        let (c, flag) = run::<u16, u16>(&dev, &g, &a16, &b16, None);
        let inf = c.iter().filter(|&&h| h & 0x7fff == 0x7c00).count();
        assert_eq!(inf, 1, "{dev}: exactly one output overflows");
        assert!(flag, "{dev}: flag set by the one overflow");
        // The same GEMM into f32 does not overflow.
        let (_, flag) = run::<u16, f32>(&dev, &g, &a16, &b16, None);
        assert!(!flag, "{dev}: no overflow, flag clear");
        // The largest finite f16 exactly is not an overflow.
        let one = [float_to_half_rn(1.0)];
        let big = [float_to_half_rn(65504.0)];
        let (c, flag) = run::<u16, u16>(&dev, &Gemm::new(1, 1, 1), &one, &big, None);
        assert_eq!(half_to_float(c[0]), 65504.0);
        assert!(!flag, "{dev}: 65504 is finite");
        // A NaN operand sets the flag and leaves the canonical NaN.
        let (c, flag) = run::<f32, f32>(
            &dev,
            &Gemm::new(1, 1, 2),
            &[f32::NAN, 1.0],
            &[0.0, 1.0],
            None,
        );
        assert!(flag, "{dev}: NaN input sets the flag");
        assert_eq!(c[0].to_bits(), 0x7fc0_0000);
    }
}

fn devices_equal_cpu<I: GemmIn, O: GemmOut>(label: &str, convert: fn(&[f32]) -> Vec<I>) {
    let devices = test_devices(label);
    for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
        for &(oa, ob) in &OPS {
            let g = Gemm::new(m, n, k).ops(oa, ob).alpha(1.5);
            let (a, b, bias) = operands(&g, 300 + 10 * s as u32);
            let (a, b) = (convert(&a), convert(&b));
            for with_bias in [false, true] {
                let bias = with_bias.then_some(bias.as_slice());
                let (want, wf) = run::<I, O>(&Device::Cpu, &g, &a, &b, bias);
                for dev in &devices {
                    let (got, gf) = run::<I, O>(dev, &g, &a, &b, bias);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{label} on {dev}: {g:?} bias={with_bias}"
                    );
                    assert_eq!(gf, wf, "{label} on {dev}: flag");
                }
            }
        }
    }
}

#[test]
fn exact_gemm_f32_is_bitwise_equal_on_every_device() {
    devices_equal_cpu::<f32, f32>("gemm_f32_f32", |v| v.to_vec());
}

#[test]
fn exact_gemm_f16_to_f32_is_bitwise_equal_on_every_device() {
    devices_equal_cpu::<u16, f32>("gemm_f16_f32", to_f16);
}

#[test]
fn exact_gemm_f16_to_f16_is_bitwise_equal_on_every_device() {
    devices_equal_cpu::<u16, u16>("gemm_f16_f16", to_f16);
}

#[test]
fn exact_gemm_f32_to_f16_is_bitwise_equal_on_every_device() {
    devices_equal_cpu::<f32, u16>("gemm_f32_f16", |v| v.to_vec());
}

#[test]
fn mismatched_lengths_are_refused_with_the_buffer_name() {
    let dev = Device::Cpu;
    let g = Gemm::new(2, 3, 4);
    let a = DeviceBuffer::<f32>::zeros(&dev, 8).unwrap();
    let b = DeviceBuffer::<f32>::zeros(&dev, 11).unwrap();
    let mut c = DeviceBuffer::<f32>::zeros(&dev, 6).unwrap();
    let mut flag = Status::new(&dev).unwrap();
    let e = gemm::gemm(&dev, &g, &a, &b, None, &mut c, &mut flag).unwrap_err();
    assert_eq!(
        e.to_string(),
        "gemm: buffer `b` has 11 elements, expected 12"
    );
}

/// Old C values for an accumulating GEMM: random, with -0.0 (which must start
/// its chain as +0.0), a NaN and an infinity.
fn old_c(g: &Gemm, stream: u32) -> Vec<f32> {
    let mut c = gemm_support::uniform(g.m * g.n, stream, 2.0);
    for (t, x) in c.iter_mut().enumerate().step_by(5) {
        *x = if t % 2 == 0 { -0.0 } else { 0.0 };
    }
    if c.len() > 7 {
        c[3] = f32::NAN;
        c[7] = f32::NEG_INFINITY;
    }
    c
}

/// beta = 1: every chain starts from `0.0 + C` (DESIGN.md rule 4), on the CPU
/// twin (one k-block and several) and on every kernel device, for every
/// transpose and output type.
#[test]
fn accumulate_starts_each_chain_from_the_old_c_on_every_device() {
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices(
        "accumulate_starts_each_chain_from_the_old_c_on_every_device",
    ));
    for (s, &(m, n, k)) in [(3, 5, 7), (130, 129, 17), (9, 40, 700), (2, 3, 0)]
        .iter()
        .enumerate()
    {
        for (o, &(oa, ob)) in OPS.iter().enumerate() {
            let g = Gemm::new(m, n, k).ops(oa, ob).accumulate();
            let (a, b, bias) = operands(&g, 300 + 10 * s as u32);
            let c0 = old_c(&g, 400 + s as u32);
            let c0_16 = to_f16(&c0);
            let bias = (o % 2 == 1).then_some(bias.as_slice());
            let (want, _) = gemm_support::naive_into::<f32, f32>(&g, &a, &b, bias, &c0);
            let (a16, b16) = (to_f16(&a), to_f16(&b));
            let (want16, _) = gemm_support::naive_into::<u16, u16>(&g, &a16, &b16, bias, &c0_16);
            for dev in &devices {
                let (got, _) = gemm_support::run_into::<f32, f32>(dev, &g, &a, &b, bias, &c0);
                assert_eq!(bits(&got), bits(&want), "{dev} f32 {g:?}");
                let (got, _) =
                    gemm_support::run_into::<u16, u16>(dev, &g, &a16, &b16, bias, &c0_16);
                assert_eq!(bits(&got), bits(&want16), "{dev} f16 {g:?}");
            }
        }
    }
}

/// With f32 output, accumulating over k split in two is the one chain over
/// all of k: the stored f32 partial continues exactly.
#[test]
fn two_accumulating_gemms_over_halves_of_k_equal_one_gemm_bitwise() {
    let (m, n, k1, k2) = (37, 29, 300, 221);
    let g = Gemm::new(m, n, k1 + k2).ops(Op::T, Op::N);
    let (a, b, _) = operands(&g, 500);
    // op(A) = A^T with A stored k x m; op(B) = B stored k x n: a k split is a
    // row split of both.
    let (a1, a2) = a.split_at(k1 * m);
    let (b1, b2) = b.split_at(k1 * n);
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices(
        "two_accumulating_gemms_over_halves_of_k_equal_one_gemm_bitwise",
    ));
    for dev in &devices {
        let (whole, _) = run::<f32, f32>(dev, &g, &a, &b, None);
        let g1 = Gemm::new(m, n, k1).ops(Op::T, Op::N);
        let (first, _) = run::<f32, f32>(dev, &g1, a1, b1, None);
        let g2 = Gemm::new(m, n, k2).ops(Op::T, Op::N).accumulate();
        let (both, _) = gemm_support::run_into::<f32, f32>(dev, &g2, a2, b2, None, &first);
        assert_eq!(bits(&both), bits(&whole), "{dev}");
    }
}

#[test]
fn accumulate_refuses_alpha_other_than_one_and_beta_other_than_zero_or_one() {
    let mut flag = Status::new(&Device::Cpu).unwrap();
    let a = DeviceBuffer::<f32>::zeros(&Device::Cpu, 4).unwrap();
    let mut c = DeviceBuffer::<f32>::zeros(&Device::Cpu, 4).unwrap();
    let g = Gemm::new(2, 2, 2).accumulate().alpha(0.5);
    let err = gemm::gemm(&Device::Cpu, &g, &a, &a, None, &mut c, &mut flag).unwrap_err();
    assert!(err.to_string().contains("alpha = 1"), "{err}");
    let g = Gemm {
        beta: 0.5,
        ..Gemm::new(2, 2, 2)
    };
    let err = gemm::gemm(&Device::Cpu, &g, &a, &a, None, &mut c, &mut flag).unwrap_err();
    assert!(err.to_string().contains("beta = 0.5"), "{err}");
}
