//! The kernels the layers need beyond the numerics core: column reductions,
//! masked concat pooling over packed sequences, BatchNorm1d, ReLU, strided
//! column copies, SGD and the gradient-clipping pair. Each: the CPU twin
//! against a plain scalar reference written here (bit for bit where the
//! contract fixes the order; within a stated bound of f64 otherwise), and
//! every kernel device against the CPU twin, bit for bit.

mod support;

use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::batchnorm::{self, BatchNormSpec};
use shoestring::ops::elementwise::{self as ew, Columns, SgdParams};
use shoestring::ops::philox::uniform_floats;
use shoestring::ops::pool;
use shoestring::ops::reduce::{self, ReduceOp};
use shoestring::rng::{PhiloxCounter, PhiloxKey};
use shoestring::seq::PackedSeq;
use shoestring::status::Status;
use support::test_devices;

fn floats(n: usize, stream: u32, scale: f32) -> Vec<f32> {
    uniform_floats(
        PhiloxKey::from_seed(0x1a7e_0001),
        PhiloxCounter::new(0, stream, 0),
        n,
        scale,
    )
    .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn all_devices(test: &str) -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    d.extend(test_devices(test));
    d
}

/// A column reduction is the row reduction of the transpose, bit for bit.
#[test]
fn reduce_cols_equals_reduce_rows_of_the_transpose_on_every_device() {
    // Wider than one CPU task (256 columns) too, and taller than one chunk.
    for &(rows, cols) in &[
        (1usize, 5usize),
        (300, 7),
        (16_385, 3),
        (0, 4),
        (40, 600),
        (1000, 513),
    ] {
        let mut x = floats(rows * cols, 1, 4.0);
        if rows > 3 {
            x[2 * cols + 1] = f32::NAN;
            x[cols] = -0.0;
        }
        let xt: Vec<f32> = (0..cols * rows)
            .map(|i| x[(i % rows) * cols + i / rows])
            .collect();
        for op in ReduceOp::ALL {
            let cpu = Device::Cpu;
            let tb = DeviceBuffer::copy_htod(&cpu, &xt).unwrap();
            let mut want = DeviceBuffer::zeros(&cpu, cols).unwrap();
            reduce::reduce_rows(&cpu, op, &tb, cols, rows, &mut want).unwrap();
            let want = bits(&want.copy_dtoh().unwrap());
            for dev in all_devices("reduce_cols_equals_reduce_rows_of_the_transpose") {
                let xb = DeviceBuffer::copy_htod(&dev, &x).unwrap();
                let mut out = DeviceBuffer::zeros(&dev, cols).unwrap();
                reduce::reduce_cols(&dev, op, &xb, rows, cols, &mut out).unwrap();
                assert_eq!(
                    bits(&out.copy_dtoh().unwrap()),
                    want,
                    "{dev} {op:?} {rows}x{cols}"
                );
            }
        }
    }
}

