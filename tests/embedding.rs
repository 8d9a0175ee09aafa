//! Embedding: the CPU twin against plainly written scalar loops (gather; the
//! scatter-add in increasing position order) bit for bit and against f64; its
//! bits under several rayon pool sizes; and every device that runs the kernels
//! (Sim under two thread orders, the GPU when present) against the CPU twin,
//! bit for bit, under several launch shapes.

mod support;

use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::embedding;
use shoestring::ops::philox::{philox_blocks, PhiloxCounter, PhiloxKey};
use shoestring::status::Status;
use support::test_devices;

/// `n` Philox words from stream `stream` (the test's own random source).
fn words(stream: u32, n: usize) -> Vec<u32> {
    let key = PhiloxKey::from_seed(0x7e57_e4b0);
    let blocks = n.div_ceil(4) as u64;
    let mut w = philox_blocks(&Device::Cpu, key, PhiloxCounter::new(0, stream, 0), blocks)
        .unwrap()
        .copy_dtoh()
        .unwrap();
    w.truncate(n);
    w
}

/// Finite floats of mixed sign and magnitude (2^-20 .. 2^20), no specials.
fn floats(stream: u32, n: usize) -> Vec<f32> {
    words(stream, n)
        .into_iter()
        .map(|r| f32::from_bits((r & 0x807f_ffff) | ((107 + (r >> 23) % 41) << 23)))
        .collect()
}

fn ids_uniform(stream: u32, n: usize, v: usize) -> Vec<u32> {
    words(stream, n).into_iter().map(|r| r % v as u32).collect()
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|f| f.to_bits()).collect()
}

/// The obviously-correct gather.
fn gather_reference(w: &[f32], e: usize, ids: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(ids.len() * e);
    for &id in ids {
        for c in 0..e {
            out.push(w[id as usize * e + c]);
        }
    }
    out
}

/// The obviously-correct scatter-add: positions in increasing order, one add each.
fn scatter_reference(dy: &[f32], ids: &[u32], e: usize, dw0: &[f32]) -> Vec<f32> {
    let mut dw = dw0.to_vec();
    for (t, &id) in ids.iter().enumerate() {
        for c in 0..e {
            dw[id as usize * e + c] += dy[t * e + c];
        }
    }
    dw
}

fn fwd(dev: &Device, w: &[f32], v: usize, e: usize, ids: &[u32]) -> Vec<f32> {
    fwd_shape(dev, w, v, e, ids, embedding::DEFAULT_SHAPE)
}

fn fwd_shape(
    dev: &Device,
    w: &[f32],
    v: usize,
    e: usize,
    ids: &[u32],
    shape: (u32, u32),
) -> Vec<f32> {
    let wb = DeviceBuffer::copy_htod(dev, w).unwrap();
    let ib = DeviceBuffer::copy_htod(dev, ids).unwrap();
    let mut out = DeviceBuffer::zeros(dev, ids.len() * e).unwrap();
    let mut status = Status::new(dev).unwrap();
    embedding::embedding_fwd_with_shape(dev, &wb, v, e, &ib, &mut out, &mut status, shape).unwrap();
    status.read().unwrap().check_inputs().unwrap();
    out.copy_dtoh().unwrap()
}

fn bwd(dev: &Device, dy: &[f32], ids: &[u32], v: usize, e: usize, dw0: &[f32]) -> Vec<f32> {
    bwd_shape(dev, dy, ids, v, e, dw0, embedding::DEFAULT_SHAPE)
}

fn bwd_shape(
    dev: &Device,
    dy: &[f32],
    ids: &[u32],
    v: usize,
    e: usize,
    dw0: &[f32],
    shape: (u32, u32),
) -> Vec<f32> {
    let db = DeviceBuffer::copy_htod(dev, dy).unwrap();
    let ib = DeviceBuffer::copy_htod(dev, ids).unwrap();
    let mut dw = DeviceBuffer::copy_htod(dev, dw0).unwrap();
    let mut status = Status::new(dev).unwrap();
    embedding::embedding_bwd_with_shape(dev, &db, &ib, v, e, &mut dw, &mut status, shape).unwrap();
    status.read().unwrap().check_inputs().unwrap();
    dw.copy_dtoh().unwrap()
}

