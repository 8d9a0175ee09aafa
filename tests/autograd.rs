//! Gradients of every op and layer: against central finite differences on
//! the CPU (f32 forwards, tolerance below), and the same gradients bit for
//! bit on every kernel device (the simulator in CI, the GPU when present).
//!
//! Tolerance: a central difference with step `h` errs by `h^2 |f'''| / 6`
//! (truncation) plus `~2 u |L| / h` (the f32 loss rounds to `u = 2^-24`
//! relative); with `h = 1e-2` and losses of order 1 that is about `1e-5 +
//! 1e-5`. We allow `2e-3 + 2e-2 |g|`, comfortably above both, and far below
//! any real error (a wrong sign, a missing term, a transposed operand all
//! miss by O(|g|)). Inputs keep clear of kinks (ReLU at 0, ties in a max) by
//! more than `h`.

mod support;

use shoestring::autograd::{Graph, LstmOptions, LstmState, LstmWeights, ParamId, Var};
use shoestring::device::Device;
use shoestring::ops::dropout::DropoutMask;
use shoestring::ops::philox::uniform_floats;
use shoestring::rng::{PhiloxCounter, PhiloxKey, RngState, Stream, StreamFamily};
use shoestring::seq::PackedSeq;
use shoestring::tensor::Tensor;
use std::sync::Arc;
use support::test_devices;

type Build = dyn Fn(&mut Graph, &[Var]) -> shoestring::Result<Var>;

fn floats(n: usize, stream: u32, scale: f32) -> Vec<f32> {
    uniform_floats(
        PhiloxKey::from_seed(0xa9_0001),
        PhiloxCounter::new(0, stream, 0),
        n,
        scale,
    )
    .unwrap()
}

/// The loss and gradients of `build` on `dev` for the parameter values.
fn run(dev: &Device, params: &[(Vec<usize>, Vec<f32>)], build: &Build) -> (f32, Vec<Vec<f32>>) {
    let mut g = Graph::new(dev).unwrap();
    let vars: Vec<Var> = params
        .iter()
        .enumerate()
        .map(|(i, (d, v))| {
            let t = Tensor::from_f32(dev, d, v).unwrap();
            g.param(ParamId(i), &t).unwrap()
        })
        .collect();
    let loss = build(&mut g, &vars).unwrap();
    let l = g.value(loss).to_vec_f32().unwrap()[0];
    let grads = g.backward(loss).unwrap();
    g.read_status().unwrap().check_inputs().unwrap();
    let out = (0..params.len())
        .map(|i| {
            grads
                .get(ParamId(i))
                .map(|t| t.to_vec_f32().unwrap())
                .unwrap_or_else(|| vec![0.0; params[i].1.len()])
        })
        .collect();
    (l, out)
}

fn loss_only(params: &[(Vec<usize>, Vec<f32>)], build: &Build) -> f64 {
    let dev = Device::Cpu;
    let mut g = Graph::new(&dev).unwrap();
    let vars: Vec<Var> = params
        .iter()
        .enumerate()
        .map(|(i, (d, v))| {
            g.param(ParamId(i), &Tensor::from_f32(&dev, d, v).unwrap())
                .unwrap()
        })
        .collect();
    let loss = build(&mut g, &vars).unwrap();
    f64::from(g.value(loss).to_vec_f32().unwrap()[0])
}