/// Pooling against a reference that walks each sequence by (t, b) directly.
#[test]
fn pool_concat_matches_a_per_sequence_reference_and_devices_match_bitwise() {
    let lengths = [7usize, 7, 5, 2, 1];
    let f = 6;
    let seq_cpu = PackedSeq::new(&Device::Cpu, &lengths).unwrap();
    let total = seq_cpu.total();
    let mut h = floats(total * f, 2, 3.0);
    for x in h.iter_mut().step_by(4) {
        *x = x.round(); // ties
    }
    h[3] = f32::NAN;
    let dout = floats(lengths.len() * 3 * f, 3, 1.0);
    // Reference.
    let at = |t: usize, b: usize, ff: usize| h[(seq_cpu.offsets()[t] + b) * f + ff];
    let mut want_out = Vec::new();
    let mut want_arg = Vec::new();
    for (b, &n) in lengths.iter().enumerate() {
        let mut last = vec![0.0; f];
        let mut max = vec![0.0; f];
        let mut mean = vec![0.0; f];
        for ff in 0..f {
            let xs: Vec<f32> = (0..n).map(|t| at(t, b, ff)).collect();
            last[ff] = xs[n - 1];
            let m = shoestring::ops::reduce::cpu::canonical_max(&xs);
            max[ff] = m;
            mean[ff] = shoestring::ops::reduce::cpu::canonical_sum(&xs) / n as f32;
            let first = if m.is_nan() {
                xs.iter().position(|v| v.is_nan())
            } else {
                xs.iter().position(|&v| v == m)
            };
            want_arg.push(first.unwrap() as u32);
        }
        want_out.extend(last);
        want_out.extend(max);
        want_out.extend(mean);
    }
    let canon = |v: Vec<f32>| -> Vec<u32> {
        v.iter()
            .map(|x| if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() })
            .collect()
    };
    let mut first_dh: Option<Vec<u32>> = None;
    for dev in all_devices("pool_concat_matches_a_per_sequence_reference") {
        let seq = PackedSeq::new(&dev, &lengths).unwrap();
        let hb = DeviceBuffer::copy_htod(&dev, &h).unwrap();
        let mut out = DeviceBuffer::zeros(&dev, lengths.len() * 3 * f).unwrap();
        let mut am = DeviceBuffer::zeros(&dev, lengths.len() * f).unwrap();
        pool::pool_concat_fwd(&dev, &seq, f, &hb, &mut out, &mut am).unwrap();
        assert_eq!(
            canon(out.copy_dtoh().unwrap()),
            canon(want_out.clone()),
            "{dev}"
        );
        assert_eq!(am.copy_dtoh().unwrap(), want_arg, "{dev}");
        let db = DeviceBuffer::copy_htod(&dev, &dout).unwrap();
        let mut dh = DeviceBuffer::zeros(&dev, total * f).unwrap();
        pool::pool_concat_bwd(&dev, &seq, f, &am, &db, &mut dh).unwrap();
        let dh = dh.copy_dtoh().unwrap();
        // Reference backward: mean share, then max, then last, per position.
        for (t, &bs) in seq_cpu.batch_sizes().iter().enumerate() {
            for b in 0..bs {
                let n = lengths[b];
                for ff in 0..f {
                    let d = &dout[b * 3 * f..];
                    let mut g = d[2 * f + ff] / n as f32;
                    if want_arg[b * f + ff] == t as u32 {
                        g += d[f + ff];
                    }
                    if t == n - 1 {
                        g += d[ff];
                    }
                    let got = dh[(seq_cpu.offsets()[t] + b) * f + ff];
                    assert_eq!(got.to_bits(), g.to_bits(), "{dev} dh at ({t},{b},{ff})");
                }
            }
        }
        match &first_dh {
            None => first_dh = Some(bits(&dh)),
            Some(w) => assert_eq!(&bits(&dh), w, "{dev}"),
        }
    }
}

