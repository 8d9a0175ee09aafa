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

mod support;

use shoestring::device::abi::ss_philox_blocks_params;
use shoestring::device::{
    sim_available, Device, DeviceBuffer, Launch, LaunchConfig, SimOptions,
    MAX_DYNAMIC_SHARED_DEFAULT, MAX_DYNAMIC_SHARED_SIM,
};
use shoestring::numerics::{float_to_half_rn, half_to_float};
use shoestring::ops::gemm::fast::{gemm_fast, gemm_fast_with, FastKernel};
use shoestring::ops::gemm::{self, Gemm, GemmOut, Op};
use shoestring::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
use shoestring::status::Status;
use shoestring::Error;
use support::gpu_for_test;

/// The bench-only tile shapes (f16 output, `Op::N` operands only).
const BENCH_KERNELS: [FastKernel; 5] = [
    FastKernel::Wide,
    FastKernel::Narrow,
    FastKernel::Pipe,
    FastKernel::K64,
    FastKernel::Big,
];

const OPS: [(Op, Op); 4] = [
    (Op::N, Op::N),
    (Op::N, Op::T),
    (Op::T, Op::N),
    (Op::T, Op::T),
];

/// `n` f16 values uniform in `[-scale, scale)` from Philox stream `stream`.
fn uniform_f16(n: usize, stream: u32, scale: f32) -> Vec<u16> {
    let key = PhiloxKey::from_seed(0xfa57_0001);
    uniform_floats(key, PhiloxCounter::new(0, stream, 0), n, scale)
        .unwrap()
        .iter()
        .map(|&x| float_to_half_rn(x))
        .collect()
}

/// f16 operands for `g` in [-1, 1) and a bias in [-4, 4).
fn operands(g: &Gemm, stream: u32) -> (Vec<u16>, Vec<u16>, Vec<f32>) {
    let a = uniform_f16(g.m * g.k, stream, 1.0);
    let b = uniform_f16(g.k * g.n, stream + 1, 1.0);
    let key = PhiloxKey::from_seed(0xfa57_0002);
    let bias = uniform_floats(key, PhiloxCounter::new(0, stream + 2, 0), g.n, 4.0).unwrap();
    (a, b, bias)
}

/// An output value as f64, for either output type.
trait Out: GemmOut {
    /// A value no kernel stores for these inputs: a NaN with a payload.
    fn poison() -> Self;
    fn value(self) -> f64;
    /// One unit in the last place of the output type at `x` (0 for f32: the
    /// f32 epilogue rounding is in the bound already).
    fn ulp(x: f64) -> f64;
}
impl Out for f32 {
    fn poison() -> f32 {
        f32::from_bits(0x7fbb_0bad)
    }
    fn value(self) -> f64 {
        f64::from(self)
    }
    fn ulp(_: f64) -> f64 {
        0.0
    }
}
impl Out for u16 {
    fn poison() -> u16 {
        0x7d0b
    }
    fn value(self) -> f64 {
        f64::from(half_to_float(self))
    }
    fn ulp(x: f64) -> f64 {
        let x = x.abs().max(f64::from(half_to_float(0x0400))); // smallest normal
        2f64.powi(x.log2().floor() as i32 - 10)
    }
}

fn poisoned<O: Out>(dev: &Device, len: usize) -> DeviceBuffer<O> {
    DeviceBuffer::copy_htod(dev, &vec![O::poison(); len]).unwrap()
}

/// The fast tier on `dev` (kernel `k`); returns C and the flag.
fn run_fast<O: Out>(
    dev: &Device,
    g: &Gemm,
    a: &[u16],
    b: &[u16],
    bias: Option<&[f32]>,
    k: FastKernel,
) -> (Vec<O>, bool) {
    let a = DeviceBuffer::copy_htod(dev, a).unwrap();
    let b = DeviceBuffer::copy_htod(dev, b).unwrap();
    let bias = bias.map(|v| DeviceBuffer::copy_htod(dev, v).unwrap());
    let mut c = poisoned::<O>(dev, g.m * g.n);
    let mut flag = Status::new(dev).unwrap();
    gemm_fast_with(
        dev,
        g,
        &a,
        &b,
        bias.as_ref().map(|b| b.view()),
        &mut c,
        &mut flag,
        k,
    )
    .unwrap_or_else(|e| panic!("{g:?} {k:?}: {e}"));
    (c.copy_dtoh().unwrap(), flag.read().unwrap().overflow())
}

