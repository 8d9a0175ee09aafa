// Test-only kernels (never shipped): a block tree sum written correctly and
// the same sum with one barrier missing. tests/sim_kernels.rs shows that the
// simulator's shuffled thread order catches the missing barrier.
#include "common/prelude.cuh"

// block_sum_synced: out[b] = tree sum of in[256*b .. 256*b+256) in the
//   canonical pairwise order (s[i] += s[i+128], then +64, ... +1).
// Launch: grid = number of 256-element rows, block = 256, no dynamic shared.
extern "C" __global__ void block_sum_synced(const float* in, float* out) {
    __shared__ float s[256];
    const unsigned t = threadIdx.x;
    s[t] = in[blockIdx.x * 256 + t];
    __syncthreads();
    for (unsigned stride = 128; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// block_sum_racy: block_sum_synced without the barrier inside the loop, so a
//   thread may read s[t + stride] before its owner has added into it.
extern "C" __global__ void block_sum_racy(const float* in, float* out) {
    __shared__ float s[256];
    const unsigned t = threadIdx.x;
    s[t] = in[blockIdx.x * 256 + t];
    __syncthreads();
    for (unsigned stride = 128; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
    }
    __syncthreads();
    if (t == 0) out[blockIdx.x] = s[0];
}
