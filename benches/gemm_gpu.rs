//! GPU GEMM table: the exact tier, the fast (tensor-core) tier with and without
//! overflow detection, and cuBLAS HGEMM, timed with CUDA events on the device's
//! one stream. `cargo bench --features dev-kernels --bench gemm_gpu`; the GPU
//! bundle runs the built executable (docs/GPU.md). Without a GPU it prints
//! `skipped: <reason>` and exits 0 (exit 1 under `SHOESTRING_REQUIRE_GPU=1`, as
//! the bundle sets). The bench-only kernels (the other tile shapes, the
//! no-flag kernel, the mma.sync peak) are not part of the library: they are
//! `dev/kernels/gemm_dev_tc.cu`, launched through `dev/gemm_tc.rs`, and built
//! only with the `dev-kernels` feature, which this bench requires.
//!
//! Method: random f16 operands in [-1, 1) (never zeros), one warm-up call
//! (module JIT, shared-memory opt-in, cuBLAS heuristics), a batch size chosen so
//! one batch takes about 2 ms, then the median over REPS batches of the time per
//! call. Square sizes use A: n x n, B: n x n, both `Op::N`. Inputs stay resident
//! (at <= 2048 they fit in L2), the same for every column. Small sizes are
//! bound by launch overhead, ours and cuBLAS's alike.
//!
//! Columns:
//! - exact: `gemm::gemm`, f16 in, f32 out (CUDA cores, fma chain), GFLOP/s and
//!   its fraction of the f32 FMA peak = SMs x 128 lanes x 2 flop x clock, read
//!   from the device's attributes;
//! - fast: `gemm_fast` (128 x 128 tiles, 4 warps of 64 x 64), f16 out, with the
//!   flag; fast-nf: the same kernel without the check; wide: 128 x 256 tiles, 8
//!   warps of 64 x 64; narrow: 128 x 128 tiles, 8 warps of 64 x 32 (both f16
//!   out, flag; candidates for the product's shape); pipe: the product's
//!   shape with double-buffered ldmatrix fragments; k64: that with a k tile of
//!   64 and 3 stages; big: 256 x 128 tiles, 8 warps of 64 x 64, pipelined (all
//!   f16 out, flag);
//! - mma.sync peak: `gemm_tc_mma_peak`, 16 independent mma.sync.m16n8k16 chains
//!   per warp on register operands, 8 warps per block, 3 blocks per SM: the
//!   ceiling of any mma.sync kernel on this card (cuBLAS may use wgmma, which
//!   mma.sync cannot reach on Hopper); fast/mma and best/mma are the product's
//!   and the best candidate's fraction of it, best/cuB the best fast column
//!   over cuBLAS;
//! - cuBLAS: `cublasGemmEx`, f16 in, f32 compute, f16 out (CUBLAS_COMPUTE_32F;
//!   `shoestring::bench::cublas`, which `shoestring bench` uses too);
//! - fast/cuB and nf/fast: the ratios the fast tier's targets are stated in
//!   (>= 0.70 of cuBLAS at 4096^3; the flag costs < 2%).

use cudarc::driver::sys::{CUdevice_attribute, CUevent_flags};
use cudarc::driver::CudaStream;
use dev_gemm_tc::{gemm_dev, mma_peak, mma_peak_flops, Variant, MMA_PEAK_THREADS};
use shoestring::bench::cublas::Blas;
use shoestring::device::{Device, DeviceBuffer};
use shoestring::numerics::{float_to_half_rn, half_to_float};
use shoestring::ops::gemm::fast::gemm_fast;
use shoestring::ops::gemm::{self, Gemm};
use shoestring::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
use shoestring::status::Status;
use std::sync::Arc;

#[path = "../dev/gemm_tc.rs"]
mod dev_gemm_tc;

