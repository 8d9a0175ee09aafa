// detmath as a kernel: one deterministic transcendental applied elementwise.
// Exposes kernels/common/detmath.cuh so that `shoestring verify` and the tests
// can check every device against the CPU twin (src/detmath.rs) bit for bit;
// other families call the ss_* device functions directly.
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/detmath.cuh"

// The function SS_DETMATH_OP_* names, applied to one value.
SS_DEVICE float ss_detmath_apply(uint32_t op, float x) {
    switch (op) {
        case SS_DETMATH_OP_EXP: return ss_exp(x);
        case SS_DETMATH_OP_LOG: return ss_log(x);
        case SS_DETMATH_OP_LOG1P: return ss_log1p(x);
        case SS_DETMATH_OP_TANH: return ss_tanh(x);
        default: return ss_sigmoid(x);  // SS_DETMATH_OP_SIGMOID (the host checks op)
    }
}

// detmath_apply_f32: out[i] = f(in[i]) for i in 0..n, f = exp | log | log1p |
//   tanh | sigmoid chosen by p.op (kernels/common/detmath.cuh).
// Dimensions: N = p.n elements.
// Threads: one element per thread per iteration, grid-stride loop; each output
//   depends on its own input only, so any grid/block shape gives the same bits.
// Launch: 1-D, block = 256 (any size works), grid = min(ceil(N/256), 65535).
//   Preconditions: in and out hold N floats and do not overlap (or are equal).
// Memory: reads 4N bytes, writes 4N bytes.
// Order: none across elements; within one, the fixed sequence of detmath.cuh.
// TWIN: src/ops/detmath/cpu.rs::detmath_apply_f32
extern "C" __global__ void detmath_apply_f32(const ss_detmath_params p, const float* in,
                                             float* out) {
    SS_GRID_STRIDE_LOOP(i, p.n) {
        out[i] = ss_detmath_apply(p.op, in[i]);
    }
}
