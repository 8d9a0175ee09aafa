//! Philox throughput: the CPU twin (all cores) and the simulator, each next to
//! a memcpy of the same number of bytes measured in the same run, so the
//! report is a ratio (ours / memcpy bandwidth), not a lone time. Where a GPU
//! opens, the kernel on it too, next to a device-to-device copy (`common`).
//!
//! `cargo bench --bench philox`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::{Device, DeviceBuffer, SimOptions};
use shoestring::ops::philox::{self, PhiloxCounter, PhiloxKey};
use std::hint::black_box;

mod common;

fn bench_philox(c: &mut Criterion) {
    let mut g = c.benchmark_group("philox_blocks_u32");
    let key = PhiloxKey::from_seed(0x5eed);
    let base = PhiloxCounter::new(0, 3, 1);
    for blocks in [1u64 << 16, 1 << 20] {
        let bytes = blocks * 16;
        g.throughput(Throughput::Bytes(bytes));
        let src = vec![1u32; 4 * blocks as usize];
        let mut dst = vec![0u32; 4 * blocks as usize];
        g.bench_with_input(
            BenchmarkId::new("memcpy (reference)", blocks),
            &blocks,
            |b, _| b.iter(|| dst.copy_from_slice(black_box(&src))),
        );
        let mut out = DeviceBuffer::zeros(&Device::Cpu, 4 * blocks as usize).unwrap();
        g.bench_with_input(BenchmarkId::new("cpu", blocks), &blocks, |b, &n| {
            b.iter(|| philox::philox_blocks_u32(&Device::Cpu, key, base, n, &mut out).unwrap())
        });
        if let Ok(sim) = Device::sim_with(SimOptions::default()) {
            let mut out = DeviceBuffer::zeros(&sim, 4 * blocks as usize).unwrap();
            g.bench_with_input(BenchmarkId::new("sim", blocks), &blocks, |b, &n| {
                b.iter(|| philox::philox_blocks_u32(&sim, key, base, n, &mut out).unwrap())
            });
        }
        if let Some(gpu) = common::gpu() {
            common::bench_gpu_memcpy(&mut g, &gpu, blocks, bytes);
            let mut out = DeviceBuffer::zeros(&gpu, 4 * blocks as usize).unwrap();
            g.bench_with_input(BenchmarkId::new("cuda", blocks), &blocks, |b, &n| {
                b.iter(|| {
                    philox::philox_blocks_u32(&gpu, key, base, n, &mut out).unwrap();
                    gpu.synchronize().unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_philox
}
criterion_main!(benches);