/// Checks the CPU gradients against central differences (on at most
/// `samples` elements per parameter, spread evenly), then every kernel
/// device's gradients against the CPU's, bit for bit.
fn check(name: &str, params: Vec<(Vec<usize>, Vec<f32>)>, samples: usize, build: &Build) {
    let (l, grads) = run(&Device::Cpu, &params, build);
    assert!(l.is_finite(), "{name}: loss {l}");
    let h = 1e-2f32;
    for (i, (_, v)) in params.iter().enumerate() {
        let step = (v.len() / samples.max(1)).max(1);
        for j in (0..v.len()).step_by(step) {
            let mut plus = params.clone();
            plus[i].1[j] += h;
            let mut minus = params.clone();
            minus[i].1[j] -= h;
            let num = (loss_only(&plus, build) - loss_only(&minus, build)) / (2.0 * f64::from(h));
            let ana = f64::from(grads[i][j]);
            assert!(
                (ana - num).abs() <= 2e-3 + 2e-2 * ana.abs(),
                "{name}: param {i} element {j}: analytic {ana:e}, numeric {num:e}"
            );
        }
    }
    for dev in test_devices(name) {
        let (dl, dg) = run(&dev, &params, build);
        assert_eq!(dl.to_bits(), l.to_bits(), "{name} on {dev}: loss");
        for (i, (a, b)) in grads.iter().zip(&dg).enumerate() {
            let (a, b): (Vec<u32>, Vec<u32>) = (
                a.iter().map(|x| x.to_bits()).collect(),
                b.iter().map(|x| x.to_bits()).collect(),
            );
            assert!(
                a == b,
                "{name} on {dev}: gradient {i} differs from the CPU's"
            );
        }
    }
}

/// `labels` for a `[rows, cols]` logits matrix.
fn labels(dev: &Device, rows: usize, cols: usize) -> Tensor {
    let l: Vec<u32> = (0..rows).map(|r| ((r * 7 + 3) % cols) as u32).collect();
    Tensor::from_u32(dev, &[rows], &l).unwrap()
}

/// The loss of any `[n, k]` value: its cross-entropy against fixed labels.
fn xent(g: &mut Graph, v: Var) -> shoestring::Result<Var> {
    let d = g.value(v).dims().to_vec();
    let (rows, cols) = (d[0], d[1..].iter().product());
    let l = labels(g.device(), rows, cols);
    g.cross_entropy(v, &l)
}

fn p(dims: &[usize], stream: u32, scale: f32) -> (Vec<usize>, Vec<f32>) {
    let n = dims.iter().product();
    (dims.to_vec(), floats(n, stream, scale))
}

#[test]
fn linear_gradients_match_finite_differences() {
    check(
        "linear",
        vec![p(&[5, 4], 1, 1.0), p(&[3, 4], 2, 1.0), p(&[3], 3, 1.0)],
        40,
        &|g, v| {
            let y = g.linear(v[0], v[1], Some(v[2]))?;
            xent(g, y)
        },
    );
}

#[test]
fn add_mul_relu_gradients_match_finite_differences() {
    // Values kept off ReLU's kink: |a * b| > 2h.
    let mut a = p(&[4, 6], 4, 2.0);
    for x in a.1.iter_mut() {
        *x = if *x >= 0.0 { *x + 0.2 } else { *x - 0.2 };
    }
    check("add_mul_relu", vec![a, p(&[4, 6], 5, 1.0)], 24, &|g, v| {
        let m = g.mul(v[0], v[1])?;
        let s = g.add(m, v[1])?;
        let r = g.relu(s)?;
        let r = g.add(r, v[0])?; // a read twice: gradients accumulate
        xent(g, r)
    });
}

#[test]
fn dropout_and_weight_drop_gradients_match_finite_differences() {
    let rng = RngState::new(11);
    let mask = DropoutMask::new(0.4, &rng, Stream::new(StreamFamily::User, 1)).unwrap();
    check("dropout", vec![p(&[6, 5], 6, 1.0)], 30, &move |g, v| {
        let d = g.dropout(v[0], &mask)?;
        xent(g, d)
    });
}

#[test]
fn embedding_with_row_dropout_gradients_match_finite_differences() {
    let rng = RngState::new(12);
    let mask = DropoutMask::new(0.3, &rng, Stream::new(StreamFamily::EmbeddingDropout, 0)).unwrap();
    check("embedding", vec![p(&[9, 4], 7, 1.0)], 36, &move |g, v| {
        let ids = Tensor::from_u32(g.device(), &[7], &[1, 3, 1, 8, 0, 3, 1]).unwrap();
        let e = g.embedding(v[0], &ids, Some(&mask))?;
        xent(g, e)
    });
}

