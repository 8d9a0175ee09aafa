//! The pointwise LSTM cell: the CPU twin against a plain scalar reference (bit
//! for bit) and against f64 math (within stated bounds), the backward formula
//! against finite differences of the f64 forward, and every kernel device
//! (Sim under two thread orders, the GPU when present) against the CPU twin,
//! bit for bit, for ragged shapes, several launch shapes and saturated gates.

mod support;

use shoestring::detmath::{sigmoid, tanh};
use shoestring::device::{Device, DeviceBuffer};
use shoestring::numerics::CANONICAL_NAN_BITS;
use shoestring::ops::lstm::{self, LstmShape};
use shoestring::ops::philox::{cpu::philox_block, PhiloxCounter, PhiloxKey};
use support::test_devices;

/// Unit roundoff of f32.
const EPS: f64 = 1.0 / 16_777_216.0;

/// `n` floats uniform in `[lo, hi)` from Philox stream `stream`.
fn uniform(n: usize, stream: u32, lo: f32, hi: f32) -> Vec<f32> {
    let key = PhiloxKey::from_seed(0x7e57_15f3);
    (0..n)
        .map(|k| {
            let w = philox_block(key, PhiloxCounter::new((k / 4) as u64, stream, 0))[k % 4];
            lo + (hi - lo) * ((w >> 8) as f32 / 16_777_216.0)
        })
        .collect()
}

/// `v` with every `period`-th element (from `offset`) replaced by the next special.
fn sprinkle(mut v: Vec<f32>, specials: &[f32], period: usize, offset: usize) -> Vec<f32> {
    for (s, k) in (offset..v.len()).step_by(period).enumerate() {
        v[k] = specials[s % specials.len()];
    }
    v
}

/// One cell's inputs: gates (B x 4H), c_prev, dh, dc (B x H).
struct Inputs {
    shape: LstmShape,
    gates: Vec<f32>,
    c_prev: Vec<f32>,
    dh: Vec<f32>,
    dc: Vec<f32>,
}

fn inputs(batch: usize, hidden: usize, seed: u32) -> Inputs {
    let n = batch * hidden;
    Inputs {
        shape: LstmShape::new(batch, hidden),
        gates: uniform(4 * n, seed, -6.0, 6.0),
        c_prev: uniform(n, seed + 1, -3.0, 3.0),
        dh: uniform(n, seed + 2, -1.0, 1.0),
        dc: uniform(n, seed + 3, -1.0, 1.0),
    }
}

/// Saturating, zero and signed-zero values mixed into ordinary inputs.
fn inputs_with_specials(batch: usize, hidden: usize, seed: u32) -> Inputs {
    let mut x = inputs(batch, hidden, seed);
    let gate_specials = [
        0.0, -0.0, 20.0, -20.0, 100.0, -100.0, 1e30, -1e30, 88.0, -88.0, 1e-40, -1e-45,
    ];
    x.gates = sprinkle(x.gates, &gate_specials, 3, 0);
    x.c_prev = sprinkle(x.c_prev, &[0.0, -0.0, 1e20, -1e20], 5, 1);
    x.dh = sprinkle(x.dh, &[0.0, -0.0], 7, 2);
    x.dc = sprinkle(x.dc, &[0.0, -0.0], 4, 3);
    x
}

/// Everything one forward + backward writes: c, h, act, dgates, dc_prev.
type Outputs = [Vec<f32>; 5];

fn run(dev: &Device, x: &Inputs, launch: Option<(u32, u32)>) -> Outputs {
    let shape = x.shape;
    let n = shape.batch * shape.hidden;
    let up = |v: &[f32]| DeviceBuffer::copy_htod(dev, v).unwrap();
    let (gates, c_prev, dh, dc) = (up(&x.gates), up(&x.c_prev), up(&x.dh), up(&x.dc));
    let mut c = DeviceBuffer::zeros(dev, n).unwrap();
    let mut h = DeviceBuffer::zeros(dev, n).unwrap();
    let mut act = DeviceBuffer::zeros(dev, 4 * n).unwrap();
    let mut dgates = DeviceBuffer::zeros(dev, 4 * n).unwrap();
    let mut dc_prev = DeviceBuffer::zeros(dev, n).unwrap();
    let l = launch.unwrap_or((256, 65_535));
    lstm::lstm_cell_fwd_with_shape(dev, shape, &gates, &c_prev, &mut c, &mut h, &mut act, l)
        .unwrap();
    lstm::lstm_cell_bwd_with_shape(
        dev,
        shape,
        &dh,
        &dc,
        &act,
        &c_prev,
        &c,
        &mut dgates,
        &mut dc_prev,
        l,
    )
    .unwrap();
    [c, h, act, dgates, dc_prev].map(|b| b.copy_dtoh().unwrap())
}

