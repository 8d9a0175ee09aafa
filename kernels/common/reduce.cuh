// The canonical reduction (DESIGN.md rule 3; docs/numerics/reduce.md) as
// reusable device pieces. kernels/reduce.cu builds its passes from them, and
// so do other families that reduce rows (softmax, pooling).
//
// TWIN: src/ops/reduce/cpu.rs (ReduceOp, max2, chunk_reduce, canonical_*).
//
// LAUNCH REQUIREMENT for every block-level function here: a 1-D block of
// exactly SS_REDUCE_LANES = 256 threads (blockDim.x == 256, blockDim.y ==
// blockDim.z == 1): thread t is lane t. Every thread of the block must call the
// function (it contains __syncthreads()), with the same arguments except `v`.
// `smem` points at 256 floats of shared memory the function may overwrite;
// it is free again when the function returns (a trailing barrier).
// Not checked in device code: a wrong block size would index smem out of range
// (blockDim.x > 256) or drop lanes (< 256), but the prelude offers no trap that
// runs on both sides (sim.h has no __trap, and a kernel-side check that only
// nvcc compiles would make Cuda and Sim differ). The launchers enforce it:
// src/ops/reduce/cuda.rs and src/ops/softmax/cuda.rs always launch
// [SS_REDUCE_LANES, 1, 1]; a new caller must do the same.
//
// The canonical order, in brief: chunk_reduce(c[0..m)), m <= 16384: lane l
// starts from the identity and combines c[l], c[l+256], ... in increasing
// order with Op::first; then for s = 128, 64, ..., 1: v[i] = combine(v[i],
// v[i+s]) for i < s; the result is v[0], with any NaN made canonical
// (ss_canonical_nan: 0x7fc00000; GPUs and x86 make different NaN bits for
// inf - inf, only NaN-ness is portable, so the contract fixes the bits). A longer
// input is split into chunks of 16384, and the chunk results are reduced the
// same way, with Op::upper (sum of squares squares at the first level only).
#pragma once
#include "common/prelude.cuh"
#include "common/abi.h"

// max of two floats: NaN if either is NaN (canonical bits), else `b > a ? b : a`,
// so ties, including max(-0, +0) and max(+0, -0), keep the first operand.
// TWIN: src/ops/reduce/cpu.rs::max2
SS_DEVICE float ss_reduce_max2(float a, float b) {
    if (ss_isnan(a) || ss_isnan(b)) {
        return __uint_as_float(SS_CANONICAL_NAN_BITS);
    }
    return b > a ? b : a;
}

// The three operations. identity(): the lanes' start value. first(acc, x):
// folds one input element into a lane. combine(a, b): the tree step. upper:
// the operation that reduces chunk results (levels above the first).
struct ss_reduce_sum_op {
    typedef ss_reduce_sum_op upper;
    __device__ __forceinline__ static float identity() { return 0.0f; }
    __device__ __forceinline__ static float first(float acc, float x) { return acc + x; }
    __device__ __forceinline__ static float combine(float a, float b) { return a + b; }
};

struct ss_reduce_sumsq_op {
    typedef ss_reduce_sum_op upper;
    __device__ __forceinline__ static float identity() { return 0.0f; }
    // One rounding: x*x + acc fused, written explicitly (rule 1).
    __device__ __forceinline__ static float first(float acc, float x) { return fmaf(x, x, acc); }
    __device__ __forceinline__ static float combine(float a, float b) { return a + b; }
};

struct ss_reduce_max_op {
    typedef ss_reduce_max_op upper;
    __device__ __forceinline__ static float identity() { return __uint_as_float(0xff800000u); }
    __device__ __forceinline__ static float first(float acc, float x) { return ss_reduce_max2(acc, x); }
    __device__ __forceinline__ static float combine(float a, float b) { return ss_reduce_max2(a, b); }
};

// One lane's share of one chunk of m <= SS_REDUCE_CHUNK elements: starting from
// Op::identity(), folds load(i) for i = lane, lane + 256, ... < m in increasing
// order. `load(i)` returns element i of the chunk (a plain read, or a value
// computed from it, e.g. exp(x[i] - max) in softmax). No barrier; any lane count
// may call it, but the canonical order needs lane == threadIdx.x of a 256-block.
// TWIN: src/ops/reduce/cpu.rs::chunk_reduce (the lane loop)
template <class Op, class Load>
SS_DEVICE float ss_lane_accumulate_256(uint32_t m, Load load) {
    float acc = Op::identity();
    for (uint32_t i = threadIdx.x; i < m; i += SS_REDUCE_LANES) {
        acc = Op::first(acc, load(i));
    }
    return acc;
}

// The pairwise tree over the block's 256 lane values `v` (thread t holds lane
// t): for s = 128, 64, ..., 1: smem[i] = combine(smem[i], smem[i+s]) for i < s.
// Returns the canonicalized smem[0] to every thread. 9 + 1 barriers.
// TWIN: src/ops/reduce/cpu.rs::tree
template <class Op>
SS_DEVICE float ss_block_tree_256(float v, float* smem) {
    // REQUIRES blockDim.x == SS_REDUCE_LANES (256), blockDim.y == blockDim.z == 1;
    // unchecked here, see the LAUNCH REQUIREMENT above (no __trap in the prelude).
    const unsigned t = threadIdx.x;
    smem[t] = v;
    __syncthreads();
    for (unsigned s = SS_REDUCE_LANES / 2; s > 0; s >>= 1) {
        if (t < s) {
            smem[t] = Op::combine(smem[t], smem[t + s]);
        }
        __syncthreads();
    }
    const float r = ss_canonical_nan(smem[0]);
    __syncthreads();  // every thread has read smem[0]: the caller may reuse smem
    return r;
}

