//! Elementwise ops: the CPU twin against plain scalar loops (bitwise), the casts
//! against the `half` crate, Adam against a plain reference (bitwise) and f64
//! (tolerance), the overflow flag's semantics, thread-count invariance, and every
//! kernel device (Sim under two thread orders, the GPU when present) against the
//! CPU twin bit for bit, under several sizes and launch shapes.

mod support;

use shoestring::device::{Device, DeviceBuffer};
use shoestring::numerics::{float_to_half_rn, CANONICAL_NAN_BITS};
use shoestring::ops::elementwise::{self as ew, AdamParams};
use shoestring::ops::philox::{cpu::philox_block, PhiloxCounter, PhiloxKey};
use shoestring::status::Status;
use shoestring::Error;
use support::test_devices;

/// Deterministic random words (Philox, key fixed, `stream` picks the input).
fn words(n: usize, stream: u32) -> Vec<u32> {
    let key = PhiloxKey::from_seed(0xe1e_e1e);
    (0..n.div_ceil(4))
        .flat_map(|b| philox_block(key, PhiloxCounter::new(b as u64, stream, 0)))
        .take(n)
        .collect()
}

/// Floats over many binades (2^-40 .. 2^40, both signs), with inf, NaN,
/// subnormals and -0 mixed in every 61st element.
fn floats(n: usize, stream: u32) -> Vec<f32> {
    let specials = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -0.0,
        1e-40,
        -3e-42,
        f32::MAX,
        65520.0,
    ];
    words(n, stream)
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            if i % 61 == 7 {
                specials[(i / 61) % specials.len()]
            } else {
                let exp = 87 + (w >> 25) % 80;
                f32::from_bits((w & 0x8000_0000) | (exp << 23) | (w & 0x007f_ffff))
            }
        })
        .collect()
}

/// Uniform in [-1, 1).
fn unit(n: usize, stream: u32) -> Vec<f32> {
    words(n, stream)
        .into_iter()
        .map(|w| (w >> 8) as f32 * 2.0f32.powi(-23) - 1.0)
        .collect()
}

/// NaN results are stored as the project's one NaN, 0x7fc00000 (Rust's f32::NAN).
fn canon(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(CANONICAL_NAN_BITS)
    } else {
        x
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} is {:e} ({:#010x}), expected {:e} ({:#010x})",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

// ---- every op once on a device, outputs as bits ------------------------------

/// The results of every op on `dev` for `n` elements, launched with `shape`.
fn run_every_op(dev: &Device, n: usize, shape: (u32, u32)) -> Vec<(&'static str, Vec<u32>)> {
    let (a, b) = (floats(n, 1), unit(n, 2));
    let da = DeviceBuffer::copy_htod(dev, &a).unwrap();
    let db = DeviceBuffer::copy_htod(dev, &b).unwrap();
    let mut out = DeviceBuffer::zeros(dev, n).unwrap();
    let mut res = Vec::new();
    ew::add_with_shape(dev, &da, &db, &mut out, shape).unwrap();
    res.push(("add", bits(&out.copy_dtoh().unwrap())));
    ew::mul_with_shape(dev, &da, &db, &mut out, shape).unwrap();
    res.push(("mul", bits(&out.copy_dtoh().unwrap())));
    ew::scale_with_shape(dev, -0.7, &da, &mut out, shape).unwrap();
    res.push(("scale", bits(&out.copy_dtoh().unwrap())));
    let mut y = DeviceBuffer::copy_htod(dev, &b).unwrap();
    ew::axpy(dev, -1.25, &da, &mut y).unwrap();
    res.push(("axpy", bits(&y.copy_dtoh().unwrap())));
    let mut h = DeviceBuffer::zeros(dev, n).unwrap();
    ew::cast_f32_to_f16_with_shape(dev, &da, &mut h, shape).unwrap();
    let halves = h.copy_dtoh().unwrap();
    res.push((
        "cast_f32_to_f16",
        halves.iter().map(|&x| u32::from(x)).collect(),
    ));
    let hw: Vec<u16> = words(n, 3).into_iter().map(|w| w as u16).collect();
    let dh = DeviceBuffer::copy_htod(dev, &hw).unwrap();
    ew::cast_f16_to_f32_with_shape(dev, &dh, &mut out, shape).unwrap();
    res.push(("cast_f16_to_f32", bits(&out.copy_dtoh().unwrap())));
    let grad: Vec<f32> = unit(n, 4).iter().map(|g| g * 1e-2).collect();
    let dg = DeviceBuffer::copy_htod(dev, &grad).unwrap();
    let mut p = DeviceBuffer::copy_htod(dev, &b).unwrap();
    let mut m = DeviceBuffer::zeros(dev, n).unwrap();
    let mut v = DeviceBuffer::zeros(dev, n).unwrap();
    let hp = AdamParams {
        weight_decay: 0.1,
        ..AdamParams::default()
    };
    for t in 1..=3 {
        ew::adam_step_with_shape(dev, &hp, t, &mut p, &dg, &mut m, &mut v, shape).unwrap();
    }
    res.push(("adam param", bits(&p.copy_dtoh().unwrap())));
    res.push(("adam m", bits(&m.copy_dtoh().unwrap())));
    res.push(("adam v", bits(&v.copy_dtoh().unwrap())));
    let mut flag = Status::new(dev).unwrap();
    let mut g = DeviceBuffer::copy_htod(dev, &a).unwrap();
    ew::unscale_check_finite_with_shape(dev, 1.0 / 1024.0, &mut g, &mut flag, shape).unwrap();
    let mut got = bits(&g.copy_dtoh().unwrap());
    got.push(flag.read().unwrap().flags);
    res.push(("unscale_check", got));
    res
}

fn compare_runs(what: &str, got: &[(&'static str, Vec<u32>)], want: &[(&'static str, Vec<u32>)]) {
    for ((op, g), (_, w)) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "{what}: {op} length");
        if let Some(i) = (0..g.len()).find(|&i| g[i] != w[i]) {
            panic!(
                "{what}: {op}[{i}] = {:#010x}, CPU twin says {:#010x}",
                g[i], w[i]
            );
        }
    }
}