const NAMES: [&str; 5] = ["c", "h", "act", "dgates", "dc_prev"];

fn assert_same_bits(what: &str, want: &Outputs, got: &Outputs) {
    for k in 0..5 {
        assert_eq!(want[k].len(), got[k].len(), "{what}: {} length", NAMES[k]);
        let first = (0..want[k].len()).find(|&e| want[k][e].to_bits() != got[k][e].to_bits());
        if let Some(e) = first {
            panic!(
                "{what}: {}[{e}] is {:e} ({:#010x}), expected {:e} ({:#010x})",
                NAMES[k],
                got[k][e],
                got[k][e].to_bits(),
                want[k][e],
                want[k][e].to_bits()
            );
        }
    }
}

/// Any NaN as the canonical quiet NaN (the contract's last step on every output).
fn canon(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(CANONICAL_NAN_BITS)
    } else {
        x
    }
}

/// The contract written out plainly, one unit at a time, in the canonical
/// order (docs/numerics/lstm.md).
fn scalar_reference(x: &Inputs) -> Outputs {
    let (bn, hn) = (x.shape.batch, x.shape.hidden);
    let mut out: Outputs = [
        vec![0.0; bn * hn],
        vec![0.0; bn * hn],
        vec![0.0; 4 * bn * hn],
        vec![0.0; 4 * bn * hn],
        vec![0.0; bn * hn],
    ];
    for b in 0..bn {
        for j in 0..hn {
            let u = b * hn + j;
            let gate = |k: usize| b * 4 * hn + k * hn + j;
            // forward
            let i = sigmoid(x.gates[gate(0)]);
            let f = sigmoid(x.gates[gate(1)]);
            let g = tanh(x.gates[gate(2)]);
            let o = sigmoid(x.gates[gate(3)]);
            let c = f.mul_add(x.c_prev[u], i * g);
            let h = o * tanh(c);
            out[0][u] = canon(c);
            out[1][u] = canon(h);
            for (k, a) in [i, f, g, o].into_iter().enumerate() {
                out[2][gate(k)] = a;
            }
            // backward
            let tc = tanh(c);
            let d_o = x.dh[u] * tc;
            let one_minus_tc2 = (-tc).mul_add(tc, 1.0);
            let dct = (x.dh[u] * o).mul_add(one_minus_tc2, x.dc[u]);
            let di = dct * g;
            let df = dct * x.c_prev[u];
            let dg = dct * i;
            out[4][u] = canon(dct * f);
            out[3][gate(0)] = canon(di * (-i).mul_add(i, i));
            out[3][gate(1)] = canon(df * (-f).mul_add(f, f));
            out[3][gate(2)] = canon(dg * (-g).mul_add(g, 1.0));
            out[3][gate(3)] = canon(d_o * (-o).mul_add(o, o));
        }
    }
    out
}

/// Shapes for the equality tests: ragged against every block size and
/// against the CPU twin's task size (16 Ki units), plus the trivial one.
const SHAPES: [(usize, usize); 4] = [(1, 1), (3, 5), (7, 129), (64, 512)];

#[test]
fn lstm_cpu_matches_scalar_reference_bits() {
    let mut shapes = SHAPES.to_vec();
    shapes.extend([(2, 20_000), (100, 1000), (33, 1)]);
    for (seed, (b, h)) in shapes.into_iter().enumerate() {
        for x in [
            inputs(b, h, 10 * seed as u32),
            inputs_with_specials(b, h, 7),
        ] {
            let got = run(&Device::Cpu, &x, None);
            assert_same_bits(&format!("cpu {b}x{h}"), &scalar_reference(&x), &got);
        }
    }
}

#[test]
fn lstm_cpu_bits_do_not_depend_on_thread_count() {
    // 37 x 1000 units: three rayon tasks of 16 rows, the last one ragged.
    let x = inputs_with_specials(37, 1000, 3);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| run(&Device::Cpu, &x, None))
    };
    let one = on(1);
    for t in [2, 3, 8] {
        assert_same_bits(&format!("{t} threads"), &one, &on(t));
    }
}

#[test]
fn lstm_kernels_match_cpu_bits_on_every_device() {
    let devices = test_devices("lstm_kernels_match_cpu_bits_on_every_device");
    for (b, h) in SHAPES {
        for x in [inputs(b, h, 40), inputs_with_specials(b, h, 50)] {
            let want = run(&Device::Cpu, &x, None);
            for dev in &devices {
                assert_same_bits(&format!("{dev} {b}x{h}"), &want, &run(dev, &x, None));
            }
        }
    }
}

