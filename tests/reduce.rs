//! Canonical reductions: the CPU twin against a plain scalar reference of the
//! definition (docs/numerics/reduce.md) bit for bit, against f64 within the
//! stated bound, across rayon pool sizes, and every kernel device (Sim under
//! two thread orders, the GPU when present) against the CPU twin bit for bit.

mod support;

use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::philox::{self, PhiloxCounter, PhiloxKey};
use shoestring::ops::reduce::{self, cpu, ReduceOp};
use support::test_devices;

const LANES: usize = 256;
const CHUNK: usize = 16_384;
const CANONICAL_NAN: u32 = shoestring::numerics::CANONICAL_NAN_BITS;

// ---------------------------------------------------------------------------
// The reference: the definition, written plainly, one element at a time.
// ---------------------------------------------------------------------------

fn ref_max2(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::from_bits(CANONICAL_NAN)
    } else if b > a {
        b
    } else {
        a
    }
}

fn ref_identity(op: ReduceOp) -> f32 {
    match op {
        ReduceOp::Max => f32::NEG_INFINITY,
        _ => 0.0,
    }
}

/// Folds one input element into a lane (`first_level`: sum of squares squares).
fn ref_fold(op: ReduceOp, first_level: bool, acc: f32, x: f32) -> f32 {
    match op {
        ReduceOp::Sum => acc + x,
        ReduceOp::SumSquares if first_level => x.mul_add(x, acc),
        ReduceOp::SumSquares => acc + x,
        ReduceOp::Max => ref_max2(acc, x),
    }
}

fn ref_combine(op: ReduceOp, a: f32, b: f32) -> f32 {
    match op {
        ReduceOp::Max => ref_max2(a, b),
        _ => a + b,
    }
}

fn ref_chunk(op: ReduceOp, first_level: bool, c: &[f32]) -> f32 {
    assert!(c.len() <= CHUNK);
    let mut v = vec![ref_identity(op); LANES];
    for (lane, acc) in v.iter_mut().enumerate() {
        let mut i = lane;
        while i < c.len() {
            *acc = ref_fold(op, first_level, *acc, c[i]);
            i += LANES;
        }
    }
    let mut s = LANES / 2;
    while s >= 1 {
        for i in 0..s {
            v[i] = ref_combine(op, v[i], v[i + s]);
        }
        s /= 2;
    }
    if v[0].is_nan() {
        f32::from_bits(CANONICAL_NAN)
    } else {
        v[0]
    }
}

fn ref_reduce_level(op: ReduceOp, first_level: bool, x: &[f32]) -> f32 {
    if x.len() <= CHUNK {
        return ref_chunk(op, first_level, x);
    }
    let y: Vec<f32> = x
        .chunks(CHUNK)
        .map(|c| ref_chunk(op, first_level, c))
        .collect();
    ref_reduce_level(op, false, &y)
}