// ---- CPU twin vs plain scalar loops ------------------------------------------

#[test]
fn add_mul_scale_cpu_equal_a_plain_scalar_loop_bitwise() {
    let cpu = Device::Cpu;
    for n in [1, 255, 257, 65_537] {
        let (a, b) = (floats(n, 1), floats(n, 2));
        let da = DeviceBuffer::copy_htod(&cpu, &a).unwrap();
        let db = DeviceBuffer::copy_htod(&cpu, &b).unwrap();
        let mut out = DeviceBuffer::zeros(&cpu, n).unwrap();
        ew::add(&cpu, &da, &db, &mut out).unwrap();
        let want: Vec<f32> = (0..n).map(|i| canon(a[i] + b[i])).collect();
        assert_bits_eq("add", &out.copy_dtoh().unwrap(), &want);
        ew::mul(&cpu, &da, &db, &mut out).unwrap();
        let want: Vec<f32> = (0..n).map(|i| canon(a[i] * b[i])).collect();
        assert_bits_eq("mul", &out.copy_dtoh().unwrap(), &want);
        for alpha in [0.3f32, -2.0, 1.0 / 65536.0, f32::INFINITY] {
            ew::scale(&cpu, alpha, &da, &mut out).unwrap();
            let want: Vec<f32> = (0..n).map(|i| canon(alpha * a[i])).collect();
            assert_bits_eq("scale", &out.copy_dtoh().unwrap(), &want);
        }
    }
}

#[test]
fn axpy_accumulates_with_one_fma_and_add_assign_equals_plain_addition() {
    let cpu = Device::Cpu;
    for n in [1, 257, 65_537] {
        let (x, y0) = (floats(n, 5), floats(n, 6));
        let dx = DeviceBuffer::copy_htod(&cpu, &x).unwrap();
        for alpha in [0.3f32, -2.0, 1.0] {
            let mut y = DeviceBuffer::copy_htod(&cpu, &y0).unwrap();
            ew::axpy(&cpu, alpha, &dx, &mut y).unwrap();
            let want: Vec<f32> = (0..n).map(|i| canon(alpha.mul_add(x[i], y0[i]))).collect();
            assert_bits_eq("axpy", &y.copy_dtoh().unwrap(), &want);
        }
        let mut y = DeviceBuffer::copy_htod(&cpu, &y0).unwrap();
        ew::add_assign(&cpu, &dx, &mut y).unwrap();
        let want: Vec<f32> = (0..n).map(|i| canon(y0[i] + x[i])).collect();
        assert_bits_eq("add_assign", &y.copy_dtoh().unwrap(), &want);
    }
}

