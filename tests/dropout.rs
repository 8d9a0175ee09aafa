//! Dropout: the mask rule written plainly (DESIGN.md rule 5), its statistics,
//! the shape of each variant's mask, p = 0 and p = 1, thread-count invariance of
//! the CPU twin, and every kernel device (Sim under two thread orders, the GPU
//! when present) against the CPU twin, bit for bit, under several launch shapes.

mod support;

use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::dropout::{self, DropoutMask, Pass, Variant};
use shoestring::ops::philox::PhiloxKey;
use shoestring::rng::{RngState, Stream, StreamFamily};
use support::test_devices;

const SEED: u64 = 0x0123_4567_89ab_cdef;

fn mask_of(p: f32, stream: u32, step: u32) -> DropoutMask {
    DropoutMask::from_parts(p, PhiloxKey::from_seed(SEED), stream, step).unwrap()
}

/// Nonzero finite inputs of many magnitudes and both signs (a splitmix walk,
/// independent of the code under test).
fn inputs(n: usize, salt: u64) -> Vec<f32> {
    let mut z = salt;
    (0..n)
        .map(|_| {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let w = (x ^ (x >> 31)) as u32;
            // Biased exponent 96..=159: |x| in [2^-31, 2^33).
            f32::from_bits((w & 0x807f_ffff) | ((96 + ((w >> 23) & 0x3f)) << 23))
        })
        .collect()
}

fn apply(
    dev: &Device,
    mask: &DropoutMask,
    variant: Variant,
    pass: Pass,
    x: &[f32],
    shape: (u32, u32),
) -> Vec<f32> {
    let input = DeviceBuffer::copy_htod(dev, x).unwrap();
    let mut out = DeviceBuffer::zeros(dev, x.len()).unwrap();
    dropout::dropout_with_shape(dev, mask, variant, pass, &input, &mut out, shape).unwrap();
    out.copy_dtoh().unwrap()
}

fn cpu(mask: &DropoutMask, variant: Variant, pass: Pass, x: &[f32]) -> Vec<f32> {
    apply(&Device::Cpu, mask, variant, pass, x, (256, 65_535))
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// DESIGN.md rule 5, written out with nothing from the crate but the key
/// split: entry `m` keeps iff word `m % 4` of philox4x32_10((m/4 lo, m/4 hi,
/// stream, step), (seed lo, seed hi)) >= round(p * 2^32).
fn plain_keep(p: f32, stream: u32, step: u32, m: u64) -> bool {
    let block = m / 4;
    let words = rand_philox::philox4x32_10(
        [block as u32, (block >> 32) as u32, stream, step],
        [SEED as u32, (SEED >> 32) as u32],
    );
    let threshold = (p as f64 * 4_294_967_296.0).round() as u64;
    u64::from(words[(m % 4) as usize]) >= threshold
}

fn plain_scale(p: f32) -> f32 {
    1.0f32 / (1.0f32 - p)
}

#[test]
fn threshold_and_scale_follow_their_definitions() {
    let m = |p| mask_of(p, 1, 0);
    assert_eq!((m(0.0).threshold(), m(0.0).scale()), (0, 1.0));
    assert_eq!((m(0.5).threshold(), m(0.5).scale()), (1 << 31, 2.0));
    assert_eq!(m(1.0).threshold(), 1 << 32);
    assert_eq!(m(1.0).scale(), 0.0, "p = 1: no entry kept, scale unused");
    assert_eq!(m(0.25).threshold(), 1 << 30);
    // 0.1f32 = 13421773 * 2^-27, so p * 2^32 = 13421773 * 32 exactly.
    assert_eq!(m(0.1).threshold(), 429_496_736);
    for p in [0.1f32, 0.3, 0.7, 0.9, 0.999_999_94] {
        assert_eq!(m(p).scale().to_bits(), plain_scale(p).to_bits(), "p = {p}");
    }
}

#[test]
fn dropout_mask_equals_the_philox_word_rule_written_plainly() {
    for (p, stream, step) in [
        (0.5f32, 0x0701, 0),
        (0.1, 0x0605, 77),
        (0.9, 0xff00, u32::MAX),
    ] {
        let m = mask_of(p, stream, step);
        let n = 4099;
        let want: Vec<bool> = (0..n as u64)
            .map(|i| plain_keep(p, stream, step, i))
            .collect();
        assert_eq!(dropout::mask(&m, n).unwrap(), want, "p = {p}");
        for i in [0u64, 1, 2, 3, 4, 4098, 1 << 33, u64::MAX] {
            assert_eq!(m.keeps(i), plain_keep(p, stream, step, i), "entry {i}");
        }
    }
}

#[test]
fn dropout_cpu_bits_equal_a_plain_scalar_reference_on_ragged_sizes() {
    for (p, stream) in [(0.3f32, 0x0801), (0.5, 0x0802), (0.875, 0x0803)] {
        let m = mask_of(p, stream, 5);
        for n in [1usize, 3, 5, 255, 257, 65_537, 200_003] {
            let x = inputs(n, n as u64);
            let want: Vec<u32> = x
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let keep = plain_keep(p, stream, 5, i as u64);
                    (if keep { x * plain_scale(p) } else { 0.0 }).to_bits()
                })
                .collect();
            for pass in [Pass::Fwd, Pass::Bwd] {
                let got = bits(&cpu(&m, Variant::Elementwise, pass, &x));
                assert!(got == want, "p = {p}, n = {n}, {pass:?}");
            }
        }
    }
}

