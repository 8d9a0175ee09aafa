// Masked concat pooling over time (fastai's masked_concat_pool) on packed
// sequences: for every sequence b and feature f, the output at its last real
// step, the max over its real steps and the mean over its real steps. Padding
// does not exist in the packed layout, so it can never leak into a max or a
// mean. Contract: docs/numerics/pool.md.
//
// Letters: B sequences (longest first), T steps, P packed positions, F features.
// Position (t, b), for t < len[b], is packed row offsets[t] + b (src/seq.rs).
// h, dh are P x F; out, dout are B x 3F, each row [last | max | mean]; argmax is
// B x F (u32 steps). The index arrays (offsets T, lengths B, row_step P) are
// built and checked on the host (src/seq.rs::PackedSeq), so every index the
// kernels form lies inside its buffer.
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/reduce.cuh"

// pool_concat_fwd_f32: for each (b, f), with n = len[b] and x_t = h[offsets[t] + b, f]:
//     out[b, f]      = x_{n-1}                              (a bit copy)
//     out[b, F + f]  = canonical max over t < n of x_t       (NaN if any x_t is NaN)
//     out[b, 2F + f] = (canonical sum over t < n of x_t) / (float)n    (one IEEE division)
//     argmax[b, f]   = the smallest t with x_t == max (the first NaN when max is NaN)
//   max and sum are each ss_thread_reduce: the canonical order over the n steps.
//   NaN results are stored as the canonical NaN. Overwrites out and argmax.
// Threads: one (b, f) per thread per iteration of a grid-stride loop over b*F + f;
//   the thread walks the sequence's n positions (three passes: max, argmax, sum).
// Launch: 1-D, any block and grid (default 256 threads); 2 KiB local memory per
//   thread (ss_thread_reduce). Preconditions (host): the layout of src/seq.rs.
// Memory: reads 3*4*P*F bytes (in the worst case), writes 16*B*F.
// Order: per (b, f) the canonical order over t (DESIGN.md rule 3).
// TWIN: src/ops/pool/cpu.rs::pool_concat_fwd_f32
extern "C" __global__ void pool_concat_fwd_f32(const ss_pool_params p,
                                               const uint32_t* __restrict__ offsets,
                                               const uint32_t* __restrict__ lengths,
                                               const float* __restrict__ h,
                                               float* __restrict__ out,
                                               uint32_t* __restrict__ argmax) {
    const uint64_t F = p.features;
    const uint64_t items = (uint64_t)p.batch * F;
    SS_GRID_STRIDE_LOOP(i, items) {
        const uint64_t b = i / F;
        const uint64_t f = i - b * F;
        const uint64_t n = lengths[b];
        auto x = [&](uint64_t t) { return h[((uint64_t)offsets[t] + b) * F + f]; };
        const float m = ss_thread_reduce<ss_reduce_max_op>(n, x);
        uint32_t at = 0;
        const bool nan = ss_isnan(m);
        for (uint64_t t = 0; t < n; ++t) {
            const float v = x(t);
            if (nan ? ss_isnan(v) : v == m) {
                at = (uint32_t)t;
                break;
            }
        }
        const float s = ss_thread_reduce<ss_reduce_sum_op>(n, x);
        float* o = out + b * 3 * F;
        o[f] = x(n - 1);
        o[F + f] = m;
        o[2 * F + f] = ss_canonical_nan(s / (float)n);
        argmax[i] = at;
    }
}

// pool_concat_bwd_f32: for each packed row r = (t, b) (t = row_step[r],
//   b = r - offsets[t], n = len[b]) and feature f, with the incoming gradient
//   dout[b] = [d_last | d_max | d_mean]:
//     g = d_mean[f] / (float)n                      (one IEEE division)
//     if t == argmax[b, f]: g = g + d_max[f]        (one addition)
//     if t == n - 1:        g = g + d_last[f]       (one addition)
//     dh[r, f] = g (canonical NaN). Overwrites dh: every position gets exactly
//   its own contributions, in this fixed order, with no atomics.
// Threads: one (r, f) per thread per iteration, grid-stride over r*F + f.
// Launch: 1-D, any block and grid. Memory: reads 16 bytes per element plus
//   indices, writes 4*P*F.
// TWIN: src/ops/pool/cpu.rs::pool_concat_bwd_f32
extern "C" __global__ void pool_concat_bwd_f32(const ss_pool_params p,
                                               const uint32_t* __restrict__ offsets,
                                               const uint32_t* __restrict__ lengths,
                                               const uint32_t* __restrict__ row_step,
                                               const uint32_t* __restrict__ argmax,
                                               const float* __restrict__ dout,
                                               float* __restrict__ dh) {
    const uint64_t F = p.features;
    const uint64_t items = (uint64_t)p.total * F;
    SS_GRID_STRIDE_LOOP(i, items) {
        const uint64_t r = i / F;
        const uint64_t f = i - r * F;
        const uint32_t t = row_step[r];
        const uint64_t b = r - offsets[t];
        const uint32_t n = lengths[b];
        const float* d = dout + b * 3 * F;
        float g = d[2 * F + f] / (float)n;
        if (argmax[b * F + f] == t) g = g + d[F + f];
        if (t == n - 1) g = g + d[f];
        dh[i] = ss_canonical_nan(g);
    }
}