// ---- casts vs the half crate ---------------------------------------------------

#[test]
fn cast_f16_to_f32_equals_half_on_all_65536_halves() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let x = DeviceBuffer::copy_htod(&Device::Cpu, &all).unwrap();
    let mut out = DeviceBuffer::zeros(&Device::Cpu, all.len()).unwrap();
    ew::cast_f16_to_f32(&Device::Cpu, &x, &mut out).unwrap();
    let got = out.copy_dtoh().unwrap();
    let want: Vec<f32> = all
        .iter()
        .map(|&h| half::f16::from_bits(h).to_f32())
        .collect();
    assert_bits_eq("f16->f32", &got, &want);
    // And back: every half, NaNs included, survives the round trip unchanged
    // except that signalling NaNs come back quiet (as in `half`).
    let mut back = DeviceBuffer::zeros(&Device::Cpu, all.len()).unwrap();
    ew::cast_f32_to_f16(&Device::Cpu, &out, &mut back).unwrap();
    for (h, r) in all.iter().zip(back.copy_dtoh().unwrap()) {
        let nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
        assert_eq!(r, if nan { h | 0x0200 } else { *h }, "half {h:#06x}");
    }
}

/// Floats that stress f32 -> f16 rounding: for every half `h`, the exact
/// midpoint to the next half (a tie), one f32 ulp either side of it, and `h`
/// itself widened; plus f32 subnormals, the overflow boundary, NaN payloads and
/// a stride through all 2^32 bit patterns.
fn cast_sweep() -> Vec<f32> {
    let mut xs = Vec::new();
    for h in 0..0x7c00u16 {
        for sign in [0u16, 0x8000] {
            let lo = half::f16::from_bits(h | sign).to_f32();
            let hi = half::f16::from_bits((h + 1) | sign).to_f32();
            let mid = ((f64::from(lo) + f64::from(hi)) / 2.0) as f32; // exact in f32
            xs.extend([lo, mid, f32::from_bits(mid.to_bits() - 1)]);
            xs.push(f32::from_bits(mid.to_bits() + 1));
        }
    }
    xs.extend([
        65504.0,
        65519.996,
        65520.0,
        65536.0,
        1e30,
        f32::MAX,
        f32::INFINITY,
    ]);
    xs.extend([-65520.0, -f32::MAX, f32::NEG_INFINITY, 0.0, -0.0]);
    for b in [
        1u32,
        2,
        0x7f_ffff,
        0x40_0000,
        0x80_0000,
        0x3380_0000,
        0x3300_0000,
        0x3300_0001,
    ] {
        xs.extend([f32::from_bits(b), f32::from_bits(b | 0x8000_0000)]);
    }
    for payload in [
        1u32, 0x1fff, 0x2000, 0x3f_ffff, 0x40_0000, 0x7f_ffff, 0x12_3456,
    ] {
        xs.extend([
            f32::from_bits(0x7f80_0000 | payload),
            f32::from_bits(0xff80_0000 | payload),
        ]);
    }
    xs.extend(
        (0..(1u64 << 32))
            .step_by(2039)
            .map(|b| f32::from_bits(b as u32)),
    );
    xs
}

#[test]
fn cast_f32_to_f16_equals_half_on_ties_overflow_subnormals_nan_and_a_sweep() {
    let xs = cast_sweep();
    let x = DeviceBuffer::copy_htod(&Device::Cpu, &xs).unwrap();
    let mut out = DeviceBuffer::zeros(&Device::Cpu, xs.len()).unwrap();
    ew::cast_f32_to_f16(&Device::Cpu, &x, &mut out).unwrap();
    for (x, got) in xs.iter().zip(out.copy_dtoh().unwrap()) {
        let want = half::f16::from_f32(*x).to_bits();
        assert_eq!(got, want, "f32 {x:e} ({:#010x})", x.to_bits());
    }
    // Spot checks that the sweep really contains what it claims.
    assert_eq!(
        float_to_half_rn(65520.0),
        0x7c00,
        "tie at the top rounds to inf"
    );
    assert_eq!(float_to_half_rn(65519.996), 0x7bff);
    assert_eq!(
        float_to_half_rn(1.0 + 2.0f32.powi(-11)),
        0x3c00,
        "tie to even"
    );
    assert_eq!(
        float_to_half_rn(2.0f32.powi(-25)),
        0,
        "half the smallest subnormal"
    );
    assert_eq!(float_to_half_rn(f32::from_bits(0x7f80_0001)), 0x7e00);
}