const SIZES: [usize; 6] = [256, 512, 1024, 2048, 4096, 8192];
/// Timed batches per measurement; the median is reported.
const REPS: usize = 7;
/// Target time of one batch, ms.
const BATCH_MS: f64 = 2.0;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let dev = match Device::cuda(0) {
        Ok(d) => d,
        Err(e) if std::env::var("SHOESTRING_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            eprintln!("gemm_gpu bench: SHOESTRING_REQUIRE_GPU=1 but no GPU is usable: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            println!("skipped: gemm_gpu bench ({e})");
            return;
        }
    };
    if let Err(e) = run(&dev) {
        eprintln!("gemm_gpu bench failed: {e}");
        std::process::exit(1);
    }
}

/// Median time per call of `f` in ms, timed with CUDA events in batches.
fn time_ms(stream: &Arc<CudaStream>, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    let timing = Some(CUevent_flags::CU_EVENT_DEFAULT);
    f()?; // warm-up
    stream.synchronize()?;
    let start = stream.record_event(timing)?;
    f()?;
    let end = stream.record_event(timing)?;
    let once = f64::from(start.elapsed_ms(&end)?).max(1e-4);
    let inner = (BATCH_MS / once).ceil().clamp(1.0, 500.0) as usize;
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let start = stream.record_event(timing)?;
        for _ in 0..inner {
            f()?;
        }
        let end = stream.record_event(timing)?;
        samples.push(f64::from(start.elapsed_ms(&end)?) / inner as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[REPS / 2])
}

fn gflops(g: &Gemm, ms: f64) -> f64 {
    g.flops() / (ms * 1e-3) / 1e9
}

/// `len` f16 values in [-1, 1), from a Philox pool of 2^22 values repeated
/// (timing needs non-zero data, not distinct data).
fn random_f16(pool: &[u16], len: usize, offset: usize) -> Vec<u16> {
    (0..len).map(|i| pool[(i + offset) % pool.len()]).collect()
}

/// One shape's measurements (GFLOP/s; None where not run).
#[derive(Default)]
struct Row {
    label: String,
    exact: Option<f64>,
    fast: Option<f64>,
    noflag: Option<f64>,
    wide: Option<f64>,
    narrow: Option<f64>,
    pipe: Option<f64>,
    k64: Option<f64>,
    big: Option<f64>,
    cublas: Option<f64>,
}