/// BatchNorm against f64: the normalised output within a few ulp of the
/// normalised f64 value (the statistics are sums of at most N terms, each
/// rounding by 2^-24), and the devices bit for bit.
#[test]
fn batchnorm_is_close_to_f64_and_bitwise_equal_on_every_device() {
    let (rows, f) = (33usize, 9usize);
    let x = floats(rows * f, 4, 3.0);
    let gamma = floats(f, 5, 2.0);
    let beta = floats(f, 6, 1.0);
    let dy = floats(rows * f, 7, 1.0);
    let spec = BatchNormSpec {
        rows,
        features: f,
        eps: 1e-5,
        momentum: 0.1,
    };
    let mut first: Option<Vec<u32>> = None;
    for dev in all_devices("batchnorm_is_close_to_f64_and_bitwise_equal_on_every_device") {
        let up = |v: &[f32]| DeviceBuffer::copy_htod(&dev, v).unwrap();
        let (xb, gb, bb, dyb) = (up(&x), up(&gamma), up(&beta), up(&dy));
        let mut y = DeviceBuffer::zeros(&dev, rows * f).unwrap();
        let mut mean = DeviceBuffer::zeros(&dev, f).unwrap();
        let mut inv = DeviceBuffer::zeros(&dev, f).unwrap();
        let mut rm = DeviceBuffer::zeros(&dev, f).unwrap();
        let mut rv = up(&vec![1.0; f]);
        batchnorm::batchnorm_fwd_train(
            &dev,
            &spec,
            &xb,
            &gb,
            &bb,
            &mut y,
            &mut mean,
            &mut inv,
            (&mut rm, &mut rv),
        )
        .unwrap();
        let mut dx = DeviceBuffer::zeros(&dev, rows * f).unwrap();
        let mut dg = DeviceBuffer::zeros(&dev, f).unwrap();
        let mut db = DeviceBuffer::zeros(&dev, f).unwrap();
        batchnorm::batchnorm_bwd(
            &dev,
            &spec,
            &xb,
            &gb,
            (&mean, &inv),
            &dyb,
            &mut dx,
            &mut dg,
            &mut db,
        )
        .unwrap();
        let y = y.copy_dtoh().unwrap();
        let dx = dx.copy_dtoh().unwrap();
        for c in 0..f {
            let col: Vec<f64> = (0..rows).map(|r| f64::from(x[r * f + c])).collect();
            let m = col.iter().sum::<f64>() / rows as f64;
            let var = col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / rows as f64;
            let inv64 = 1.0 / (var + 1e-5).sqrt();
            let g = f64::from(gamma[c]);
            let dys: Vec<f64> = (0..rows).map(|r| f64::from(dy[r * f + c])).collect();
            let xh: Vec<f64> = col.iter().map(|v| (v - m) * inv64).collect();
            let sdy: f64 = dys.iter().sum();
            let sdyx: f64 = dys.iter().zip(&xh).map(|(a, b)| a * b).sum();
            for r in 0..rows {
                let want = g * xh[r] + f64::from(beta[c]);
                let got = f64::from(y[r * f + c]);
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{dev} y[{r},{c}]"
                );
                let wdx = g * inv64 / rows as f64 * (rows as f64 * dys[r] - sdy - xh[r] * sdyx);
                let gdx = f64::from(dx[r * f + c]);
                assert!(
                    (gdx - wdx).abs() <= 1e-4 * (1.0 + wdx.abs()),
                    "{dev} dx[{r},{c}]: {gdx} vs {wdx}"
                );
            }
        }
        let mut all = bits(&y);
        all.extend(bits(&dx));
        all.extend(bits(&dg.copy_dtoh().unwrap()));
        all.extend(bits(&db.copy_dtoh().unwrap()));
        all.extend(bits(&rm.copy_dtoh().unwrap()));
        all.extend(bits(&rv.copy_dtoh().unwrap()));
        match &first {
            None => first = Some(all),
            Some(w) => assert!(w == &all, "{dev} differs from the CPU"),
        }
    }
}