/// The exact tier on the CPU; returns C and the flag.
fn run_exact<O: Out>(g: &Gemm, a: &[u16], b: &[u16], bias: Option<&[f32]>) -> (Vec<O>, bool) {
    let cpu = Device::Cpu;
    let a = DeviceBuffer::copy_htod(&cpu, a).unwrap();
    let b = DeviceBuffer::copy_htod(&cpu, b).unwrap();
    let bias = bias.map(|v| DeviceBuffer::copy_htod(&cpu, v).unwrap());
    let mut c = DeviceBuffer::<O>::zeros(&cpu, g.m * g.n).unwrap();
    let mut flag = Status::new(&cpu).unwrap();
    gemm::gemm(
        &cpu,
        g,
        &a,
        &b,
        bias.as_ref().map(|b| b.view()),
        &mut c,
        &mut flag,
    )
    .unwrap();
    (c.copy_dtoh().unwrap(), flag.read().unwrap().overflow())
}

/// S[i, j] = sum_kk |op(A)[i,kk] op(B)[kk,j]| in f64.
fn magnitudes(g: &Gemm, a: &[u16], b: &[u16]) -> Vec<f64> {
    let (m, n, k) = (g.m, g.n, g.k);
    let af: Vec<f64> = a
        .iter()
        .map(|&h| f64::from(half_to_float(h)).abs())
        .collect();
    let bf: Vec<f64> = b
        .iter()
        .map(|&h| f64::from(half_to_float(h)).abs())
        .collect();
    let mut s = vec![0.0f64; m * n];
    for i in 0..m {
        for kk in 0..k {
            let x = match g.a {
                Op::N => af[i * k + kk],
                Op::T => af[kk * m + i],
            };
            for j in 0..n {
                let y = match g.b {
                    Op::N => bf[kk * n + j],
                    Op::T => bf[j * k + kk],
                };
                s[i * n + j] += x * y;
            }
        }
    }
    s
}

/// Asserts `got` (fast) is within the module's bound of `want` (exact).
fn assert_within_bound<O: Out>(label: &str, g: &Gemm, got: &[O], want: &[O], mag: &[f64]) {
    assert_eq!(got.len(), want.len());
    let k = g.k as f64;
    let alpha = f64::from(g.alpha).abs();
    let mut worst = 0.0f64;
    for (idx, ((&x, &y), &s)) in got.iter().zip(want).zip(mag).enumerate() {
        let (xv, yv) = (x.value(), y.value());
        assert!(
            xv.is_finite() && yv.is_finite(),
            "{label}: element {idx} (row {}, col {}) is {:#x} (fast) vs {:#x} (exact): \
             not finite (a poisoned element was never written?)",
            idx / g.n,
            idx % g.n,
            x.bits(),
            y.bits()
        );
        let bound = alpha * (k + 4.0) * 2f64.powi(-21) * s
            + 2f64.powi(-22) * yv.abs()
            + O::ulp(xv.abs().max(yv.abs()));
        let err = (xv - yv).abs();
        assert!(
            err <= bound,
            "{label}: element {idx} (row {}, col {}): fast {xv:e} vs exact {yv:e}, \
             |err| {err:e} > bound {bound:e}",
            idx / g.n,
            idx % g.n
        );
        if bound > 0.0 {
            worst = worst.max(err / bound);
        }
    }
    eprintln!("{label}: worst |err| / bound = {worst:.3}");
}

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
/// With `bench_kernels` (f16 output), `Op::N` x `Op::N` shapes also run every
/// bench-only kernel ([`BENCH_KERNELS`]) against the same bound.
fn fast_within_bound_of_exact<O: Out>(label: &str, bench_kernels: bool) {
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
                let (got, gf) = run_fast::<O>(&dev, &g, &a, &b, bias, FastKernel::Tiled);
                let what = format!("{label} {g:?} bias={with_bias}");
                assert_within_bound(&what, &g, &got, &want, &mag);
                assert!(!wf && !gf, "{what}: no overflow expected");
                if bench_kernels && o == 0 {
                    for k in BENCH_KERNELS {
                        let (got, gf) = run_fast::<O>(&dev, &g, &a, &b, bias, k);
                        let what = format!("{label} {k:?} {g:?} bias={with_bias}");
                        assert_within_bound(&what, &g, &got, &want, &mag);
                        assert!(!gf, "{what}: no overflow expected");
                    }
                }
            }
        }
    }
}

#[test]
fn fast_f16_to_f32_is_within_the_accumulation_bound_of_the_exact_tier() {
    fast_within_bound_of_exact::<f32>("gemm_fast_f32", false);
}

#[test]
fn fast_f16_to_f16_is_within_the_accumulation_bound_of_the_exact_tier() {
    fast_within_bound_of_exact::<u16>("gemm_fast_f16", true);
}