#[test]
fn dropout_output_is_within_3_f32_roundings_of_the_f64_quotient() {
    // out = x * fl(1 / fl(1 - p)): three roundings at most, so the relative
    // error against x / (1 - p) in f64 is below 3 * 2^-24 (plus second order).
    for p in [0.1f32, 0.3, 0.5, 0.9] {
        let m = mask_of(p, 0x0900, 1);
        let x = inputs(10_000, 7);
        let out = cpu(&m, Variant::Elementwise, Pass::Fwd, &x);
        let mut kept = 0;
        for (&x, &o) in x.iter().zip(&out) {
            if o == 0.0 {
                continue;
            }
            kept += 1;
            let exact = f64::from(x) / (1.0 - f64::from(p));
            let rel = ((f64::from(o) - exact) / exact).abs();
            assert!(
                rel <= 3.0 * 2f64.powi(-24) * 1.000_001,
                "p = {p}: {x} -> {o}, rel {rel:e}"
            );
        }
        assert!(kept > 0);
    }
}

#[test]
fn dropout_keep_fraction_is_within_5_sigma_of_binomial() {
    let n = 1usize << 20;
    for p in [0.1f32, 0.5, 0.9] {
        let kept = dropout::mask(&mask_of(p, 0x0a00, 3), n)
            .unwrap()
            .iter()
            .filter(|&&k| k)
            .count() as f64;
        let q = 1.0 - f64::from(p);
        let (mean, sd) = (n as f64 * q, (n as f64 * q * (1.0 - q)).sqrt());
        assert!(
            (kept - mean).abs() <= 5.0 * sd,
            "p = {p}: kept {kept}, expected {mean} +- 5 * {sd:.1}"
        );
    }
}

/// (variant, element count, mask entries) for the shape tests.
fn variants() -> Vec<(Variant, usize)> {
    vec![
        (Variant::Elementwise, 10_001),
        (Variant::Variational { t: 7, b: 3, f: 37 }, 7 * 3 * 37),
        (Variant::Embedding { v: 501, e: 13 }, 501 * 13),
    ]
}

#[test]
fn dropout_forward_and_backward_use_the_same_mask() {
    for (variant, n) in variants() {
        let m = mask_of(0.4, 0x0b00, 12);
        let x = inputs(n, 3);
        let out = cpu(&m, variant, Pass::Fwd, &x);
        let dx = cpu(&m, variant, Pass::Bwd, &vec![1.0; n]);
        let scale = m.scale();
        for i in 0..n {
            assert_eq!(out[i] != 0.0, dx[i] != 0.0, "{variant:?}: element {i}");
            assert!(dx[i] == 0.0 || dx[i] == scale);
        }
        assert!(out.contains(&0.0) && out.iter().any(|&o| o != 0.0));
    }
}

#[test]
fn variational_mask_is_constant_along_time() {
    let (t, b, f) = (9, 4, 33);
    let m = mask_of(0.5, Stream::new(StreamFamily::HiddenDropout, 1).id(), 2);
    let x = inputs(t * b * f, 11);
    let out = cpu(&m, Variant::Variational { t, b, f }, Pass::Fwd, &x);
    let entries = dropout::mask(&m, b * f).unwrap();
    for ti in 0..t {
        for (j, &keep) in entries.iter().enumerate() {
            let i = ti * b * f + j;
            let want = if keep { x[i] * m.scale() } else { 0.0 };
            assert_eq!(out[i].to_bits(), want.to_bits(), "t {ti}, b*F+f {j}");
        }
    }
    let kept = entries.iter().filter(|&&k| k).count();
    assert!(kept > 0 && kept < b * f);
}

