// Canonical reductions (DESIGN.md rule 3; docs/numerics/reduce.md): sum, max
// and sum of squares over each row of a row-major R x W matrix (a whole tensor
// is one row of width n). One launch is one PASS: every chunk of 16384
// elements of every row becomes one partial. The host (src/ops/reduce/cuda.rs)
// repeats passes over the partials, with the sum (or max) kernel, until one
// value per row remains. No atomics: each partial is written by one block.
//
// Letters: R rows, W width of the pass's input rows, C = max(1, ceil(W / 16384))
// chunks per row.
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/reduce.cuh"

// One pass of Op: out[r*C + k] = chunk_reduce(row r, elements k*16384 ..
// min(W, (k+1)*16384)), with Op's first-level fold (sumsq squares here; the
// host uses the sum kernel for the passes above the first).
template <class Op>
SS_DEVICE void ss_reduce_chunks(const ss_reduce_chunks_params p, const float* __restrict__ x,
                                float* __restrict__ out, float* smem) {
    const uint64_t tasks = p.rows * p.chunks_per_row;
    // Block-stride loop over (row, chunk) tasks: the grid size changes which
    // block does a task, never how the task is computed. The trip count is the
    // same for every thread of a block, so the barriers inside are uniform.
    for (uint64_t task = blockIdx.x; task < tasks; task += gridDim.x) {
        const uint64_t r = task / p.chunks_per_row;
        const uint64_t k = task % p.chunks_per_row;
        const uint64_t begin = k * SS_REDUCE_CHUNK;  // <= W: k < C
        const uint64_t left = p.width - begin;
        const uint32_t m = left < SS_REDUCE_CHUNK ? (uint32_t)left : SS_REDUCE_CHUNK;
        const float y = ss_block_chunk_reduce_256<Op>(x + r * p.width + begin, m, smem);
        if (threadIdx.x == 0) {
            out[task] = y;
        }
    }
}

// reduce_sum_chunks_f32: out[r*C + k] = sum of chunk k of row r, canonical order
//   (lane l: acc = acc + x[l], x[l+256], ...; pairwise tree 128..1; NaN -> 0x7fc00000).
// Threads: one block per (row, chunk) task, block-stride over R*C tasks; thread t
//   is lane t and reads x[t], x[t+256], ... of the chunk (coalesced).
// Launch: block = (256, 1, 1) exactly; grid = any 1..R*C blocks (default
//   min(R*C, 65535)); 1 KiB static shared. Precondition: x holds R*W floats, out R*C.
// Memory: reads 4*R*W bytes, writes 4*R*C bytes.
// TWIN: src/ops/reduce/cpu.rs::chunk_reduce (per task), ::canonical_reduce (passes)
extern "C" __global__ void reduce_sum_chunks_f32(const ss_reduce_chunks_params p,
                                                 const float* x, float* out) {
    __shared__ float smem[SS_REDUCE_LANES];
    ss_reduce_chunks<ss_reduce_sum_op>(p, x, out, smem);
}

// reduce_max_chunks_f32: as reduce_sum_chunks_f32 with acc = max2(acc, x) from
//   -inf, tree max2; max2(a, b) = canonical NaN if either is NaN, else b > a ? b : a.
// Threads, launch, memory: as reduce_sum_chunks_f32.
// TWIN: src/ops/reduce/cpu.rs::chunk_reduce (per task), ::canonical_reduce (passes)
extern "C" __global__ void reduce_max_chunks_f32(const ss_reduce_chunks_params p,
                                                 const float* x, float* out) {
    __shared__ float smem[SS_REDUCE_LANES];
    ss_reduce_chunks<ss_reduce_max_op>(p, x, out, smem);
}

// reduce_sumsq_chunks_f32: first pass of the sum of squares: lanes fold
//   acc = fmaf(x, x, acc) from 0, then the sum tree. Later passes use
//   reduce_sum_chunks_f32 on the partials.
// Threads, launch, memory: as reduce_sum_chunks_f32.
// TWIN: src/ops/reduce/cpu.rs::chunk_reduce (per task), ::canonical_reduce (passes)
extern "C" __global__ void reduce_sumsq_chunks_f32(const ss_reduce_chunks_params p,
                                                   const float* x, float* out) {
    __shared__ float smem[SS_REDUCE_LANES];
    ss_reduce_chunks<ss_reduce_sumsq_op>(p, x, out, smem);
}

// Column reductions: out[c] = reduce over r < R of x[r * C + c], c < C, in the
// canonical order over the R values of the column (the bits reduce_rows gives
// the transposed matrix). Letters for these: R rows, C columns.
template <class Op>
SS_DEVICE void ss_reduce_cols(const ss_reduce_cols_params p, const float* __restrict__ x,
                              float* __restrict__ out) {
    SS_GRID_STRIDE_LOOP(c, p.cols) {
        out[c] = ss_thread_reduce<Op>(p.rows, [&](uint64_t r) { return x[r * p.cols + c]; });
    }
}

// reduce_sum_cols_f32: out[c] = canonical sum of column c (bias gradients,
//   batch statistics). Overwrites out.
// Threads: one column per thread per iteration of a grid-stride loop over c < C;
//   the thread walks the column's R values (ss_thread_reduce); a warp reads 32
//   adjacent columns of one row at a time (coalesced).
// Launch: 1-D, any block and grid (default 256 threads, ceil(C/256) blocks).
//   Precondition (host): R <= 2^28. 2 KiB of local memory per thread.
// Memory: reads 4RC bytes, writes 4C.
// Order: per column, the canonical order over r (DESIGN.md rule 3).
// TWIN: src/ops/reduce/cpu.rs::reduce_cols
extern "C" __global__ void reduce_sum_cols_f32(const ss_reduce_cols_params p, const float* x,
                                               float* out) {
    ss_reduce_cols<ss_reduce_sum_op>(p, x, out);
}

// reduce_max_cols_f32: as reduce_sum_cols_f32 with the canonical max.
// TWIN: src/ops/reduce/cpu.rs::reduce_cols
extern "C" __global__ void reduce_max_cols_f32(const ss_reduce_cols_params p, const float* x,
                                               float* out) {
    ss_reduce_cols<ss_reduce_max_op>(p, x, out);
}

// reduce_sumsq_cols_f32: as reduce_sum_cols_f32 with the sum of squares
//   (fmaf(x, x, acc) in the first level's lanes).
// TWIN: src/ops/reduce/cpu.rs::reduce_cols
extern "C" __global__ void reduce_sumsq_cols_f32(const ss_reduce_cols_params p, const float* x,
                                                 float* out) {
    ss_reduce_cols<ss_reduce_sumsq_op>(p, x, out);
}