#[test]
fn lstm_kernel_bits_do_not_depend_on_launch_shape() {
    let x = inputs_with_specials(7, 129, 60);
    let want = run(&Device::Cpu, &x, None);
    for dev in test_devices("lstm_kernel_bits_do_not_depend_on_launch_shape") {
        for launch in [(32, 1), (1024, 7), (96, 65_535), (1, 3)] {
            let got = run(&dev, &x, Some(launch));
            assert_same_bits(&format!("{dev} launch {launch:?}"), &want, &got);
        }
    }
}

// ---- f64 oracles ----

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// f64 forward of one unit from gate pre-activations: (i, f, g, o, c, h).
fn fwd64(gi: f64, gf: f64, gg: f64, go: f64, cp: f64) -> [f64; 6] {
    let (i, f, g, o) = (sigmoid64(gi), sigmoid64(gf), gg.tanh(), sigmoid64(go));
    let c = f * cp + i * g;
    [i, f, g, o, c, o * c.tanh()]
}

/// f64 backward of one unit, the contract's formula without rounding:
/// (dGi, dGf, dGg, dGo, dc_prev).
fn bwd64(act: [f64; 4], cp: f64, c: f64, dh: f64, dc: f64) -> [f64; 5] {
    let [i, f, g, o] = act;
    let tc = c.tanh();
    let dct = dh * o * (1.0 - tc * tc) + dc;
    [
        dct * g * i * (1.0 - i),
        dct * cp * f * (1.0 - f),
        dct * i * (1.0 - g * g),
        dh * tc * o * (1.0 - o),
        dct * f,
    ]
}

/// Largest |got - want| / (EPS * scale + tiny) over a slice, and where.
#[derive(Default)]
struct Worst {
    units: f64,
    at: usize,
}

impl Worst {
    fn see(&mut self, got: f32, want: f64, scale: f64, at: usize) {
        let units = (f64::from(got) - want).abs() / (EPS * scale + 1e-40);
        if units > self.units || units.is_nan() {
            *self = Worst { units, at };
        }
    }
}

/// Bound in units of f32's unit roundoff times each output's scale (see
/// docs/numerics/lstm.md, "Accuracy"): detmath's sigmoid and tanh are within a
/// few ulp, and each output is a handful of further roundings from them.
const FWD_BOUND: f64 = 12.0;
const BWD_BOUND: f64 = 16.0;

#[test]
fn lstm_fwd_is_within_bound_of_f64_math() {
    let x = inputs(256, 1024, 70);
    let hn = x.shape.hidden;
    let [c, h, act, ..] = run(&Device::Cpu, &x, None);
    let mut worst: [Worst; 6] = Default::default();
    for u in 0..c.len() {
        let gate = |k: usize| (u / hn) * 4 * hn + k * hn + u % hn;
        let g = |k: usize| f64::from(x.gates[gate(k)]);
        let cp = f64::from(x.c_prev[u]);
        let [i, f, gg, o, c64, h64] = fwd64(g(0), g(1), g(2), g(3), cp);
        for (k, a64) in [i, f, gg, o].into_iter().enumerate() {
            worst[k].see(act[gate(k)], a64, a64.abs(), u);
        }
        let scale_c = (f * cp).abs() + (i * gg).abs();
        worst[4].see(c[u], c64, scale_c, u);
        worst[5].see(h[u], h64, h64.abs() + o * scale_c, u);
    }
    for (name, w) in ["i", "f", "g", "o", "c", "h"].iter().zip(&worst) {
        println!("fwd {name}: worst {:.2} units at unit {}", w.units, w.at);
        assert!(
            w.units <= FWD_BOUND,
            "{name}: {:.2} units at unit {}",
            w.units,
            w.at
        );
    }
}