// ---- Adam --------------------------------------------------------------------

/// Adam step `t` written plainly, in the documented order.
fn adam_reference(hp: &AdamParams, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let bc1 = (1.0 - f64::from(hp.beta1).powi(t as i32)) as f32;
    let bc2 = (1.0 - f64::from(hp.beta2).powi(t as i32)) as f32;
    let (c1, c2) = (1.0 - hp.beta1, 1.0 - hp.beta2);
    let lr_wd = hp.lr * hp.weight_decay;
    for i in 0..p.len() {
        let m1 = hp.beta1.mul_add(m[i], c1 * g[i]);
        let v1 = hp.beta2.mul_add(v[i], c2 * (g[i] * g[i]));
        let m_hat = m1 / bc1;
        let v_hat = v1 / bc2;
        let upd = m_hat / (v_hat.sqrt() + hp.eps);
        let decayed = (-lr_wd).mul_add(p[i], p[i]);
        m[i] = canon(m1);
        v[i] = canon(v1);
        p[i] = canon((-hp.lr).mul_add(upd, decayed));
    }
}

fn adam_cases() -> Vec<AdamParams> {
    vec![
        AdamParams::default(),
        AdamParams {
            lr: 3e-4,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.01,
        },
        AdamParams {
            lr: 1e-2,
            beta1: 0.0,
            beta2: 0.5,
            eps: 1e-8,
            weight_decay: 0.3,
        },
    ]
}

#[test]
fn bias_corrections_are_one_minus_beta_pow_t_in_f64_rounded_once() {
    for beta in [0.9f32, 0.999, 0.99, 0.8, 0.5, 0.0, 0.999_999] {
        for t in (1..=5000u64).chain([1 << 20, 1 << 31, u64::MAX]) {
            let want = if t <= i32::MAX as u64 {
                (1.0 - f64::from(beta).powi(t as i32)) as f32
            } else {
                1.0 // beta^t underflows to 0 in f64 for every beta < 1 here
            };
            let got = ew::bias_correction(beta, t);
            assert_eq!(got.to_bits(), want.to_bits(), "beta {beta} t {t}");
            assert!(got > 0.0 && got <= 1.0);
        }
    }
}

#[test]
fn adam_cpu_equals_a_plain_scalar_reference_bitwise_over_several_steps() {
    let n = 10_007;
    for hp in adam_cases() {
        let p0 = unit(n, 10);
        let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; n], vec![0.0; n]);
        let mut dp = DeviceBuffer::copy_htod(&Device::Cpu, &p0).unwrap();
        let mut dm = DeviceBuffer::zeros(&Device::Cpu, n).unwrap();
        let mut dv = DeviceBuffer::zeros(&Device::Cpu, n).unwrap();
        for t in 1..=8u64 {
            // Gradients change every step and span several binades (incl. 0).
            let g: Vec<f32> = unit(n, 100 + t as u32)
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    if i % 101 == 0 {
                        0.0
                    } else {
                        x * 10f32.powi((i % 7) as i32 - 4)
                    }
                })
                .collect();
            let dg = DeviceBuffer::copy_htod(&Device::Cpu, &g).unwrap();
            ew::adam_step(&Device::Cpu, &hp, t, &mut dp, &dg, &mut dm, &mut dv).unwrap();
            adam_reference(&hp, t, &mut p, &g, &mut m, &mut v);
            assert_bits_eq(&format!("{hp:?} t={t} param"), &dp.copy_dtoh().unwrap(), &p);
            assert_bits_eq(&format!("{hp:?} t={t} m"), &dm.copy_dtoh().unwrap(), &m);
            assert_bits_eq(&format!("{hp:?} t={t} v"), &dv.copy_dtoh().unwrap(), &v);
        }
    }
}

