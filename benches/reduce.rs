//! Canonical sum throughput on the CPU twin, 1 and 2 rayon threads, next to a
//! memcpy of the same bytes and a naive `iter().sum()` (one serial add chain,
//! a different order) measured in the same run, so the report is a ratio.
//! Max and sum of squares (1 thread) for comparison. Where a GPU opens, the
//! three reductions on it too (`reduce_all`), next to a device-to-device copy
//! (`common`).
//!
//! `cargo bench --bench reduce`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::DeviceBuffer;
use shoestring::ops::reduce::{self, cpu, ReduceOp};
use std::hint::black_box;

mod common;

fn bench_reduce(c: &mut Criterion) {
    let mut g = c.benchmark_group("reduce_sum");
    for n in [1usize << 20, 1 << 24] {
        g.throughput(Throughput::Bytes(4 * n as u64));
        let x: Vec<f32> = (0..n).map(|i| (i % 1013) as f32 * 0.001 - 0.5).collect();
        let mut dst = vec![0f32; n];
        g.bench_with_input(BenchmarkId::new("memcpy (reference)", n), &n, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&x)))
        });
        g.bench_with_input(BenchmarkId::new("naive iter().sum()", n), &n, |b, _| {
            b.iter(|| black_box(&x).iter().sum::<f32>())
        });
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            g.bench_with_input(
                BenchmarkId::new(format!("canonical_sum {threads}t"), n),
                &n,
                |b, _| b.iter(|| pool.install(|| cpu::canonical_sum(black_box(&x)))),
            );
        }
        // The other two ops, one thread (softmax and norms build on them).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        g.bench_with_input(BenchmarkId::new("canonical_max 1t", n), &n, |b, _| {
            b.iter(|| pool.install(|| cpu::canonical_max(black_box(&x))))
        });
        g.bench_with_input(
            BenchmarkId::new("canonical_sum_squares 1t", n),
            &n,
            |b, _| b.iter(|| pool.install(|| cpu::canonical_sum_squares(black_box(&x)))),
        );
        if let Some(gpu) = common::gpu() {
            common::bench_gpu_memcpy(&mut g, &gpu, n, 4 * n as u64);
            let xd = DeviceBuffer::copy_htod(&gpu, &x).unwrap();
            let mut out = DeviceBuffer::zeros(&gpu, 1).unwrap();
            for (name, op) in [
                ("sum", ReduceOp::Sum),
                ("max", ReduceOp::Max),
                ("sum_squares", ReduceOp::SumSquares),
            ] {
                let id = BenchmarkId::new(format!("reduce_all {name} cuda"), n);
                g.bench_with_input(id, &n, |b, _| {
                    b.iter(|| {
                        reduce::reduce_all(&gpu, op, &xd, &mut out).unwrap();
                        gpu.synchronize().unwrap()
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_reduce
}
criterion_main!(benches);
