//! Dropout throughput: the CPU twin (all cores) forward, next to a memcpy of
//! the same bytes (4N read + 4N written) measured in the same run, so the
//! report is a ratio (ours / memcpy bandwidth), not a lone time. The simulator
//! runs too where it is built, for scale; where a GPU opens, the kernels on it,
//! next to a device-to-device copy (`common`).
//!
//! `cargo bench --bench dropout`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::{Device, DeviceBuffer, SimOptions};
use shoestring::ops::dropout::{self, DropoutMask};
use shoestring::rng::{RngState, Stream, StreamFamily};
use std::hint::black_box;

mod common;

fn bench_dropout(c: &mut Criterion) {
    let mut g = c.benchmark_group("dropout_fwd_f32");
    let mask = DropoutMask::new(
        0.5,
        &RngState::new(0x5eed),
        Stream::new(StreamFamily::User, 0),
    )
    .unwrap();
    for n in [1usize << 16, 1 << 22] {
        // Bytes moved: n floats read and n written, as for the memcpy.
        g.throughput(Throughput::Bytes(8 * n as u64));
        let src = vec![1.0f32; n];
        let mut dst = vec![0.0f32; n];
        g.bench_with_input(BenchmarkId::new("memcpy (reference)", n), &n, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        let x = DeviceBuffer::copy_htod(&Device::Cpu, &src).unwrap();
        let mut out = DeviceBuffer::zeros(&Device::Cpu, n).unwrap();
        g.bench_with_input(BenchmarkId::new("cpu", n), &n, |b, _| {
            b.iter(|| dropout::dropout_fwd(&Device::Cpu, &mask, &x, &mut out).unwrap())
        });
        // The same n elements as x[T][B][F] with B*F = 64*256.
        let t_b_f = (n / (64 * 256), 64, 256);
        g.bench_with_input(BenchmarkId::new("cpu variational", n), &n, |b, _| {
            b.iter(|| dropout::variational_fwd(&Device::Cpu, &mask, t_b_f, &x, &mut out).unwrap())
        });
        if n <= 1 << 16 {
            if let Ok(sim) = Device::sim_with(SimOptions::default()) {
                let xs = DeviceBuffer::copy_htod(&sim, &src).unwrap();
                let mut o = DeviceBuffer::zeros(&sim, n).unwrap();
                g.bench_with_input(BenchmarkId::new("sim", n), &n, |b, _| {
                    b.iter(|| dropout::dropout_fwd(&sim, &mask, &xs, &mut o).unwrap())
                });
            }
        }
        if let Some(gpu) = common::gpu() {
            common::bench_gpu_memcpy(&mut g, &gpu, n, 8 * n as u64);
            let xg = DeviceBuffer::copy_htod(&gpu, &src).unwrap();
            let mut o = DeviceBuffer::zeros(&gpu, n).unwrap();
            g.bench_with_input(BenchmarkId::new("cuda", n), &n, |b, _| {
                b.iter(|| {
                    dropout::dropout_fwd(&gpu, &mask, &xg, &mut o).unwrap();
                    gpu.synchronize().unwrap()
                })
            });
            g.bench_with_input(BenchmarkId::new("cuda variational", n), &n, |b, _| {
                b.iter(|| {
                    dropout::variational_fwd(&gpu, &mask, t_b_f, &xg, &mut o).unwrap();
                    gpu.synchronize().unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(15).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_dropout
}
criterion_main!(benches);