#[test]
fn lstm_bwd_is_within_bound_of_f64_math() {
    let x = inputs(256, 1024, 80);
    let hn = x.shape.hidden;
    let [c, _, act, dgates, dc_prev] = run(&Device::Cpu, &x, None);
    let mut worst: [Worst; 5] = Default::default();
    for u in 0..c.len() {
        let gate = |k: usize| (u / hn) * 4 * hn + k * hn + u % hn;
        let a = [0, 1, 2, 3].map(|k| f64::from(act[gate(k)]));
        let [i, f, g, o] = a;
        let (cp, c64) = (f64::from(x.c_prev[u]), f64::from(c[u]));
        let (dh, dc) = (f64::from(x.dh[u]), f64::from(x.dc[u]));
        let want = bwd64(a, cp, c64, dh, dc);
        // The sensitivity of each output to the rounding of dct and of the
        // f32 tanh(c) (see the docs): scale_dct covers both.
        let scale_dct = (dh * o).abs() + dc.abs();
        let scales = [
            scale_dct * (g * i * (1.0 - i)).abs(),
            scale_dct * (cp * f * (1.0 - f)).abs(),
            scale_dct * (i * (1.0 - g * g)).abs(),
            (dh * c64.tanh() * o * (1.0 - o)).abs(),
            scale_dct * f.abs(),
        ];
        for k in 0..4 {
            worst[k].see(dgates[gate(k)], want[k], scales[k], u);
        }
        worst[4].see(dc_prev[u], want[4], scales[4], u);
    }
    for (name, w) in ["dGi", "dGf", "dGg", "dGo", "dc_prev"].iter().zip(&worst) {
        println!("bwd {name}: worst {:.2} units at unit {}", w.units, w.at);
        assert!(
            w.units <= BWD_BOUND,
            "{name}: {:.2} units at unit {}",
            w.units,
            w.at
        );
    }
}

#[test]
fn lstm_bwd_formula_matches_finite_differences_of_f64_forward() {
    // L = dh * h + dc * c for one unit; the contract's backward formula (in
    // f64) must be its gradient with respect to the 4 gates and c_prev.
    let x = inputs(16, 8, 90);
    for u in 0..x.c_prev.len() {
        let gate = |k: usize| (u / 8) * 32 + k * 8 + u % 8;
        let mut p = [0, 1, 2, 3].map(|k| f64::from(x.gates[gate(k)])).to_vec();
        p.push(f64::from(x.c_prev[u]));
        let (dh, dc) = (f64::from(x.dh[u]), f64::from(x.dc[u]));
        let loss = |p: &[f64]| {
            let r = fwd64(p[0], p[1], p[2], p[3], p[4]);
            dh * r[5] + dc * r[4]
        };
        let r = fwd64(p[0], p[1], p[2], p[3], p[4]);
        let analytic = bwd64([r[0], r[1], r[2], r[3]], p[4], r[4], dh, dc);
        for k in 0..5 {
            let step = 1e-5 * p[k].abs().max(1.0);
            let (mut hi, mut lo) = (p.clone(), p.clone());
            hi[k] += step;
            lo[k] -= step;
            let fd = (loss(&hi) - loss(&lo)) / (2.0 * step);
            assert!(
                (fd - analytic[k]).abs() <= 1e-7 * (1.0 + analytic[k].abs()),
                "unit {u} input {k}: finite difference {fd}, formula {}",
                analytic[k]
            );
        }
    }
}

// ---- special values ----

#[test]
fn lstm_saturated_and_zero_gates_give_finite_bounded_results_on_every_device() {
    // Every gate pattern over {-1e30, -100, -20, -0, 0, 20, 100, 1e30} on a
    // ragged shape, c_prev in {-1e20, -1, -0, 0, 1}.
    let vals = [-1e30f32, -100.0, -20.0, -0.0, 0.0, 20.0, 100.0, 1e30];
    let cps = [-1e20f32, -1.0, -0.0, 0.0, 1.0];
    let hn = 5;
    let n_units = vals.len().pow(4) * cps.len();
    let batch = n_units / hn;
    let mut x = inputs(batch, hn, 100);
    for u in 0..n_units {
        let gate = |k: usize| (u / hn) * 4 * hn + k * hn + u % hn;
        let mut r = u;
        for k in 0..4 {
            x.gates[gate(k)] = vals[r % vals.len()];
            r /= vals.len();
        }
        x.c_prev[u] = cps[r % cps.len()];
    }
    let want = run(&Device::Cpu, &x, None);
    assert_same_bits("cpu vs reference", &scalar_reference(&x), &want);
    let [c, h, act, dgates, dc_prev] = &want;
    for v in act.iter() {
        assert!((-1.0..=1.0).contains(v), "activation {v} out of range");
    }
    for (k, v) in c.iter().chain(h).chain(dgates).chain(dc_prev).enumerate() {
        assert!(v.is_finite(), "output {k} is {v}");
    }
    for u in 0..n_units {
        let a = |k: usize| act[(u / hn) * 4 * hn + k * hn + u % hn];
        assert!((0.0..=1.0).contains(&a(0)) && (0.0..=1.0).contains(&a(3)));
        assert!(h[u].abs() <= 1.0, "h[{u}] = {}", h[u]);
    }
    for dev in
        test_devices("lstm_saturated_and_zero_gates_give_finite_bounded_results_on_every_device")
    {
        assert_same_bits(&format!("{dev}"), &want, &run(&dev, &x, None));
    }
}

