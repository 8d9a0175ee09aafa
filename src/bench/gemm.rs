//! GEMM rows, GFLOP/s (2 m n k per call).
//!
//! CPU: the exact-tier twin (f32) next to `matrixmultiply::sgemm` (one call
//! per thread, on row or column halves of C under `rayon::join`) and the
//! `gemm` crate (`Parallelism::Rayon`), all on the global pool's threads.
//! Neither library keeps our k order, so only the time compares; the twin's
//! output is checked against an f64 product first.
//!
//! GPU: the exact tier (f32 in and out) next to cuBLAS SGEMM, and the fast
//! tier (f16 in and out, tensor cores) next to cuBLAS HGEMM; the exact
//! tier's output bits are checked against the CPU twin, the fast tier's
//! against cuBLAS's within the f16 output's precision.

use super::cublas::Blas;
use super::memory::on_cpu;
use super::{close_to, same_bits, Bench, Row, Work};
use crate::device::{Device, DeviceBuffer};
use crate::error::{Error, Result};
use crate::numerics::{float_to_half_rn, half_to_float};
use crate::ops::gemm::{self, fast::gemm_fast, Gemm, Op};
use crate::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
use crate::status::Status;

/// (label, m, n, k, op(A), op(B)): square, then the default classifier's
/// LSTM shapes (the recurrence's step and its backward, the whole-sequence
/// input projection and its weight gradient).
fn shapes(device: &Device, quick: bool) -> Vec<(&'static str, usize, usize, usize, Op, Op)> {
    let mut s = match (device, quick) {
        (Device::Sim(_), _) => return vec![("square", 64, 64, 64, Op::N, Op::N)],
        (Device::Cuda(_), true) => vec![("square", 4096, 4096, 4096, Op::N, Op::N)],
        (Device::Cuda(_), false) => vec![
            ("square", 1024, 1024, 1024, Op::N, Op::N),
            ("square", 4096, 4096, 4096, Op::N, Op::N),
            ("square", 8192, 8192, 8192, Op::N, Op::N),
        ],
        (Device::Cpu, true) => vec![("square", 512, 512, 512, Op::N, Op::N)],
        (Device::Cpu, false) => vec![
            ("square", 256, 256, 256, Op::N, Op::N),
            ("square", 1024, 1024, 1024, Op::N, Op::N),
            ("square", 2048, 2048, 2048, Op::N, Op::N),
        ],
    };
    s.extend([
        ("step h.W_hh^T", 32, 512, 128, Op::N, Op::T),
        ("step dgates.W_hh", 32, 128, 512, Op::N, Op::N),
        ("seq x.W_ih^T", 2304, 512, 64, Op::N, Op::T),
        ("seq dW = dgates^T.h", 512, 128, 2304, Op::T, Op::N),
    ]);
    s
}

/// Row-major strides (row, column) of op(A) (m x k) and op(B) (k x n).
fn strides(g: &Gemm) -> ((isize, isize), (isize, isize)) {
    let (m, n, k) = (g.m as isize, g.n as isize, g.k as isize);
    let a = match g.a {
        Op::N => (k, 1),
        Op::T => (1, m),
    };
    let b = match g.b {
        Op::N => (n, 1),
        Op::T => (1, k),
    };
    (a, b)
}

/// Refuses buffers of `a`, `b`, `c` elements shorter than `g` needs
/// (`exact`: or longer).
pub(super) fn check_lengths(
    what: &'static str,
    g: &Gemm,
    (a, b, c): (usize, usize, usize),
    exact: bool,
) -> Result<()> {
    let need = (g.m * g.k, g.k * g.n, g.m * g.n);
    let short = a < need.0 || b < need.1 || c < need.2;
    if short || (exact && (a, b, c) != need) {
        return Err(Error::invalid(
            what,
            format!("buffers of {a}, {b}, {c} for {}x{}x{}", g.m, g.n, g.k),
        ));
    }
    Ok(())
}

