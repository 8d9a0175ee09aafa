//! The memory-bound families: each op's GB/s (bytes read + written) next to
//! a copy that moves the same bytes ([`Bench::copy_reference`]), the two
//! timed in alternating batches.
//!
//! Sizes: N = 2^22 floats on the CPU (2^20 with `--quick`), 2^26 on the GPU
//! (2^24), 2^14 on the simulator (it is for checking, not speed). Each op is
//! checked once on buffer set 0 before it is timed: on Cuda and Sim its
//! output bits against the CPU twin's, and on every device against the
//! per-element rule (dropout, add, detmath, gather) or an f64 evaluation
//! (the rest), so that a timed op is known to compute what it names.

use super::{close_to, same_bits, Bench, Row, Work};
use crate::device::{Device, DeviceBuffer};
use crate::error::Result;
use crate::ops::detmath::{self, DetmathOp};
use crate::ops::dropout::{self, DropoutMask};
use crate::ops::elementwise::{self, AdamParams};
use crate::ops::embedding;
use crate::ops::lstm::{self, LstmShape};
use crate::ops::philox::{self, uniform_floats, PhiloxCounter, PhiloxKey};
use crate::ops::reduce::{self, ReduceOp};
use crate::ops::softmax;
use crate::rng::{RngState, Stream, StreamFamily};
use crate::status::Status;

/// Floats per buffer of the elementwise-shaped ops.
fn elements(b: &Bench<'_>) -> usize {
    match (&b.device, b.options.quick) {
        (Device::Sim(_), _) => 1 << 14,
        (Device::Cpu, true) => 1 << 20,
        (Device::Cpu, false) => 1 << 22,
        (Device::Cuda(_), true) => 1 << 24,
        (Device::Cuda(_), false) => 1 << 26,
    }
}

/// `2^k` as `2^k`, anything else as a number.
fn size_name(n: usize) -> String {
    if n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else {
        n.to_string()
    }
}

/// `n` random floats in `[-scale, scale)`, distinct per `salt`.
fn random(n: usize, scale: f32, salt: u64) -> Result<Vec<f32>> {
    uniform_floats(
        PhiloxKey::from_seed(0xbe7c_0000 + salt),
        PhiloxCounter::new(0, 0, 0),
        n,
        scale,
    )
}

/// `sets` copies of `host` on `device`.
fn upload<T: crate::device::Element>(
    device: &Device,
    host: &[T],
    sets: usize,
) -> Result<Vec<DeviceBuffer<T>>> {
    (0..sets)
        .map(|_| DeviceBuffer::copy_htod(device, host))
        .collect()
}

/// `host` in a CPU buffer (the twin's input).
pub(super) fn on_cpu<T: crate::device::Element>(host: &[T]) -> Result<DeviceBuffer<T>> {
    DeviceBuffer::copy_htod(&Device::Cpu, host)
}

/// `sets` zeroed buffers of `n` on `device`.
fn zeros<T: crate::device::Element>(
    device: &Device,
    n: usize,
    sets: usize,
) -> Result<Vec<DeviceBuffer<T>>> {
    (0..sets).map(|_| DeviceBuffer::zeros(device, n)).collect()
}

/// Times `f` (rotating through `sets`) and the copy of the same `traffic`
/// bytes in alternating batches, and records the row.
#[allow(clippy::too_many_arguments)] // a row's fields
fn row(
    b: &mut Bench<'_>,
    family: &'static str,
    op: &str,
    size: String,
    traffic: u64,
    sets: usize,
    check: &str,
    f: impl FnMut(usize) -> Result<()>,
) -> Result<()> {
    let copy = b.copy_reference(traffic)?;
    let (s, r) = b.clock.median_pair((sets, f), (copy.sets, copy.run))?;
    b.push(Row::new(
        family,
        op,
        size,
        s,
        Work::Bytes(traffic),
        Some((copy.name, r)),
        check,
    ));
    Ok(())
}