/// One token repeated 1000 times (among a few others) with values whose sum
/// depends on the order: 1e8, 1, -1e8, 1, ... per column, shifted by column.
fn heavy_repetition_case(e: usize) -> (Vec<u32>, Vec<f32>) {
    let n = 1300;
    let mut ids = Vec::with_capacity(n);
    for t in 0..n {
        ids.push(if t % 13 < 10 { 2 } else { [0, 1, 3][t % 3] });
    }
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1000);
    let pattern = [1e8f32, 1.0, -1e8, 1.0, 3.0, -1e8, 1e8, 0.5];
    let mut dy = Vec::with_capacity(n * e);
    for t in 0..n {
        for c in 0..e {
            dy.push(pattern[(t + c) % pattern.len()]);
        }
    }
    (ids, dy)
}

/// (V, E, ids, dy, dW0) cases for the backward equality tests.
#[allow(clippy::type_complexity)]
fn bwd_cases() -> Vec<(usize, usize, Vec<u32>, Vec<f32>, Vec<f32>)> {
    let mut cases = Vec::new();
    let (ids, dy) = heavy_repetition_case(5);
    cases.push((4, 5, ids, dy, floats(10, 4 * 5)));
    // Every id distinct (a permutation of 0..V).
    let v = 300;
    let mut perm: Vec<u32> = (0..v as u32).collect();
    let r = words(11, v);
    for i in (1..v).rev() {
        perm.swap(i, r[i] as usize % (i + 1));
    }
    cases.push((v, 9, perm, floats(12, v * 9), floats(13, v * 9)));
    // N = 1.
    cases.push((7, 4, vec![3], floats(14, 4), floats(15, 28)));
    // N not a power of two, ragged E.
    cases.push((
        50,
        33,
        ids_uniform(16, 1001, 50),
        floats(17, 1001 * 33),
        floats(18, 50 * 33),
    ));
    // V = 1: every position hits row 0.
    cases.push((
        1,
        3,
        vec![0; 777],
        floats(19, 777 * 3),
        vec![0.25, -0.0, 1e-40],
    ));
    cases
}

#[test]
fn embedding_fwd_cpu_matches_plain_gather_bitwise() {
    // Weights with NaN payloads, infinities, signed zeros and subnormals: a
    // gather copies bits.
    let specials = [
        f32::from_bits(0x7fc0_1234),
        f32::from_bits(0xffa0_0001),
        f32::INFINITY,
        -0.0,
        1e-45,
    ];
    for (v, e, n) in [
        (1, 1, 1),
        (1, 5, 300),
        (7, 3, 1),
        (100, 64, 1000),
        (1000, 37, 4097),
    ] {
        let mut w = floats(1, v * e);
        let len = w.len();
        for (i, s) in specials.iter().enumerate() {
            w[i * 7 % len] = *s;
        }
        let ids = ids_uniform(2, n, v);
        let got = fwd(&Device::Cpu, &w, v, e, &ids);
        assert_eq!(
            bits(&got),
            bits(&gather_reference(&w, e, &ids)),
            "V={v} E={e} N={n}"
        );
    }
}

#[test]
fn embedding_bwd_cpu_matches_scalar_loop_in_increasing_position_order() {
    for (v, e, ids, dy, dw0) in bwd_cases() {
        let got = bwd(&Device::Cpu, &dy, &ids, v, e, &dw0);
        let want = scatter_reference(&dy, &ids, e, &dw0);
        assert_eq!(bits(&got), bits(&want), "V={v} E={e} N={}", ids.len());
    }
}

#[test]
fn embedding_heavy_repetition_case_is_order_sensitive() {
    // Guards the test above: summing the repeated token's positions in
    // decreasing order gives different bits, so the equality is a real check.
    let e = 5;
    let (ids, dy) = heavy_repetition_case(e);
    let dw0 = floats(10, 4 * e);
    let forward = scatter_reference(&dy, &ids, e, &dw0);
    let mut reversed = dw0.clone();
    for t in (0..ids.len()).rev() {
        let id = ids[t] as usize;
        for c in 0..e {
            reversed[id * e + c] += dy[t * e + c];
        }
    }
    assert_ne!(bits(&forward[2 * e..3 * e]), bits(&reversed[2 * e..3 * e]));
}

