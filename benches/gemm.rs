//! Exact-tier GEMM on the CPU twin, f32 in and out, on 1 and 2 rayon threads,
//! next to two libraries measured in the same run so the report is a ratio,
//! called as `shoestring bench` calls them (`shoestring::bench::gemm`):
//! `matrixmultiply::sgemm` (default features: its AVX-512 kernel, and no
//! `threading`, so one call is one thread; its 2-thread row is two calls on
//! the two row halves of C under `rayon::join`) and the `gemm` crate with its
//! `x86-v4` (AVX-512) kernels (`Parallelism::None`, and `Rayon(2)` in a
//! 2-thread pool). Neither library keeps our k order, so only the time is
//! comparable, not the bits. Each measurement loop runs inside its rayon pool.
//! Throughput is 2 m n k elements: criterion's "elem/s" are flop/s.
//!
//! Shapes: square 256..2048, and the model's: x[32x128] w[128x512], its
//! backward dW = x^T dy (TN) and dx = dy w^T (NT), and the same for
//! x[2304x64] w[64x512].
//!
//! `cargo bench --bench gemm -- --warm-up-time 1 --measurement-time 2`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::bench::gemm::{gemm_crate_sgemm, matrixmultiply_sgemm};
use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::gemm::{self, Gemm, Op};
use shoestring::status::Status;
use std::hint::black_box;

/// (label, m, n, k, op(A), op(B)).
const SHAPES: [(&str, usize, usize, usize, Op, Op); 10] = [
    ("square", 256, 256, 256, Op::N, Op::N),
    ("square", 512, 512, 512, Op::N, Op::N),
    ("square", 1024, 1024, 1024, Op::N, Op::N),
    ("square", 2048, 2048, 2048, Op::N, Op::N),
    ("fwd x32x128.w128x512", 32, 512, 128, Op::N, Op::N),
    ("dW x^T.dy TN", 128, 512, 32, Op::T, Op::N),
    ("dx dy.w^T NT", 32, 128, 512, Op::N, Op::T),
    ("fwd x2304x64.w64x512", 2304, 512, 64, Op::N, Op::N),
    ("dW x^T.dy TN", 64, 512, 2304, Op::T, Op::N),
    ("dx dy.w^T NT", 2304, 64, 512, Op::N, Op::T),
];

/// Deterministic inputs in [-1, 1).
fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = i.wrapping_mul(0x9e37_79b9) ^ seed.wrapping_mul(0x85eb_ca6b);
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_f32");
    for &(label, m, n, k, oa, ob) in &SHAPES {
        let g = Gemm::new(m, n, k).ops(oa, ob);
        let id = format!("{label} {m}x{n}x{k}");
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let dev = Device::Cpu;
        let ad = DeviceBuffer::copy_htod(&dev, &a).unwrap();
        let bd = DeviceBuffer::copy_htod(&dev, &b).unwrap();
        let mut cd = DeviceBuffer::<f32>::zeros(&dev, m * n).unwrap();
        let mut flag = Status::new(&dev).unwrap();
        let mut out = vec![0.0f32; m * n];
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // Each measurement loop runs inside the pool, so that no
            // iteration pays for a hand-off from the bench thread to it.
            group.bench_function(BenchmarkId::new(format!("ours {threads}t"), &id), |bch| {
                pool.install(|| {
                    bch.iter(|| {
                        gemm::gemm(&dev, &g, black_box(&ad), &bd, None, &mut cd, &mut flag).unwrap()
                    })
                })
            });
            let mm = BenchmarkId::new(format!("matrixmultiply {threads}t"), &id);
            group.bench_function(mm, |bch| {
                pool.install(|| {
                    bch.iter(|| matrixmultiply_sgemm(&g, black_box(&a), &b, &mut out).unwrap())
                })
            });
            let gc = BenchmarkId::new(format!("gemm-crate {threads}t"), &id);
            group.bench_function(gc, |bch| {
                pool.install(|| {
                    bch.iter(|| gemm_crate_sgemm(&g, black_box(&a), &b, &mut out).unwrap())
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_gemm
}
criterion_main!(benches);