#[test]
fn relu_copy_cols_sgd_and_clipping_match_scalar_loops_on_every_device() {
    let n = 1000;
    let x = {
        let mut v = floats(n, 8, 2.0);
        v[1] = -0.0;
        v[2] = f32::NAN;
        v
    };
    let dy = floats(n, 9, 1.0);
    let canon = |v: f32| {
        if v.is_nan() {
            f32::from_bits(0x7fc0_0000)
        } else {
            v
        }
    };
    for dev in all_devices("relu_copy_cols_sgd_and_clipping_match_scalar_loops") {
        let xb = DeviceBuffer::copy_htod(&dev, &x).unwrap();
        let dyb = DeviceBuffer::copy_htod(&dev, &dy).unwrap();
        let mut y = DeviceBuffer::zeros(&dev, n).unwrap();
        ew::relu_fwd(&dev, &xb, &mut y).unwrap();
        let want: Vec<f32> = x
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    canon(v)
                } else if v > 0.0 {
                    v
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(bits(&y.copy_dtoh().unwrap()), bits(&want), "{dev} relu");
        ew::relu_bwd(&dev, &xb, &dyb, &mut y).unwrap();
        let want: Vec<f32> = x
            .iter()
            .zip(&dy)
            .map(|(&v, &g)| if v > 0.0 { g } else { 0.0 })
            .collect();
        assert_eq!(bits(&y.copy_dtoh().unwrap()), bits(&want), "{dev} relu_bwd");
        // Columns 3..7 of a 100 x 10 matrix into columns 1..5 of 100 x 6.
        let mut dst = DeviceBuffer::copy_htod(&dev, &[9.0f32; 600]).unwrap();
        ew::copy_cols(
            &dev,
            (100, 4),
            &xb,
            Columns { ld: 10, offset: 3 },
            &mut dst,
            Columns { ld: 6, offset: 1 },
        )
        .unwrap();
        let got = dst.copy_dtoh().unwrap();
        for r in 0..100 {
            for c in 0..6 {
                let want = if (1..5).contains(&c) {
                    x[r * 10 + 2 + c]
                } else {
                    9.0
                };
                assert_eq!(
                    got[r * 6 + c].to_bits(),
                    want.to_bits(),
                    "{dev} copy ({r},{c})"
                );
            }
        }
        let e = ew::copy_cols(
            &dev,
            (100, 4),
            &xb,
            Columns { ld: 10, offset: 7 },
            &mut dst,
            Columns { ld: 6, offset: 0 },
        )
        .unwrap_err();
        assert!(e.to_string().contains("do not fit"), "{e}");
        // SGD, three steps.
        let hp = SgdParams {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.01,
        };
        let p0 = floats(n, 10, 1.0);
        let mut p = DeviceBuffer::copy_htod(&dev, &p0).unwrap();
        let mut v = DeviceBuffer::zeros(&dev, n).unwrap();
        let (mut wp, mut wv) = (p0.clone(), vec![0.0f32; n]);
        for _ in 0..3 {
            ew::sgd_step(&dev, &hp, &mut p, &dyb, &mut v).unwrap();
            for i in 0..n {
                let g = hp.weight_decay.mul_add(wp[i], dy[i]);
                wv[i] = hp.momentum.mul_add(wv[i], g);
                wp[i] = (-hp.lr).mul_add(wv[i], wp[i]);
            }
        }
        assert_eq!(bits(&p.copy_dtoh().unwrap()), bits(&wp), "{dev} sgd param");
        assert_eq!(bits(&v.copy_dtoh().unwrap()), bits(&wv), "{dev} sgd v");
        // Clipping: norm 5 clipped to 1, and a NaN norm raises overflow.
        let mut status = Status::new(&dev).unwrap();
        let sumsq = DeviceBuffer::copy_htod(&dev, &[25.0f32]).unwrap();
        let mut coef = DeviceBuffer::zeros(&dev, 1).unwrap();
        ew::clip_coef(&dev, 1.0, &sumsq, &mut coef, &mut status).unwrap();
        let c = coef.copy_dtoh().unwrap()[0];
        assert_eq!(c.to_bits(), (1.0f32 / (5.0 + 1e-6)).to_bits(), "{dev}");
        let mut g = DeviceBuffer::copy_htod(&dev, &dy).unwrap();
        ew::scale_by(&dev, &coef, &mut g).unwrap();
        let want: Vec<f32> = dy.iter().map(|&v| v * c).collect();
        assert_eq!(bits(&g.copy_dtoh().unwrap()), bits(&want), "{dev} scale_by");
        let r = status.read().unwrap();
        assert_eq!((r.grad_norm, r.overflow()), (5.0, false), "{dev}");
        let small = DeviceBuffer::copy_htod(&dev, &[0.25f32]).unwrap();
        ew::clip_coef(&dev, 1.0, &small, &mut coef, &mut status).unwrap();
        assert_eq!(coef.copy_dtoh().unwrap()[0], 1.0, "{dev}: under the limit");
        let nan = DeviceBuffer::copy_htod(&dev, &[f32::INFINITY]).unwrap();
        ew::clip_coef(&dev, 1.0, &nan, &mut coef, &mut status).unwrap();
        assert!(status.read().unwrap().overflow(), "{dev}: inf norm");
    }
}