/// After 20 steps the f32 parameters stay within `2e-6 * max(1, |p|)` of an
/// f64 AdamW on the same (f32) inputs; `v` within `1e-5` relative, `m` within
/// `1e-5 * (|m| + 1e-3)` (gradients are ~0.1, so `m` may cancel to ~0).
#[test]
fn adam_is_close_to_f64_adam() {
    let n = 4099;
    for hp in adam_cases() {
        let p0 = unit(n, 20);
        let mut dp = DeviceBuffer::copy_htod(&Device::Cpu, &p0).unwrap();
        let mut dm = DeviceBuffer::zeros(&Device::Cpu, n).unwrap();
        let mut dv = DeviceBuffer::zeros(&Device::Cpu, n).unwrap();
        let mut p: Vec<f64> = p0.iter().map(|&x| f64::from(x)).collect();
        let (mut m, mut v) = (vec![0.0f64; n], vec![0.0f64; n]);
        let (b1, b2) = (f64::from(hp.beta1), f64::from(hp.beta2));
        let (lr, wd, eps) = (
            f64::from(hp.lr),
            f64::from(hp.weight_decay),
            f64::from(hp.eps),
        );
        let (mut worst, mut worst_m, mut worst_v) = (0.0f64, 0.0f64, 0.0f64);
        for t in 1..=20u64 {
            let g: Vec<f32> = unit(n, 200 + t as u32).iter().map(|x| x * 0.1).collect();
            let dg = DeviceBuffer::copy_htod(&Device::Cpu, &g).unwrap();
            ew::adam_step(&Device::Cpu, &hp, t, &mut dp, &dg, &mut dm, &mut dv).unwrap();
            for i in 0..n {
                let gi = f64::from(g[i]);
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let m_hat = m[i] / (1.0 - b1.powi(t as i32));
                let v_hat = v[i] / (1.0 - b2.powi(t as i32));
                p[i] = p[i] - lr * wd * p[i] - lr * m_hat / (v_hat.sqrt() + eps);
            }
        }
        let (gp, gm, gv) = (
            dp.copy_dtoh().unwrap(),
            dm.copy_dtoh().unwrap(),
            dv.copy_dtoh().unwrap(),
        );
        for i in 0..n {
            let e = (f64::from(gp[i]) - p[i]).abs() / p[i].abs().max(1.0);
            worst = worst.max(e);
            assert!(e <= 2e-6, "{hp:?}: param {i}: {} vs {}", gp[i], p[i]);
            // m can cancel to ~0, so its error is measured against the
            // gradient scale (0.1) as well as its own size.
            let em = (f64::from(gm[i]) - m[i]).abs() / (m[i].abs() + 1e-3);
            let ev = (f64::from(gv[i]) - v[i]).abs() / v[i];
            worst_m = worst_m.max(em);
            worst_v = worst_v.max(ev);
            assert!(em <= 1e-5, "{hp:?}: m {i}: {} vs {}", gm[i], m[i]);
            assert!(ev <= 1e-5, "{hp:?}: v {i}: {} vs {}", gv[i], v[i]);
        }
        eprintln!(
            "adam vs f64, {hp:?}: worst errors: param {worst:e}, m {worst_m:e}, v {worst_v:e}"
        );
    }
}

#[test]
fn adam_refuses_step_zero_and_bad_hyper_parameters() {
    let cpu = Device::Cpu;
    let mut p = DeviceBuffer::zeros(&cpu, 4).unwrap();
    let g = DeviceBuffer::zeros(&cpu, 4).unwrap();
    let mut m = DeviceBuffer::zeros(&cpu, 4).unwrap();
    let mut v = DeviceBuffer::zeros(&cpu, 4).unwrap();
    let err =
        ew::adam_step(&cpu, &AdamParams::default(), 0, &mut p, &g, &mut m, &mut v).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { .. }) && err.to_string().contains(">= 1"),
        "{err}"
    );
    for bad in [
        AdamParams {
            beta1: 1.0,
            ..AdamParams::default()
        },
        AdamParams {
            beta2: -0.1,
            ..AdamParams::default()
        },
        AdamParams {
            eps: 0.0,
            ..AdamParams::default()
        },
        AdamParams {
            lr: f32::NAN,
            ..AdamParams::default()
        },
        AdamParams {
            weight_decay: -1.0,
            ..AdamParams::default()
        },
    ] {
        let err = ew::adam_step(&cpu, &bad, 1, &mut p, &g, &mut m, &mut v).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{bad:?}: {err}"
        );
    }
}