#[test]
fn embedding_bwd_cpu_is_within_recursive_summation_bound_of_f64() {
    // Bound for n sequential f32 adds: |f32 - exact| <= n * 2^-24 * sum |terms|
    // (n = positions of the token + 1 for dW's start value), to first order.
    for (v, e, ids, dy, dw0) in bwd_cases() {
        let got = bwd(&Device::Cpu, &dy, &ids, v, e, &dw0);
        for row in 0..v {
            for c in 0..e {
                let mut exact = f64::from(dw0[row * e + c]);
                let mut abs = exact.abs();
                let mut terms = 1.0;
                for (t, &id) in ids.iter().enumerate() {
                    if id as usize == row {
                        exact += f64::from(dy[t * e + c]);
                        abs += f64::from(dy[t * e + c]).abs();
                        terms += 1.0;
                    }
                }
                let bound = terms * 2f64.powi(-24) * abs * 1.01;
                let err = (f64::from(got[row * e + c]) - exact).abs();
                assert!(
                    err <= bound,
                    "V={v} E={e} row {row} col {c}: {} vs {exact} (err {err} > {bound})",
                    got[row * e + c]
                );
            }
        }
    }
}

#[test]
fn embedding_cpu_bits_do_not_depend_on_thread_count() {
    let v = 97;
    let e = 13;
    for n in [1usize, 255, 257, 65_537] {
        let w = floats(20, v * e);
        // Skewed ids so that some rows are long chains.
        let ids: Vec<u32> = words(21, n)
            .into_iter()
            .map(|r| (r % 97) % (1 + r % 5 * 20))
            .collect();
        let dy = floats(22, n * e);
        let dw0 = floats(23, v * e);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                (
                    bits(&fwd(&Device::Cpu, &w, v, e, &ids)),
                    bits(&bwd(&Device::Cpu, &dy, &ids, v, e, &dw0)),
                )
            })
        };
        let one = run(1);
        assert_eq!(one.1, bits(&scatter_reference(&dy, &ids, e, &dw0)), "N={n}");
        for t in [2, 3, 8] {
            assert!(run(t) == one, "N={n}: {t} threads changed the bits");
        }
    }
}

/// Out-of-range ids go to the status block, never read back by the op: the
/// same first position and count on every device, the same error text from
/// the report, and outputs left untouched.
#[test]
fn embedding_out_of_range_ids_are_reported_through_the_status_block_on_every_device() {
    let (v, e) = (10, 3);
    // Bad ids at positions 4, 6 and 9 (one of them u32::MAX).
    let ids = vec![0, 1, 9, 2, 10, 3, u32::MAX, 5, 5, 11];
    let n = ids.len();
    let w = floats(30, v * e);
    let dy = floats(31, n * e);
    let expected = "embedding: 3 token ids are out of range for the embedding's rows; the first is at position 4";
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices(
        "embedding_out_of_range_ids_are_reported_through_the_status_block_on_every_device",
    ));
    for dev in &devices {
        let wb = DeviceBuffer::copy_htod(dev, &w).unwrap();
        let ib = DeviceBuffer::copy_htod(dev, &ids).unwrap();
        let mut out = DeviceBuffer::copy_htod(dev, &vec![7.0f32; n * e]).unwrap();
        let mut status = Status::new(dev).unwrap();
        let reads = dev.counters().dtoh_copies;
        embedding::embedding_fwd(dev, &wb, v, e, &ib, &mut out, &mut status).unwrap();
        // The Cpu pool is one per process, shared with the tests running
        // beside this one: its counter is only this test's on a Sim or GPU.
        if !matches!(dev, Device::Cpu) {
            assert_eq!(dev.counters().dtoh_copies, reads, "{dev}: the op read back");
        }
        let report = status.read().unwrap();
        assert_eq!(
            (report.bad_id(), report.first_bad_id, report.bad_ids),
            (true, Some(4), 3),
            "{dev}"
        );
        let err = report.check_inputs().unwrap_err();
        assert!(
            matches!(err, shoestring::Error::InvalidArgument { .. }),
            "{dev}: {err:?}"
        );
        assert_eq!(err.to_string(), expected, "{dev}");
        assert!(
            out.copy_dtoh().unwrap().iter().all(|&x| x == 7.0),
            "{dev}: out was written"
        );

        let db = DeviceBuffer::copy_htod(dev, &dy).unwrap();
        let dw0 = floats(32, v * e);
        let mut dw = DeviceBuffer::copy_htod(dev, &dw0).unwrap();
        status.clear().unwrap();
        embedding::embedding_bwd(dev, &db, &ib, v, e, &mut dw, &mut status).unwrap();
        assert_eq!(
            status
                .read()
                .unwrap()
                .check_inputs()
                .unwrap_err()
                .to_string(),
            expected
        );
        assert_eq!(
            bits(&dw.copy_dtoh().unwrap()),
            bits(&dw0),
            "{dev}: dW was written"
        );

        // E = 0 still checks the ids; V = 0 makes every id out of range.
        status.clear().unwrap();
        let empty = DeviceBuffer::<f32>::zeros(dev, 0).unwrap();
        let mut out0 = DeviceBuffer::<f32>::zeros(dev, 0).unwrap();
        embedding::embedding_fwd(dev, &empty, v, 0, &ib, &mut out0, &mut status).unwrap();
        assert_eq!(
            status
                .read()
                .unwrap()
                .check_inputs()
                .unwrap_err()
                .to_string(),
            expected
        );
        status.clear().unwrap();
        let mut dw0b = DeviceBuffer::<f32>::zeros(dev, 0).unwrap();
        embedding::embedding_bwd(dev, &db, &ib, 0, e, &mut dw0b, &mut status).unwrap();
        let r = status.read().unwrap();
        assert_eq!((r.first_bad_id, r.bad_ids), (Some(0), 10), "{dev}: V = 0");
        // A clear block again after clear().
        status.clear().unwrap();
        assert!(!status.read().unwrap().bad_id());
    }
}

