//! Elementwise throughput on the CPU twin (all cores): `add` (12 bytes per
//! element: two f32 reads, one write) and the Adam step (28 bytes per element:
//! param, grad, m, v read; param, m, v written), each next to a memcpy of the
//! same number of bytes measured in the same run, so the report is a ratio.
//! Where a GPU opens, both on it too, next to a device-to-device copy
//! (`common`).
//!
//! `cargo bench --bench elementwise`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::elementwise::{self as ew, AdamParams};
use std::hint::black_box;

mod common;

fn filled_on(dev: &Device, n: usize, x: f32) -> DeviceBuffer<f32> {
    DeviceBuffer::copy_htod(dev, &vec![x; n]).unwrap()
}

fn filled(n: usize, x: f32) -> DeviceBuffer<f32> {
    filled_on(&Device::Cpu, n, x)
}

fn bench_add(c: &mut Criterion) {
    let mut g = c.benchmark_group("elementwise_add_f32");
    for n in [1usize << 16, 1 << 22] {
        let bytes = 12 * n as u64;
        g.throughput(Throughput::Bytes(bytes));
        let src = vec![1u32; 3 * n];
        let mut dst = vec![0u32; 3 * n];
        g.bench_with_input(BenchmarkId::new("memcpy (reference)", n), &n, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        let (x, y, mut out) = (filled(n, 1.5), filled(n, -0.25), filled(n, 0.0));
        g.bench_with_input(BenchmarkId::new("cpu", n), &n, |b, _| {
            b.iter(|| ew::add(&Device::Cpu, &x, &y, &mut out).unwrap())
        });
        if let Some(gpu) = common::gpu() {
            common::bench_gpu_memcpy(&mut g, &gpu, n, bytes);
            let f = |x| filled_on(&gpu, n, x);
            let (x, y, mut out) = (f(1.5), f(-0.25), f(0.0));
            g.bench_with_input(BenchmarkId::new("cuda", n), &n, |b, _| {
                b.iter(|| {
                    ew::add(&gpu, &x, &y, &mut out).unwrap();
                    gpu.synchronize().unwrap()
                })
            });
        }
    }
    g.finish();
}

fn bench_adam(c: &mut Criterion) {
    let mut g = c.benchmark_group("elementwise_adam_f32");
    let hp = AdamParams {
        weight_decay: 0.01,
        ..AdamParams::default()
    };
    for n in [1usize << 16, 1 << 22] {
        let bytes = 28 * n as u64;
        g.throughput(Throughput::Bytes(bytes));
        let src = vec![1u32; 7 * n];
        let mut dst = vec![0u32; 7 * n];
        g.bench_with_input(BenchmarkId::new("memcpy (reference)", n), &n, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        let (mut p, grad) = (filled(n, 0.5), filled(n, 1e-3));
        let (mut m, mut v) = (filled(n, 0.0), filled(n, 0.0));
        g.bench_with_input(BenchmarkId::new("cpu", n), &n, |b, _| {
            // A fixed t keeps the work identical across iterations.
            b.iter(|| ew::adam_step(&Device::Cpu, &hp, 10, &mut p, &grad, &mut m, &mut v).unwrap())
        });
        if let Some(gpu) = common::gpu() {
            common::bench_gpu_memcpy(&mut g, &gpu, n, bytes);
            let f = |x| filled_on(&gpu, n, x);
            let (mut p, grad, mut m, mut v) = (f(0.5), f(1e-3), f(0.0), f(0.0));
            g.bench_with_input(BenchmarkId::new("cuda", n), &n, |b, _| {
                b.iter(|| {
                    ew::adam_step(&gpu, &hp, 10, &mut p, &grad, &mut m, &mut v).unwrap();
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
    targets = bench_add, bench_adam
}
criterion_main!(benches);
