//! detmath: accuracy of the CPU twin against f64 over more than 10^7 inputs
//! per function, exact special values, every kernel device against the CPU
//! twin bit for bit (two launch shapes), thread-count invariance, and
//! monotonicity spot checks.

mod support;

use rayon::prelude::*;
use shoestring::detmath;
use shoestring::device::{Device, DeviceBuffer};
use shoestring::numerics::CANONICAL_NAN_BITS as NAN_BITS;
use shoestring::ops::detmath::{self as fam, DetmathOp};
use support::test_devices;

/// The max ulp error each function promises (docs/numerics/detmath.md and the
/// table in src/detmath.rs state the same numbers).
fn ulp_bound(op: DetmathOp) -> u64 {
    match op {
        DetmathOp::Exp => 1,
        DetmathOp::Log => 1,
        DetmathOp::Log1p => 2,
        DetmathOp::Tanh => 1,
        DetmathOp::Sigmoid => 2,
    }
}

/// The f64 reference, rounded to f32 (round to nearest; overflow to inf and
/// gradual underflow as IEEE says).
fn reference(op: DetmathOp, x: f32) -> f32 {
    let x = f64::from(x);
    let y = match op {
        DetmathOp::Exp => x.exp(),
        DetmathOp::Log => x.ln(),
        DetmathOp::Log1p => x.ln_1p(),
        DetmathOp::Tanh => x.tanh(),
        DetmathOp::Sigmoid => {
            if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                let e = x.exp();
                e / (1.0 + e)
            }
        }
    };
    y as f32
}

/// Floats in order as integers: -0 and +0 both map to 0, each step between
/// neighbouring floats (subnormals included, up to +-inf) is 1.
fn ordered(x: f32) -> i64 {
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        -i64::from(b & 0x7fff_ffff)
    } else {
        i64::from(b)
    }
}

/// Distance in ulps between `got` and `want`; NaN only matches NaN.
fn ulp_distance(got: f32, want: f32) -> u64 {
    match (got.is_nan(), want.is_nan()) {
        (true, true) => 0,
        (false, false) => ordered(got).abs_diff(ordered(want)),
        _ => u64::MAX,
    }
}

/// The domain where each function is neither saturated nor trivial, swept
/// densely (uniform in value) on top of the whole-line sweep.
fn dense_range(op: DetmathOp) -> (f32, f32) {
    match op {
        DetmathOp::Exp => (-104.5, 89.0),
        DetmathOp::Log => (0.0, 4.0),
        DetmathOp::Log1p => (-1.0, 4.0),
        DetmathOp::Tanh => (-10.0, 10.0),
        DetmathOp::Sigmoid => (-105.0, 20.0),
    }
}

/// Values around which every function is checked ulp by ulp: branch and
/// reduction boundaries, overflow/underflow and saturation thresholds.
const EDGES: [f32; 25] = [
    0.0,
    1.0,
    -1.0,
    88.72283,   // exp's largest finite x (0x42b17217)
    -87.33655,  // exp's result leaves the normal range
    -103.97208, // exp's result rounds to 0 below here
    -104.0,     // exp's cut to +0
    0.3465736,  // ln2/2: exp's k changes
    -0.3465736,
    0.70710677, // sqrt(2)/2: log's exponent step
    std::f32::consts::SQRT_2,
    0.41421357,  // sqrt(2)-1: log1p's k = 0 branch
    -0.29289323, // sqrt(2)/2-1
    -0.99999994,
    0.5625, // tanh's polynomial/exp switch
    -0.5625,
    9.010914, // tanh rounds to 1 above
    9.5,      // tanh's cut to 1
    -9.5,
    16.635532, // sigmoid rounds to 1 above
    17.32868,
    -16.635532,
    -88.0,
    -88.72283, // sigmoid switches to exp(x) below
    -103.0,
];

/// Every input the accuracy test checks for `op`.
fn accuracy_inputs(op: DetmathOp) -> Vec<f32> {
    // The whole float line: every 409th bit pattern (10.5M values, both
    // signs, subnormals, infinities, NaNs).
    let mut xs: Vec<f32> = (0..=u32::MAX).step_by(409).map(f32::from_bits).collect();
    // Dense in the interesting range.
    let (lo, hi) = dense_range(op);
    let n = 1 << 21;
    xs.extend(
        (0..=n).map(|i| {
            (f64::from(lo) + (f64::from(hi) - f64::from(lo)) * i as f64 / n as f64) as f32
        }),
    );
    // 256 neighbouring floats on each side of every edge, and the specials.
    for &e in &EDGES {
        let o = ordered(e);
        xs.extend((o - 256..=o + 256).map(from_ordered));
    }
    xs.extend(fam::SPECIAL_BITS.iter().map(|&b| f32::from_bits(b)));
    xs
}

