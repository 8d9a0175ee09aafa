// BatchNorm1d (the classifier head): normalise each feature over the batch,
// then scale and shift. Training uses the batch's statistics (and updates the
// running ones); evaluation uses the running statistics. Contract:
// docs/numerics/batchnorm.md.
//
// Letters: N rows (the batch), F features; x, y, dy, dx are N x F row-major;
// gamma, beta, mean, inv_std, running_mean, running_var, dgamma, dbeta are F.
// Every reduction over the batch is ss_thread_reduce (common/reduce.cuh): the
// canonical order over the N values of a column, one column per thread.
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/reduce.cuh"

// batchnorm_fwd_train_f32: per feature f, with x_r = x[r, f] and n = (float)N:
//     mean   = sum_r(x_r) / n                    canonical sum, one division
//     ss     = sumsq_r(x_r - mean)               canonical sum of squares: each lane
//                                                folds fmaf(d, d, acc), d = x_r - mean
//     var    = ss / n                            biased, used to normalise
//     inv    = 1.0f / sqrtf(var + eps)          correctly rounded sqrt, one division
//     y[r,f] = fmaf(gamma, (x_r - mean) * inv, beta)
//     mean_out[f] = mean, inv_std[f] = inv       (saved for the backward)
//     var_u  = N > 1 ? ss / (float)(N - 1) : var (unbiased, for the running stat)
//     running_mean = fmaf(momentum, mean - running_mean, running_mean)
//     running_var  = fmaf(momentum, var_u - running_var, running_var)
//   NaN results are stored canonical. Overwrites y, mean_out, inv_std; updates
//   the running statistics in place.
// Threads: one feature per thread per iteration, grid-stride over f < F; a warp
//   reads 32 adjacent features of one row at a time.
// Launch: 1-D, any block and grid; 2 KiB local memory per thread. Memory: reads
//   x three times (12NF bytes), writes 4NF + 16F.
// TWIN: src/ops/batchnorm/cpu.rs::batchnorm_fwd_train_f32
extern "C" __global__ void batchnorm_fwd_train_f32(const ss_batchnorm_params p,
                                                   const float* __restrict__ x,
                                                   const float* __restrict__ gamma,
                                                   const float* __restrict__ beta,
                                                   float* __restrict__ y,
                                                   float* __restrict__ mean_out,
                                                   float* __restrict__ inv_std,
                                                   float* __restrict__ running_mean,
                                                   float* __restrict__ running_var) {
    const uint64_t F = p.features;
    const float n = (float)p.rows;
    SS_GRID_STRIDE_LOOP(f, F) {
        auto col = [&](uint64_t r) { return x[r * F + f]; };
        const float mean = ss_canonical_nan(ss_thread_reduce<ss_reduce_sum_op>(p.rows, col) / n);
        const float ss = ss_thread_reduce<ss_reduce_sumsq_op>(
            p.rows, [&](uint64_t r) { return col(r) - mean; });
        const float var = ss / n;
        const float inv = ss_canonical_nan(1.0f / sqrtf(var + p.eps));
        const float g = gamma[f], b = beta[f];
        for (uint64_t r = 0; r < p.rows; ++r) {
            y[r * F + f] = ss_canonical_nan(fmaf(g, (col(r) - mean) * inv, b));
        }
        mean_out[f] = mean;
        inv_std[f] = inv;
        const float var_u = p.rows > 1u ? ss / (float)(p.rows - 1u) : var;
        running_mean[f] = ss_canonical_nan(fmaf(p.momentum, mean - running_mean[f], running_mean[f]));
        running_var[f] = ss_canonical_nan(fmaf(p.momentum, var_u - running_var[f], running_var[f]));
    }
}

// batchnorm_fwd_eval_f32: y[r,f] = fmaf(gamma, (x - running_mean) * inv, beta),
//   inv = 1.0f / sqrtf(running_var + eps); NaN canonical. Overwrites y.
// Threads: one element per thread per iteration, grid-stride over r*F + f.
// Launch: 1-D, any block and grid. Memory: reads 4NF + 16F, writes 4NF bytes.
// TWIN: src/ops/batchnorm/cpu.rs::batchnorm_fwd_eval_f32
extern "C" __global__ void batchnorm_fwd_eval_f32(const ss_batchnorm_params p,
                                                  const float* __restrict__ x,
                                                  const float* __restrict__ gamma,
                                                  const float* __restrict__ beta,
                                                  const float* __restrict__ running_mean,
                                                  const float* __restrict__ running_var,
                                                  float* __restrict__ y) {
    const uint64_t F = p.features;
    const uint64_t n = (uint64_t)p.rows * F;
    SS_GRID_STRIDE_LOOP(i, n) {
        const uint64_t f = i % F;
        const float inv = 1.0f / sqrtf(running_var[f] + p.eps);
        y[i] = ss_canonical_nan(fmaf(gamma[f], (x[i] - running_mean[f]) * inv, beta[f]));
    }
}

// batchnorm_bwd_f32: per feature f, from the forward's mean and inv (saved),
//   with xhat_r = (x_r - mean) * inv (recomputed, the forward's operations):
//     dbeta  = sum_r(dy_r)                           canonical sum
//     dgamma = sum_r(dy_r * xhat_r)                  canonical sum of the rounded products
//     k      = (gamma * inv) / n                     two roundings, n = (float)N
//     dx_r   = k * fmaf(-xhat_r, dgamma, fmaf(n, dy_r, -dbeta))
//   the gradient of batch-statistics normalisation. NaN canonical. Overwrites
//   dx, dgamma and dbeta.
// Threads, launch: as batchnorm_fwd_train_f32. Memory: reads x and dy twice
//   (16NF bytes), writes 4NF + 8F.
// TWIN: src/ops/batchnorm/cpu.rs::batchnorm_bwd_f32
extern "C" __global__ void batchnorm_bwd_f32(const ss_batchnorm_params p,
                                             const float* __restrict__ x,
                                             const float* __restrict__ gamma,
                                             const float* __restrict__ mean,
                                             const float* __restrict__ inv_std,
                                             const float* __restrict__ dy,
                                             float* __restrict__ dx,
                                             float* __restrict__ dgamma,
                                             float* __restrict__ dbeta) {
    const uint64_t F = p.features;
    const float n = (float)p.rows;
    SS_GRID_STRIDE_LOOP(f, F) {
        const float m = mean[f], inv = inv_std[f];
        auto xhat = [&](uint64_t r) { return (x[r * F + f] - m) * inv; };
        auto g_at = [&](uint64_t r) { return dy[r * F + f]; };
        const float db = ss_thread_reduce<ss_reduce_sum_op>(p.rows, g_at);
        const float dg = ss_thread_reduce<ss_reduce_sum_op>(
            p.rows, [&](uint64_t r) { return g_at(r) * xhat(r); });
        const float k = (gamma[f] * inv) / n;
        for (uint64_t r = 0; r < p.rows; ++r) {
            dx[r * F + f] = ss_canonical_nan(k * fmaf(-xhat(r), dg, fmaf(n, g_at(r), -db)));
        }
        dgamma[f] = dg;
        dbeta[f] = db;
    }
}
