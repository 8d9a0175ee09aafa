// Test-only kernels (never shipped): the whole canonical reduction of a row by
// ONE block through common/reduce.cuh's ss_block_row_reduce_256, the helper
// other families (softmax, pooling) call. tests/reduce.rs checks it against the
// CPU twin bit for bit, including rows of several chunks.
#include "common/prelude.cuh"
#include "common/reduce.cuh"

// reduce_block_row_<op>_f32: out[b] = reduce(row b of x), rows of `width`.
// Launch: grid = rows, block = 256, no dynamic shared; width <= 2^28.
template <class Op>
SS_DEVICE void block_rows(uint64_t width, const float* x, float* out) {
    __shared__ float smem[SS_REDUCE_LANES];
    const float* row = x + (uint64_t)blockIdx.x * width;
    const float r = ss_block_row_reduce_256<Op>(width, [&](uint64_t i) { return row[i]; }, smem);
    if (threadIdx.x == 0) out[blockIdx.x] = r;
}

extern "C" __global__ void reduce_block_row_sum_f32(uint64_t width, const float* x, float* out) {
    block_rows<ss_reduce_sum_op>(width, x, out);
}
extern "C" __global__ void reduce_block_row_max_f32(uint64_t width, const float* x, float* out) {
    block_rows<ss_reduce_max_op>(width, x, out);
}
extern "C" __global__ void reduce_block_row_sumsq_f32(uint64_t width, const float* x, float* out) {
    block_rows<ss_reduce_sumsq_op>(width, x, out);
}
