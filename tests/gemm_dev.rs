//! The bench-only tensor-core GEMM kernels (`dev/kernels/gemm_dev_tc.cu`,
//! launched by `dev/gemm_tc.rs`; built with `--features dev-kernels`, which
//! this test requires): the launcher's refusals and launch shapes here, and on
//! a GPU every variant within the fast tier's bound of the exact tier (the
//! bound of `tests/gemm_fast.rs`'s header), bitwise identical over repeated
//! launches, the no-flag kernel equal to the product bit for bit and never
//! touching the status block. What `benches/gemm_gpu.rs` times must be right.

#[path = "../dev/gemm_tc.rs"]
mod dev_gemm_tc;
mod gemm_support;
mod support;

use dev_gemm_tc::{gemm_dev, mma_peak, mma_peak_flops, Variant, MMA_PEAK_THREADS};
use gemm_support::fast::{
    assert_within_bound, magnitudes, operands, poisoned, run_exact, run_fast,
};
use shoestring::device::{sim_available, Device, DeviceBuffer, SimOptions};
use shoestring::numerics::float_to_half_rn;
use shoestring::ops::gemm::{Gemm, Op};
use shoestring::status::Status;
use shoestring::Error;
use support::gpu_for_test;

/// The bench-only kernel `v` on `dev` into a poisoned C; returns C and the flag.
fn run_dev(
    dev: &Device,
    v: Variant,
    g: &Gemm,
    a: &[u16],
    b: &[u16],
    bias: Option<&[f32]>,
) -> (Vec<u16>, bool) {
    let a = DeviceBuffer::copy_htod(dev, a).unwrap();
    let b = DeviceBuffer::copy_htod(dev, b).unwrap();
    let bias = bias.map(|x| DeviceBuffer::copy_htod(dev, x).unwrap());
    let mut c = poisoned::<u16>(dev, g.m * g.n);
    let mut flag = Status::new(dev).unwrap();
    gemm_dev(
        dev,
        v,
        g,
        &a,
        &b,
        bias.as_ref().map(|b| b.view()),
        &mut c,
        &mut flag,
    )
    .unwrap_or_else(|e| panic!("{v:?} {g:?}: {e}"));
    (c.copy_dtoh().unwrap(), flag.read().unwrap().overflow())
}

// ---- Anywhere: what the launcher refuses ----

#[test]
fn dev_kernels_are_typed_errors_off_the_gpu_and_refuse_what_they_do_not_run() {
    let mut devices = vec![Device::Cpu];
    if sim_available() {
        devices.push(Device::sim_with(SimOptions::default()).unwrap());
    }
    devices.extend(gpu_for_test("gemm_dev_refusals"));
    let g = Gemm::new(3, 5, 7);
    for dev in &devices {
        let a = DeviceBuffer::<u16>::zeros(dev, 21).unwrap();
        let b = DeviceBuffer::<u16>::zeros(dev, 35).unwrap();
        let mut c = DeviceBuffer::<u16>::zeros(dev, 15).unwrap();
        let mut flag = Status::new(dev).unwrap();
        // Transposed operands and accumulation: refused on every device.
        for bad in [g.ops(Op::N, Op::T), g.ops(Op::T, Op::N), g.accumulate()] {
            let e =
                gemm_dev(dev, Variant::Wide, &bad, &a, &b, None, &mut c, &mut flag).unwrap_err();
            assert!(
                matches!(e, Error::InvalidArgument { .. }),
                "{dev} {bad:?}: {e:?}"
            );
        }
        // Wrong lengths are reported as such, before the device question.
        let short = DeviceBuffer::<u16>::zeros(dev, 20).unwrap();
        let e = gemm_dev(dev, Variant::Big, &g, &short, &b, None, &mut c, &mut flag).unwrap_err();
        assert!(matches!(e, Error::Length { name: "a", .. }), "{dev}: {e:?}");
        let mut out = DeviceBuffer::<f32>::zeros(dev, 255).unwrap();
        let e = mma_peak(dev, 1, 1, &mut out).unwrap_err();
        assert!(
            matches!(e, Error::Length { name: "out", .. }),
            "{dev}: {e:?}"
        );
        if matches!(dev, Device::Cuda(_)) {
            continue;
        }
        for v in Variant::ALL {
            let e = gemm_dev(dev, v, &g, &a, &b, None, &mut c, &mut flag).unwrap_err();
            assert!(matches!(e, Error::Unsupported { .. }), "{dev} {v:?}: {e:?}");
        }
        let mut out = DeviceBuffer::<f32>::zeros(dev, 256).unwrap();
        let e = mma_peak(dev, 1, 1, &mut out).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{dev}: {e:?}");
    }
    // 8 warps x 10 rounds x 16 mma x 4096 flop per block.
    assert_eq!(mma_peak_flops(2, 10), 2.0 * 8.0 * 10.0 * 16.0 * 4096.0);
    assert_eq!(MMA_PEAK_THREADS, 256);
}

#[test]
fn launch_shapes_match_the_kernel_file() {
    // dev/kernels/gemm_dev_tc.cu and kernels/common/gemm_tc.cuh: block size =
    // __launch_bounds__, dynamic shared memory = TcShape::SMEM_BYTES (TcMain,
    // TcPipe and TcNarrow 4 x 20480 bytes, TcWide and TcBig 4 x 30720, TcK64
    // 3 x 36864); one block per BM x BN tile of C.
    let p = Gemm::new(257, 129, 5).params("gemm_dev", false).unwrap();
    let want = [
        (Variant::NoFlag, 128, 81_920, 3 * 2),
        (Variant::Wide, 256, 122_880, 3),
        (Variant::Narrow, 256, 81_920, 3 * 2),
        (Variant::Pipe, 128, 81_920, 3 * 2),
        (Variant::K64, 128, 110_592, 3 * 2),
        (Variant::Big, 256, 122_880, 2 * 2),
    ];
    for (v, threads, smem, blocks) in want {
        let c = v.config(&p).unwrap();
        assert_eq!(c.block, [threads, 1, 1], "{v:?}");
        assert_eq!(c.dynamic_shared_bytes, smem, "{v:?}");
        assert_eq!(c.grid, [blocks, 1, 1], "{v:?}");
    }
}

