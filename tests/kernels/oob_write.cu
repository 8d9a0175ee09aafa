// Test-only kernel (never shipped): a deliberate off-by-one, so that the
// AddressSanitizer build of the simulator can be shown to report an
// out-of-bounds write with this file's line (tests/sim_kernels.rs).
#include "common/prelude.cuh"

// write_one_past_the_end: out[i] = 1 for i <= n, i.e. one element too many.
extern "C" __global__ void write_one_past_the_end(float* out, uint32_t n) {
    const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f;  // the bug: `<=` writes out[n]
}