fn from_ordered(o: i64) -> f32 {
    if o < 0 {
        f32::from_bits(0x8000_0000 | (-o) as u32)
    } else {
        f32::from_bits(o as u32)
    }
}

#[test]
fn detmath_max_ulp_error_against_f64_is_within_the_documented_bound() {
    let mut failures = Vec::new();
    for op in DetmathOp::ALL {
        let f = op.scalar();
        let xs = accuracy_inputs(op);
        assert!(xs.len() >= 10_000_000);
        let (worst, at) = xs
            .par_iter()
            .map(|&x| (ulp_distance(f(x), reference(op, x)), x))
            .reduce(|| (0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
        eprintln!(
            "detmath {:<8} max ulp {worst} at x = {at:e} ({:#010x}) over {} inputs",
            op.name(),
            at.to_bits(),
            xs.len()
        );
        if worst > ulp_bound(op) {
            failures.push(format!(
                "{}: {worst} ulp at {at:e} ({:#010x}): got {:e}, f64 says {:e}",
                op.name(),
                at.to_bits(),
                f(at),
                reference(op, at)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn bits(x: f32) -> u32 {
    x.to_bits()
}

#[test]
fn detmath_special_values_are_exact() {
    let inf = f32::INFINITY;
    let nan_in = [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffff_ffff),
    ];
    for op in DetmathOp::ALL {
        for x in nan_in {
            assert_eq!(
                bits(op.scalar()(x)),
                NAN_BITS,
                "{}({:#x})",
                op.name(),
                bits(x)
            );
        }
    }
    type Case = (fn(f32) -> f32, &'static str, f32, u32);
    let cases: &[Case] = &[
        (detmath::exp, "exp", -inf, 0),
        (detmath::exp, "exp", inf, bits(inf)),
        (detmath::exp, "exp", 0.0, bits(1.0)),
        (detmath::exp, "exp", -0.0, bits(1.0)),
        (detmath::exp, "exp", 1.0, 0x402d_f854), // e rounded
        (detmath::exp, "exp", f32::from_bits(0x42b1_7218), bits(inf)),
        (detmath::exp, "exp", f32::from_bits(0xc2cf_f1b4), 1), // 2^-149
        (detmath::exp, "exp", f32::from_bits(0xc2cf_f1b5), 0),
        (detmath::exp, "exp", -f32::MAX, 0),
        (detmath::log, "log", 0.0, bits(-inf)),
        (detmath::log, "log", -0.0, bits(-inf)),
        (detmath::log, "log", -1.0, NAN_BITS),
        (detmath::log, "log", -inf, NAN_BITS),
        (detmath::log, "log", f32::from_bits(0x8000_0001), NAN_BITS),
        (detmath::log, "log", inf, bits(inf)),
        (detmath::log, "log", 1.0, 0),
        (detmath::log1p, "log1p", -1.0, bits(-inf)),
        (detmath::log1p, "log1p", -1.0000001, NAN_BITS),
        (detmath::log1p, "log1p", -inf, NAN_BITS),
        (detmath::log1p, "log1p", inf, bits(inf)),
        (detmath::log1p, "log1p", 0.0, 0),
        (detmath::log1p, "log1p", -0.0, 0x8000_0000),
        (
            detmath::log1p,
            "log1p",
            f32::from_bits(0x8000_0001),
            0x8000_0001,
        ),
        (detmath::tanh, "tanh", inf, bits(1.0)),
        (detmath::tanh, "tanh", -inf, bits(-1.0)),
        (detmath::tanh, "tanh", 0.0, 0),
        (detmath::tanh, "tanh", -0.0, 0x8000_0000),
        (detmath::tanh, "tanh", f32::from_bits(1), 1),
        (detmath::tanh, "tanh", 20.0, bits(1.0)),
        (detmath::tanh, "tanh", -20.0, bits(-1.0)),
        (detmath::sigmoid, "sigmoid", -inf, 0),
        (detmath::sigmoid, "sigmoid", inf, bits(1.0)),
        (detmath::sigmoid, "sigmoid", 0.0, bits(0.5)),
        (detmath::sigmoid, "sigmoid", -0.0, bits(0.5)),
        (detmath::sigmoid, "sigmoid", f32::MAX, bits(1.0)),
        (detmath::sigmoid, "sigmoid", -f32::MAX, 0),
        (detmath::sigmoid, "sigmoid", 17.5, bits(1.0)),
    ];
    for &(f, name, x, want) in cases {
        assert_eq!(bits(f(x)), want, "{name}({x:e}) = {:e}", f(x));
    }
}

#[test]
fn detmath_functions_are_monotone_on_dense_grids_and_across_branch_boundaries() {
    for op in DetmathOp::ALL {
        let f = op.scalar();
        let (lo, hi) = dense_range(op);
        let n = 1 << 18;
        let grid = (0..=n).map(|i| {
            (f64::from(lo) + (f64::from(hi) - f64::from(lo)) * i as f64 / n as f64) as f32
        });
        // Consecutive floats across each edge, where a branch or a reduction
        // step could break monotonicity.
        let mut xs: Vec<f32> = grid.collect();
        xs.sort_by(f32::total_cmp);
        let mut around: Vec<Vec<f32>> = vec![xs];
        for &e in &EDGES {
            let o = ordered(e);
            around.push((o - 4096..=o + 4096).map(from_ordered).collect());
        }
        for run in around {
            let ys: Vec<f32> = run.iter().map(|&x| f(x)).filter(|y| !y.is_nan()).collect();
            for w in ys.windows(2) {
                assert!(
                    w[0] <= w[1],
                    "{} not monotone: {:e} then {:e}",
                    op.name(),
                    w[0],
                    w[1]
                );
            }
        }
    }
}

/// ~2^18 inputs: the specials and their neighbours, random bit patterns,
/// uniform values over every function's interesting range.
fn device_inputs() -> Vec<f32> {
    let mut xs = Vec::with_capacity(1 << 18);
    for &e in &EDGES {
        let o = ordered(e);
        xs.extend((o - 8..=o + 8).map(from_ordered));
    }
    xs.extend(fam::SPECIAL_BITS.iter().map(|&b| f32::from_bits(b)));
    let random = fam::verify_inputs(1 << 17).unwrap();
    xs.extend(random);
    let rest = (1usize << 18) - xs.len();
    xs.extend((0..rest).map(|i| (-110.0 + 130.0 * i as f64 / rest as f64) as f32));
    xs
}

#[test]
fn detmath_kernel_is_bit_identical_to_cpu_on_every_device_and_launch_shape() {
    let xs = device_inputs();
    let devices =
        test_devices("detmath_kernel_is_bit_identical_to_cpu_on_every_device_and_launch_shape");
    let input_cpu = DeviceBuffer::copy_htod(&Device::Cpu, &xs).unwrap();
    for op in DetmathOp::ALL {
        let want = fam::applied(&Device::Cpu, op, &input_cpu)
            .unwrap()
            .copy_dtoh()
            .unwrap();
        // The bulk CPU path is the scalar function, element by element.
        for (i, (&x, &w)) in xs.iter().zip(&want).enumerate() {
            assert_eq!(bits(w), bits(op.scalar()(x)), "{} cpu bulk[{i}]", op.name());
        }
        for dev in &devices {
            let input = DeviceBuffer::copy_htod(dev, &xs).unwrap();
            for shape in [(256, 65_535), (96, 7)] {
                let mut out = DeviceBuffer::zeros(dev, xs.len()).unwrap();
                fam::apply_with_shape(dev, op, &input, &mut out, shape).unwrap();
                let got = out.copy_dtoh().unwrap();
                if let Some(i) = (0..xs.len()).find(|&i| bits(got[i]) != bits(want[i])) {
                    panic!(
                        "{dev} shape {shape:?}: {}({:#010x}) is {:#010x}, CPU says {:#010x}",
                        op.name(),
                        bits(xs[i]),
                        bits(got[i]),
                        bits(want[i])
                    );
                }
            }
        }
    }
}

#[test]
fn detmath_kernel_handles_ragged_sizes_on_every_device() {
    let all = fam::verify_inputs(70_001).unwrap();
    for dev in test_devices("detmath_kernel_handles_ragged_sizes_on_every_device") {
        for n in [1usize, 255, 257, 70_001] {
            let xs = &all[..n];
            for op in [DetmathOp::Exp, DetmathOp::Log1p] {
                let want: Vec<u32> = xs.iter().map(|&x| bits(op.scalar()(x))).collect();
                let input = DeviceBuffer::copy_htod(&dev, xs).unwrap();
                let got = fam::applied(&dev, op, &input).unwrap().copy_dtoh().unwrap();
                assert!(
                    got.iter().map(|&y| bits(y)).eq(want),
                    "{dev}: {} n={n}",
                    op.name()
                );
            }
        }
    }
}

#[test]
fn detmath_cpu_bits_do_not_depend_on_thread_count() {
    for n in [1usize, 255, 257, 65_537, 100_003] {
        let xs = fam::verify_inputs(n).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let input = DeviceBuffer::copy_htod(&Device::Cpu, &xs).unwrap();
                DetmathOp::ALL
                    .iter()
                    .map(|&op| {
                        let out = fam::applied(&Device::Cpu, op, &input)
                            .unwrap()
                            .copy_dtoh()
                            .unwrap();
                        out.iter().map(|y| y.to_bits()).collect::<Vec<u32>>()
                    })
                    .collect::<Vec<_>>()
            })
        };
        let one = run(1);
        for t in [2, 3, 8] {
            assert!(run(t) == one, "n={n}: {t} threads changed the bits");
        }
    }
}

#[test]
fn detmath_refuses_an_output_buffer_of_the_wrong_length() {
    let input = DeviceBuffer::copy_htod(&Device::Cpu, &[1.0f32; 8]).unwrap();
    let mut out = DeviceBuffer::zeros(&Device::Cpu, 7).unwrap();
    let err = fam::apply(&Device::Cpu, DetmathOp::Tanh, &input, &mut out).unwrap_err();
    assert!(
        err.to_string().contains("has 7 elements, expected 8"),
        "{err}"
    );
}

/// Every one of the 2^32 inputs (minutes on a few cores; run by hand with
/// `cargo test --release --test detmath -- --ignored`). The bounds stated in the
/// docs come from this sweep; the fast sweep above re-asserts them in CI.
#[test]
#[ignore]
fn detmath_max_ulp_error_over_every_float_is_within_the_documented_bound() {
    for op in DetmathOp::ALL {
        let f = op.scalar();
        let (worst, at) = (0..=u32::MAX)
            .into_par_iter()
            .map(|b| {
                let x = f32::from_bits(b);
                (ulp_distance(f(x), reference(op, x)), x)
            })
            .reduce(|| (0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
        eprintln!(
            "detmath {:<8} exhaustive max ulp {worst} at x = {at:e} ({:#010x})",
            op.name(),
            at.to_bits()
        );
        assert!(
            worst <= ulp_bound(op),
            "{}: {worst} ulp at {at:e}",
            op.name()
        );
    }
}

/// The sha256 of a function's 2^32 outputs (bits, little-endian, in input
/// order) from the CPU twin's apply (the widest SIMD build this CPU has),
/// pinned from the scalar functions before the twins got their AVX-512
/// builds: any later rewrite or build must keep every bit. Hashed per block
/// of 2^22 outputs in parallel, then the blocks' digests in order.
fn digest_over_every_float(op: DetmathOp) -> String {
    use sha2::{Digest, Sha256};
    const BLOCK: u64 = 1 << 22;
    let blocks: Vec<[u8; 32]> = (0..(1u64 << 32) / BLOCK)
        .into_par_iter()
        .map(|b| {
            let x: Vec<f32> = (b * BLOCK..(b + 1) * BLOCK)
                .map(|i| f32::from_bits(i as u32))
                .collect();
            let mut y = vec![0f32; x.len()];
            fam::cpu::detmath_apply_f32(op, &x, &mut y);
            let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect();
            Sha256::digest(&bytes).into()
        })
        .collect();
    let mut h = Sha256::new();
    for d in &blocks {
        h.update(d);
    }
    format!("{:x}", h.finalize())
}

/// Every one of the 2^32 inputs of each function gives the bits pinned
/// here (about a minute on 2 cores; run by hand with `cargo test --release
/// --test detmath -- --ignored`).
#[test]
#[ignore]
fn detmath_outputs_over_every_float_have_the_pinned_digests() {
    let mut changed = Vec::new();
    for (op, want) in PINNED_DIGESTS {
        let got = digest_over_every_float(op);
        eprintln!("detmath {:<8} digest {got}", op.name());
        if got != want {
            changed.push(op.name());
        }
    }
    assert!(changed.is_empty(), "the outputs of {changed:?} changed");
}

const PINNED_DIGESTS: [(DetmathOp, &str); 5] = [
    (
        DetmathOp::Exp,
        "22a0bbd8095a1c9e322f077f361eece7052676e2d43e1a1a4021221a96030fe7",
    ),
    (
        DetmathOp::Log,
        "cb6b21a5d35805104913be594c7c8b8a7e479964f0ffd0beaa1198420c23bfe1",
    ),
    (
        DetmathOp::Log1p,
        "9c45bf6c401d0acc84e58cd74f35cb5235f49290b90cfe7bfb51e444002cb606",
    ),
    (
        DetmathOp::Tanh,
        "351031273008e4664c30f77c019c8a72ff69bb881b50d9e87dd35b1259860235",
    ),
    (
        DetmathOp::Sigmoid,
        "70f05c6969ac5b856c91fc574fecc8729db03b81f0cc9f43bd126bcd27c4e702",
    ),
];