impl Row {
    /// The fastest fast-tier column.
    fn best(&self) -> Option<f64> {
        [
            self.fast,
            self.noflag,
            self.wide,
            self.narrow,
            self.pipe,
            self.k64,
            self.big,
        ]
        .into_iter()
        .flatten()
        .reduce(f64::max)
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.0}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
        _ => "-".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn measure(
    dev: &Device,
    stream: &Arc<CudaStream>,
    blas: Option<&Blas>,
    pool: &[u16],
    label: String,
    g: Gemm,
    with_exact: bool,
    check: bool,
) -> Res<Row> {
    let a_h = random_f16(pool, g.m * g.k, 0);
    let b_h = random_f16(pool, g.k * g.n, 12_345);
    let a = DeviceBuffer::copy_htod(dev, &a_h)?;
    let b = DeviceBuffer::copy_htod(dev, &b_h)?;
    let mut c16 = DeviceBuffer::<u16>::zeros(dev, g.m * g.n)?;
    let mut flag = Status::new(dev)?;
    let mut row = Row {
        label,
        ..Row::default()
    };
    if with_exact {
        let mut c32 = DeviceBuffer::<f32>::zeros(dev, g.m * g.n)?;
        let ms = time_ms(stream, || {
            Ok(gemm::gemm(dev, &g, &a, &b, None, &mut c32, &mut flag)?)
        })?;
        row.exact = Some(gflops(&g, ms));
    }
    // None: the product (gemm_fast); Some(v): the bench-only kernel v.
    let mut fast = |k: Option<Variant>| -> Res<f64> {
        let ms = time_ms(stream, || {
            match k {
                None => gemm_fast(dev, &g, &a, &b, None, &mut c16, &mut flag)?,
                Some(v) => gemm_dev(dev, v, &g, &a, &b, None, &mut c16, &mut flag)?,
            }
            Ok(())
        })?;
        Ok(gflops(&g, ms))
    };
    row.fast = Some(fast(None)?);
    row.noflag = Some(fast(Some(Variant::NoFlag))?);
    row.wide = Some(fast(Some(Variant::Wide))?);
    row.narrow = Some(fast(Some(Variant::Narrow))?);
    row.pipe = Some(fast(Some(Variant::Pipe))?);
    row.k64 = Some(fast(Some(Variant::K64))?);
    row.big = Some(fast(Some(Variant::Big))?);
    if flag.read()?.overflow() {
        return Err(format!(
            "{}: the overflow flag was raised on [-1, 1) data",
            row.label
        )
        .into());
    }
    if let Some(blas) = blas {
        let ca = stream.clone_htod(&a_h)?;
        let cb = stream.clone_htod(&b_h)?;
        let mut cc = stream.alloc_zeros::<u16>(g.m * g.n)?;
        let ms = time_ms(stream, || Ok(blas.gemm(&g, &ca, &cb, &mut cc)?))?;
        row.cublas = Some(gflops(&g, ms));
        if check {
            // The fast tier's output against cuBLAS's: catches a wrong operand
            // order in either call, not a speed question.
            gemm_fast(dev, &g, &a, &b, None, &mut c16, &mut flag)?;
            let ours = c16.copy_dtoh()?;
            let theirs = stream.clone_dtoh(&cc)?;
            stream.synchronize()?;
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for (&x, &y) in ours.iter().zip(&theirs) {
                let (x, y) = (f64::from(half_to_float(x)), f64::from(half_to_float(y)));
                num += (x - y) * (x - y);
                den += y * y;
            }
            println!(
                "check {}: ||fast - cuBLAS|| / ||cuBLAS|| = {:.2e} (f16 outputs; ~1e-4 expected)",
                row.label,
                (num / den.max(f64::MIN_POSITIVE)).sqrt()
            );
        }
    }
    Ok(row)
}

fn run(dev: &Device) -> Res<()> {
    let Device::Cuda(cuda) = dev else {
        unreachable!("Device::cuda returns a Cuda device")
    };
    let stream = cuda.cudarc_stream().clone();
    let ctx = stream.context().clone();
    let info = cuda.info();
    let sms = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let clock_khz = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)
        .ok();
    let peak = clock_khz.map(|khz| f64::from(sms) * 128.0 * 2.0 * f64::from(khz) * 1e3 / 1e9);
    println!(
        "gemm_gpu: {} (sm_{}{}), {sms} SMs, clock {}, f32 FMA peak {} GFLOP/s",
        info.name,
        info.compute_capability.0,
        info.compute_capability.1,
        clock_khz.map_or("unknown".into(), |k| format!("{} MHz", k / 1000)),
        peak.map_or("unknown".into(), |p| format!("{p:.0}")),
    );
    let blas = match Blas::open(&stream) {
        Ok(b) => Some(b),
        Err(why) => {
            println!("cuBLAS: not measured ({why})");
            None
        }
    };
    let key = PhiloxKey::from_seed(0x6e_6d_6d);
    let pool: Vec<u16> = uniform_floats(key, PhiloxCounter::new(0, 1, 0), 1 << 22, 1.0)?
        .iter()
        .map(|&x| float_to_half_rn(x))
        .collect();

    let t0 = std::time::Instant::now();
    // The mma.sync ceiling: 3 blocks of 8 warps per SM (all resident at once:
    // one wave), ~1.5 ms a call.
    let peak_blocks = (sms.max(1) as u32) * 3;
    let peak_iters = 4096;
    let mut peak_out = DeviceBuffer::<f32>::zeros(dev, (peak_blocks * MMA_PEAK_THREADS) as usize)?;
    let ms = time_ms(&stream, || {
        Ok(mma_peak(dev, peak_blocks, peak_iters, &mut peak_out)?)
    })?;
    let mma = mma_peak_flops(peak_blocks, peak_iters) / (ms * 1e-3) / 1e9;
    println!("mma.sync peak (m16n8k16 f16 -> f32, register operands): {mma:.0} GFLOP/s");
    let mut rows = Vec::new();
    for n in SIZES {
        let g = Gemm::new(n, n, n);
        rows.push(measure(
            dev,
            &stream,
            blas.as_ref(),
            &pool,
            format!("{n}^3"),
            g,
            true,
            n == 1024,
        )?);
    }
    // The model's shapes: (batch x hidden) by (hidden x 4 hidden) and
    // (time*batch x embedding) by (embedding x 4 hidden).
    for (m, k, n) in [(32, 128, 512), (2304, 64, 512)] {
        let g = Gemm::new(m, n, k);
        rows.push(measure(
            dev,
            &stream,
            blas.as_ref(),
            &pool,
            format!("{m}x{k}*{k}x{n}"),
            g,
            true,
            false,
        )?);
    }