#[test]
fn lstm_all_zero_inputs_give_exact_zeros_and_halves() {
    for zero in [0.0f32, -0.0] {
        let x = Inputs {
            shape: LstmShape::new(2, 3),
            gates: vec![zero; 24],
            c_prev: vec![zero; 6],
            dh: vec![zero; 6],
            dc: vec![zero; 6],
        };
        let [c, h, act, dgates, dc_prev] = run(&Device::Cpu, &x, None);
        for b in 0..2 {
            for j in 0..3 {
                let a = |k: usize| act[b * 12 + k * 3 + j];
                assert_eq!((a(0), a(1), a(3)), (0.5, 0.5, 0.5));
                assert_eq!(a(2), 0.0);
            }
        }
        assert!(c
            .iter()
            .chain(&h)
            .chain(&dgates)
            .chain(&dc_prev)
            .all(|v| *v == 0.0));
    }
}

#[test]
fn lstm_infinities_and_nans_give_the_same_bits_everywhere() {
    // Inf and NaN in every input, including the invalid operations they cause
    // (0 * inf, inf - inf): every NaN output is the canonical 0x7fc00000 on
    // every device, so the outputs still agree bit for bit.
    let nan = f32::from_bits(0xffc0_0001); // negative, with a payload
    let specials = [f32::INFINITY, f32::NEG_INFINITY, nan, f32::NAN, 0.0, -0.0];
    let mut x = inputs(9, 131, 110);
    x.gates = sprinkle(x.gates, &specials, 5, 0);
    x.c_prev = sprinkle(x.c_prev, &specials, 7, 1);
    x.dh = sprinkle(x.dh, &specials, 11, 2);
    x.dc = sprinkle(x.dc, &specials, 13, 3);
    let want = run(&Device::Cpu, &x, None);
    assert_same_bits("cpu vs reference", &scalar_reference(&x), &want);
    let nans = want.iter().flatten().filter(|v| v.is_nan()).count();
    assert!(
        nans > 100,
        "only {nans} NaN outputs: the test lost its point"
    );
    assert!(want
        .iter()
        .flatten()
        .all(|v| !v.is_nan() || v.to_bits() == CANONICAL_NAN_BITS));
    for dev in test_devices("lstm_infinities_and_nans_give_the_same_bits_everywhere") {
        assert_same_bits(&format!("{dev}"), &want, &run(&dev, &x, None));
    }
}

// ---- argument checks ----

#[test]
fn lstm_refuses_buffers_of_the_wrong_length() {
    let dev = Device::Cpu;
    let shape = LstmShape::new(2, 3);
    let z = |n: usize| DeviceBuffer::<f32>::zeros(&dev, n).unwrap();
    let (gates, c_prev) = (z(24), z(6));
    let (mut c, mut h, mut act) = (z(6), z(6), z(23));
    let err =
        lstm::lstm_cell_fwd(&dev, shape, &gates, &c_prev, &mut c, &mut h, &mut act).unwrap_err();
    assert!(
        err.to_string()
            .contains("`act` has 23 elements, expected 24"),
        "{err}"
    );
    let (dh, dc, act, mut dgates, mut dc_prev) = (z(6), z(5), z(24), z(24), z(6));
    let err = lstm::lstm_cell_bwd(
        &dev,
        shape,
        &dh,
        &dc,
        &act,
        &c_prev,
        &c,
        &mut dgates,
        &mut dc_prev,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("`dc` has 5 elements, expected 6"),
        "{err}"
    );
}

#[test]
fn lstm_refuses_a_shape_that_overflows_and_accepts_an_empty_one() {
    let dev = Device::Cpu;
    let z = DeviceBuffer::<f32>::zeros(&dev, 0).unwrap();
    let big = LstmShape::new(usize::MAX / 2, 3);
    let mut o1 = DeviceBuffer::<f32>::zeros(&dev, 0).unwrap();
    let mut o2 = DeviceBuffer::<f32>::zeros(&dev, 0).unwrap();
    let mut o3 = DeviceBuffer::<f32>::zeros(&dev, 0).unwrap();
    let err = lstm::lstm_cell_fwd(&dev, big, &z, &z, &mut o1, &mut o2, &mut o3).unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
    for shape in [LstmShape::new(0, 7), LstmShape::new(7, 0)] {
        lstm::lstm_cell_fwd(&dev, shape, &z, &z, &mut o1, &mut o2, &mut o3).unwrap();
    }
}
