// Bench-only tensor-core kernels: candidate tile shapes for the fast-tier GEMM and
// a probe of the mma.sync ceiling, kept to be measured against the product
// (kernels/gemm_tc.cu, TcMain: 128 x 128 block tile, 4 warps of 64 x 64, BK 32, 4
// stages). Not shipped: build.rs compiles dev/kernels/*.cu only with the
// `dev-kernels` feature (and, as for every *_tc.cu file, never into the
// simulator). Measured by benches/gemm_gpu.rs (columns fast-nf, wide, narrow,
// pipe, k64, big and the mma.sync peak), checked by tests/gemm_dev.rs; the Rust
// launchers are dev/gemm_tc.rs. Every GEMM variant is the product's block body
// (common/gemm_tc.cuh: tc_gemm / tc_gemm_body) with another TcShape, f16 output
// and Op::N operands only, and the product's contract (kernels/gemm_tc.cu header:
// the epilogue, the overflow flag, the same sequence of k16 mma steps per output,
// so the bits are expected to equal the product's). What each one changes:
//   gemm_tc_nn_f16_f16_noflag  TcMain without the overflow check (FLAG false: the
//                              status argument is never touched): what the flag
//                              costs.
//   gemm_tc_wide_nn_f16_f16    TcWide: 128 x 256 block tile, 8 warps of 64 x 64.
//   gemm_tc_narrow_nn_f16_f16  TcNarrow: 128 x 128 block tile, 8 warps of 64 x 32.
//   gemm_tc_pipe_nn_f16_f16    TcPipe: TcMain with double-buffered ldmatrix
//                              fragments (PIPE).
//   gemm_tc_k64_nn_f16_f16     TcK64: TcPipe with a k tile of 64 and 3 stages.
//   gemm_tc_big_nn_f16_f16     TcBig: 256 x 128 block tile, 8 warps of 64 x 64, PIPE.
//   gemm_tc_mma_peak           not a GEMM: register-only mma.sync chains, the
//                              device's ceiling for any mma.sync kernel.
// Kernel args of the GEMM variants: (params, a, b, bias (null unless has_bias), c,
// status), as the product's; launch: grid (ceil(M/BM) * ceil(N/BN), 1, 1), block
// (S::THREADS, 1, 1), dynamic shared memory S::SMEM_BYTES (listed per shape below);
// sm_80 or newer.
#if !defined(__CUDACC__)
#error "dev/kernels/gemm_dev_tc.cu is GPU-only: build.rs leaves *_tc.cu files out of the simulator"
#endif
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/gemm_tc.cuh"

// TcWide: 128 x 256 block tile, 8 warps as 2 x 4 of 64 x 64, 4 stages of 30720
// bytes = 122880 bytes, one block per SM; half the B-tile refills per mma of TcMain.
#define TC_WIDE_THREADS 256
typedef TcShape<128, 256, 64, 64, 4> TcWide;
// TcNarrow: 128 x 128 block tile, 8 warps as 2 x 4 of 64 x 32 (64 accumulators per
// thread), 4 stages, 81920 bytes, two blocks per SM with at most 128 registers: more
// warps, more shared-memory reads per mma (6 ldmatrix.x4 per 16).
#define TC_NARROW_THREADS 256
typedef TcShape<128, 128, 64, 32, 4> TcNarrow;
// TcPipe: TcMain's shape (128 x 128, 4 warps of 64 x 64, BK 32, 4 stages, 81920
// bytes, two blocks per SM) with PIPE: the next k step's 8 ldmatrix.x4 are in flight
// while this step's 32 mma issue, and the barrier no longer sits between the last
// mma of a tile and the first ldmatrix of the next.
#define TC_PIPE_THREADS 128
typedef TcShape<128, 128, 64, 64, 4, 32, true> TcPipe;
// TcK64: TcPipe with BK 64 and 3 stages: a stage is A 128 x 72 (or 64 x 136) + B
// the same = 36864 bytes, x3 = 110592 bytes: two blocks per SM on sm_90 (228 KiB),
// one on sm_80. One barrier and one cp.async group per four k16 steps (128 mma per
// warp) instead of two; each output still sees the same sequence of k16 steps.
#define TC_K64_THREADS 128
typedef TcShape<128, 128, 64, 64, 3, 64, true> TcK64;
// TcBig: 256 x 128 block tile, 8 warps as 4 (m) x 2 (n) of 64 x 64, BK 32, 4 stages
// of A 256 x 40 + B 128 x 40 (or 32 x 136) halves = 30720 bytes, 122880 bytes, one
// block per SM, PIPE. A quarter fewer shared-memory fill bytes per mma than TcMain
// (24 KiB of operands per 256 x 128 x 32 step).
#define TC_BIG_THREADS 256
typedef TcShape<256, 128, 64, 64, 4, 32, true> TcBig;
static_assert(TcWide::THREADS == TC_WIDE_THREADS && TcNarrow::THREADS == TC_NARROW_THREADS &&
                  TcPipe::THREADS == TC_PIPE_THREADS && TcK64::THREADS == TC_K64_THREADS &&
                  TcBig::THREADS == TC_BIG_THREADS,
              "block sizes must match the launch bounds");