#[test]
fn embedding_refuses_buffers_of_the_wrong_length() {
    let dev = Device::Cpu;
    let w = DeviceBuffer::<f32>::zeros(&dev, 12).unwrap();
    let ids = DeviceBuffer::copy_htod(&dev, &[0u32, 1]).unwrap();
    let mut out = DeviceBuffer::<f32>::zeros(&dev, 5).unwrap();
    let mut status = Status::new(&dev).unwrap();
    let err = embedding::embedding_fwd(&dev, &w, 4, 3, &ids, &mut out, &mut status).unwrap_err();
    assert!(
        err.to_string().contains("`out` has 5 elements, expected 6"),
        "{err}"
    );
    let err = embedding::embedding_fwd(&dev, &w, 5, 3, &ids, &mut out, &mut status).unwrap_err();
    assert!(
        err.to_string()
            .contains("`weights` has 12 elements, expected 15"),
        "{err}"
    );
    let dy = DeviceBuffer::<f32>::zeros(&dev, 6).unwrap();
    let mut dw = DeviceBuffer::<f32>::zeros(&dev, 11).unwrap();
    let err = embedding::embedding_bwd(&dev, &dy, &ids, 4, 3, &mut dw, &mut status).unwrap_err();
    assert!(
        err.to_string()
            .contains("`dweights` has 11 elements, expected 12"),
        "{err}"
    );
}

/// (V, E, N) for the device equality tests: ragged sizes, N around powers of
/// two and above the sort's shared-memory tile (2048 keys), so both sort paths run.
const DEVICE_CASES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (1, 3, 257),
    (50, 7, 1000),
    (1000, 64, 2049),
    (3, 33, 5000),
    (30_000, 16, 16_385),
];

#[test]
fn embedding_fwd_is_bit_identical_on_cpu_and_every_kernel_device() {
    let devices = test_devices("embedding_fwd_is_bit_identical_on_cpu_and_every_kernel_device");
    for (v, e, n) in DEVICE_CASES {
        let w = floats(40, v * e);
        let ids = ids_uniform(41, n, v);
        let want = bits(&fwd(&Device::Cpu, &w, v, e, &ids));
        for dev in &devices {
            assert!(
                bits(&fwd(dev, &w, v, e, &ids)) == want,
                "{dev}: V={v} E={e} N={n}"
            );
        }
    }
}

#[test]
fn embedding_bwd_is_bit_identical_on_cpu_and_every_kernel_device() {
    let devices = test_devices("embedding_bwd_is_bit_identical_on_cpu_and_every_kernel_device");
    let mut cases = bwd_cases();
    for (v, e, n) in DEVICE_CASES {
        cases.push((
            v,
            e,
            ids_uniform(42, n, v),
            floats(43, n * e),
            floats(44, v * e),
        ));
    }
    for (v, e, ids, dy, dw0) in cases {
        let want = bits(&bwd(&Device::Cpu, &dy, &ids, v, e, &dw0));
        for dev in &devices {
            let got = bits(&bwd(dev, &dy, &ids, v, e, &dw0));
            if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
                panic!(
                    "{dev}: V={v} E={e} N={}: dW[{i}] is {:#010x}, CPU says {:#010x}",
                    ids.len(),
                    got[i],
                    want[i]
                );
            }
        }
    }
}