#[test]
fn embedding_dropout_zeroes_or_scales_whole_rows() {
    let (v, e) = (1000, 13);
    let m = mask_of(0.3, Stream::new(StreamFamily::EmbeddingDropout, 0).id(), 4);
    let w = inputs(v * e, 13);
    let rows = dropout::mask(&m, v).unwrap();
    for pass in [Pass::Fwd, Pass::Bwd] {
        let out = cpu(&m, Variant::Embedding { v, e }, pass, &w);
        for (r, &keep) in rows.iter().enumerate() {
            for c in 0..e {
                let i = r * e + c;
                let want = if keep { w[i] * m.scale() } else { 0.0 };
                assert_eq!(out[i].to_bits(), want.to_bits(), "row {r} col {c}");
            }
        }
    }
    let kept = rows.iter().filter(|&&k| k).count();
    assert!(
        kept > 600 && kept < 800,
        "{kept} of 1000 rows kept at p = 0.3"
    );
}

fn specials() -> Vec<f32> {
    let mut v = vec![
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(1),
        -f32::from_bits(0x007f_ffff),
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
    ];
    v.extend(inputs(1000 - v.len(), 17));
    v
}

#[test]
fn p_zero_is_the_identity_bit_for_bit_on_every_variant_and_device() {
    let x = specials();
    let m = mask_of(0.0, 0x0c00, 0);
    let variants = [
        Variant::Elementwise,
        Variant::Variational { t: 10, b: 4, f: 25 },
        Variant::Embedding { v: 125, e: 8 },
    ];
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices("p_zero_is_the_identity_bit_for_bit"));
    for dev in &devices {
        for variant in variants {
            for pass in [Pass::Fwd, Pass::Bwd] {
                let out = apply(dev, &m, variant, pass, &x, (256, 65_535));
                assert!(bits(&out) == bits(&x), "{dev}: {variant:?} {pass:?}");
            }
        }
    }
}

#[test]
fn p_one_gives_positive_zeros_everywhere_even_for_inf_and_nan() {
    let mut x = specials();
    x[10] = f32::NAN;
    let m = mask_of(1.0, 0x0d00, 0);
    let variants = [
        Variant::Elementwise,
        Variant::Variational { t: 10, b: 4, f: 25 },
        Variant::Embedding { v: 125, e: 8 },
    ];
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices("p_one_gives_positive_zeros_everywhere"));
    for dev in &devices {
        for variant in variants {
            for pass in [Pass::Fwd, Pass::Bwd] {
                let out = apply(dev, &m, variant, pass, &x, (256, 65_535));
                assert!(
                    out.iter().all(|o| o.to_bits() == 0),
                    "{dev}: {variant:?} {pass:?}"
                );
            }
        }
    }
}

#[test]
fn different_streams_and_steps_give_different_masks_and_a_restored_state_the_same() {
    let n = 4096;
    let mut rng = RngState::new(SEED);
    let s1 = Stream::new(StreamFamily::HiddenDropout, 0);
    let s2 = Stream::new(StreamFamily::HiddenDropout, 1);
    let base = dropout::mask(&DropoutMask::new(0.5, &rng, s1).unwrap(), n).unwrap();
    let restored = RngState::from_json(&rng.to_json()).unwrap();
    let again = dropout::mask(&DropoutMask::new(0.5, &restored, s1).unwrap(), n).unwrap();
    assert_eq!(base, again);
    let other_stream = dropout::mask(&DropoutMask::new(0.5, &rng, s2).unwrap(), n).unwrap();
    rng.advance().unwrap();
    let next_step = dropout::mask(&DropoutMask::new(0.5, &rng, s1).unwrap(), n).unwrap();
    let other_seed = dropout::mask(
        &DropoutMask::new(0.5, &RngState::new(SEED + 1), s1).unwrap(),
        n,
    )
    .unwrap();
    for (name, other) in [
        ("stream", other_stream),
        ("step", next_step),
        ("seed", other_seed),
    ] {
        let same = base.iter().zip(&other).filter(|(a, b)| a == b).count();
        // Independent masks at p = 0.5 agree on about half the entries.
        assert!(
            (1700..2400).contains(&same),
            "another {name}: {same} of {n} entries equal"
        );
    }
}