// ---- unscale + finite check and the overflow flag ------------------------------

#[test]
fn unscale_leaves_the_flag_clear_when_every_result_is_finite() {
    let n = 70_001;
    let g0: Vec<f32> = floats(n, 30)
        .into_iter()
        .map(|x| if x.is_finite() { x } else { 1.0 })
        .collect();
    let mut g = DeviceBuffer::copy_htod(&Device::Cpu, &g0).unwrap();
    let mut flag = Status::new(&Device::Cpu).unwrap();
    let inv = 1.0f32 / 65536.0;
    ew::unscale_check_finite(&Device::Cpu, inv, &mut g, &mut flag).unwrap();
    let want: Vec<f32> = g0.iter().map(|x| canon(x * inv)).collect();
    assert_bits_eq("unscaled grads", &g.copy_dtoh().unwrap(), &want);
    assert!(!flag.read().unwrap().overflow());
    assert_eq!(flag.read().unwrap().flags, 0);
}

#[test]
fn unscale_raises_the_flag_on_exactly_one_overflow_inf_or_nan_and_it_stays_until_cleared() {
    let n = 65_537;
    let clean: Vec<f32> = unit(n, 31);
    // (inv_scale, index, value): one element that overflows when unscaled
    // (65504 * 2^16 * 2^100 * 2^10 > f32::MAX), an inf, a NaN, at the ends too.
    let cases = [
        (1024.0f32, 12_345, 65504.0 * 65536.0 * 2.0f32.powi(100)),
        (1.0 / 65536.0, 0, f32::INFINITY),
        (1.0 / 65536.0, n - 1, f32::NEG_INFINITY),
        (0.5, 777, f32::NAN),
    ];
    for dev in std::iter::once(Device::Cpu).chain(test_devices("unscale_flag")) {
        for (inv, at, value) in cases {
            let mut g0 = clean.clone();
            g0[at] = value;
            let mut g = DeviceBuffer::copy_htod(&dev, &g0).unwrap();
            let mut flag = Status::new(&dev).unwrap();
            ew::unscale_check_finite(&dev, inv, &mut g, &mut flag).unwrap();
            assert_eq!(flag.read().unwrap().flags, 1, "{dev}: {value:e} at {at}");
            let want: Vec<f32> = g0.iter().map(|x| canon(x * inv)).collect();
            assert_bits_eq(&format!("{dev}: grads"), &g.copy_dtoh().unwrap(), &want);
            // A later all-finite call does not clear it; clear() does.
            let mut ok = DeviceBuffer::copy_htod(&dev, &clean).unwrap();
            ew::unscale_check_finite(&dev, inv.min(1.0), &mut ok, &mut flag).unwrap();
            assert!(
                flag.read().unwrap().overflow(),
                "{dev}: a clean call cleared the flag"
            );
            flag.clear().unwrap();
            assert!(
                !flag.read().unwrap().overflow(),
                "{dev}: clear() did not clear"
            );
            ew::unscale_check_finite(&dev, 1.0, &mut ok, &mut flag).unwrap();
            assert!(
                !flag.read().unwrap().overflow(),
                "{dev}: finite grads raised the flag"
            );
        }
    }
}

