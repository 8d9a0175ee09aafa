// Log-softmax over rows and mean cross-entropy, forward and backward
// (docs/numerics/softmax.md is the contract).
//
// Dimension letters: R rows, C columns (classes); x, y, dx are R x C row-major
// f32, labels are R u32.
//
// Row kernels run one 256-thread block per row (thread t is lane t of the
// canonical reduction, kernels/common/reduce.cuh); the grid strides over rows,
// so any grid size gives the same bits. Rows of any width up to 2^28: a block
// loops over the row's chunks of 16384 in order and reduces the chunk results
// by the same rule (reduce.cuh's ss_block_row_reduce_256).
//
// Every value stored is passed through ss_canonical_nan (prelude.cuh), so a NaN has
// the bits 0x7fc00000 on every device (GPU and x86 NaN payloads differ).
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/detmath.cuh"
#include "common/reduce.cuh"

// One row's log-softmax: m = max(row), s = sum(exp(x_j - m)), both in the
// canonical order; ls = log(s); y_j = (x_j - m) - ls. Returns ls; `m` out.
// Every thread of the 256-block must call it (it holds barriers).
// TWIN: src/ops/softmax/cpu.rs::log_softmax_row
SS_DEVICE float ss_softmax_log_row(const float* xr, float* yr, uint64_t C, float* smem, float* m_out) {
    const float m = ss_block_row_reduce_256<ss_reduce_max_op>(
        C, [&](uint64_t j) { return xr[j]; }, smem);
    const float s = ss_block_row_reduce_256<ss_reduce_sum_op>(
        C, [&](uint64_t j) { return ss_exp(xr[j] - m); }, smem);
    const float ls = ss_log(s);
    for (uint64_t j = threadIdx.x; j < C; j += SS_REDUCE_LANES) {
        yr[j] = ss_canonical_nan((xr[j] - m) - ls);
    }
    *m_out = m;
    return ls;
}