#[test]
fn dropout_cpu_bits_do_not_depend_on_thread_count() {
    let cases = [
        (Variant::Elementwise, 300_007),
        (
            Variant::Variational {
                t: 5,
                b: 3,
                f: 20_001,
            },
            5 * 3 * 20_001,
        ),
        (Variant::Embedding { v: 70_001, e: 3 }, 70_001 * 3),
        (Variant::Embedding { v: 3, e: 100_003 }, 3 * 100_003),
    ];
    for (variant, n) in cases {
        let m = mask_of(0.35, 0x0e00, 8);
        let x = inputs(n, 19);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| bits(&cpu(&m, variant, Pass::Fwd, &x)))
        };
        let one = run(1);
        for t in [2, 3, 8] {
            assert!(run(t) == one, "{variant:?}: {t} threads changed the bits");
        }
    }
}

/// The ragged sizes of the device tests: each variant at element (or row /
/// time-step) counts 1, 3, 5, 1023 and 65537.
fn ragged_cases() -> Vec<Variant> {
    let mut v = Vec::new();
    for n in [1usize, 3, 5, 1023, 65_537] {
        v.push(Variant::Elementwise);
        v.push(Variant::Variational { t: 3, b: 1, f: n });
        v.push(Variant::Variational {
            t: n.min(1023),
            b: 5,
            f: 3,
        });
        v.push(Variant::Embedding { v: n, e: 5 });
        v.push(Variant::Embedding { v: 3, e: n });
    }
    v
}

fn len_of(variant: Variant, n_elementwise: usize) -> usize {
    match variant {
        Variant::Elementwise => n_elementwise,
        Variant::Variational { t, b, f } => t * b * f,
        Variant::Embedding { v, e } => v * e,
    }
}

#[test]
fn dropout_kernels_match_cpu_bits_on_every_device_for_ragged_sizes() {
    let devices = test_devices("dropout_kernels_match_cpu_bits_on_every_device_for_ragged_sizes");
    let sizes = [1usize, 3, 5, 1023, 65_537];
    for (k, variant) in ragged_cases().into_iter().enumerate() {
        let n = len_of(variant, sizes[k / 5]);
        let m = mask_of(0.3, 0x0f00 + k as u32, 21);
        let x = inputs(n, k as u64);
        for pass in [Pass::Fwd, Pass::Bwd] {
            let want = bits(&cpu(&m, variant, pass, &x));
            for dev in &devices {
                let got = bits(&apply(dev, &m, variant, pass, &x, (256, 65_535)));
                if let Some(i) = (0..n).find(|&i| want[i] != got[i]) {
                    panic!(
                        "{dev}: {variant:?} {pass:?}: element {i} is {:#010x}, CPU says {:#010x}",
                        got[i], want[i]
                    );
                }
            }
        }
    }
}

#[test]
fn dropout_kernel_bits_do_not_depend_on_launch_shape() {
    let cases = [
        (Variant::Elementwise, 70_001),
        (
            Variant::Variational {
                t: 13,
                b: 7,
                f: 101,
            },
            13 * 7 * 101,
        ),
        (Variant::Embedding { v: 1001, e: 67 }, 1001 * 67),
    ];
    for dev in test_devices("dropout_kernel_bits_do_not_depend_on_launch_shape") {
        for (variant, n) in cases {
            let m = mask_of(0.6, 0x1000, 2);
            let x = inputs(n, 23);
            for pass in [Pass::Fwd, Pass::Bwd] {
                let want = bits(&cpu(&m, variant, pass, &x));
                for shape in [(32, 1), (1024, 7), (96, 65_535), (1, 3)] {
                    let got = bits(&apply(&dev, &m, variant, pass, &x, shape));
                    assert!(got == want, "{dev}: {variant:?} {pass:?} shape {shape:?}");
                }
            }
        }
    }
}

#[test]
fn weight_drop_is_the_elementwise_kernel() {
    let m = mask_of(0.5, Stream::new(StreamFamily::WeightDrop, 2).id(), 6);
    let w = inputs(400 * 100, 29);
    let wb = DeviceBuffer::copy_htod(&Device::Cpu, &w).unwrap();
    let mut a = DeviceBuffer::zeros(&Device::Cpu, w.len()).unwrap();
    let mut b = DeviceBuffer::zeros(&Device::Cpu, w.len()).unwrap();
    dropout::weight_drop_fwd(&Device::Cpu, &m, &wb, &mut a).unwrap();
    dropout::dropout_fwd(&Device::Cpu, &m, &wb, &mut b).unwrap();
    assert!(bits(&a.copy_dtoh().unwrap()) == bits(&b.copy_dtoh().unwrap()));
    dropout::weight_drop_bwd(&Device::Cpu, &m, &wb, &mut a).unwrap();
    dropout::dropout_bwd(&Device::Cpu, &m, &wb, &mut b).unwrap();
    assert!(bits(&a.copy_dtoh().unwrap()) == bits(&b.copy_dtoh().unwrap()));
}