// gemm_tc_[<shape>_]nn_f16_f16[_noflag]: C = alpha * A B (+ bias), f16 output, both
// operands as stored; see the file header. Kernel args: (params, a, b, bias (null
// unless has_bias), c, status). Written out (build.rs finds kernels by their
// `__global__ void NAME(`). TWIN (within tolerance, not bitwise):
// src/ops/gemm/cpu.rs::gemm
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_nn_f16_f16_noflag(const ss_gemm_params p, const unsigned short* __restrict__ a,
                              const unsigned short* __restrict__ b, const float* __restrict__ bias,
                              unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, false, false, false, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS, 1)
    gemm_tc_wide_nn_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                            const unsigned short* __restrict__ b, const float* __restrict__ bias,
                            unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcWide, false, false, true, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS, 2)
    gemm_tc_narrow_nn_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                              const unsigned short* __restrict__ b, const float* __restrict__ bias,
                              unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcNarrow, false, false, true, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_PIPE_THREADS, 2)
    gemm_tc_pipe_nn_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                            const unsigned short* __restrict__ b, const float* __restrict__ bias,
                            unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcPipe, false, false, true, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_K64_THREADS, 2)
    gemm_tc_k64_nn_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                           const unsigned short* __restrict__ b, const float* __restrict__ bias,
                           unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcK64, false, false, true, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS, 1)
    gemm_tc_big_nn_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                           const unsigned short* __restrict__ b, const float* __restrict__ bias,
                           unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcBig, false, false, true, unsigned short>(p, a, b, bias, c, status);
}

// gemm_tc_mma_peak (not a GEMM): the mma.sync ceiling of the device.
// Each warp runs `iters` rounds of TC_PEAK_CHAINS independent m16n8k16 f16 -> f32
// mma.sync (one accumulator chain each) on register operands made from the
// thread index (not foldable), then each thread writes the sum of its
// accumulators to out[global thread index], so nothing is optimised away.
// Flop: grid x block / 32 warps x iters x TC_PEAK_CHAINS x 4096 (2 x 16 x 8 x 16
// per mma). Launch: grid 3 x SMs (three blocks fit an SM: at most 85 registers,
// so the grid is one wave, no tail), block (256, 1, 1); out holds grid x 256 floats.
// Values are meaningless (no TWIN).
#define TC_PEAK_CHAINS 16
extern "C" __global__ void __launch_bounds__(256, 3)
    gemm_tc_mma_peak(const unsigned int iters, float* __restrict__ out) {
    const uint32_t tid = blockIdx.x * blockDim.x + threadIdx.x;
    uint32_t a[4], b[2];
SS_UNROLL
    for (int e = 0; e < 4; e++) a[e] = 0x3c003c00u ^ ((tid + (uint32_t)e) & 0x00ff00ffu);
    b[0] = 0x3c003c00u ^ (tid & 0x000f000fu);
    b[1] = 0x3c003c00u ^ ((tid >> 4) & 0x000f000fu);
    float acc[TC_PEAK_CHAINS][4];
SS_UNROLL
    for (int c = 0; c < TC_PEAK_CHAINS; c++) {
SS_UNROLL
        for (int e = 0; e < 4; e++) acc[c][e] = 0.0f;
    }
#pragma unroll 1
    for (uint32_t it = 0; it < iters; it++) {
SS_UNROLL
        for (int c = 0; c < TC_PEAK_CHAINS; c++) tc_mma_nv(acc[c], a, b);
    }
    float sum = 0.0f;
SS_UNROLL
    for (int c = 0; c < TC_PEAK_CHAINS; c++) {
SS_UNROLL
        for (int e = 0; e < 4; e++) sum = sum + acc[c][e];
    }
    out[tid] = sum;
}