/// `c = op(a) op(b)` (row-major) with `matrixmultiply::sgemm`, one call per
/// thread of the current rayon pool (at most two: halves of the longer side
/// of C under `rayon::join`).
pub fn matrixmultiply_sgemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    check_lengths("matrixmultiply", g, (a.len(), b.len(), c.len()), true)?;
    let ((rsa, csa), (rsb, csb)) = strides(g);
    let n = g.n;
    // One block of C: rows r0..r1, columns j0..j1, written through `c`.
    let block = |c: &mut [f32], rows: (usize, usize), cols: (usize, usize)| {
        // SAFETY: the strides describe the stored layouts of a and b, whose
        // lengths were checked; the block's rows and columns lie inside C,
        // of which `c` is the part starting at row r0 (row stride n), so
        // every element written is inside `c`.
        unsafe {
            matrixmultiply::sgemm(
                rows.1 - rows.0,
                g.k,
                cols.1 - cols.0,
                g.alpha,
                a.as_ptr().offset(rows.0 as isize * rsa),
                rsa,
                csa,
                b.as_ptr().offset(cols.0 as isize * csb),
                rsb,
                csb,
                0.0,
                c.as_mut_ptr().add(cols.0),
                n as isize,
                1,
            )
        }
    };
    if rayon::current_num_threads() < 2 || g.m < 2 {
        block(c, (0, g.m), (0, n));
    } else {
        // Row halves: disjoint slices of C.
        let h = g.m / 2;
        let (top, bottom) = c.split_at_mut(h * n);
        rayon::join(
            || block(top, (0, h), (0, n)),
            || block(bottom, (h, g.m), (0, n)),
        );
    }
    Ok(())
}

/// `c = op(a) op(b)` (row-major) with the `gemm` crate on the current rayon
/// pool's threads.
pub fn gemm_crate_sgemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    check_lengths("gemm crate", g, (a.len(), b.len(), c.len()), true)?;
    let ((rsa, csa), (rsb, csb)) = strides(g);
    let threads = rayon::current_num_threads();
    let par = if threads < 2 {
        ::gemm::Parallelism::None
    } else {
        ::gemm::Parallelism::Rayon(threads)
    };
    // SAFETY: the strides (column stride first, as the crate takes them)
    // describe the stored layouts of a (m x k), b (k x n) and c (m x n),
    // whose lengths were checked; c is not read (read_dst false).
    unsafe {
        ::gemm::gemm(
            g.m,
            g.n,
            g.k,
            c.as_mut_ptr(),
            1,
            g.n as isize,
            false,
            a.as_ptr(),
            csa,
            rsa,
            b.as_ptr(),
            csb,
            rsb,
            0.0,
            g.alpha,
            false,
            false,
            false,
            par,
        )
    }
    Ok(())
}

/// `op(a) op(b)` in f64 at `(i, j)`, and the sum of the products' magnitudes.
fn dot64(g: &Gemm, a: &[f32], b: &[f32], i: usize, j: usize) -> (f64, f64) {
    let ((rsa, csa), (rsb, csb)) = strides(g);
    let (mut s, mut mag) = (0.0f64, 0.0f64);
    for p in 0..g.k {
        let x = f64::from(a[(i as isize * rsa + p as isize * csa) as usize]);
        let y = f64::from(b[(p as isize * rsb + j as isize * csb) as usize]);
        s += x * y;
        mag += (x * y).abs();
    }
    (s, mag)
}

/// Checks `c` at 256 spread entries against f64: within `rel` of the sum
/// of the products' magnitudes.
fn check_sampled(op: &str, g: &Gemm, a: &[f32], b: &[f32], c: &[f32], rel: f64) -> Result<()> {
    let total = g.m * g.n;
    for s in 0..256usize {
        let at = (s * 7919 * 104_729) % total;
        let (want, mag) = dot64(g, a, b, at / g.n, at % g.n);
        let err = (f64::from(c[at]) - want).abs();
        if err.is_nan() || err > rel * mag.max(1e-30) {
            return Err(Error::BenchCheck {
                op: op.into(),
                msg: format!(
                    "C[{at}] = {}, the f64 product {want} (bound {rel:e} x {mag})",
                    c[at]
                ),
            });
        }
    }
    Ok(())
}