#[test]
fn nan_results_are_the_canonical_nan_on_every_device() {
    // NaN payloads of both signs, and NaNs made from non-NaN inputs
    // (inf - inf, 0 * inf), through every arithmetic op.
    let a = [
        f32::from_bits(0x7fc0_1234),
        f32::from_bits(0xffa0_0001),
        f32::INFINITY,
        0.0,
        1.0,
    ];
    let b = [
        1.0,
        2.0,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::from_bits(0xff80_0005),
    ];
    let add_nan = [true, true, true, false, true];
    let mul_nan = [true, true, false, true, true];
    for dev in std::iter::once(Device::Cpu).chain(test_devices("nan_results_are_canonical")) {
        let da = DeviceBuffer::copy_htod(&dev, &a).unwrap();
        let db = DeviceBuffer::copy_htod(&dev, &b).unwrap();
        let mut out = DeviceBuffer::zeros(&dev, 5).unwrap();
        ew::add(&dev, &da, &db, &mut out).unwrap();
        for (i, x) in out.copy_dtoh().unwrap().into_iter().enumerate() {
            assert_eq!(x.is_nan(), add_nan[i], "{dev}: add {i}");
            assert!(
                !x.is_nan() || x.to_bits() == CANONICAL_NAN_BITS,
                "{dev}: add {i}: {:#x}",
                x.to_bits()
            );
        }
        ew::mul(&dev, &da, &db, &mut out).unwrap();
        for (i, x) in out.copy_dtoh().unwrap().into_iter().enumerate() {
            assert_eq!(x.is_nan(), mul_nan[i], "{dev}: mul {i}");
            assert!(
                !x.is_nan() || x.to_bits() == CANONICAL_NAN_BITS,
                "{dev}: mul {i}: {:#x}",
                x.to_bits()
            );
        }
        ew::scale(&dev, 0.0, &da, &mut out).unwrap(); // 0 * inf is NaN too
        let got = out.copy_dtoh().unwrap();
        assert_eq!(
            bits(&got),
            [
                CANONICAL_NAN_BITS,
                CANONICAL_NAN_BITS,
                CANONICAL_NAN_BITS,
                0,
                0
            ],
            "{dev}: scale"
        );
        let mut g = DeviceBuffer::copy_htod(&dev, &a).unwrap();
        let mut flag = Status::new(&dev).unwrap();
        ew::unscale_check_finite(&dev, 0.5, &mut g, &mut flag).unwrap();
        let got = bits(&g.copy_dtoh().unwrap());
        assert_eq!(
            got[..2],
            [CANONICAL_NAN_BITS, CANONICAL_NAN_BITS],
            "{dev}: unscale"
        );
        // Adam on a NaN gradient: every output of that element is canonical.
        let mut p = DeviceBuffer::copy_htod(&dev, &[1.0f32, 1.0]).unwrap();
        let grad = DeviceBuffer::copy_htod(&dev, &[f32::from_bits(0xffc0_0042), 0.5]).unwrap();
        let (mut m, mut v) = (
            DeviceBuffer::zeros(&dev, 2).unwrap(),
            DeviceBuffer::zeros(&dev, 2).unwrap(),
        );
        ew::adam_step(
            &dev,
            &AdamParams::default(),
            1,
            &mut p,
            &grad,
            &mut m,
            &mut v,
        )
        .unwrap();
        for (what, buf) in [("param", &p), ("m", &m), ("v", &v)] {
            assert_eq!(
                buf.copy_dtoh().unwrap()[0].to_bits(),
                CANONICAL_NAN_BITS,
                "{dev}: adam {what}"
            );
        }
    }
}

// ---- invariance and devices ---------------------------------------------------

#[test]
fn cpu_bits_do_not_depend_on_thread_count() {
    let run = |threads: usize, n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run_every_op(&Device::Cpu, n, ew::DEFAULT_SHAPE))
    };
    for n in [1, 255, 257, 65_537] {
        let one = run(1, n);
        for t in [2, 3, 8] {
            compare_runs(&format!("{t} threads, n={n}"), &run(t, n), &one);
        }
    }
}

#[test]
fn every_kernel_device_equals_the_cpu_twin_bitwise_for_ragged_sizes() {
    let devices = test_devices("every_kernel_device_equals_the_cpu_twin_bitwise_for_ragged_sizes");
    for n in [1, 255, 257, 65_537, (1 << 18) + 3] {
        let want = run_every_op(&Device::Cpu, n, ew::DEFAULT_SHAPE);
        for dev in &devices {
            compare_runs(
                &format!("{dev}, n={n}"),
                &run_every_op(dev, n, ew::DEFAULT_SHAPE),
                &want,
            );
        }
    }
}

