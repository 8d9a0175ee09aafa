//! LSTM cell throughput: the CPU twin's forward and backward (all cores), each
//! next to a memcpy of the same number of bytes measured in the same run, so
//! the report is a ratio (ours / memcpy bandwidth), not a lone time.
//!
//! Bytes per unit (kernels/lstm.cu headers): forward reads 20 and writes 24,
//! backward reads 32 and writes 20. Where a GPU opens, both kernels on it too,
//! next to a device-to-device copy of the same bytes (`common`).
//!
//! `cargo bench --bench lstm`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::lstm::{self, LstmShape};
use std::hint::black_box;

mod common;

const FWD_BYTES_PER_UNIT: u64 = 44;
const BWD_BYTES_PER_UNIT: u64 = 52;

/// Deterministic filler in [-4, 4): the values only need to be ordinary.
fn filler(n: usize, salt: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|k| {
            let w = k.wrapping_mul(0x9e37_79b9) ^ salt.wrapping_mul(0x85eb_ca6b);
            (w >> 8) as f32 / 2_097_152.0 - 4.0
        })
        .collect()
}

/// The cell's buffers on one device, forward already run once (backward reads
/// its `act` and `c`).
struct Cell {
    gates: DeviceBuffer<f32>,
    c_prev: DeviceBuffer<f32>,
    dh: DeviceBuffer<f32>,
    dc: DeviceBuffer<f32>,
    c: DeviceBuffer<f32>,
    h: DeviceBuffer<f32>,
    act: DeviceBuffer<f32>,
    dgates: DeviceBuffer<f32>,
    dc_prev: DeviceBuffer<f32>,
}

impl Cell {
    fn new(dev: &Device, shape: LstmShape, n: usize) -> Cell {
        let up = |v: Vec<f32>| DeviceBuffer::copy_htod(dev, &v).unwrap();
        let zeros = |len: usize| DeviceBuffer::<f32>::zeros(dev, len).unwrap();
        let mut cell = Cell {
            gates: up(filler(4 * n, 1)),
            c_prev: up(filler(n, 2)),
            dh: up(filler(n, 3)),
            dc: up(filler(n, 4)),
            c: zeros(n),
            h: zeros(n),
            act: zeros(4 * n),
            dgates: zeros(4 * n),
            dc_prev: zeros(n),
        };
        cell.fwd(dev, shape);
        cell
    }

    fn fwd(&mut self, dev: &Device, shape: LstmShape) {
        let Cell {
            gates,
            c_prev,
            c,
            h,
            act,
            ..
        } = self;
        lstm::lstm_cell_fwd(dev, shape, gates, c_prev, c, h, act).unwrap();
    }

    fn bwd(&mut self, dev: &Device, shape: LstmShape) {
        let Cell {
            dh,
            dc,
            act,
            c_prev,
            c,
            dgates,
            dc_prev,
            ..
        } = self;
        lstm::lstm_cell_bwd(dev, shape, dh, dc, act, c_prev, c, dgates, dc_prev).unwrap();
    }
}

fn bench_lstm(c: &mut Criterion) {
    let cpu = Device::Cpu;
    let gpu = common::gpu();
    // (B, H): a classifier batch at AWD-LSTM's hidden size, and a larger one.
    for (batch, hidden) in [(64usize, 1152usize), (256, 1152)] {
        let shape = LstmShape::new(batch, hidden);
        let n = batch * hidden;
        let mut on_cpu = Cell::new(&cpu, shape, n);
        let mut on_gpu = gpu.as_ref().map(|d| (d, Cell::new(d, shape, n)));
        let id = format!("{batch}x{hidden}");
        for (name, per_unit) in [
            ("lstm_cell_fwd", FWD_BYTES_PER_UNIT),
            ("lstm_cell_bwd", BWD_BYTES_PER_UNIT),
        ] {
            let fwd = name == "lstm_cell_fwd";
            let mut g = c.benchmark_group(name);
            let bytes = per_unit * n as u64;
            g.throughput(Throughput::Bytes(bytes));
            let src = vec![1u8; bytes as usize];
            let mut dst = vec![0u8; bytes as usize];
            g.bench_with_input(BenchmarkId::new("memcpy (reference)", &id), &n, |b, _| {
                b.iter(|| dst.copy_from_slice(black_box(&src)))
            });
            g.bench_with_input(BenchmarkId::new("cpu", &id), &n, |b, _| {
                b.iter(|| {
                    if fwd {
                        on_cpu.fwd(&cpu, shape)
                    } else {
                        on_cpu.bwd(&cpu, shape)
                    }
                })
            });
            if let Some((d, cell)) = &mut on_gpu {
                common::bench_gpu_memcpy(&mut g, d, &id, bytes);
                g.bench_with_input(BenchmarkId::new("cuda", &id), &n, |b, _| {
                    b.iter(|| {
                        if fwd {
                            cell.fwd(d, shape)
                        } else {
                            cell.bwd(d, shape)
                        }
                        d.synchronize().unwrap()
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_lstm
}
criterion_main!(benches);