// ---- GPU ----

/// Odd shapes (the same as `tests/gemm_fast.rs`'s), `Op::N` x `Op::N`, f16
/// output, bias and none: every bench-only kernel within the bound of the
/// exact tier, flag clear (the no-flag kernel's is never set).
#[test]
fn dev_kernels_are_within_the_accumulation_bound_of_the_exact_tier() {
    let Some(dev) = gpu_for_test("gemm_dev_f16") else {
        return;
    };
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
        let g = Gemm::new(m, n, k);
        let (a, b, bias) = operands(&g, 100 + 10 * s as u32);
        let mag = magnitudes(&g, &a, &b);
        for with_bias in [false, true] {
            let bias = with_bias.then_some(bias.as_slice());
            let (want, wf) = run_exact::<u16>(&g, &a, &b, bias);
            assert!(!wf, "{g:?}: no overflow expected");
            for v in Variant::ALL {
                let (got, gf) = run_dev(&dev, v, &g, &a, &b, bias);
                let what = format!("gemm_dev_f16 {v:?} {g:?} bias={with_bias}");
                assert_within_bound(&what, &g, &got, &want, &mag);
                assert!(!gf, "{what}: no overflow expected");
            }
        }
    }
}

#[test]
fn dev_kernels_are_bitwise_identical_over_repeated_launches() {
    let Some(dev) = gpu_for_test("gemm_dev_repeat") else {
        return;
    };
    // Several blocks in m and n, k not a multiple of the k tile.
    let g = Gemm::new(300, 520, 1000).alpha(0.5);
    let (a, b, _) = operands(&g, 700);
    let (product, _) = run_fast::<u16>(&dev, &g, &a, &b, None);
    // The no-flag kernel is the product's code without the check: same bits.
    let (noflag, _) = run_dev(&dev, Variant::NoFlag, &g, &a, &b, None);
    assert_eq!(noflag, product, "no-flag kernel, f16 output");
    // The other tile shapes: within the bound of the exact tier. Each output
    // is the same sequence of k16 mma steps in every shape, so they are
    // expected to equal the product kernel bit for bit as well; that is
    // reported, not promised.
    let (want, _) = run_exact::<u16>(&g, &a, &b, None);
    let mag = magnitudes(&g, &a, &b);
    for v in Variant::SHAPES {
        let (other, _) = run_dev(&dev, v, &g, &a, &b, None);
        assert_within_bound(&format!("{v:?} kernel"), &g, &other, &want, &mag);
        for rep in 0..2 {
            let (again, _) = run_dev(&dev, v, &g, &a, &b, None);
            assert_eq!(again, other, "{v:?} kernel, launch {rep}");
        }
        eprintln!(
            "{v:?} kernel bitwise equal to the product kernel: {}",
            other == product
        );
    }
}

#[test]
fn overflow_sets_the_flag_except_in_the_no_flag_kernel() {
    let Some(dev) = gpu_for_test("gemm_dev_flag") else {
        return;
    };
    // As in tests/gemm_fast.rs: A[0][0] = B[0][2] = 256 makes C[0][2] overflow
    // f16; a NaN in row 1 of A makes row 1 of C NaN.
    let g = Gemm::new(130, 150, 140);
    let small = float_to_half_rn(0.01);
    let mut a = vec![small; g.m * g.k];
    let mut b = vec![small; g.k * g.n];
    a[0] = float_to_half_rn(256.0);
    b[2] = float_to_half_rn(256.0);
    let mut nan_a = vec![small; g.m * g.k];
    nan_a[g.k + 3] = 0x7e01;
    for v in Variant::ALL {
        let (c, flag) = run_dev(&dev, v, &g, &a, &b, None);
        let inf: Vec<usize> = (0..c.len()).filter(|&i| c[i] & 0x7fff == 0x7c00).collect();
        assert_eq!(inf, [2], "{v:?}: exactly C[0][2] overflows f16");
        assert_eq!(flag, v.checks_overflow(), "{v:?}: flag after one overflow");
        let (c, flag) = run_dev(&dev, v, &g, &nan_a, &b, None);
        assert!(
            c[g.n..2 * g.n].iter().all(|&h| h == 0x7e00),
            "{v:?}: row 1 is 0x7e00"
        );
        assert_eq!(flag, v.checks_overflow(), "{v:?}: flag after a NaN input");
    }
}

#[test]
fn mma_peak_runs_and_writes_every_thread() {
    let Some(dev) = gpu_for_test("gemm_dev_mma_peak") else {
        return;
    };
    let blocks = 3;
    let poison = f32::from_bits(0x7fbb_0bad);
    let mut out =
        DeviceBuffer::copy_htod(&dev, &vec![poison; (blocks * MMA_PEAK_THREADS) as usize]).unwrap();
    mma_peak(&dev, blocks, 4, &mut out).unwrap();
    let got = out.copy_dtoh().unwrap();
    assert!(
        got.iter().all(|x| x.to_bits() != poison.to_bits()),
        "every thread writes its float"
    );
    // No blocks: nothing to launch, an empty output.
    let mut none = DeviceBuffer::<f32>::zeros(&dev, 0).unwrap();
    mma_peak(&dev, 0, 4, &mut none).unwrap();
}