#[test]
fn kernel_bits_do_not_depend_on_launch_shape() {
    let n = 70_001;
    let want = run_every_op(&Device::Cpu, n, ew::DEFAULT_SHAPE);
    for dev in test_devices("kernel_bits_do_not_depend_on_launch_shape") {
        for shape in [(32, 1), (1024, 7), (96, 65_535), (1, 3)] {
            compare_runs(
                &format!("{dev}, shape {shape:?}"),
                &run_every_op(&dev, n, shape),
                &want,
            );
        }
    }
}

#[test]
fn kernel_casts_equal_half_on_every_half_and_the_sweep() {
    for dev in test_devices("kernel_casts_equal_half_on_every_half_and_the_sweep") {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let x = DeviceBuffer::copy_htod(&dev, &all).unwrap();
        let mut out = DeviceBuffer::zeros(&dev, all.len()).unwrap();
        ew::cast_f16_to_f32(&dev, &x, &mut out).unwrap();
        let want: Vec<f32> = all
            .iter()
            .map(|&h| half::f16::from_bits(h).to_f32())
            .collect();
        assert_bits_eq(
            &format!("{dev}: f16->f32"),
            &out.copy_dtoh().unwrap(),
            &want,
        );
        let xs: Vec<f32> = cast_sweep().into_iter().step_by(3).collect();
        let x = DeviceBuffer::copy_htod(&dev, &xs).unwrap();
        let mut out = DeviceBuffer::zeros(&dev, xs.len()).unwrap();
        ew::cast_f32_to_f16(&dev, &x, &mut out).unwrap();
        for (x, got) in xs.iter().zip(out.copy_dtoh().unwrap()) {
            assert_eq!(
                got,
                half::f16::from_f32(*x).to_bits(),
                "{dev}: f32 {:#010x}",
                x.to_bits()
            );
        }
    }
}

#[test]
fn verify_reports_bitwise_equal_on_every_kernel_device() {
    for dev in test_devices("verify_reports_bitwise_equal_on_every_kernel_device") {
        let outcome = ew::verify(&dev, 1 << 16).unwrap();
        assert!(outcome.is_bitwise_equal(), "{dev}: {outcome}");
        assert!(outcome.elements >= 9 << 16, "{outcome}");
    }
}

// ---- argument errors -------------------------------------------------------------

#[test]
fn length_and_device_mismatches_are_typed_errors() {
    let cpu = Device::Cpu;
    let a = DeviceBuffer::zeros(&cpu, 8).unwrap();
    let b = DeviceBuffer::zeros(&cpu, 7).unwrap();
    let mut out = DeviceBuffer::zeros(&cpu, 8).unwrap();
    let err = ew::add(&cpu, &a, &b, &mut out).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Length {
                name: "b",
                got: 7,
                expected: 8,
                ..
            }
        ),
        "{err}"
    );
    let mut short = DeviceBuffer::zeros(&cpu, 3).unwrap();
    let err = ew::cast_f32_to_f16(&cpu, &a, &mut short).unwrap_err();
    assert!(matches!(err, Error::Length { name: "out", .. }), "{err}");
    let mut p = DeviceBuffer::zeros(&cpu, 8).unwrap();
    let (mut m, mut v) = (
        DeviceBuffer::zeros(&cpu, 8).unwrap(),
        DeviceBuffer::zeros(&cpu, 9).unwrap(),
    );
    let err =
        ew::adam_step(&cpu, &AdamParams::default(), 1, &mut p, &a, &mut m, &mut v).unwrap_err();
    assert!(matches!(err, Error::Length { name: "v", .. }), "{err}");

    if let Some(sim) = test_devices("length_and_device_mismatches_are_typed_errors").first() {
        let on_sim = DeviceBuffer::zeros(sim, 8).unwrap();
        let err = ew::mul(&cpu, &a, &on_sim, &mut out).unwrap_err();
        assert!(
            matches!(err, Error::DeviceMismatch { name: "b", .. }),
            "{err}"
        );
        let mut flag = Status::new(&cpu).unwrap();
        let mut g = DeviceBuffer::zeros(sim, 8).unwrap();
        let err = ew::unscale_check_finite(sim, 1.0, &mut g, &mut flag).unwrap_err();
        assert!(
            matches!(err, Error::DeviceMismatch { name: "status", .. }),
            "{err}"
        );
    }
}