#[test]
fn concat_pool_and_concat_cols_gradients_match_finite_differences() {
    // Values on a coarse grid plus distinct offsets: no ties within 2h.
    let seq_lengths = [4usize, 3, 1];
    let total: usize = seq_lengths.iter().sum();
    let mut h = p(&[total, 3], 8, 1.0);
    for (k, x) in h.1.iter_mut().enumerate() {
        *x = (*x * 4.0).round() * 0.25 + k as f32 * 0.031;
    }
    check(
        "concat_pool",
        vec![h, p(&[total, 2], 9, 1.0)],
        40,
        &move |g, v| {
            let seq = Arc::new(PackedSeq::new(g.device(), &seq_lengths)?);
            let c = g.concat_cols(&[v[0], v[1]])?;
            let pooled = g.concat_pool(c, &seq)?;
            xent(g, pooled)
        },
    );
}

#[test]
fn batchnorm_gradients_match_finite_differences() {
    check(
        "batchnorm",
        vec![p(&[6, 4], 10, 2.0), p(&[4], 11, 1.0), p(&[4], 12, 1.0)],
        24,
        &|g, v| {
            let f = g.value(v[0]).dims()[1];
            let mut rm = Tensor::zeros(g.device(), &[f], shoestring::tensor::DType::F32)?;
            let mut rv = Tensor::from_f32(g.device(), &[f], &vec![1.0; f])?;
            let y = g.batchnorm(v[0], v[1], v[2], (&mut rm, &mut rv), 1e-5, 0.1)?;
            xent(g, y)
        },
    );
}

fn lstm_case(name: &str, reverse: bool, dropout: bool, segments: usize, init: bool) {
    let lengths = [5usize, 4, 4, 2];
    let (i, h) = (3usize, 4usize);
    let total: usize = lengths.iter().sum();
    let rng = RngState::new(13);
    let mask = dropout
        .then(|| DropoutMask::new(0.3, &rng, Stream::new(StreamFamily::InputDropout, 0)).unwrap());
    let init_h = floats(lengths.len() * h, 20, 0.5);
    let init_c = floats(lengths.len() * h, 21, 0.5);
    let params = vec![
        p(&[total, i], 14, 1.0),
        p(&[4 * h, i], 15, 0.5),
        p(&[4 * h, h], 16, 0.5),
        p(&[4 * h], 17, 0.5),
    ];
    check(name, params, 24, &move |g, v| {
        let seq = Arc::new(PackedSeq::new(g.device(), &lengths)?);
        let opts = LstmOptions {
            input_dropout: mask,
            reverse,
            checkpoint_segments: segments,
            keep_state: false,
        };
        let state = init.then(|| LstmState {
            h: Tensor::from_f32(g.device(), &[lengths.len(), h], &init_h).unwrap(),
            c: Tensor::from_f32(g.device(), &[lengths.len(), h], &init_c).unwrap(),
        });
        let w = LstmWeights {
            w_ih: v[1],
            w_hh: v[2],
            bias: v[3],
        };
        let (y, _) = g.lstm(v[0], w, &seq, &opts, state.as_ref())?;
        xent(g, y)
    });
}

#[test]
fn lstm_gradients_match_finite_differences() {
    lstm_case("lstm", false, false, 0, false);
}

#[test]
fn reverse_lstm_with_input_dropout_gradients_match_finite_differences() {
    lstm_case("lstm_reverse_dropout", true, true, 0, false);
}

#[test]
fn lstm_from_carried_state_with_checkpointing_gradients_match_finite_differences() {
    lstm_case("lstm_init_checkpointed", false, true, 2, true);
}
