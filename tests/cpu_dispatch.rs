//! CPU dispatch (DESIGN.md rule 1): every CPU twin that calls `f32::mul_add`
//! gives the same bits on the AVX2 + FMA path of `device::with_fma` as on the
//! portable path. The test computes every such family once in this process
//! (the fast path where the CPU has it) and once in a child process, this test
//! binary again under `SHOESTRING_CPU_PORTABLE=1`, and compares the bits.

mod support;

use shoestring::device::abi::ss_elementwise_adam_params;
use shoestring::device::{cpu_level, fma_path, CPU_LEVEL_ENV, CPU_PORTABLE_ENV};
use shoestring::ops::detmath::{self as detmath_fam, DetmathOp};
use shoestring::ops::elementwise::{self as ew};
use shoestring::ops::reduce::ReduceOp;
use shoestring::ops::{dropout, embedding, lstm, philox, reduce, softmax};
use shoestring::rng::{RngState, Stream, StreamFamily};

/// Where the child writes its results (set only in the child).
const CHILD_OUT_ENV: &str = "SHOESTRING_CPU_DISPATCH_CHILD_OUT";
const NAME: &str = "fast_and_portable_cpu_paths_give_the_same_bits";

/// Deterministic floats in `[-scale, scale)` (splitmix64), for inputs only.
fn floats(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            scale * (2.0 * u - 1.0)
        })
        .collect()
}

fn bits(xs: &[f32]) -> Vec<u32> {
    xs.iter().map(|x| x.to_bits()).collect()
}

/// Every mul_add family's CPU twin on ragged sizes, as named bit vectors.
fn results() -> Vec<(String, Vec<u32>)> {
    let mut out = Vec::new();

    // detmath apply: every function over specials, raw bit patterns and [-128, 128).
    let n = (1 << 18) + 3;
    let xs = detmath_fam::verify_inputs(n).unwrap();
    for op in DetmathOp::ALL {
        let mut y = vec![0.0f32; xs.len()];
        detmath_fam::cpu::detmath_apply_f32(op, &xs, &mut y);
        out.push((format!("detmath {}", op.name()), bits(&y)));
    }

    // AdamW step, step 10.
    let n = (1 << 18) + 5;
    let (lr, b1, b2, wd) = (1e-3f32, 0.9f32, 0.999f32, 0.01f32);
    let p = ss_elementwise_adam_params {
        n: n as u64,
        lr,
        beta1: b1,
        beta2: b2,
        eps: 1e-8,
        weight_decay: wd,
        one_minus_beta1: 1.0 - b1,
        one_minus_beta2: 1.0 - b2,
        bias_correction1: ew::bias_correction(b1, 10),
        bias_correction2: ew::bias_correction(b2, 10),
        lr_weight_decay: lr * wd,
    };
    let mut w = floats(n, 1, 1.0);
    let g = floats(n, 2, 0.1);
    let mut m = floats(n, 3, 0.01);
    let mut v: Vec<f32> = floats(n, 4, 1e-3).iter().map(|x| x * x).collect();
    ew::cpu::elementwise_adam_f32(&p, &mut w, &g, &mut m, &mut v);
    out.push(("adam param".into(), bits(&w)));
    out.push(("adam m".into(), bits(&m)));
    out.push(("adam v".into(), bits(&v)));

    // LSTM cell forward and backward, H not a power of two.
    let (b, h) = (37, 1031);
    let gates = floats(4 * b * h, 5, 6.0);
    let c_prev = floats(b * h, 6, 2.0);
    let (mut c, mut hh, mut act) = (vec![0.0; b * h], vec![0.0; b * h], vec![0.0; 4 * b * h]);
    lstm::cpu::lstm_cell_fwd_f32(h, &gates, &c_prev, &mut c, &mut hh, &mut act);
    let dh = floats(b * h, 7, 1.0);
    let dc = floats(b * h, 8, 1.0);
    let (mut dgates, mut dc_prev) = (vec![0.0; 4 * b * h], vec![0.0; b * h]);
    lstm::cpu::lstm_cell_bwd_f32(h, &dh, &dc, &act, &c_prev, &c, &mut dgates, &mut dc_prev);
    out.push(("lstm fwd c".into(), bits(&c)));
    out.push(("lstm fwd h".into(), bits(&hh)));
    out.push(("lstm fwd act".into(), bits(&act)));
    out.push(("lstm bwd dgates".into(), bits(&dgates)));
    out.push(("lstm bwd dc_prev".into(), bits(&dc_prev)));

    // Sum of squares: one long input (several levels) and ragged rows.
    let x = floats(3 * reduce::cpu::CHUNK + 77, 9, 3.0);
    let all = reduce::cpu::canonical_sum_squares(&x);
    let width = 1000;
    let mut rows = vec![0.0f32; x.len() / width];
    reduce::cpu::reduce_rows(
        ReduceOp::SumSquares,
        &x[..rows.len() * width],
        width,
        &mut rows,
    );
    rows.push(all);
    out.push(("reduce sum_squares".into(), bits(&rows)));

    // Softmax: log-softmax, cross-entropy forward (rows, loss) and backward.
    let (r, cols) = (257, 1001);
    let logits = softmax::philox_logits(11, r, cols, 20.0).unwrap();
    let mut y = vec![0.0f32; r * cols];
    softmax::cpu::log_softmax_rows(&logits, cols, &mut y);
    out.push(("softmax log_softmax".into(), bits(&y)));
    let labels: Vec<u32> = (0..r as u32).map(|i| (i * 7919) % cols as u32).collect();
    let mut nll = vec![0.0f32; r];
    softmax::cpu::xent_rows(&logits, &labels, cols, &mut y, &mut nll);
    let (mut loss, mut status) = (0.0f32, [0u32; 8]);
    softmax::cpu::mean_loss(&nll, &mut loss, &mut status);
    nll.push(loss);
    out.push(("softmax xent fwd".into(), bits(&nll)));
    let mut dx = vec![0.0f32; r * cols];
    softmax::cpu::xent_bwd(&y, &labels, cols, 1.0 / r as f32, &mut dx);
    out.push(("softmax xent bwd".into(), bits(&dx)));

    // Column sums (rows of a task's lanes), the embedding's ordered
    // scatter-add, the Philox bulk fill and dropout (mask and apply).
    let (rows, cols) = (300, 517);
    let x = floats(rows * cols, 13, 2.0);
    let mut sums = vec![0.0f32; cols];
    reduce::cpu::reduce_cols(ReduceOp::Sum, &x, rows, &mut sums);
    out.push(("reduce cols".into(), bits(&sums)));
    let (v, e, n) = (97, 33, 1000);
    let ids: Vec<u32> = (0..n as u32).map(|t| (t * 7919) % v as u32).collect();
    let dy = floats(n * e, 14, 1.0);
    let mut keys = embedding::cpu::embedding_sort_keys_init_u64(&ids);
    embedding::cpu::embedding_sort_keys(&mut keys);
    let mut dw = floats(v * e, 15, 1.0);
    embedding::cpu::embedding_bwd_f32(&keys, &dy, e, &mut dw);
    out.push(("embedding scatter-add".into(), bits(&dw)));
    let mut words = vec![0u32; 4 * 1000 + 3];
    philox::cpu::fill_words([7, 9], (1 << 32) - 40, &mut words);
    out.push(("philox fill".into(), words));
    let mask =
        dropout::DropoutMask::new(0.3, &RngState::new(5), Stream::new(StreamFamily::User, 2))
            .unwrap();
    let xs = floats(10_007, 16, 1.0);
    let mut ys = vec![0.0f32; xs.len()];
    dropout::cpu::dropout_fwd_f32(&mask.params("cpu_dispatch").unwrap(), &xs, &mut ys);
    out.push(("dropout fwd".into(), bits(&ys)));
    out
}