/// On Cuda and Sim: `got` against the CPU twin's output bit for bit (the
/// exact tier's promise); `twin` runs the op on the CPU device it is given.
/// On the CPU, which is the twin, nothing.
fn against_twin<T: Copy + PartialEq + std::fmt::Debug>(
    dev: &Device,
    op: &str,
    got: &[T],
    twin: impl FnOnce(&Device) -> Result<Vec<T>>,
) -> Result<()> {
    if matches!(dev, Device::Cpu) {
        return Ok(());
    }
    same_bits(op, got, &twin(&Device::Cpu)?)
}

/// What the check of a row on this device was: on Cuda and Sim every row
/// has passed [`against_twin`] first.
fn check_name(device: &Device, rule: &str) -> String {
    match device {
        Device::Cpu => rule.to_string(),
        _ => format!("bits = cpu twin; {rule}"),
    }
}

/// Runs every memory-bound family `b.options` selects.
pub fn run(b: &mut Bench<'_>) -> Result<()> {
    type Rows = fn(&mut Bench<'_>) -> Result<()>;
    let families: [(&str, Rows); 8] = [
        ("philox", philox_rows),
        ("dropout", dropout_rows),
        ("elementwise", elementwise_rows),
        ("detmath", detmath_rows),
        ("reduce", reduce_rows),
        ("embedding", embedding_rows),
        ("softmax", softmax_rows),
        ("lstm-cell", lstm_cell_rows),
    ];
    for (name, f) in families {
        if b.options.wants(name) {
            f(b)?;
        }
    }
    Ok(())
}

fn philox_rows(b: &mut Bench<'_>) -> Result<()> {
    const OP: &str = "philox blocks";
    let dev = b.device.clone();
    let n = elements(b); // words written
    let blocks = (n / 4) as u64;
    let key = PhiloxKey::from_seed(7);
    let base = PhiloxCounter::new(0, 0, 0);
    let sets = Bench::sets(4 * n as u64);
    let mut out = zeros::<u32>(&dev, n, sets)?;
    philox::philox_blocks_u32(&dev, key, base, blocks, &mut out[0])?;
    let got = out[0].copy_dtoh()?;
    let rule = "bulk = one block at a time";
    against_twin(&dev, OP, &got, |cpu| {
        philox::philox_blocks(cpu, key, base, blocks)?.copy_dtoh()
    })?;
    for k in [0, blocks / 2, blocks - 1] {
        let one = philox::philox_blocks(&Device::Cpu, key, PhiloxCounter::new(k, 0, 0), 1)?
            .copy_dtoh()?;
        let at = 4 * k as usize;
        same_bits(OP, &got[at..at + 4], &one)?;
    }
    row(
        b,
        "philox",
        "blocks_u32",
        size_name(n),
        4 * n as u64,
        sets,
        &check_name(&dev, rule),
        |i| philox::philox_blocks_u32(&dev, key, base, blocks, &mut out[i % sets]),
    )
}

fn dropout_rows(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    let n = elements(b);
    let mask = DropoutMask::new(
        0.5,
        &RngState::new(0x5eed),
        Stream::new(StreamFamily::User, 0),
    )?;
    let host = random(n, 1.0, 1)?;
    let sets = Bench::sets(8 * n as u64);
    let x = upload(&dev, &host, sets)?;
    let mut out = zeros::<f32>(&dev, n, sets)?;
    let want: Vec<f32> = host
        .iter()
        .enumerate()
        .map(|(i, &v)| dropout::cpu::apply(v, mask.keeps(i as u64), mask.scale()))
        .collect();
    let check = check_name(&dev, "bits = per-element rule");
    for (name, fwd) in [("fwd", true), ("bwd", false)] {
        let op = |x: &DeviceBuffer<f32>, out: &mut DeviceBuffer<f32>| {
            if fwd {
                dropout::dropout_fwd(&dev, &mask, x, out)
            } else {
                dropout::dropout_bwd(&dev, &mask, x, out)
            }
        };
        op(&x[0], &mut out[0])?;
        let got = out[0].copy_dtoh()?;
        same_bits("dropout", &got, &want)?;
        against_twin(&dev, "dropout", &got, |cpu| {
            let mut twin = DeviceBuffer::zeros(cpu, n)?;
            if fwd {
                dropout::dropout_fwd(cpu, &mask, &on_cpu(&host)?, &mut twin)?;
            } else {
                dropout::dropout_bwd(cpu, &mask, &on_cpu(&host)?, &mut twin)?;
            }
            twin.copy_dtoh()
        })?;
        row(
            b,
            "dropout",
            name,
            size_name(n),
            8 * n as u64,
            sets,
            &check,
            |i| op(&x[i % sets], &mut out[i % sets]),
        )?;
    }
    Ok(())
}

fn elementwise_rows(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    let n = elements(b);
    let (ha, hb) = (random(n, 1.0, 2)?, random(n, 1.0, 3)?);
    // add: a + b, exact.
    let sets = Bench::sets(12 * n as u64);
    let (a, bb) = (upload(&dev, &ha, sets)?, upload(&dev, &hb, sets)?);
    let mut out = zeros::<f32>(&dev, n, sets)?;
    elementwise::add(&dev, &a[0], &bb[0], &mut out[0])?;
    let want: Vec<f32> = ha.iter().zip(&hb).map(|(x, y)| x + y).collect();
    let got = out[0].copy_dtoh()?;
    same_bits("add", &got, &want)?;
    against_twin(&dev, "add", &got, |cpu| {
        let mut twin = DeviceBuffer::zeros(cpu, n)?;
        elementwise::add(cpu, &on_cpu(&ha)?, &on_cpu(&hb)?, &mut twin)?;
        twin.copy_dtoh()
    })?;
    let check = check_name(&dev, "bits = a + b");
    row(
        b,
        "elementwise",
        "add",
        size_name(n),
        12 * n as u64,
        sets,
        &check,
        |i| {
            let k = i % sets;
            elementwise::add(&dev, &a[k], &bb[k], &mut out[k])
        },
    )?;
    drop((a, bb, out));

    // Adam: reads param, grad, m, v; writes param, m, v.
    let hp = AdamParams {
        lr: 1e-3,
        weight_decay: 0.01,
        ..AdamParams::default()
    };
    let sets = Bench::sets(28 * n as u64);
    let hm: Vec<f32> = hb.iter().map(|g| 0.1 * g).collect();
    let hv: Vec<f32> = hb.iter().map(|g| 0.01 * g * g).collect();
    let mut p = upload(&dev, &ha, sets)?;
    let g = upload(&dev, &hb, sets)?;
    let mut m = upload(&dev, &hm, sets)?;
    let mut v = upload(&dev, &hv, sets)?;
    let t = 3;
    elementwise::adam_step(&dev, &hp, t, &mut p[0], &g[0], &mut m[0], &mut v[0])?;
    let got = p[0].copy_dtoh()?;
    against_twin(&dev, "adam", &got, |cpu| {
        let (mut tp, mut tm, mut tv) = (on_cpu(&ha)?, on_cpu(&hm)?, on_cpu(&hv)?);
        elementwise::adam_step(cpu, &hp, t, &mut tp, &on_cpu(&hb)?, &mut tm, &mut tv)?;
        tp.copy_dtoh()
    })?;
    let bc1 = 1.0 - f64::from(hp.beta1).powi(t as i32);
    let bc2 = 1.0 - f64::from(hp.beta2).powi(t as i32);
    let want: Vec<f64> = (0..n)
        .map(|i| {
            let (w, g) = (f64::from(ha[i]), f64::from(hb[i]));
            let m1 = f64::from(hp.beta1) * f64::from(hm[i]) + (1.0 - f64::from(hp.beta1)) * g;
            let v1 = f64::from(hp.beta2) * f64::from(hv[i]) + (1.0 - f64::from(hp.beta2)) * g * g;
            let upd = (m1 / bc1) / ((v1 / bc2).sqrt() + f64::from(hp.eps));
            w - f64::from(hp.lr) * f64::from(hp.weight_decay) * w - f64::from(hp.lr) * upd
        })
        .collect();
    close_to("adam", &got, &want, 1e-5)?;
    let check = check_name(&dev, "f64 Adam within 1e-5");
    row(
        b,
        "elementwise",
        "adam_step",
        size_name(n),
        28 * n as u64,
        sets,
        &check,
        |i| {
            let k = i % sets;
            elementwise::adam_step(&dev, &hp, t, &mut p[k], &g[k], &mut m[k], &mut v[k])
        },
    )
}

fn detmath_rows(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    let n = elements(b);
    let sets = Bench::sets(8 * n as u64);
    for op in [
        DetmathOp::Exp,
        DetmathOp::Tanh,
        DetmathOp::Sigmoid,
        DetmathOp::Log,
    ] {
        // Log gets (0, 8]; the others [-8, 8).
        let host: Vec<f32> = random(n, 8.0, 4)?
            .into_iter()
            .map(|x| {
                if op == DetmathOp::Log {
                    x.abs() + 1e-3
                } else {
                    x
                }
            })
            .collect();
        let x = upload(&dev, &host, sets)?;
        let mut out = zeros::<f32>(&dev, n, sets)?;
        detmath::apply(&dev, op, &x[0], &mut out[0])?;
        let scalar = op.scalar();
        let want: Vec<f32> = host.iter().map(|&v| scalar(v)).collect();
        let got = out[0].copy_dtoh()?;
        same_bits(op.name(), &got, &want)?;
        against_twin(&dev, op.name(), &got, |cpu| {
            let mut twin = DeviceBuffer::zeros(cpu, n)?;
            detmath::apply(cpu, op, &on_cpu(&host)?, &mut twin)?;
            twin.copy_dtoh()
        })?;
        let check = check_name(&dev, "bits = scalar detmath");
        row(
            b,
            "detmath",
            op.name(),
            size_name(n),
            8 * n as u64,
            sets,
            &check,
            |i| detmath::apply(&dev, op, &x[i % sets], &mut out[i % sets]),
        )?;
    }
    Ok(())
}

fn reduce_rows(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    let n = elements(b);
    let host = random(n, 1.0, 5)?;
    let sets = Bench::sets(4 * n as u64);
    let x = upload(&dev, &host, sets)?;
    let mut out = zeros::<f32>(&dev, 1, sets)?;
    reduce::reduce_all(&dev, ReduceOp::Sum, &x[0], &mut out[0])?;
    let got = out[0].copy_dtoh()?;
    against_twin(&dev, "sum", &got, |cpu| {
        let mut twin = DeviceBuffer::zeros(cpu, 1)?;
        reduce::reduce_all(cpu, ReduceOp::Sum, &on_cpu(&host)?, &mut twin)?;
        twin.copy_dtoh()
    })?;
    // Relative to the sum of magnitudes: the f32 sum's error bound scale.
    let exact: f64 = host.iter().map(|&v| f64::from(v)).sum();
    let mag: f64 = host.iter().map(|&v| f64::from(v).abs()).sum();
    close_to(
        "sum",
        &[(f64::from(got[0]) - exact) as f32 / mag as f32],
        &[0.0],
        1e-6,
    )?;
    let check = check_name(&dev, "f64 sum within 1e-6 of sum |x|");
    row(
        b,
        "reduce",
        "sum",
        size_name(n),
        4 * n as u64,
        sets,
        &check,
        |i| reduce::reduce_all(&dev, ReduceOp::Sum, &x[i % sets], &mut out[i % sets]),
    )
}

fn embedding_rows(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    // A fastai-sized table (E = 400); positions: 70 x 256 (70 x 64 quick).
    let (v, e) = (16_000usize, 400usize);
    let p = match (&dev, b.options.quick) {
        (Device::Sim(_), _) => 256,
        (_, true) => 70 * 64,
        (_, false) => 70 * 256,
    };
    let table = random(v * e, 0.1, 6)?;
    let ids: Vec<u32> = philox::philox_blocks(
        &Device::Cpu,
        PhiloxKey::from_seed(8),
        PhiloxCounter::new(0, 0, 0),
        (p as u64).div_ceil(4),
    )?
    .copy_dtoh()?[..p]
        .iter()
        .map(|w| w % v as u32)
        .collect();
    let mut seen = vec![false; v];
    let unique = ids
        .iter()
        .filter(|&&i| !std::mem::replace(&mut seen[i as usize], true))
        .count();
    let size = format!("{p} x {e}, V = {v}");
    let mut st = Status::new(&dev)?;

    // Gather: each position's row copied.
    let traffic = (8 * p * e + 4 * p) as u64;
    let sets = Bench::sets(traffic);
    let w = upload(&dev, &table, 1)?.remove(0);
    let id = upload(&dev, &ids, sets)?;
    let mut out = zeros::<f32>(&dev, p * e, sets)?;
    embedding::embedding_fwd(&dev, &w, v, e, &id[0], &mut out[0], &mut st)?;
    let want: Vec<f32> = ids
        .iter()
        .flat_map(|&i| table[i as usize * e..(i as usize + 1) * e].iter().copied())
        .collect();
    let got = out[0].copy_dtoh()?;
    same_bits("embedding gather", &got, &want)?;
    against_twin(&dev, "embedding gather", &got, |cpu| {
        let mut twin = DeviceBuffer::zeros(cpu, p * e)?;
        let (w, id) = (on_cpu(&table)?, on_cpu(&ids)?);
        embedding::embedding_fwd(cpu, &w, v, e, &id, &mut twin, &mut Status::new(cpu)?)?;
        twin.copy_dtoh()
    })?;
    let check = check_name(&dev, "bits = the rows");
    row(
        b,
        "embedding",
        "gather",
        size.clone(),
        traffic,
        sets,
        &check,
        |i| embedding::embedding_fwd(&dev, &w, v, e, &id[i % sets], &mut out[i % sets], &mut st),
    )?;
    drop((w, out));

    // Ordered scatter-add: dy read, each touched row read and written.
    let dy_host = random(p * e, 1.0, 9)?;
    let traffic = (4 * p * e + 4 * p + 8 * unique * e) as u64;
    let sets = Bench::sets((4 * p * e + 4 * v * e) as u64);
    let dy = upload(&dev, &dy_host, sets)?;
    let mut dw = zeros::<f32>(&dev, v * e, sets)?;
    embedding::embedding_bwd(&dev, &dy[0], &id[0], v, e, &mut dw[0], &mut st)?;
    let got = dw[0].copy_dtoh()?;
    against_twin(&dev, "embedding scatter-add", &got, |cpu| {
        let mut twin = DeviceBuffer::zeros(cpu, v * e)?;
        let (dy, id) = (on_cpu(&dy_host)?, on_cpu(&ids)?);
        embedding::embedding_bwd(cpu, &dy, &id, v, e, &mut twin, &mut Status::new(cpu)?)?;
        twin.copy_dtoh()
    })?;
    let mut want = vec![0f64; v * e];
    for (t, &i) in ids.iter().enumerate() {
        for c in 0..e {
            want[i as usize * e + c] += f64::from(dy_host[t * e + c]);
        }
    }
    close_to("embedding scatter-add", &got, &want, 1e-5)?;
    let check = check_name(&dev, "f64 sums within 1e-5");
    row(
        b,
        "embedding",
        "scatter_add",
        size,
        traffic,
        sets,
        &check,
        |i| {
            embedding::embedding_bwd(
                &dev,
                &dy[i % sets],
                &id[i % sets],
                v,
                e,
                &mut dw[i % sets],
                &mut st,
            )
        },
    )?;
    st.read()?.check_inputs()
}

fn softmax_rows(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    // A language model's decoder rows.
    let (rows, cols) = match (&dev, b.options.quick) {
        (Device::Sim(_), _) => (4, 4096),
        (_, true) => (16, 40_000),
        (_, false) => (64, 40_000),
    };
    let n = rows * cols;
    let size = format!("{rows} x {cols}");
    let host = softmax::philox_logits(1, rows, cols, 10.0)?;
    let labels: Vec<u32> = (0..rows).map(|r| (r * 7919 % cols) as u32).collect();
    let sets = Bench::sets(8 * n as u64);
    let x = upload(&dev, &host, sets)?;
    let lb = upload(&dev, &labels, 1)?.remove(0);
    let mut y = zeros::<f32>(&dev, n, sets)?;
    let mut dx = zeros::<f32>(&dev, n, sets)?;
    let mut loss = zeros::<f32>(&dev, 1, 1)?.remove(0);
    let mut st = Status::new(&dev)?;

    softmax::log_softmax(&dev, &x[0], rows, cols, &mut y[0])?;
    let got = y[0].copy_dtoh()?;
    against_twin(&dev, "log_softmax", &got, |cpu| {
        let mut twin = DeviceBuffer::zeros(cpu, n)?;
        softmax::log_softmax(cpu, &on_cpu(&host)?, rows, cols, &mut twin)?;
        twin.copy_dtoh()
    })?;
    let mut want = Vec::with_capacity(n);
    for r in host.chunks_exact(cols) {
        let max = r
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let lse = max
            + r.iter()
                .map(|&v| (f64::from(v) - max).exp())
                .sum::<f64>()
                .ln();
        want.extend(r.iter().map(|&v| f64::from(v) - lse));
    }
    close_to("log_softmax", &got, &want, 1e-5)?;
    let check = check_name(&dev, "f64 log-softmax within 1e-5");
    let traffic = 8 * n as u64;
    row(
        b,
        "softmax",
        "log_softmax",
        size.clone(),
        traffic,
        sets,
        &check,
        |i| softmax::log_softmax(&dev, &x[i % sets], rows, cols, &mut y[i % sets]),
    )?;
    row(
        b,
        "softmax",
        "cross_entropy_fwd",
        size.clone(),
        traffic,
        sets,
        &check,
        |i| {
            let k = i % sets;
            softmax::cross_entropy_fwd(&dev, &x[k], &lb, rows, cols, &mut y[k], &mut loss, &mut st)
        },
    )?;
    row(
        b,
        "softmax",
        "cross_entropy_bwd",
        size,
        traffic,
        sets,
        &check,
        |i| {
            let k = i % sets;
            softmax::cross_entropy_bwd(&dev, &y[k], &lb, rows, cols, 1.0, &mut dx[k], &mut st)
        },
    )?;
    st.read()?.check_inputs()
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn lstm_cell_rows(b: &mut Bench<'_>) -> Result<()> {
    let dev = b.device.clone();
    // fastai's hidden size; a batch of 256 rows (64 quick).
    let (rows, h) = match (&dev, b.options.quick) {
        (Device::Sim(_), _) => (8, 256),
        (_, true) => (64, 1152),
        (_, false) => (256, 1152),
    };
    let bh = rows * h;
    let shape = LstmShape::new(rows, h);
    let size = format!("{rows} x {h}");
    let gates_h = random(4 * bh, 4.0, 10)?;
    let cprev_h = random(bh, 2.0, 11)?;
    let fwd_traffic = 44 * bh as u64;
    let sets = Bench::sets(fwd_traffic);
    let gates = upload(&dev, &gates_h, sets)?;
    let c_prev = upload(&dev, &cprev_h, sets)?;
    let mut c = zeros::<f32>(&dev, bh, sets)?;
    let mut hh = zeros::<f32>(&dev, bh, sets)?;
    let mut act = zeros::<f32>(&dev, 4 * bh, sets)?;
    lstm::lstm_cell_fwd(
        &dev,
        shape,
        &gates[0],
        &c_prev[0],
        &mut c[0],
        &mut hh[0],
        &mut act[0],
    )?;
    let (got_c, got_h) = (c[0].copy_dtoh()?, hh[0].copy_dtoh()?);
    let got_ch = [got_c.as_slice(), got_h.as_slice()].concat();
    against_twin(&dev, "lstm cell c, h", &got_ch, |cpu| {
        let (mut tc, mut th) = (DeviceBuffer::zeros(cpu, bh)?, DeviceBuffer::zeros(cpu, bh)?);
        let mut ta = DeviceBuffer::zeros(cpu, 4 * bh)?;
        let (g, cp) = (on_cpu(&gates_h)?, on_cpu(&cprev_h)?);
        lstm::lstm_cell_fwd(cpu, shape, &g, &cp, &mut tc, &mut th, &mut ta)?;
        Ok([tc.copy_dtoh()?, th.copy_dtoh()?].concat())
    })?;
    let (mut want_c, mut want_h) = (Vec::with_capacity(bh), Vec::with_capacity(bh));
    for r in 0..rows {
        let g = |k: usize, j: usize| f64::from(gates_h[r * 4 * h + k * h + j]);
        for j in 0..h {
            let ct = sigmoid64(g(1, j)) * f64::from(cprev_h[r * h + j])
                + sigmoid64(g(0, j)) * g(2, j).tanh();
            want_c.push(ct);
            want_h.push(sigmoid64(g(3, j)) * ct.tanh());
        }
    }
    close_to("lstm cell c", &got_c, &want_c, 1e-5)?;
    close_to("lstm cell h", &got_h, &want_h, 1e-5)?;
    let check = check_name(&dev, "f64 cell within 1e-5");
    row(
        b,
        "lstm-cell",
        "fwd",
        size.clone(),
        fwd_traffic,
        sets,
        &check,
        |i| {
            let k = i % sets;
            lstm::lstm_cell_fwd(
                &dev,
                shape,
                &gates[k],
                &c_prev[k],
                &mut c[k],
                &mut hh[k],
                &mut act[k],
            )
        },
    )?;

    // Backward from the forward's saved activations.
    let dh_h = random(bh, 1.0, 12)?;
    let dc_h = random(bh, 1.0, 13)?;
    let dh = upload(&dev, &dh_h, sets)?;
    let dc = upload(&dev, &dc_h, sets)?;
    let mut dgates = zeros::<f32>(&dev, 4 * bh, sets)?;
    let mut dc_prev = zeros::<f32>(&dev, bh, sets)?;
    let (c0, act0) = (c[0].copy_dtoh()?, act[0].copy_dtoh()?);
    for k in 1..sets {
        c[k].view_mut().copy_htod(&c0)?;
        act[k].view_mut().copy_htod(&act0)?;
    }
    lstm::lstm_cell_bwd(
        &dev,
        shape,
        &dh[0],
        &dc[0],
        &act[0],
        &c_prev[0],
        &c[0],
        &mut dgates[0],
        &mut dc_prev[0],
    )?;
    let got = dgates[0].copy_dtoh()?;
    let act_h = act[0].copy_dtoh()?;
    against_twin(&dev, "lstm cell dgates", &got, |cpu| {
        let (mut tg, mut tdc) = (
            DeviceBuffer::zeros(cpu, 4 * bh)?,
            DeviceBuffer::zeros(cpu, bh)?,
        );
        let (dh, dc, a, cp, cc) = (
            on_cpu(&dh_h)?,
            on_cpu(&dc_h)?,
            on_cpu(&act_h)?,
            on_cpu(&cprev_h)?,
            on_cpu(&got_c)?,
        );
        lstm::lstm_cell_bwd(cpu, shape, &dh, &dc, &a, &cp, &cc, &mut tg, &mut tdc)?;
        tg.copy_dtoh()
    })?;
    let mut want = vec![0f64; 4 * bh];
    for r in 0..rows {
        for j in 0..h {
            let a = |k: usize| f64::from(act_h[r * 4 * h + k * h + j]);
            let (i, f, g, o) = (a(0), a(1), a(2), a(3));
            let u = r * h + j;
            let tc = f64::from(got_c[u]).tanh();
            let dht = f64::from(dh_h[u]);
            let dct = dht * o * (1.0 - tc * tc) + f64::from(dc_h[u]);
            let base = r * 4 * h + j;
            want[base] = dct * g * i * (1.0 - i);
            want[base + h] = dct * f64::from(cprev_h[u]) * f * (1.0 - f);
            want[base + 2 * h] = dct * i * (1.0 - g * g);
            want[base + 3 * h] = dht * tc * o * (1.0 - o);
        }
    }
    close_to("lstm cell dgates", &got, &want, 1e-5)?;
    let check = check_name(&dev, "f64 gradients within 1e-5");
    row(
        b,
        "lstm-cell",
        "bwd",
        size,
        52 * bh as u64,
        sets,
        &check,
        |i| {
            let k = i % sets;
            lstm::lstm_cell_bwd(
                &dev,
                shape,
                &dh[k],
                &dc[k],
                &act[k],
                &c_prev[k],
                &c[k],
                &mut dgates[k],
                &mut dc_prev[k],
            )
        },
    )
}