#[test]
fn fast_is_bitwise_identical_over_repeated_launches_and_the_bench_kernels_agree() {
    let Some(dev) = gpu_for_test("gemm_fast_repeat") else {
        return;
    };
    // Several blocks in m and n, k not a multiple of the k tile.
    let g = Gemm::new(300, 520, 1000).alpha(0.5);
    let (a, b, bias) = operands(&g, 700);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (first, _) = run_fast::<f32>(&dev, &g, &a, &b, Some(&bias), FastKernel::Tiled);
    for rep in 0..3 {
        let (again, _) = run_fast::<f32>(&dev, &g, &a, &b, Some(&bias), FastKernel::Tiled);
        assert_eq!(bits(&again), bits(&first), "f32 output, launch {rep}");
    }
    let (first16, _) = run_fast::<u16>(&dev, &g, &a, &b, None, FastKernel::Tiled);
    for rep in 0..3 {
        let (again, _) = run_fast::<u16>(&dev, &g, &a, &b, None, FastKernel::Tiled);
        assert_eq!(again, first16, "f16 output, launch {rep}");
    }
    // The bench's no-flag kernel is the same code without the check: same bits.
    let (noflag16, _) = run_fast::<u16>(&dev, &g, &a, &b, None, FastKernel::NoFlag);
    assert_eq!(noflag16, first16, "no-flag kernel, f16 output");
    // The bench's other tile shapes: within the bound of the exact tier. Each
    // output is the same sequence of k16 mma steps in every shape, so they are
    // expected to equal the product kernel bit for bit as well; that is
    // reported, not promised.
    let (want, _) = run_exact::<u16>(&g, &a, &b, None);
    let mag = magnitudes(&g, &a, &b);
    for k in BENCH_KERNELS {
        let (other, _) = run_fast::<u16>(&dev, &g, &a, &b, None, k);
        assert_within_bound(&format!("{k:?} kernel"), &g, &other, &want, &mag);
        for rep in 0..2 {
            let (again, _) = run_fast::<u16>(&dev, &g, &a, &b, None, k);
            assert_eq!(again, other, "{k:?} kernel, launch {rep}");
        }
        eprintln!(
            "{k:?} kernel bitwise equal to the product kernel: {}",
            other == first16
        );
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
    let (c, flag) = run_fast::<u16>(&dev, &g, &a, &b, None, FastKernel::Tiled);
    let inf: Vec<usize> = (0..c.len()).filter(|&i| c[i] & 0x7fff == 0x7c00).collect();
    assert_eq!(inf, [2], "exactly C[0][2] overflows f16");
    assert!(flag, "one f16 overflow sets the flag");
    // The same GEMM into f32 stores 65536.x, finite: flag clear.
    let (c32, flag) = run_fast::<f32>(&dev, &g, &a, &b, None, FastKernel::Tiled);
    assert!(c32[2] > 65504.0 && c32[2].is_finite());
    assert!(!flag, "f32 output does not overflow");
    // Without the big values: clear.
    let plain_a = vec![small; g.m * g.k];
    let (_, flag) = run_fast::<u16>(&dev, &g, &plain_a, &b, None, FastKernel::Tiled);
    assert!(!flag, "no overflow, flag clear");
    // A NaN operand: row 1 of C is NaN, stored as the canonical NaN (0x7e00 in
    // f16, 0x7fc00000 in f32), and the flag is set.
    let mut nan_a = plain_a.clone();
    nan_a[g.k + 3] = 0x7e01;
    let (c, flag) = run_fast::<u16>(&dev, &g, &nan_a, &b, None, FastKernel::Tiled);
    assert!(flag, "NaN input sets the flag (f16 output)");
    assert!(
        c[g.n..2 * g.n].iter().all(|&h| h == 0x7e00),
        "row 1 is 0x7e00"
    );
    assert!(
        c[..g.n].iter().all(|&h| h & 0x7c00 != 0x7c00),
        "row 0 finite"
    );
    let (c, flag) = run_fast::<f32>(&dev, &g, &nan_a, &b, None, FastKernel::Tiled);
    assert!(flag, "NaN input sets the flag (f32 output)");
    assert!(c[g.n..2 * g.n].iter().all(|x| x.to_bits() == 0x7fc0_0000));
    // The no-flag kernel never touches the flag, even on NaN.
    let (_, flag) = run_fast::<u16>(&dev, &g, &nan_a, &b, None, FastKernel::NoFlag);
    assert!(!flag, "the bench's no-flag kernel leaves the flag alone");
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
