//! softmax family: log-softmax and mean cross-entropy, forward and backward.
//!
//! - The CPU twin is bitwise equal to a plain scalar reference written below
//!   (detmath exp/log + the canonical reduction order spelled out lane by lane).
//! - It is within a stated tolerance of f64 math.
//! - Its bits do not depend on the rayon pool size.
//! - Every kernel device (Sim under two thread orders, the GPU when present)
//!   is bitwise equal to the CPU twin, under several launch shapes.
//! - Labels out of range are a typed error with the same text everywhere.

mod support;

use shoestring::detmath;
use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::softmax::{self, philox_logits};
use shoestring::status::Status;
use shoestring::Error;
use support::test_devices;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

// ---------------------------------------------------------------------------
// The plain reference: DESIGN.md rule 3 and docs/numerics/softmax.md, scalar.
// ---------------------------------------------------------------------------

const LANES: usize = 256;
const CHUNK: usize = 16_384;
const NAN: u32 = shoestring::numerics::CANONICAL_NAN_BITS;

fn is_nan(x: f32) -> bool {
    (x.to_bits() & 0x7fff_ffff) > 0x7f80_0000
}

fn canon(x: f32) -> f32 {
    if is_nan(x) {
        f32::from_bits(NAN)
    } else {
        x
    }
}

fn max2(a: f32, b: f32) -> f32 {
    if is_nan(a) || is_nan(b) {
        f32::from_bits(NAN)
    } else if b > a {
        b
    } else {
        a
    }
}

/// One chunk: lane l folds c[l], c[l+256], ... from `id`; then the tree.
fn ref_chunk(c: &[f32], id: f32, op: fn(f32, f32) -> f32) -> f32 {
    let mut lane = [id; LANES];
    for (i, &v) in c.iter().enumerate() {
        lane[i % LANES] = op(lane[i % LANES], v);
    }
    let mut s = LANES / 2;
    while s > 0 {
        for i in 0..s {
            lane[i] = op(lane[i], lane[i + s]);
        }
        s /= 2;
    }
    canon(lane[0])
}

/// Chunks of 16384; more than one chunk: the chunk results again, same rule.
fn ref_reduce(x: &[f32], id: f32, op: fn(f32, f32) -> f32) -> f32 {
    if x.len() <= CHUNK {
        return ref_chunk(x, id, op);
    }
    let level: Vec<f32> = x.chunks(CHUNK).map(|c| ref_chunk(c, id, op)).collect();
    ref_reduce(&level, id, op)
}

fn ref_sum(x: &[f32]) -> f32 {
    ref_reduce(x, 0.0, |a, b| a + b)
}

fn ref_max(x: &[f32]) -> f32 {
    ref_reduce(x, f32::NEG_INFINITY, max2)
}

fn ref_log_softmax(x: &[f32], cols: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let m = ref_max(row);
        let e: Vec<f32> = row.iter().map(|&v| detmath::exp(v - m)).collect();
        let ls = detmath::log(ref_sum(&e));
        y.extend(row.iter().map(|&v| canon((v - m) - ls)));
    }
    y
}

fn ref_loss(y: &[f32], labels: &[u32], cols: usize) -> f32 {
    let nll: Vec<f32> = labels
        .iter()
        .enumerate()
        .map(|(r, &l)| canon(-y[r * cols + l as usize]))
        .collect();
    canon(ref_sum(&nll) / labels.len() as f32)
}