/// The exact tier's product on the CPU twin: the bits every device must give.
fn cpu_twin(g: &Gemm, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    let mut c = DeviceBuffer::<f32>::zeros(&Device::Cpu, g.m * g.n)?;
    let mut st = Status::new(&Device::Cpu)?;
    gemm::gemm(
        &Device::Cpu,
        g,
        &on_cpu(a)?,
        &on_cpu(b)?,
        None,
        &mut c,
        &mut st,
    )?;
    c.copy_dtoh()
}

fn size_name(label: &str, g: &Gemm) -> String {
    let t = |o: Op| if o == Op::N { "N" } else { "T" };
    format!("{label} {}x{}x{} {}{}", g.m, g.n, g.k, t(g.a), t(g.b))
}

fn random(n: usize, salt: u64) -> Result<Vec<f32>> {
    uniform_floats(
        PhiloxKey::from_seed(0x6e33 + salt),
        PhiloxCounter::new(0, 0, 0),
        n,
        1.0,
    )
}

/// Every GEMM row for `b`'s device.
pub fn run(b: &mut Bench<'_>) -> Result<()> {
    match b.device.clone() {
        Device::Cuda(_) => gpu_rows(b),
        dev => host_rows(b, &dev),
    }
}

/// The CPU (and the simulator, for scale): ours, and on the CPU the two
/// libraries.
fn host_rows(b: &mut Bench<'_>, dev: &Device) -> Result<()> {
    for (label, m, n, k, oa, ob) in shapes(dev, b.options.quick) {
        let g = Gemm::new(m, n, k).ops(oa, ob);
        let (ah, bh) = (random(m * k, 1)?, random(k * n, 2)?);
        let a = DeviceBuffer::copy_htod(dev, &ah)?;
        let bb = DeviceBuffer::copy_htod(dev, &bh)?;
        let mut c = DeviceBuffer::<f32>::zeros(dev, m * n)?;
        let mut st = Status::new(dev)?;
        gemm::gemm(dev, &g, &a, &bb, None, &mut c, &mut st)?;
        let got = c.copy_dtoh()?;
        check_sampled("gemm", &g, &ah, &bh, &got, 1e-6)?;
        let check = if matches!(dev, Device::Cpu) {
            "f64 within 1e-6 of sum |ab|".to_string()
        } else {
            same_bits("gemm", &got, &cpu_twin(&g, &ah, &bh)?)?;
            "bits = cpu twin; f64 within 1e-6".to_string()
        };
        let ours = b
            .clock
            .median(|_| gemm::gemm(dev, &g, &a, &bb, None, &mut c, &mut st))?;
        let size = size_name(label, &g);
        let work = Work::Flops(g.flops());
        if !matches!(dev, Device::Cpu) {
            b.push(Row::new("gemm", "exact f32", size, ours, work, None, check));
            continue;
        }
        let mut out = vec![0f32; m * n];
        type Library = fn(&Gemm, &[f32], &[f32], &mut [f32]) -> Result<()>;
        let libraries: [(&str, Library); 2] = [
            ("matrixmultiply", matrixmultiply_sgemm),
            ("gemm crate", gemm_crate_sgemm),
        ];
        for (name, library) in libraries {
            library(&g, &ah, &bh, &mut out)?;
            check_sampled(name, &g, &ah, &bh, &out, 1e-5)?;
            let theirs = b.clock.median(|_| library(&g, &ah, &bh, &mut out))?;
            let reference = Some((name.to_string(), theirs));
            let row = Row::new("gemm", "exact f32", &size, ours, work, reference, &check);
            b.push(row);
        }
    }
    Ok(())
}

