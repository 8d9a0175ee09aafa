//! detmath throughput: the CPU twin (all cores) applying each function to
//! 2^20 floats, next to a memcpy of the same bytes measured in the same run, so
//! the report is a ratio (ours / memcpy bandwidth), not a lone time. Where a
//! GPU opens, each function on it too, next to a device-to-device copy
//! (`common`).
//!
//! The CPU path runs under `device::with_fma`: compiled for `avx2,fma` where
//! the CPU has both, else portable (`mul_add` a correctly rounded libm call);
//! `SHOESTRING_CPU_PORTABLE=1` measures the portable path. Same bits either way.
//!
//! `cargo bench --bench detmath`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::detmath::{self, DetmathOp};
use std::hint::black_box;

mod common;

fn bench_detmath(c: &mut Criterion) {
    let mut g = c.benchmark_group("detmath_apply_f32");
    let n = 1usize << 20;
    // Bytes moved: read 4 and write 4 per element.
    g.throughput(Throughput::Bytes(8 * n as u64));
    let src = vec![1.0f32; 2 * n];
    let mut dst = vec![0.0f32; 2 * n];
    g.bench_with_input(BenchmarkId::new("memcpy (reference)", n), &n, |b, _| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    // Inputs spread over each function's interesting range.
    let xs: Vec<f32> = (0..n)
        .map(|i| -20.0 + 40.0 * (i as f32 / n as f32))
        .collect();
    let pos: Vec<f32> = xs.iter().map(|x| x.abs() + 1e-3).collect();
    for op in DetmathOp::ALL {
        let data = if op == DetmathOp::Log || op == DetmathOp::Log1p {
            &pos
        } else {
            &xs
        };
        let input = DeviceBuffer::copy_htod(&Device::Cpu, data).unwrap();
        let mut out = DeviceBuffer::zeros(&Device::Cpu, n).unwrap();
        g.bench_with_input(BenchmarkId::new(op.name(), n), &n, |b, _| {
            b.iter(|| detmath::apply(&Device::Cpu, op, &input, &mut out).unwrap())
        });
    }
    if let Some(gpu) = common::gpu() {
        common::bench_gpu_memcpy(&mut g, &gpu, n, 8 * n as u64);
        for op in DetmathOp::ALL {
            let data = if op == DetmathOp::Log || op == DetmathOp::Log1p {
                &pos
            } else {
                &xs
            };
            let input = DeviceBuffer::copy_htod(&gpu, data).unwrap();
            let mut out = DeviceBuffer::zeros(&gpu, n).unwrap();
            let id = BenchmarkId::new(format!("{} cuda", op.name()), n);
            g.bench_with_input(id, &n, |b, _| {
                b.iter(|| {
                    detmath::apply(&gpu, op, &input, &mut out).unwrap();
                    gpu.synchronize().unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_detmath
}
criterion_main!(benches);
