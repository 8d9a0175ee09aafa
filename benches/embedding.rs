//! Embedding throughput on the CPU twin (all cores), each next to a memcpy of
//! the same number of bytes measured in the same run, so the report is a ratio
//! (ours / memcpy bandwidth), not a lone time.
//!
//! Bytes counted: forward reads and writes `N*E*4` each (the gathered rows and
//! the output); backward reads `N*E*4` of `dy` (dW traffic not counted). The
//! memcpy reference copies `N*E*4` bytes. Where a GPU opens, both kernels on
//! it too, next to a device-to-device copy of the same bytes (`common`).
//!
//! `cargo bench --bench embedding`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::embedding;
use shoestring::status::Status;
use std::hint::black_box;

mod common;

/// A ULMFiT-like shape: vocabulary V, width E, positions N = T*B.
const V: usize = 30_000;
const E: usize = 400;

fn ids(n: usize) -> Vec<u32> {
    // Deterministic, skewed like text: small ids are frequent.
    (0..n as u64)
        .map(|t| {
            let x = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            ((x % V as u64) * (x % 7 + 1) / 7) as u32
        })
        .collect()
}

fn bench_embedding(c: &mut Criterion) {
    let cpu = Device::Cpu;
    let w_host = vec![0.5f32; V * E];
    let w = DeviceBuffer::copy_htod(&cpu, &w_host).unwrap();
    let gpu = common::gpu();
    let w_gpu = gpu
        .as_ref()
        .map(|d| DeviceBuffer::copy_htod(d, &w_host).unwrap());
    for (name, n) in [("70x64", 70 * 64), ("70x256", 70 * 256)] {
        let bytes = (n * E * 4) as u64;
        let ids_host = ids(n);
        let id_buf = DeviceBuffer::copy_htod(&cpu, &ids_host).unwrap();
        let src = vec![1.0f32; n * E];
        let mut dst = vec![0.0f32; n * E];
        let mut g = c.benchmark_group("embedding_fwd_f32");
        g.throughput(Throughput::Bytes(bytes));
        g.bench_with_input(BenchmarkId::new("memcpy (reference)", name), &n, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        let mut out = DeviceBuffer::zeros(&cpu, n * E).unwrap();
        let mut st = Status::new(&cpu).unwrap();
        g.bench_with_input(BenchmarkId::new("cpu", name), &n, |b, _| {
            b.iter(|| embedding::embedding_fwd(&cpu, &w, V, E, &id_buf, &mut out, &mut st).unwrap())
        });
        // The GPU's buffers, shared by forward and backward.
        let on_gpu = gpu.as_ref().zip(w_gpu.as_ref()).map(|(d, w)| {
            let ids = DeviceBuffer::copy_htod(d, &ids_host).unwrap();
            let dy = DeviceBuffer::copy_htod(d, &src).unwrap();
            (d, w, ids, dy)
        });
        if let Some((d, w, ids, _)) = &on_gpu {
            common::bench_gpu_memcpy(&mut g, d, name, bytes);
            let mut out = DeviceBuffer::zeros(d, n * E).unwrap();
            let mut gst = Status::new(d).unwrap();
            g.bench_with_input(BenchmarkId::new("cuda", name), &n, |b, _| {
                b.iter(|| {
                    embedding::embedding_fwd(d, *w, V, E, ids, &mut out, &mut gst).unwrap();
                    d.synchronize().unwrap()
                })
            });
        }
        g.finish();
        let mut g = c.benchmark_group("embedding_bwd_f32");
        g.throughput(Throughput::Bytes(bytes));
        g.bench_with_input(BenchmarkId::new("memcpy (reference)", name), &n, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        let dy = DeviceBuffer::copy_htod(&cpu, &src).unwrap();
        let mut dw = DeviceBuffer::zeros(&cpu, V * E).unwrap();
        g.bench_with_input(BenchmarkId::new("cpu", name), &n, |b, _| {
            b.iter(|| embedding::embedding_bwd(&cpu, &dy, &id_buf, V, E, &mut dw, &mut st).unwrap())
        });
        if let Some((d, _, ids, dy)) = &on_gpu {
            common::bench_gpu_memcpy(&mut g, d, name, bytes);
            let mut dw = DeviceBuffer::zeros(d, V * E).unwrap();
            let mut gst = Status::new(d).unwrap();
            g.bench_with_input(BenchmarkId::new("cuda", name), &n, |b, _| {
                b.iter(|| {
                    embedding::embedding_bwd(d, dy, ids, V, E, &mut dw, &mut gst).unwrap();
                    d.synchronize().unwrap()
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_embedding
}
criterion_main!(benches);