SS_DEVICE float ss_block_tree_sum_256(float v, float* smem) {
    return ss_block_tree_256<ss_reduce_sum_op>(v, smem);
}

SS_DEVICE float ss_block_tree_max_256(float v, float* smem) {
    return ss_block_tree_256<ss_reduce_max_op>(v, smem);
}

// chunk_reduce of one chunk c[0..m), m <= SS_REDUCE_CHUNK, by one block; the
// result goes to every thread.
template <class Op>
SS_DEVICE float ss_block_chunk_reduce_256(const float* c, uint32_t m, float* smem) {
    const float v = ss_lane_accumulate_256<Op>(m, [&](uint32_t i) { return c[i]; });
    return ss_block_tree_256<Op>(v, smem);
}

// The whole canonical reduction of one row of `width` elements by one block,
// element i being load(i) (uint64_t index). For rows up to two levels:
// PRECONDITION width <= SS_REDUCE_CHUNK * SS_REDUCE_CHUNK (2^28); the caller
// checks it on the host. Chunk k's result is folded by lane k % 256 in
// increasing k, which is the second level's lane order, then one more tree.
// Reads each element once; 10 barriers per chunk plus 10.
// TWIN: src/ops/reduce/cpu.rs::canonical_reduce (for n <= CHUNK^2)
template <class Op, class Load>
SS_DEVICE float ss_block_row_reduce_256(uint64_t width, Load load, float* smem) {
    if (width <= SS_REDUCE_CHUNK) {
        const float v = ss_lane_accumulate_256<Op>((uint32_t)width, load);
        return ss_block_tree_256<Op>(v, smem);
    }
    typedef typename Op::upper Up;
    const uint64_t chunks = (width + SS_REDUCE_CHUNK - 1) / SS_REDUCE_CHUNK;
    float acc = Up::identity();
    for (uint64_t k = 0; k < chunks; ++k) {
        const uint64_t begin = k * SS_REDUCE_CHUNK;
        const uint64_t left = width - begin;
        const uint32_t m = left < SS_REDUCE_CHUNK ? (uint32_t)left : SS_REDUCE_CHUNK;
        const float v = ss_lane_accumulate_256<Op>(m, [&](uint32_t i) { return load(begin + i); });
        const float y = ss_block_tree_256<Op>(v, smem);
        if (k % SS_REDUCE_LANES == threadIdx.x) {
            acc = Up::first(acc, y);
        }
    }
    return ss_block_tree_256<Up>(acc, smem);
}

// The canonical pairwise tree over a thread's own 256 lane values (the same
// combines, in the same order, as ss_block_tree_256), returning canonical v[0].
// Overwrites v. TWIN: src/ops/reduce/cpu.rs::tree
template <class Op>
SS_DEVICE float ss_thread_tree_256(float* v) {
    for (uint32_t s = SS_REDUCE_LANES / 2; s > 0; s >>= 1) {
        for (uint32_t i = 0; i < s; ++i) {
            v[i] = Op::combine(v[i], v[i + s]);
        }
    }
    return ss_canonical_nan(v[0]);
}

// The whole canonical reduction of n elements (element i = load(i)) by ONE
// thread: the 256 lanes are a local array, filled in the canonical order
// (lane i % 256 folds element i, in increasing i), then the same tree; n above a
// chunk reduces each chunk so, and folds chunk k's result into upper lane
// k % 256, then one more tree, exactly as ss_block_row_reduce_256 does. So one
// thread per output gives the bits a 256-thread block would: for reductions
// over strided data with many small outputs (a matrix's columns, the time
// steps of each sequence), where a block per output would idle most lanes.
// PRECONDITION n <= SS_REDUCE_CHUNK * SS_REDUCE_CHUNK (2^28), checked on the
// host. No barrier: any thread may call it alone. 2 KiB of local memory.
// TWIN: src/ops/reduce/cpu.rs::canonical_reduce (for n <= CHUNK^2)
template <class Op, class Load>
SS_DEVICE float ss_thread_reduce(uint64_t n, Load load) {
    typedef typename Op::upper Up;
    float lanes[SS_REDUCE_LANES];
    float upper[SS_REDUCE_LANES];
    const uint64_t chunks = n <= SS_REDUCE_CHUNK ? 1 : (n + SS_REDUCE_CHUNK - 1) / SS_REDUCE_CHUNK;
    for (uint32_t l = 0; l < SS_REDUCE_LANES; ++l) upper[l] = Up::identity();
    for (uint64_t k = 0; k < chunks; ++k) {
        const uint64_t begin = k * SS_REDUCE_CHUNK;
        const uint64_t left = n - begin;
        const uint32_t m = left < SS_REDUCE_CHUNK ? (uint32_t)left : SS_REDUCE_CHUNK;
        for (uint32_t l = 0; l < SS_REDUCE_LANES; ++l) lanes[l] = Op::identity();
        for (uint32_t i = 0; i < m; ++i) {
            const uint32_t l = i % SS_REDUCE_LANES;
            lanes[l] = Op::first(lanes[l], load(begin + i));
        }
        const float y = ss_thread_tree_256<Op>(lanes);
        if (chunks == 1) {
            return y;
        }
        const uint32_t l = (uint32_t)(k % SS_REDUCE_LANES);
        upper[l] = Up::first(upper[l], y);
    }
    return ss_thread_tree_256<Up>(upper);
}