fn ref_bwd(y: &[f32], labels: &[u32], cols: usize, dloss: f32) -> Vec<f32> {
    let gscale = dloss / labels.len() as f32;
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            let onehot = if i % cols == labels[i / cols] as usize {
                1.0f32
            } else {
                0.0
            };
            canon((detmath::exp(v) - onehot) * gscale)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn labels_for(rows: usize, cols: usize, seed: usize) -> Vec<u32> {
    (0..rows)
        .map(|r| ((r * 7919 + seed * 31) % cols) as u32)
        .collect()
}

struct Out {
    y_ls: Vec<f32>,
    y: Vec<f32>,
    loss: f32,
    dx: Vec<f32>,
}

/// log_softmax, cross_entropy_fwd and cross_entropy_bwd on `dev`.
fn run_all(
    dev: &Device,
    x: &[f32],
    labels: &[u32],
    cols: usize,
    dloss: f32,
    shape: (u32, u32),
) -> Out {
    let rows = labels.len();
    let xb = DeviceBuffer::copy_htod(dev, x).unwrap();
    let lb = DeviceBuffer::copy_htod(dev, labels).unwrap();
    let mut y = DeviceBuffer::zeros(dev, x.len()).unwrap();
    softmax::log_softmax_with_shape(dev, &xb, rows, cols, &mut y, shape).unwrap();
    let y_ls = y.copy_dtoh().unwrap();
    let mut y = DeviceBuffer::zeros(dev, x.len()).unwrap();
    let mut loss = DeviceBuffer::zeros(dev, 1).unwrap();
    let mut status = Status::new(dev).unwrap();
    softmax::cross_entropy_fwd_with_shape(
        dev,
        &xb,
        &lb,
        rows,
        cols,
        &mut y,
        &mut loss,
        &mut status,
        shape,
    )
    .unwrap();
    let mut dx = DeviceBuffer::zeros(dev, x.len()).unwrap();
    softmax::cross_entropy_bwd_with_shape(
        dev,
        &y,
        &lb,
        rows,
        cols,
        dloss,
        &mut dx,
        &mut status,
        shape,
    )
    .unwrap();
    let report = status.read().unwrap();
    report.check_inputs().unwrap();
    let loss = loss.copy_dtoh().unwrap()[0];
    // The status block carries the same loss bits, and flags a non-finite one.
    assert_eq!(report.loss.to_bits(), loss.to_bits(), "{dev}: status loss");
    assert_eq!(report.nonfinite_loss(), !loss.is_finite(), "{dev}");
    Out {
        y_ls,
        y: y.copy_dtoh().unwrap(),
        loss,
        dx: dx.copy_dtoh().unwrap(),
    }
}

fn assert_bits(what: &str, want: &[f32], got: &[f32]) {
    assert_eq!(want.len(), got.len(), "{what}: lengths");
    if let Some(i) = (0..want.len()).find(|&i| want[i].to_bits() != got[i].to_bits()) {
        panic!(
            "{what}: element {i} is {} ({:#010x}), expected {} ({:#010x})",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

fn assert_same(what: &str, want: &Out, got: &Out) {
    assert_bits(&format!("{what}: log_softmax y"), &want.y_ls, &got.y_ls);
    assert_bits(&format!("{what}: cross_entropy_fwd y"), &want.y, &got.y);
    assert_bits(&format!("{what}: loss"), &[want.loss], &[got.loss]);
    assert_bits(&format!("{what}: dx"), &want.dx, &got.dx);
}

const WIDTHS: [usize; 8] = [1, 2, 3, 255, 256, 257, 16_385, 40_000];
const ROWS: [usize; 3] = [1, 7, 64];

/// Specials: rows of ±80, a large spread, all-equal values.
fn extreme_rows(cols: usize) -> Vec<f32> {
    let mut x = Vec::new();
    x.extend((0..cols).map(|j| if j % 3 == 0 { 80.0 } else { -80.0 }));
    x.extend((0..cols).map(|j| if j % 2 == 0 { 1.0e4 } else { -1.0e4 } * (j as f32 + 1.0)));
    x.extend(vec![-3.5f32; cols]);
    x.extend(vec![80.0f32; cols]);
    x.extend((0..cols).map(|j| -80.0 + (j % 7) as f32 * 1e-3));
    x
}

// ---------------------------------------------------------------------------
// CPU twin against the plain reference and against f64
// ---------------------------------------------------------------------------

#[test]
fn softmax_cpu_matches_plain_reference_bits_for_every_width_and_row_count() {
    for &cols in &WIDTHS {
        for &rows in &ROWS {
            let x = philox_logits((cols * 100 + rows) as u64, rows, cols, 20.0).unwrap();
            let labels = labels_for(rows, cols, 1);
            let got = run_all(&Device::Cpu, &x, &labels, cols, 1.5, softmax::DEFAULT_SHAPE);
            let y = ref_log_softmax(&x, cols);
            let want = Out {
                y_ls: y.clone(),
                loss: ref_loss(&y, &labels, cols),
                dx: ref_bwd(&y, &labels, cols, 1.5),
                y,
            };
            assert_same(&format!("{rows} x {cols}"), &want, &got);
        }
    }
}

#[test]
fn softmax_cpu_matches_plain_reference_bits_on_extreme_logits() {
    for &cols in &[1usize, 3, 257, 16_385] {
        let x = extreme_rows(cols);
        let rows = x.len() / cols;
        let labels = labels_for(rows, cols, 2);
        let got = run_all(
            &Device::Cpu,
            &x,
            &labels,
            cols,
            -0.5,
            softmax::DEFAULT_SHAPE,
        );
        let y = ref_log_softmax(&x, cols);
        assert_bits("extreme y", &y, &got.y);
        assert_bits("extreme loss", &[ref_loss(&y, &labels, cols)], &[got.loss]);
        assert_bits("extreme dx", &ref_bwd(&y, &labels, cols, -0.5), &got.dx);
        // All-equal rows: every y is -log(C), identical across the row.
        let eq = &got.y[2 * cols..3 * cols];
        assert!(eq.iter().all(|v| v.to_bits() == eq[0].to_bits()));
        assert!((f64::from(eq[0]) + (cols as f64).ln()).abs() <= 1e-6 * (1.0 + (cols as f64).ln()));
    }
}

#[test]
fn softmax_mean_loss_over_more_rows_than_a_chunk_matches_plain_reference() {
    // 40_000 rows: the batch sum runs two levels of the canonical order.
    let (rows, cols) = (40_000, 2);
    let x = philox_logits(9, rows, cols, 5.0).unwrap();
    let labels = labels_for(rows, cols, 3);
    let got = run_all(&Device::Cpu, &x, &labels, cols, 1.0, softmax::DEFAULT_SHAPE);
    let y = ref_log_softmax(&x, cols);
    assert_bits("loss", &[ref_loss(&y, &labels, cols)], &[got.loss]);
}

/// f64 oracle. Tolerances (u = 2^-24), derived in docs/numerics/softmax.md:
/// y: (k + 24) u + 4 u (|x - m| + |ls|), k = ceil(min(C, 16384) / 256) lane terms;
/// loss: mean of the per-row bound at the label, plus (k_R + 24) u |loss|;
/// dx: |gscale| (p (tol_y + 8u) + 2u |q|), p = exp(y), q = p - onehot.
#[test]
fn softmax_cpu_is_within_stated_tolerance_of_f64() {
    const U: f64 = 1.0 / 16_777_216.0;
    let mut worst_y = 0.0f64; // in units of the bound
    for &cols in &WIDTHS {
        let rows = 7;
        let x = philox_logits(cols as u64 + 5, rows, cols, 30.0).unwrap();
        let labels = labels_for(rows, cols, 4);
        let dloss = 2.0f32;
        let got = run_all(
            &Device::Cpu,
            &x,
            &labels,
            cols,
            dloss,
            softmax::DEFAULT_SHAPE,
        );
        let k = (cols.min(16_384).div_ceil(256)) as f64;
        let mut tol_label = 0.0;
        let mut loss64 = 0.0;
        for r in 0..rows {
            let row: Vec<f64> = x[r * cols..(r + 1) * cols]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let ls = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            let gscale = f64::from(dloss) / rows as f64;
            for (j, &xj) in row.iter().enumerate() {
                let d = xj - m;
                let y64 = d - ls;
                let tol = (k + 24.0) * U + 4.0 * U * (d.abs() + ls.abs());
                let y = f64::from(got.y[r * cols + j]);
                let err = (y - y64).abs();
                assert!(
                    err <= tol,
                    "{rows}x{cols} y[{r},{j}] = {y}, f64 {y64}, err {err:e} > {tol:e}"
                );
                worst_y = worst_y.max(err / tol);
                let onehot = if j == labels[r] as usize { 1.0 } else { 0.0 };
                let p = y64.exp();
                let dx64 = (p - onehot) * gscale;
                let tol_dx =
                    gscale.abs() * (p * (tol + 8.0 * U) + 2.0 * U * (p - onehot).abs()) + 1e-45;
                let dx = f64::from(got.dx[r * cols + j]);
                assert!(
                    (dx - dx64).abs() <= tol_dx,
                    "{rows}x{cols} dx[{r},{j}] = {dx}, f64 {dx64}"
                );
                if j == labels[r] as usize {
                    tol_label += tol / rows as f64;
                    loss64 -= y64 / rows as f64;
                }
            }
        }
        let tol_loss = tol_label + (1.0 + 24.0) * U * loss64.abs();
        let loss = f64::from(got.loss);
        assert!(
            (loss - loss64).abs() <= tol_loss,
            "{rows}x{cols} loss {loss}, f64 {loss64}, tol {tol_loss:e}"
        );
    }
    eprintln!("softmax: worst |y - y64| = {worst_y:.3} of the stated bound");
}

#[test]
fn softmax_cpu_bits_do_not_depend_on_thread_count() {
    let cases = [(64usize, 257usize), (3, 40_000), (65, 16_385)];
    for (rows, cols) in cases {
        let x = philox_logits(77, rows, cols, 10.0).unwrap();
        let labels = labels_for(rows, cols, 5);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| run_all(&Device::Cpu, &x, &labels, cols, 1.0, softmax::DEFAULT_SHAPE))
        };
        let one = run(1);
        for t in [2, 3, 8] {
            assert_same(&format!("{rows}x{cols}, {t} threads"), &one, &run(t));
        }
    }
}

// ---------------------------------------------------------------------------
// Kernel devices against the CPU twin
// ---------------------------------------------------------------------------

#[test]
fn softmax_kernels_match_cpu_bits_on_every_device() {
    let devices = test_devices("softmax_kernels_match_cpu_bits_on_every_device");
    for &cols in &WIDTHS {
        // Keep the simulator's work modest: 64 rows only for narrow rows.
        let rows_list: &[usize] = if cols <= 257 { &ROWS } else { &[1, 7] };
        for &rows in rows_list {
            let x = philox_logits((cols * 100 + rows) as u64, rows, cols, 20.0).unwrap();
            let labels = labels_for(rows, cols, 6);
            let want = run_all(
                &Device::Cpu,
                &x,
                &labels,
                cols,
                1.25,
                softmax::DEFAULT_SHAPE,
            );
            for dev in &devices {
                let got = run_all(dev, &x, &labels, cols, 1.25, softmax::DEFAULT_SHAPE);
                assert_same(&format!("{dev}: {rows} x {cols}"), &want, &got);
            }
        }
    }
}

#[test]
fn softmax_kernels_match_cpu_bits_on_extreme_and_special_logits() {
    let devices = test_devices("softmax_kernels_match_cpu_bits_on_extreme_and_special_logits");
    for &cols in &[3usize, 257, 16_385] {
        let mut x = extreme_rows(cols);
        // ±inf and NaN rows: every y of such a row is the canonical NaN.
        let mut special = vec![0.5f32; 3 * cols];
        special[0] = f32::INFINITY;
        special[cols + cols / 2] = f32::NAN;
        special[2 * cols + cols - 1] = f32::NEG_INFINITY;
        x.extend(special);
        let rows = x.len() / cols;
        let labels = labels_for(rows, cols, 7);
        let want = run_all(&Device::Cpu, &x, &labels, cols, 3.0, softmax::DEFAULT_SHAPE);
        assert_eq!(
            want.y[(rows - 3) * cols].to_bits(),
            NAN,
            "+inf row gives NaN"
        );
        assert_eq!(want.loss.to_bits(), NAN, "a NaN row makes the mean NaN");
        for dev in &devices {
            let got = run_all(dev, &x, &labels, cols, 3.0, softmax::DEFAULT_SHAPE);
            assert_same(&format!("{dev}: extreme, C = {cols}"), &want, &got);
        }
    }
}

#[test]
fn softmax_kernel_bits_do_not_depend_on_launch_shape() {
    let devices = test_devices("softmax_kernel_bits_do_not_depend_on_launch_shape");
    for (rows, cols) in [(37usize, 300usize), (3, 16_385)] {
        let x = philox_logits(1234, rows, cols, 15.0).unwrap();
        let labels = labels_for(rows, cols, 8);
        let want = run_all(&Device::Cpu, &x, &labels, cols, 0.5, softmax::DEFAULT_SHAPE);
        for dev in &devices {
            // (backward threads per block, most blocks): grid capped at 1 and 5
            // rows per launch, odd and large blocks for the backward.
            for shape in [(32, 1), (1024, 5), (96, 65_535), (1, 2)] {
                let got = run_all(dev, &x, &labels, cols, 0.5, shape);
                assert_same(
                    &format!("{dev}: {rows}x{cols} shape {shape:?}"),
                    &want,
                    &got,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A label out of range goes to the status block (the smallest bad row), its
/// row's nll is NaN so the loss is NaN and flagged; nothing is read back.
#[test]
fn softmax_labels_out_of_range_are_reported_through_the_status_block_on_every_device() {
    let (rows, cols) = (9usize, 5usize);
    let x = philox_logits(3, rows, cols, 4.0).unwrap();
    let mut labels = labels_for(rows, cols, 9);
    labels[6] = 5;
    labels[3] = u32::MAX; // the smallest bad row is the one named
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices(
        "softmax_labels_out_of_range_are_reported_through_the_status_block_on_every_device",
    ));
    let mut first = None;
    for dev in &devices {
        let xb = DeviceBuffer::copy_htod(dev, &x).unwrap();
        let lb = DeviceBuffer::copy_htod(dev, &labels).unwrap();
        let mut y = DeviceBuffer::zeros(dev, x.len()).unwrap();
        let mut loss = DeviceBuffer::zeros(dev, 1).unwrap();
        let mut status = Status::new(dev).unwrap();
        let reads = dev.counters().dtoh_copies;
        softmax::cross_entropy_fwd(dev, &xb, &lb, rows, cols, &mut y, &mut loss, &mut status)
            .unwrap();
        // The Cpu pool is one per process, shared with the tests running
        // beside this one: its counter is only this test's on a Sim or GPU.
        if !matches!(dev, Device::Cpu) {
            assert_eq!(dev.counters().dtoh_copies, reads, "{dev}: the op read back");
        }
        let r = status.read().unwrap();
        assert!(
            r.bad_label() && r.nonfinite_loss() && r.loss.is_nan(),
            "{dev}: {r:?}"
        );
        assert_eq!(r.first_bad_label, Some(3), "{dev}");
        let err = r.check_inputs().unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument {
                    op: "cross_entropy",
                    ..
                }
            ),
            "{dev}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            "cross_entropy: labels[3] is out of range for the number of classes",
            "{dev}"
        );
        status.clear().unwrap();
        let mut dx = DeviceBuffer::zeros(dev, x.len()).unwrap();
        softmax::cross_entropy_bwd(dev, &y, &lb, rows, cols, 1.0, &mut dx, &mut status).unwrap();
        let r2 = status.read().unwrap();
        assert_eq!(
            (r2.bad_label(), r2.first_bad_label),
            (true, Some(3)),
            "{dev}"
        );
        // The rows and the gradient are still bitwise equal across devices.
        let got = (
            bits(&y.copy_dtoh().unwrap()),
            bits(&dx.copy_dtoh().unwrap()),
        );
        match &first {
            None => first = Some(got),
            Some(want) => assert!(want == &got, "{dev}: y or dx differs from the CPU"),
        }
    }
}

#[test]
fn softmax_refuses_bad_shapes_and_lengths() {
    let cpu = Device::Cpu;
    let x = DeviceBuffer::copy_htod(&cpu, &[0.0f32; 6]).unwrap();
    let mut y = DeviceBuffer::zeros(&cpu, 6).unwrap();
    let e = softmax::log_softmax(&cpu, &x, 6, 0, &mut y).unwrap_err();
    assert!(e.to_string().contains("0 columns"), "{e}");
    let e = softmax::log_softmax(&cpu, &x, 2, 4, &mut y).unwrap_err();
    assert!(e.to_string().contains("has 6 elements, expected 8"), "{e}");
    let labels = DeviceBuffer::copy_htod(&cpu, &[0u32; 0]).unwrap();
    let mut empty = DeviceBuffer::zeros(&cpu, 0).unwrap();
    let x0 = DeviceBuffer::zeros(&cpu, 0).unwrap();
    let mut loss = DeviceBuffer::zeros(&cpu, 1).unwrap();
    let mut status = Status::new(&cpu).unwrap();
    let e =
        softmax::cross_entropy_fwd(&cpu, &x0, &labels, 0, 3, &mut empty, &mut loss, &mut status)
            .err()
            .unwrap();
    assert!(e.to_string().contains("0 rows"), "{e}");
    let e = softmax::cross_entropy_fwd(
        &cpu,
        &x0,
        &labels,
        1 << 24,
        1,
        &mut empty,
        &mut loss,
        &mut status,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("exact as an f32"), "{e}");
    // log_softmax of zero rows is an empty no-op.
    softmax::log_softmax(&cpu, &x0, 0, 3, &mut empty).unwrap();
}

#[test]
fn softmax_loss_kernel_sums_more_rows_than_a_chunk_like_the_cpu() {
    // 16_500 rows: the batch loss kernel runs both canonical levels.
    let (rows, cols) = (16_500usize, 2usize);
    let x = philox_logits(11, rows, cols, 5.0).unwrap();
    let labels = labels_for(rows, cols, 10);
    let want = run_all(&Device::Cpu, &x, &labels, cols, 1.0, softmax::DEFAULT_SHAPE);
    let devices = test_devices("softmax_loss_kernel_sums_more_rows_than_a_chunk_like_the_cpu");
    // One simulator order (about 5 s: 16_500 blocks) and the GPU when present.
    for dev in devices.iter().take(1).chain(devices.iter().skip(2)) {
        let got = run_all(dev, &x, &labels, cols, 1.0, softmax::DEFAULT_SHAPE);
        assert_same(&format!("{dev}: {rows} x {cols}"), &want, &got);
    }
}
