//! LSTM cell throughput: the CPU twin's forward and backward (all cores), each
//! next to a memcpy of the same number of bytes measured in the same run, so
//! the report is a ratio (ours / memcpy bandwidth), not a lone time.
//!
//! Bytes per unit (kernels/lstm.cu headers): forward reads 20 and writes 24,
//! backward reads 32 and writes 20.
//!
//! `cargo bench --bench lstm`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::lstm::{self, LstmShape};
use std::hint::black_box;

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

fn bench_lstm(c: &mut Criterion) {
    let cpu = Device::Cpu;
    // (B, H): a classifier batch at AWD-LSTM's hidden size, and a larger one.
    for (batch, hidden) in [(64usize, 1152usize), (256, 1152)] {
        let shape = LstmShape::new(batch, hidden);
        let n = batch * hidden;
        let up = |v: Vec<f32>| DeviceBuffer::copy_htod(&cpu, &v).unwrap();
        let gates = up(filler(4 * n, 1));
        let c_prev = up(filler(n, 2));
        let dh = up(filler(n, 3));
        let dc = up(filler(n, 4));
        let zeros = |len: usize| DeviceBuffer::<f32>::zeros(&cpu, len).unwrap();
        let (mut cc, mut h, mut act) = (zeros(n), zeros(n), zeros(4 * n));
        let (mut dgates, mut dc_prev) = (zeros(4 * n), zeros(n));
        lstm::lstm_cell_fwd(&cpu, shape, &gates, &c_prev, &mut cc, &mut h, &mut act).unwrap();
        let id = format!("{batch}x{hidden}");

        for (name, per_unit) in [
            ("lstm_cell_fwd", FWD_BYTES_PER_UNIT),
            ("lstm_cell_bwd", BWD_BYTES_PER_UNIT),
        ] {
            let mut g = c.benchmark_group(name);
            let bytes = per_unit * n as u64;
            g.throughput(Throughput::Bytes(bytes));
            let src = vec![1u8; bytes as usize];
            let mut dst = vec![0u8; bytes as usize];
            g.bench_with_input(BenchmarkId::new("memcpy (reference)", &id), &n, |b, _| {
                b.iter(|| dst.copy_from_slice(black_box(&src)))
            });
            if name == "lstm_cell_fwd" {
                g.bench_with_input(BenchmarkId::new("cpu", &id), &n, |b, _| {
                    b.iter(|| {
                        lstm::lstm_cell_fwd(&cpu, shape, &gates, &c_prev, &mut cc, &mut h, &mut act)
                            .unwrap()
                    })
                });
            } else {
                g.bench_with_input(BenchmarkId::new("cpu", &id), &n, |b, _| {
                    b.iter(|| {
                        lstm::lstm_cell_bwd(
                            &cpu,
                            shape,
                            &dh,
                            &dc,
                            &act,
                            &c_prev,
                            &cc,
                            &mut dgates,
                            &mut dc_prev,
                        )
                        .unwrap()
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