fn reference(op: ReduceOp, x: &[f32]) -> f32 {
    ref_reduce_level(op, true, x)
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/// Philox-drawn floats in [-1, 1) times a per-element power of two in
/// 2^-8 .. 2^7 (so sums cancel and magnitudes vary).
fn random(n: usize, stream: u32) -> Vec<f32> {
    let words = philox::philox_blocks(
        &Device::Cpu,
        PhiloxKey::from_seed(0xdec0_de01),
        PhiloxCounter::new(0, stream, 0),
        n.div_ceil(4) as u64,
    )
    .unwrap()
    .copy_dtoh()
    .unwrap();
    words[..n]
        .iter()
        .map(|&w| {
            let unit = (w >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0;
            unit * f32::from_bits((127 - 8 + (w & 15)) << 23)
        })
        .collect()
}

const SIZES: [usize; 10] = [
    0,
    1,
    255,
    256,
    257,
    16_383,
    16_384,
    16_385,
    65_537,
    CHUNK * LANES + 3,
];

fn cpu_all(op: ReduceOp, x: &[f32]) -> f32 {
    let xb = DeviceBuffer::copy_htod(&Device::Cpu, x).unwrap();
    let mut out = DeviceBuffer::zeros(&Device::Cpu, 1).unwrap();
    reduce::reduce_all(&Device::Cpu, op, &xb, &mut out).unwrap();
    out.copy_dtoh().unwrap()[0]
}

fn device_rows(
    dev: &Device,
    op: ReduceOp,
    x: &[f32],
    rows: usize,
    width: usize,
    max_blocks: u32,
) -> Vec<u32> {
    let xb = DeviceBuffer::copy_htod(dev, x).unwrap();
    let mut out = DeviceBuffer::zeros(dev, rows).unwrap();
    reduce::reduce_rows_with_shape(dev, op, &xb, rows, width, &mut out, max_blocks).unwrap();
    out.copy_dtoh()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

// ---------------------------------------------------------------------------
// CPU twin
// ---------------------------------------------------------------------------

#[test]
fn reduce_cpu_matches_the_scalar_reference_bitwise() {
    for n in SIZES {
        let x = random(n, n as u32);
        for op in ReduceOp::ALL {
            let want = reference(op, &x);
            let got = cpu_all(op, &x);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{op:?} n={n}: {got} vs {want}"
            );
            // The slice functions other families call are the same reduction.
            let direct = match op {
                ReduceOp::Sum => cpu::canonical_sum(&x),
                ReduceOp::Max => cpu::canonical_max(&x),
                ReduceOp::SumSquares => cpu::canonical_sum_squares(&x),
            };
            assert_eq!(direct.to_bits(), want.to_bits(), "{op:?} n={n} canonical_*");
        }
    }
}

#[test]
fn reduce_of_nothing_is_the_identity() {
    assert_eq!(cpu::canonical_sum(&[]).to_bits(), 0.0f32.to_bits());
    assert_eq!(cpu::canonical_sum_squares(&[]).to_bits(), 0.0f32.to_bits());
    assert_eq!(cpu::canonical_max(&[]), f32::NEG_INFINITY);
}

/// Levels of the canonical reduction of n elements.
fn levels(mut n: usize) -> u32 {
    let mut l = 1;
    while n > CHUNK {
        n = n.div_ceil(CHUNK);
        l += 1;
    }
    l
}

#[test]
fn reduce_sums_are_within_the_stated_bound_of_f64() {
    // Bound (docs/numerics/reduce.md): each level adds at most 63 roundings in
    // a lane and 8 in the tree, so |sum - exact| <= levels * 71 * u * sum|x|
    // with u = 2^-24; we check levels * 72 * 2^-24 * sum|x|.
    for n in SIZES {
        let x = random(n, 100 + n as u32);
        let u = f64::from(f32::EPSILON) / 2.0;
        let bound = f64::from(levels(n)) * 72.0 * u;
        let exact: f64 = x.iter().map(|&v| f64::from(v)).sum();
        let abs: f64 = x.iter().map(|&v| f64::from(v).abs()).sum();
        let got = f64::from(cpu::canonical_sum(&x));
        assert!(
            (got - exact).abs() <= bound * abs,
            "sum n={n}: {got} vs {exact}"
        );
        let exact_sq: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let got_sq = f64::from(cpu::canonical_sum_squares(&x));
        assert!(
            (got_sq - exact_sq).abs() <= bound * exact_sq,
            "sumsq n={n}: {got_sq} vs {exact_sq}"
        );
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(cpu::canonical_max(&x), max, "max n={n}");
    }
}

#[test]
fn reduce_rows_match_the_reference_for_every_width() {
    for (rows, width) in [
        (1, 1),
        (7, 1),
        (3, 0),
        (5, 255),
        (4, 257),
        (3, 16_385),
        (2, 40_000),
        (300, 33),
    ] {
        let x = random(rows * width, 7 + width as u32);
        for op in ReduceOp::ALL {
            let xb = DeviceBuffer::copy_htod(&Device::Cpu, &x).unwrap();
            let mut out = DeviceBuffer::zeros(&Device::Cpu, rows).unwrap();
            reduce::reduce_rows(&Device::Cpu, op, &xb, rows, width, &mut out).unwrap();
            let got = out.copy_dtoh().unwrap();
            for r in 0..rows {
                let want = reference(op, &x[r * width..(r + 1) * width]);
                assert_eq!(
                    got[r].to_bits(),
                    want.to_bits(),
                    "{op:?} {rows}x{width} row {r}"
                );
            }
        }
    }
}

#[test]
fn reduce_cpu_bits_do_not_depend_on_thread_count() {
    let n = 16 * CHUNK + 1001;
    let x = random(n, 42);
    let run = |t: usize| {
        in_pool(t, || {
            let mut v = Vec::new();
            for op in ReduceOp::ALL {
                v.push(cpu_all(op, &x).to_bits());
                let mut out = DeviceBuffer::zeros(&Device::Cpu, 17).unwrap();
                let xb = DeviceBuffer::copy_htod(&Device::Cpu, &x[..17 * 999]).unwrap();
                reduce::reduce_rows(&Device::Cpu, op, &xb, 17, 999, &mut out).unwrap();
                v.extend(out.copy_dtoh().unwrap().iter().map(|f| f.to_bits()));
            }
            v
        })
    };
    let one = run(1);
    for t in [2, 3, 8] {
        assert_eq!(run(t), one, "{t} threads changed the bits");
    }
}

// ---------------------------------------------------------------------------
// Special values
// ---------------------------------------------------------------------------

#[test]
fn reduce_max_follows_the_nan_and_signed_zero_rules() {
    let nan = f32::from_bits(CANONICAL_NAN);
    assert_eq!(cpu::max2(-0.0, 0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(cpu::max2(0.0, -0.0).to_bits(), 0.0f32.to_bits());
    assert_eq!(
        cpu::max2(1.0, f32::from_bits(0xffc0_0001)).to_bits(),
        nan.to_bits()
    );
    assert_eq!(cpu::max2(f32::NAN, 1.0).to_bits(), nan.to_bits());
    // Lane 0 sees -0 first, then +0: ties keep the first.
    let mut x = vec![f32::NEG_INFINITY; 1000];
    x[0] = -0.0;
    x[256] = 0.0;
    assert_eq!(cpu::canonical_max(&x).to_bits(), (-0.0f32).to_bits());
    // All -inf stays -inf; one NaN anywhere (even a signalling one) wins.
    assert_eq!(
        cpu::canonical_max(&vec![f32::NEG_INFINITY; 70_000]),
        f32::NEG_INFINITY
    );
    let mut y = random(70_000, 3);
    y[69_999] = f32::from_bits(0x7f80_0001);
    assert_eq!(cpu::canonical_max(&y).to_bits(), CANONICAL_NAN);
    assert_eq!(reference(ReduceOp::Max, &y).to_bits(), CANONICAL_NAN);
}

#[test]
fn reduce_sum_of_inf_and_minus_inf_is_the_canonical_nan() {
    let mut x = random(40_000, 4);
    x[5] = f32::INFINITY;
    assert_eq!(cpu::canonical_sum(&x), f32::INFINITY);
    x[30_000] = f32::NEG_INFINITY; // another chunk: NaN appears at level 2
    assert_eq!(cpu::canonical_sum(&x).to_bits(), CANONICAL_NAN);
    assert_eq!(cpu::canonical_sum_squares(&x), f32::INFINITY);
    x[6] = f32::from_bits(0xffc0_1234); // a NaN input with a payload
    assert_eq!(cpu::canonical_sum_squares(&x).to_bits(), CANONICAL_NAN);
}

fn special_rows() -> (Vec<f32>, usize, usize) {
    let (rows, width) = (8, 3 * CHUNK + 5);
    let mut x = random(rows * width, 9);
    x[0] = f32::INFINITY; // row 0: +inf
    x[width + 1] = f32::INFINITY; // row 1: inf - inf in the tree
    x[width + 2] = f32::NEG_INFINITY;
    x[2 * width + 3] = f32::from_bits(0x7f80_0001); // row 2: signalling NaN
    x[3 * width + CHUNK + 9] = f32::from_bits(0xffc0_1234); // row 3: NaN, 2nd chunk
    for v in &mut x[4 * width..5 * width] {
        *v = f32::NEG_INFINITY; // row 4: all -inf
    }
    for (i, v) in x[5 * width..6 * width].iter_mut().enumerate() {
        *v = if i % 2 == 0 { -0.0 } else { 0.0 }; // row 5: signed zeros
    }
    x[6 * width] = f32::INFINITY; // row 6: inf and -inf in different chunks
    x[7 * width - 1] = f32::NEG_INFINITY;
    (x, rows, width)
}

// ---------------------------------------------------------------------------
// Devices (Sim under two thread orders, the GPU when present)
// ---------------------------------------------------------------------------

#[test]
fn reduce_kernels_match_cpu_bits_on_every_device() {
    let devices = test_devices("reduce_kernels_match_cpu_bits_on_every_device");
    let sizes = [
        0usize,
        1,
        255,
        257,
        16_384,
        16_385,
        65_537,
        CHUNK * LANES + 3,
    ];
    for n in sizes {
        let x = random(n, 500 + n as u32);
        for op in ReduceOp::ALL {
            let want = cpu_all(op, &x).to_bits();
            for dev in &devices {
                let got = device_rows(dev, op, &x, 1, n, 65_535);
                assert_eq!(got, vec![want], "{dev}: {op:?} n={n}");
            }
        }
    }
}

#[test]
fn reduce_rows_kernels_match_cpu_bits_on_every_device() {
    let devices = test_devices("reduce_rows_kernels_match_cpu_bits_on_every_device");
    let mut cases: Vec<(Vec<f32>, usize, usize)> =
        [(9, 1), (4, 0), (33, 257), (5, 16_385), (3, 40_001)]
            .iter()
            .map(|&(r, w)| (random(r * w, w as u32), r, w))
            .collect();
    cases.push(special_rows());
    for (x, rows, width) in &cases {
        for op in ReduceOp::ALL {
            let mut want = DeviceBuffer::zeros(&Device::Cpu, *rows).unwrap();
            let xb = DeviceBuffer::copy_htod(&Device::Cpu, x).unwrap();
            reduce::reduce_rows(&Device::Cpu, op, &xb, *rows, *width, &mut want).unwrap();
            let want: Vec<u32> = want
                .copy_dtoh()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            for dev in &devices {
                let got = device_rows(dev, op, x, *rows, *width, 65_535);
                assert_eq!(got, want, "{dev}: {op:?} {rows}x{width}");
            }
        }
    }
    // The special rows give what the rules say.
    let (x, rows, width) = special_rows();
    let xb = DeviceBuffer::copy_htod(&Device::Cpu, &x).unwrap();
    let mut sum = DeviceBuffer::zeros(&Device::Cpu, rows).unwrap();
    reduce::reduce_rows(&Device::Cpu, ReduceOp::Sum, &xb, rows, width, &mut sum).unwrap();
    let sum = sum.copy_dtoh().unwrap();
    assert_eq!(sum[0], f32::INFINITY);
    for r in [1, 2, 3, 6] {
        assert_eq!(sum[r].to_bits(), CANONICAL_NAN, "row {r}");
    }
    assert_eq!(sum[4], f32::NEG_INFINITY);
    assert_eq!(sum[5].to_bits(), 0.0f32.to_bits());
}

#[test]
fn reduce_kernel_bits_do_not_depend_on_the_grid() {
    let (rows, width) = (6, 2 * CHUNK + 77);
    let x = random(rows * width, 77);
    for dev in test_devices("reduce_kernel_bits_do_not_depend_on_the_grid") {
        for op in ReduceOp::ALL {
            let want = device_rows(&dev, op, &x, rows, width, 65_535);
            for max_blocks in [1, 2, 7] {
                assert_eq!(
                    device_rows(&dev, op, &x, rows, width, max_blocks),
                    want,
                    "{dev}: {op:?} grid {max_blocks}"
                );
            }
        }
    }
}

#[test]
fn reduce_verify_reports_bitwise_equal_on_every_device() {
    for dev in test_devices("reduce_verify_reports_bitwise_equal_on_every_device") {
        let o = reduce::verify(&dev, 1 << 16).unwrap();
        assert!(o.is_bitwise_equal(), "{dev}: {o}");
    }
}

#[test]
fn reduce_refuses_buffers_of_the_wrong_length() {
    let x = DeviceBuffer::zeros(&Device::Cpu, 10).unwrap();
    let mut out = DeviceBuffer::zeros(&Device::Cpu, 2).unwrap();
    let err = reduce::reduce_rows(&Device::Cpu, ReduceOp::Sum, &x, 3, 4, &mut out).unwrap_err();
    assert!(
        err.to_string().contains("has 10 elements, expected 12"),
        "{err}"
    );
    let err = reduce::reduce_rows(
        &Device::Cpu,
        ReduceOp::Sum,
        &x,
        2,
        5,
        &mut DeviceBuffer::zeros(&Device::Cpu, 1).unwrap(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("has 1 elements, expected 2"),
        "{err}"
    );
    let err =
        reduce::reduce_rows(&Device::Cpu, ReduceOp::Sum, &x, usize::MAX, 2, &mut out).unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
}

/// The one-block row helper other families use (common/reduce.cuh's
/// ss_block_row_reduce_256), through test-only kernels, on Sim.
#[cfg(shoestring_sim)]
#[test]
fn reduce_block_row_helper_matches_cpu_bits() {
    use shoestring::device::{Launch, LaunchConfig};
    // tests/kernels/reduce_block_row.cu, in the test binaries' registry.
    let kernels: [(ReduceOp, &str); 3] = [
        (ReduceOp::Sum, "reduce_block_row_sum_f32"),
        (ReduceOp::Max, "reduce_block_row_max_f32"),
        (ReduceOp::SumSquares, "reduce_block_row_sumsq_f32"),
    ];
    let mut cases: Vec<(Vec<f32>, usize, usize)> = [
        (3, 0),
        (5, 1),
        (4, 300),
        (2, 16_384),
        (3, 16_385),
        (2, 300 * 257),
    ]
    .iter()
    .map(|&(r, w)| (random(r * w, 900 + w as u32), r, w))
    .collect();
    cases.push(special_rows());
    for dev in test_devices("reduce_block_row_helper_matches_cpu_bits") {
        if !matches!(dev, Device::Sim(_)) {
            continue;
        }
        for (x, rows, width) in &cases {
            for (op, name) in kernels {
                let want: Vec<u32> = (0..*rows)
                    .map(|r| reference(op, &x[r * width..(r + 1) * width]).to_bits())
                    .collect();
                let xb = DeviceBuffer::copy_htod(&dev, x).unwrap();
                let mut out = DeviceBuffer::<f32>::zeros(&dev, *rows).unwrap();
                let w = *width as u64;
                let cfg = LaunchConfig {
                    grid: [*rows as u32, 1, 1],
                    block: [256, 1, 1],
                    dynamic_shared_bytes: 0,
                };
                let launch = Launch::new(&dev, "tests", name, cfg)
                    .param(&w)
                    .buffer(&xb)
                    .unwrap()
                    .buffer_mut(&mut out)
                    .unwrap();
                // SAFETY: (width, x, out) as reduce_block_row.cu declares them;
                // x holds rows * width floats, out one per row (one block each).
                unsafe { launch.run() }.unwrap();
                let got: Vec<u32> = out
                    .copy_dtoh()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                assert_eq!(got, want, "{dev}: {name} {rows}x{width}");
            }
        }
    }
}

/// Three levels need more than CHUNK^2 = 2^28 elements in a row (1 GiB of
/// f32), too much for the default test run: `cargo test --release --test
/// reduce -- --ignored`.
#[test]
#[ignore]
fn reduce_three_levels_match_the_reference_and_every_device() {
    let n = CHUNK * CHUNK + 3;
    assert_eq!(levels(n), 3);
    // Cheap to make: a repeating pattern of random values, shifted so chunks differ.
    let base = random(1 << 20, 31);
    let x: Vec<f32> = (0..n)
        .map(|i| base[(i * 7 + i / 1_000_003) % base.len()])
        .collect();
    for op in [ReduceOp::Sum, ReduceOp::SumSquares] {
        let want = reference(op, &x).to_bits();
        assert_eq!(cpu_all(op, &x).to_bits(), want, "{op:?} cpu");
        for dev in test_devices("reduce_three_levels_match_the_reference_and_every_device")
            .iter()
            .take(1)
        {
            assert_eq!(
                device_rows(dev, op, &x, 1, n, 65_535),
                vec![want],
                "{dev}: {op:?}"
            );
        }
    }
}