// softmax_log_fwd_f32: y[r, j] = (x[r, j] - m_r) - log(sum_k exp(x[r, k] - m_r)),
//   m_r = max_k x[r, k].
// Threads: block b handles rows b, b + gridDim.x, ...; thread t is reduction
//   lane t and writes columns t, t + 256, ... of y.
// Launch: 1-D, block = exactly 256 threads (the lane count; required), grid =
//   any size >= 1 (default min(R, 65535)); 1 KiB static shared memory.
//   Preconditions (host): 1 <= C <= 2^28.
// Memory: reads x three times (max pass, exp-sum pass, output pass; 12 RC
//   bytes), writes y once (4 RC bytes).
// Order: max and sum each in the canonical order of reduce.cuh over the row.
// TWIN: src/ops/softmax/cpu.rs::log_softmax_rows
extern "C" __global__ void softmax_log_fwd_f32(const ss_softmax_rows_params p, const float* x,
                                               float* y) {
    __shared__ float smem[SS_REDUCE_LANES];
    const uint64_t C = p.cols;
    for (uint64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {  // 64-bit: no wrap near 2^32 rows
        float m;
        (void)ss_softmax_log_row(x + (uint64_t)r * C, y + (uint64_t)r * C, C, smem, &m);
    }
}

// softmax_xent_fwd_f32: y as softmax_log_fwd_f32, and nll[r] = -y[r, label_r]
//   (recomputed by thread 0 with the same operations, so the same bits as the
//   stored y). A label >= C sets nll[r] = NaN and, in the status block,
//   SS_STATUS_BAD_LABEL and status[BAD_LABEL_FIRST] = max(., 0xffffffff - r)
//   (an integer max, so the smallest bad row wins whatever the block order).
// Threads / launch / preconditions: as softmax_log_fwd_f32; status holds
//   SS_STATUS_WORDS words.
// Memory: as softmax_log_fwd_f32, plus 4R bytes of labels read, 4R of nll written.
// TWIN: src/ops/softmax/cpu.rs::xent_rows
extern "C" __global__ void softmax_xent_fwd_f32(const ss_softmax_rows_params p, const float* x,
                                                const uint32_t* labels, float* y, float* nll,
                                                uint32_t* status) {
    __shared__ float smem[SS_REDUCE_LANES];
    const uint64_t C = p.cols;
    for (uint64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {  // 64-bit: no wrap near 2^32 rows
        const float* xr = x + (uint64_t)r * C;
        float m;
        const float ls = ss_softmax_log_row(xr, y + (uint64_t)r * C, C, smem, &m);
        if (threadIdx.x == 0) {
            const uint32_t label = labels[r];
            if (label < p.cols) {
                nll[r] = ss_canonical_nan(-((xr[label] - m) - ls));
            } else {
                nll[r] = __uint_as_float(SS_CANONICAL_NAN_BITS);
                atomicOr(&status[SS_STATUS_FLAGS], SS_STATUS_BAD_LABEL);
                atomicMax(&status[SS_STATUS_BAD_LABEL_FIRST], 0xffffffffu - (uint32_t)r);
            }
        }
    }
}

// softmax_xent_loss_f32: loss[0] = sum_r nll[r] / (float)R, the sum in the
//   canonical order over the R values, then one IEEE f32 division (R < 2^24,
//   so (float)R is exact); NaN canonicalized. The same bits also go to
//   status[SS_STATUS_LOSS] (the step reads them with the status block), and a
//   non-finite loss sets SS_STATUS_NONFINITE_LOSS.
// Threads: one block of exactly 256 threads, thread t is lane t.
// Launch: grid = (1,1,1), block = 256. Preconditions (host): 1 <= R < 2^24.
// Memory: reads 4R bytes, writes 8 (and an atomic OR when non-finite).
// TWIN: src/ops/softmax/cpu.rs::mean_loss
extern "C" __global__ void softmax_xent_loss_f32(const ss_softmax_rows_params p, const float* nll,
                                                 float* loss, uint32_t* status) {
    __shared__ float smem[SS_REDUCE_LANES];
    const float s = ss_block_row_reduce_256<ss_reduce_sum_op>(
        (uint64_t)p.rows, [&](uint64_t r) { return nll[r]; }, smem);
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        const float l = ss_canonical_nan(s / (float)p.rows);
        loss[0] = l;
        status[SS_STATUS_LOSS] = __float_as_uint(l);
        if (!ss_isfinite(l)) {
            atomicOr(&status[SS_STATUS_FLAGS], SS_STATUS_NONFINITE_LOSS);
        }
    }
}

// softmax_xent_bwd_f32: dx[r, j] = (exp(y[r, j]) - (j == label_r ? 1 : 0)) * gscale,
//   rounded as: p = ss_exp(y); q = p - onehot (f32 subtraction, onehot 1.0f or
//   0.0f); dx = q * gscale (f32 multiply); NaN canonicalized. No fma.
//   gscale = dloss / (float)R was rounded once on the host. A label >= C sets
//   the status block's bad-label words as softmax_xent_fwd_f32 does (checked at
//   column 0 of each row).
// Threads: one element per thread per iteration, grid-stride over i = r*C + j,
//   so any grid/block shape gives the same bits (each element depends on i only).
// Launch: 1-D, block any size (default 256), grid any size >= 1 (default
//   min(ceil(RC/256), 65535)). Preconditions (host): R >= 1, C >= 1; status holds
//   SS_STATUS_WORDS words.
// Memory: reads 4RC bytes of y and (cached) labels, writes 4RC bytes of dx.
// TWIN: src/ops/softmax/cpu.rs::xent_bwd
extern "C" __global__ void softmax_xent_bwd_f32(const ss_softmax_bwd_params p, const float* y,
                                                const uint32_t* labels, float* dx, uint32_t* status) {
    const uint64_t C = p.cols;
    const uint64_t n = (uint64_t)p.rows * C;
    SS_GRID_STRIDE_LOOP(i, n) {
        const uint64_t r = i / C;
        const uint64_t j = i - r * C;
        const uint32_t label = labels[r];
        if (label >= p.cols && j == 0) {
            atomicOr(&status[SS_STATUS_FLAGS], SS_STATUS_BAD_LABEL);
            atomicMax(&status[SS_STATUS_BAD_LABEL_FIRST], 0xffffffffu - (uint32_t)r);
        }
        const float onehot = j == (uint64_t)label ? 1.0f : 0.0f;
        const float q = ss_exp(y[i]) - onehot;
        dx[i] = ss_canonical_nan(q * p.gscale);
    }
}
