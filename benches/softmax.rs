//! Softmax throughput: the CPU twin (all cores) of log-softmax, the fused
//! cross-entropy forward and its backward, each next to a memcpy of the same
//! bytes (the logits, R x C f32) measured in the same run, so the report is a
//! ratio (ours / memcpy bandwidth), not a lone time. Where a GPU opens, the
//! three on it too, next to a device-to-device copy of the same bytes
//! (`common`).
//!
//! `cargo bench --bench softmax`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::softmax;
use shoestring::status::Status;
use std::hint::black_box;

mod common;

fn bench_softmax(c: &mut Criterion) {
    let mut g = c.benchmark_group("softmax_fwd");
    let cpu = Device::Cpu;
    // (rows, cols): a classifier batch of short rows, and LM-sized wide rows.
    for (rows, cols) in [(4096usize, 256usize), (64, 40_000)] {
        let n = rows * cols;
        let id = format!("{rows}x{cols}");
        g.throughput(Throughput::Bytes(4 * n as u64));
        let x_host = softmax::philox_logits(1, rows, cols, 10.0).unwrap();
        let labels: Vec<u32> = (0..rows).map(|r| (r * 7 % cols) as u32).collect();
        let mut dst = vec![0f32; n];
        g.bench_with_input(BenchmarkId::new("memcpy (reference)", &id), &n, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&x_host)))
        });
        let x = DeviceBuffer::copy_htod(&cpu, &x_host).unwrap();
        let lb = DeviceBuffer::copy_htod(&cpu, &labels).unwrap();
        let mut y = DeviceBuffer::zeros(&cpu, n).unwrap();
        let mut loss = DeviceBuffer::zeros(&cpu, 1).unwrap();
        let mut st = Status::new(&cpu).unwrap();
        g.bench_with_input(BenchmarkId::new("log_softmax cpu", &id), &n, |b, _| {
            b.iter(|| softmax::log_softmax(&cpu, &x, rows, cols, &mut y).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("cross_entropy_fwd cpu", &id),
            &n,
            |b, _| {
                b.iter(|| {
                    softmax::cross_entropy_fwd(
                        &cpu, &x, &lb, rows, cols, &mut y, &mut loss, &mut st,
                    )
                    .unwrap()
                })
            },
        );
        let mut dx = DeviceBuffer::zeros(&cpu, n).unwrap();
        g.bench_with_input(
            BenchmarkId::new("cross_entropy_bwd cpu", &id),
            &n,
            |b, _| {
                b.iter(|| {
                    softmax::cross_entropy_bwd(&cpu, &y, &lb, rows, cols, 1.0, &mut dx, &mut st)
                        .unwrap()
                })
            },
        );
        if let Some(gpu) = common::gpu() {
            common::bench_gpu_memcpy(&mut g, &gpu, &id, 4 * n as u64);
            let x = DeviceBuffer::copy_htod(&gpu, &x_host).unwrap();
            let lb = DeviceBuffer::copy_htod(&gpu, &labels).unwrap();
            let (mut y, mut dx) = (
                DeviceBuffer::zeros(&gpu, n).unwrap(),
                DeviceBuffer::zeros(&gpu, n).unwrap(),
            );
            let mut loss = DeviceBuffer::zeros(&gpu, 1).unwrap();
            let mut st = Status::new(&gpu).unwrap();
            g.bench_with_input(BenchmarkId::new("log_softmax cuda", &id), &n, |b, _| {
                b.iter(|| {
                    softmax::log_softmax(&gpu, &x, rows, cols, &mut y).unwrap();
                    gpu.synchronize().unwrap()
                })
            });
            let ce = BenchmarkId::new("cross_entropy_fwd cuda", &id);
            g.bench_with_input(ce, &n, |b, _| {
                b.iter(|| {
                    softmax::cross_entropy_fwd(
                        &gpu, &x, &lb, rows, cols, &mut y, &mut loss, &mut st,
                    )
                    .unwrap();
                    gpu.synchronize().unwrap()
                })
            });
            let ce = BenchmarkId::new("cross_entropy_bwd cuda", &id);
            g.bench_with_input(ce, &n, |b, _| {
                b.iter(|| {
                    softmax::cross_entropy_bwd(&gpu, &y, &lb, rows, cols, 1.0, &mut dx, &mut st)
                        .unwrap();
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
    targets = bench_softmax
}
criterion_main!(benches);