/// The GPU: both tiers next to cuBLAS.
fn gpu_rows(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    let Device::Cuda(cuda) = &dev else {
        return Ok(());
    };
    let stream = cuda.cudarc_stream().clone();
    let blas = Blas::open(&stream);
    if let Err(e) = &blas {
        eprintln!("skipped: the cuBLAS reference ({e})");
    }
    for (label, m, n, k, oa, ob) in shapes(&dev, b.options.quick) {
        let g = Gemm::new(m, n, k).ops(oa, ob);
        let size = size_name(label, &g);
        let work = Work::Flops(g.flops());
        let (ah, bh) = (random(m * k, 1)?, random(k * n, 2)?);
        let mut st = Status::new(&dev)?;

        // Exact tier, f32: bits against the CPU twin.
        let a = DeviceBuffer::copy_htod(&dev, &ah)?;
        let bb = DeviceBuffer::copy_htod(&dev, &bh)?;
        let mut c = DeviceBuffer::<f32>::zeros(&dev, m * n)?;
        gemm::gemm(&dev, &g, &a, &bb, None, &mut c, &mut st)?;
        same_bits("gemm exact", &c.copy_dtoh()?, &cpu_twin(&g, &ah, &bh)?)?;
        let ours = b
            .clock
            .median(|_| gemm::gemm(&dev, &g, &a, &bb, None, &mut c, &mut st))?;
        let reference = match &blas {
            Ok(blas) => {
                let (ca, cb) = (stream.clone_htod(&ah)?, stream.clone_htod(&bh)?);
                let mut cc = stream.alloc_zeros::<f32>(m * n)?;
                blas.gemm(&g, &ca, &cb, &mut cc)?;
                let theirs = stream.clone_dtoh(&cc)?;
                check_sampled("cuBLAS SGEMM", &g, &ah, &bh, &theirs, 1e-5)?;
                let s = b.clock.median(|_| blas.gemm(&g, &ca, &cb, &mut cc))?;
                Some(("cuBLAS SGEMM".to_string(), s))
            }
            Err(_) => None,
        };
        b.push(Row::new(
            "gemm",
            "exact f32",
            size.clone(),
            ours,
            work,
            reference,
            "bits = cpu twin",
        ));

        // Fast tier, f16 in and out: against cuBLAS HGEMM's output.
        let (a16, b16): (Vec<u16>, Vec<u16>) = (
            ah.iter().map(|&x| float_to_half_rn(x)).collect(),
            bh.iter().map(|&x| float_to_half_rn(x)).collect(),
        );
        let a = DeviceBuffer::copy_htod(&dev, &a16)?;
        let bb = DeviceBuffer::copy_htod(&dev, &b16)?;
        let mut c16 = DeviceBuffer::<u16>::zeros(&dev, m * n)?;
        gemm_fast(&dev, &g, &a, &bb, None, &mut c16, &mut st)?;
        let ours16: Vec<f32> = c16.copy_dtoh()?.into_iter().map(half_to_float).collect();
        let fast = b
            .clock
            .median(|_| gemm_fast(&dev, &g, &a, &bb, None, &mut c16, &mut st))?;
        let (reference, check) = match &blas {
            Ok(blas) => {
                let (ca, cb) = (stream.clone_htod(&a16)?, stream.clone_htod(&b16)?);
                let mut cc = stream.alloc_zeros::<u16>(m * n)?;
                blas.gemm(&g, &ca, &cb, &mut cc)?;
                let theirs: Vec<f64> = stream
                    .clone_dtoh(&cc)?
                    .into_iter()
                    .map(|h| f64::from(half_to_float(h)))
                    .collect();
                // Both round their f32 sums to f16 (2^-11 relative) once.
                close_to("gemm fast vs cuBLAS", &ours16, &theirs, 2e-3)?;
                let s = b.clock.median(|_| blas.gemm(&g, &ca, &cb, &mut cc))?;
                (
                    Some(("cuBLAS HGEMM".to_string(), s)),
                    "within 2e-3 of cuBLAS",
                )
            }
            Err(_) => (None, "unchecked (no cuBLAS)"),
        };
        b.push(Row::new(
            "gemm", "fast f16", size, fast, work, reference, check,
        ));
        if st.read()?.overflow() {
            return Err(Error::BenchCheck {
                op: "gemm fast".into(),
                msg: "the overflow flag was raised on [-1, 1) data".into(),
            });
        }
    }
    Ok(())
}