    println!();
    println!("GFLOP/s (median of {REPS} batches of ~{BATCH_MS} ms; f16 operands)");
    println!(
        "| {:<16} | {:>7} | {:>6} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>8} | {:>8} | {:>8} | {:>8} | {:>7} |",
        "shape",
        "exact",
        "%f32pk",
        "fast",
        "fast-nf",
        "wide",
        "narrow",
        "pipe",
        "k64",
        "big",
        "cuBLAS",
        "fast/cuB",
        "best/cuB",
        "fast/mma",
        "best/mma",
        "nf/fast"
    );
    println!(
        "|{:-<18}|{:->9}|{:->8}|{:->9}|{:->9}|{:->9}|{:->9}|{:->9}|{:->9}|{:->9}|{:->9}|{:->10}|{:->10}|{:->10}|{:->10}|{:->9}|",
        "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", ""
    );
    for r in &rows {
        let pct = match (r.exact, peak) {
            (Some(e), Some(p)) => format!("{:.1}%", 100.0 * e / p),
            _ => "-".into(),
        };
        println!(
            "| {:<16} | {:>7} | {:>6} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>8} | {:>8} | {:>8} | {:>8} | {:>7} |",
            r.label,
            fmt(r.exact),
            pct,
            fmt(r.fast),
            fmt(r.noflag),
            fmt(r.wide),
            fmt(r.narrow),
            fmt(r.pipe),
            fmt(r.k64),
            fmt(r.big),
            fmt(r.cublas),
            ratio(r.fast, r.cublas),
            ratio(r.best(), r.cublas),
            ratio(r.fast, Some(mma)),
            ratio(r.best(), Some(mma)),
            ratio(r.noflag, r.fast),
        );
    }
    println!(
        "mma.sync peak {mma:.0} GFLOP/s; cuBLAS / mma.sync peak at 4096^3: {}",
        rows.iter()
            .find(|r| r.label == "4096^3")
            .map_or("-".into(), |r| ratio(r.cublas, Some(mma)))
    );

    // The exact tier with f32 operands at 4096^3 (f32 out).
    let n = 4096;
    let g = Gemm::new(n, n, n);
    let f32_pool: Vec<f32> = pool.iter().map(|&h| half_to_float(h)).collect();
    let a: Vec<f32> = (0..n * n).map(|i| f32_pool[i % f32_pool.len()]).collect();
    let b: Vec<f32> = (0..n * n)
        .map(|i| f32_pool[(i + 12_345) % f32_pool.len()])
        .collect();
    let a = DeviceBuffer::copy_htod(dev, &a)?;
    let b = DeviceBuffer::copy_htod(dev, &b)?;
    let mut c = DeviceBuffer::<f32>::zeros(dev, n * n)?;
    let mut flag = Status::new(dev)?;
    let ms = time_ms(&stream, || {
        Ok(gemm::gemm(dev, &g, &a, &b, None, &mut c, &mut flag)?)
    })?;
    let e = gflops(&g, ms);
    println!(
        "exact f32 in, f32 out, 4096^3: {e:.0} GFLOP/s ({})",
        peak.map_or("-".into(), |p| format!(
            "{:.1}% of the f32 FMA peak",
            100.0 * e / p
        ))
    );
    println!("total bench time {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