#[test]
fn dropout_refuses_invalid_p_and_wrong_lengths() {
    let rng = RngState::new(1);
    let s = Stream::new(StreamFamily::User, 0);
    for p in [1.5f32, -0.1, f32::NAN, f32::INFINITY] {
        let err = DropoutMask::new(p, &rng, s).unwrap_err();
        assert!(err.to_string().contains("not in [0, 1]"), "{err}");
    }
    // The fields are public: a mask made invalid afterwards is refused by the ops.
    let mut m = DropoutMask::new(0.5, &rng, s).unwrap();
    m.p = f32::NAN;
    let x = DeviceBuffer::copy_htod(&Device::Cpu, &[1.0f32; 8]).unwrap();
    let mut out = DeviceBuffer::zeros(&Device::Cpu, 8).unwrap();
    assert!(dropout::dropout_fwd(&Device::Cpu, &m, &x, &mut out).is_err());
    assert!(dropout::mask(&m, 8).is_err());
    m.p = 0.5;
    let mut short = DeviceBuffer::zeros(&Device::Cpu, 7).unwrap();
    let err = dropout::dropout_fwd(&Device::Cpu, &m, &x, &mut short).unwrap_err();
    assert!(
        err.to_string().contains("has 7 elements, expected 8"),
        "{err}"
    );
    let err = dropout::variational_fwd(&Device::Cpu, &m, (2, 2, 3), &x, &mut out).unwrap_err();
    assert!(err.to_string().contains("expected 12"), "{err}");
    let err = dropout::embedding_fwd(&Device::Cpu, &m, (usize::MAX, 2), &x, &mut out).unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
    // t = 0 must not hide an overflowing b * f (the mask is indexed by it).
    let empty = DeviceBuffer::<f32>::zeros(&Device::Cpu, 0).unwrap();
    let mut empty_out = DeviceBuffer::<f32>::zeros(&Device::Cpu, 0).unwrap();
    let err =
        dropout::variational_fwd(&Device::Cpu, &m, (0, usize::MAX, 2), &empty, &mut empty_out)
            .unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
}

#[test]
fn dropout_verify_is_bitwise_equal_on_every_device() {
    for dev in test_devices("dropout_verify_is_bitwise_equal_on_every_device") {
        let o = dropout::verify(&dev, 1 << 16).unwrap();
        assert!(o.is_bitwise_equal(), "{dev}: {o}");
    }
}

/// NaN inputs on the kept path: a GPU multiply returns 0x7fffffff, x86 keeps
/// the payload, so every stored NaN must be the canonical one on every device.
#[test]
fn kept_nan_inputs_are_stored_as_the_canonical_nan_on_every_device() {
    let nan_payloads = [0x7fa0_0001u32, 0xffc1_2345, 0x7fc0_0000, 0xff80_0001];
    let mut x = inputs(4099, 11);
    for (i, v) in x.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
        *v = f32::from_bits(nan_payloads[i % nan_payloads.len()]);
    }
    for p in [0.0f32, 0.5] {
        let m = mask_of(p, 9, 1);
        for (variant, pass) in [
            (Variant::Elementwise, Pass::Fwd),
            (Variant::Elementwise, Pass::Bwd),
            (
                Variant::Variational {
                    t: 1,
                    b: 1,
                    f: 4099,
                },
                Pass::Fwd,
            ),
        ] {
            let want = cpu(&m, variant, pass, &x);
            for (i, w) in want.iter().enumerate() {
                if w.is_nan() {
                    assert_eq!(
                        w.to_bits(),
                        shoestring::numerics::CANONICAL_NAN_BITS,
                        "p {p}, index {i}"
                    );
                }
            }
            assert!(
                want.iter().any(|w| w.is_nan()),
                "p {p}: no NaN kept, the test checks nothing"
            );
            for dev in
                test_devices("kept_nan_inputs_are_stored_as_the_canonical_nan_on_every_device")
            {
                assert_eq!(
                    bits(&apply(&dev, &m, variant, pass, &x, (256, 65_535))),
                    bits(&want),
                    "{dev}, p {p}"
                );
            }
        }
    }
}
