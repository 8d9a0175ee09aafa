//! CPU twin of `kernels/batchnorm.cu`. Features go to rayon tasks; each
//! feature's column is gathered and reduced with the canonical sum (the kernel
//! walks it in place, in the same order), so neither the split nor the thread
//! count changes a bit. Letters as in the kernel file: N rows, F features.

use crate::device::abi::ss_batchnorm_params;
use crate::device::with_fma;
use crate::numerics::canonical_nan;
use crate::ops::reduce::cpu::{canonical_sum, canonical_sum_squares};
use rayon::prelude::*;

/// Column `f` of the row-major `rows x features` matrix `x`.
fn column(x: &[f32], rows: usize, features: usize, f: usize) -> Vec<f32> {
    (0..rows).map(|r| x[r * features + f]).collect()
}

/// Outputs of the training forward for one feature.
struct TrainOut {
    y: Vec<f32>,
    mean: f32,
    inv: f32,
    running_mean: f32,
    running_var: f32,
}

#[inline(always)]
fn train_feature(
    p: &ss_batchnorm_params,
    col: &[f32],
    g: f32,
    b: f32,
    rm: f32,
    rv: f32,
) -> TrainOut {
    let n = p.rows as f32;
    let mean = canonical_nan(canonical_sum(col) / n);
    let centered: Vec<f32> = col.iter().map(|&v| v - mean).collect();
    let ss = canonical_sum_squares(&centered);
    let var = ss / n;
    let inv = canonical_nan(1.0 / (var + p.eps).sqrt());
    let y = centered
        .iter()
        .map(|&d| canonical_nan(g.mul_add(d * inv, b)))
        .collect();
    let var_u = if p.rows > 1 {
        ss / (p.rows - 1) as f32
    } else {
        var
    };
    TrainOut {
        y,
        mean,
        inv,
        running_mean: canonical_nan(p.momentum.mul_add(mean - rm, rm)),
        running_var: canonical_nan(p.momentum.mul_add(var_u - rv, rv)),
    }
}

/// TWIN: kernels/batchnorm.cu::batchnorm_fwd_train_f32.
#[allow(clippy::too_many_arguments)] // the kernel's arguments, in its order
pub fn batchnorm_fwd_train_f32(
    p: &ss_batchnorm_params,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    mean: &mut [f32],
    inv_std: &mut [f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
) {
    let (rows, features) = (p.rows as usize, p.features as usize);
    let per: Vec<TrainOut> = (0..features)
        .into_par_iter()
        .map(|f| {
            let col = column(x, rows, features, f);
            with_fma(
                #[inline(always)]
                || train_feature(p, &col, gamma[f], beta[f], running_mean[f], running_var[f]),
            )
        })
        .collect();
    for (f, o) in per.into_iter().enumerate() {
        for (r, v) in o.y.into_iter().enumerate() {
            y[r * features + f] = v;
        }
        mean[f] = o.mean;
        inv_std[f] = o.inv;
        running_mean[f] = o.running_mean;
        running_var[f] = o.running_var;
    }
}

/// TWIN: kernels/batchnorm.cu::batchnorm_fwd_eval_f32.
pub fn batchnorm_fwd_eval_f32(
    p: &ss_batchnorm_params,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    let features = p.features as usize;
    let inv: Vec<f32> = running_var
        .iter()
        .map(|&v| 1.0 / (v + p.eps).sqrt())
        .collect();
    y.par_chunks_mut(features)
        .zip(x.par_chunks(features))
        .for_each(|(y, x)| {
            with_fma(
                #[inline(always)]
                || {
                    for f in 0..features {
                        y[f] = canonical_nan(
                            gamma[f].mul_add((x[f] - running_mean[f]) * inv[f], beta[f]),
                        );
                    }
                },
            )
        });
}

/// TWIN: kernels/batchnorm.cu::batchnorm_bwd_f32.
#[allow(clippy::too_many_arguments)] // the kernel's arguments, in its order
pub fn batchnorm_bwd_f32(
    p: &ss_batchnorm_params,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let (rows, features) = (p.rows as usize, p.features as usize);
    let n = p.rows as f32;
    let per: Vec<(Vec<f32>, f32, f32)> = (0..features)
        .into_par_iter()
        .map(|f| {
            let (m, inv) = (mean[f], inv_std[f]);
            let xhat: Vec<f32> = column(x, rows, features, f)
                .iter()
                .map(|&v| (v - m) * inv)
                .collect();
            let g = column(dy, rows, features, f);
            let db = canonical_sum(&g);
            let prods: Vec<f32> = g.iter().zip(&xhat).map(|(&a, &b)| a * b).collect();
            let dg = canonical_sum(&prods);
            let k = (gamma[f] * inv) / n;
            let d = with_fma(
                #[inline(always)]
                || {
                    g.iter()
                        .zip(&xhat)
                        .map(|(&gr, &xh)| canonical_nan(k * (-xh).mul_add(dg, n.mul_add(gr, -db))))
                        .collect::<Vec<f32>>()
                },
            );
            (d, dg, db)
        })
        .collect();
    for (f, (d, dg, db)) in per.into_iter().enumerate() {
        for (r, v) in d.into_iter().enumerate() {
            dx[r * features + f] = v;
        }
        dgamma[f] = dg;
        dbeta[f] = db;
    }
}