fn encode(results: &[(String, Vec<u32>)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (_, v) in results {
        b.extend((v.len() as u64).to_le_bytes());
        for x in v {
            b.extend(x.to_le_bytes());
        }
    }
    b
}

fn decode(names: &[(String, Vec<u32>)], mut b: &[u8]) -> Vec<(String, Vec<u32>)> {
    let mut take = |k: usize| {
        let (h, t) = b.split_at(k);
        b = t;
        h.to_vec()
    };
    names
        .iter()
        .map(|(name, _)| {
            let len = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
            let v = take(4 * len)
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name.clone(), v)
        })
        .collect()
}

#[test]
fn fast_and_portable_cpu_paths_give_the_same_bits() {
    if let Some(path) = std::env::var_os(CHILD_OUT_ENV) {
        if std::env::var_os(CPU_PORTABLE_ENV).is_some() {
            assert!(
                !fma_path(),
                "{CPU_PORTABLE_ENV}=1 did not force the portable path"
            );
        }
        std::fs::write(path, encode(&results())).unwrap();
        return;
    }
    let here = results();
    let dir = std::env::temp_dir().join(format!("shoestring-cpu-dispatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The portable build, and the AVX2 + FMA build (on an AVX-512 CPU this
    // process runs the AVX-512 build, so all three are compared).
    for (env, value, path) in [
        (CPU_PORTABLE_ENV, "1", "portable"),
        (CPU_LEVEL_ENV, "avx2", "avx2"),
    ] {
        let other = decode(
            &here,
            &support::rerun_self(NAME, (env, value), CHILD_OUT_ENV, &dir),
        );
        eprintln!(
            "{NAME}: this process on the {} path, the child on the {path} path",
            cpu_level().name()
        );
        for ((name, fast), (_, slow)) in here.iter().zip(&other) {
            assert_eq!(fast.len(), slow.len(), "{name}: lengths differ");
            if let Some(i) = fast.iter().zip(slow).position(|(a, b)| a != b) {
                panic!(
                    "{name}: element {i} differs: {:#010x} (this path) vs {:#010x} ({path})",
                    fast[i], slow[i]
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The env override is read by the library, not only by this test: the
/// portable child reports `fma_path() == false` (checked in the child), and
/// without the override the path follows the CPU's features.
#[test]
fn the_fast_path_follows_the_cpu_features() {
    if [CHILD_OUT_ENV, CPU_PORTABLE_ENV, CPU_LEVEL_ENV]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        fma_path(),
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    );
    #[cfg(not(target_arch = "x86_64"))]
    assert!(!fma_path());
}