#[test]
fn embedding_kernel_bits_do_not_depend_on_launch_shape() {
    // N = 5003: P = 8192 (4 tiles, so global sort steps run too); skewed ids.
    let (v, e, n) = (200, 17, 5003);
    let w = floats(50, v * e);
    let ids: Vec<u32> = words(51, n)
        .into_iter()
        .map(|r| (r % 200) % (1 + r % 4 * 60))
        .collect();
    let dy = floats(52, n * e);
    let dw0 = floats(53, v * e);
    let want_fwd = bits(&fwd(&Device::Cpu, &w, v, e, &ids));
    let want_bwd = bits(&bwd(&Device::Cpu, &dy, &ids, v, e, &dw0));
    for dev in test_devices("embedding_kernel_bits_do_not_depend_on_launch_shape") {
        for shape in [(32, 1), (1024, 7), (96, 65_535), (1, 3)] {
            assert!(
                bits(&fwd_shape(&dev, &w, v, e, &ids, shape)) == want_fwd,
                "{dev}: shape {shape:?} changed the forward bits"
            );
            assert!(
                bits(&bwd_shape(&dev, &dy, &ids, v, e, &dw0, shape)) == want_bwd,
                "{dev}: shape {shape:?} changed the backward bits"
            );
        }
    }
}

#[test]
fn embedding_verify_reports_bitwise_equal_on_every_device() {
    for dev in test_devices("embedding_verify_reports_bitwise_equal_on_every_device") {
        let outcome = embedding::verify(&dev, 1 << 16).unwrap();
        assert!(outcome.is_bitwise_equal(), "{dev}: {outcome}");
    }
}

#[test]
fn embedding_with_no_positions_or_no_columns_is_a_no_op_on_every_device() {
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices(
        "embedding_with_no_positions_or_no_columns_is_a_no_op_on_every_device",
    ));
    for dev in &devices {
        let (v, e) = (4, 3);
        let w = floats(60, v * e);
        let dw0 = floats(61, v * e);
        // N = 0.
        assert!(fwd(dev, &w, v, e, &[]).is_empty(), "{dev}");
        assert_eq!(bits(&bwd(dev, &[], &[], v, e, &dw0)), bits(&dw0), "{dev}");
        // E = 0 with valid ids.
        assert!(fwd(dev, &[], v, 0, &[1, 2, 3]).is_empty(), "{dev}");
        assert!(bwd(dev, &[], &[1, 2, 3], v, 0, &[]).is_empty(), "{dev}");
    }
}

/// Non-finite gradients (an overflowed, scaled loss): inf + -inf and NaN
/// payloads must leave one NaN pattern in dW on every device.
#[test]
fn non_finite_gradients_leave_the_canonical_nan_on_every_device() {
    use shoestring::device::{Device, DeviceBuffer};
    use shoestring::ops::embedding;
    use support::test_devices;
    let (v, e) = (5usize, 3usize);
    let ids: Vec<u32> = vec![1, 2, 1, 3, 2, 1];
    let specials = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fa0_0001),
        f32::from_bits(0xffc1_2345),
        1.5,
        -2.0,
    ];
    let dy: Vec<f32> = (0..ids.len() * e)
        .map(|i| specials[(i * 7 + i / e) % specials.len()])
        .collect();
    let dw0: Vec<f32> = (0..v * e).map(|i| i as f32 * 0.25).collect();
    let run = |dev: &Device| {
        let dyb = DeviceBuffer::copy_htod(dev, &dy).unwrap();
        let idb = DeviceBuffer::copy_htod(dev, &ids).unwrap();
        let mut dw = DeviceBuffer::copy_htod(dev, &dw0).unwrap();
        let mut status = shoestring::status::Status::new(dev).unwrap();
        embedding::embedding_bwd(dev, &dyb, &idb, v, e, &mut dw, &mut status).unwrap();
        dw.copy_dtoh()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<u32>>()
    };
    let want = run(&Device::Cpu);
    assert!(
        want.iter().any(|&b| f32::from_bits(b).is_nan()),
        "no NaN produced: the test checks nothing"
    );
    for (i, &b) in want.iter().enumerate() {
        if f32::from_bits(b).is_nan() {
            assert_eq!(b, shoestring::numerics::CANONICAL_NAN_BITS, "dW[{i}]");
        }
    }
    for dev in test_devices("non_finite_gradients_leave_the_canonical_nan_on_every_device") {
        assert_eq!(run(&dev), want, "{dev}");
    }
}
