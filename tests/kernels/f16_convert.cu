// Test-only kernels (never shipped): the prelude's f16 conversions, exposed so
// that tests/sim_kernels.rs can compare them with the `half` crate on every
// half and on a sweep of floats.
#include "common/prelude.cuh"

// f16_bits_to_f32: out[i] = ss_half_to_float(in[i]) for i < n. Grid-stride, 1-D.
extern "C" __global__ void f16_bits_to_f32(const unsigned short* in, float* out, uint32_t n) {
    SS_GRID_STRIDE_LOOP(i, n) {
        out[i] = ss_half_to_float(in[i]);
    }
}

// f32_to_f16_bits: out[i] = ss_float_to_half_rn(in[i]) for i < n. Grid-stride, 1-D.
extern "C" __global__ void f32_to_f16_bits(const float* in, unsigned short* out, uint32_t n) {
    SS_GRID_STRIDE_LOOP(i, n) {
        out[i] = ss_float_to_half_rn(in[i]);
    }
}
