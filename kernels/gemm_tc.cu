// The fast-tier GEMM: C = alpha * op(A) op(B) (+ bias) on the tensor cores, f16
// operands, f32 accumulation, f16 or f32 output. GPU-only: build.rs leaves every
// kernels/*_tc.cu out of the simulator (inline PTX, mma.sync), while nvcc (PTX) and
// NVRTC still compile it. Layouts and parameters: abi_gemm.h (ss_gemm_params), the
// same as the exact tier's. Every output:
//     acc = sum over kk of a[i,kk] * b[kk,j]      (mma.sync, f32 accumulators)
//     y = has_bias ? fmaf(alpha, acc, bias[j]) : alpha * acc
//     C[i,j] = round-to-nearest-even of ss_canonical_nan(y) into the output type
// and a non-finite stored value ORs SS_STATUS_OVERFLOW into the step's status
// block (abi_status.h).
//
// Numerics (DESIGN.md, "The fast tier"): NOT bitwise equal to the CPU twin. Each
// f16 x f16 product is exact in f32, but the PTX ISA leaves the order and rounding
// of the additions inside one mma.sync unspecified. What is fixed: k is walked in
// tiles of 32 in increasing order, each tile as two k16 mma steps in increasing
// order, every output is owned by one thread for the whole k loop (no split-K, no
// atomics on data), and the tile -> block -> warp -> lane mapping is a function of
// (m, n, k) only. So the bits are the same run to run on one GPU model;
// tests/gemm_fast.rs holds them within |alpha| (k + 4) 2^-21 sum|a b| + 2^-22 |y|
// (+ one f16 ulp for f16 output) of the exact tier. Ragged shapes are zero-padded:
// padding products are 0 * 0 and rows/columns outside C are never stored.
//
// This file is the product: TcMain (128 x 128 tiles) for every layout and output
// type. The machinery (PTX wrappers, tile loader, TcShape, the block body
// tc_gemm_body and its design) is common/gemm_tc.cuh, shared with the bench-only
// shapes and probes of dev/kernels/gemm_dev_tc.cu, which are measured by
// benches/gemm_gpu.rs and never shipped.
//
// Requires sm_80 (cp.async, ldmatrix, mma.m16n8k16); the Rust launcher refuses
// older devices. Built as compute_80 PTX, which the driver JITs for sm_90 too.
#if !defined(__CUDACC__)
#error "kernels/gemm_tc.cu is GPU-only: build.rs leaves *_tc.cu files out of the simulator"
#endif
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/gemm_tc.cuh"

// gemm_tc_<ab>_f16_<out>: C = alpha * op(A) op(B) (+ bias), see the file header.
// <ab> names trans_a, trans_b (n: as stored, t: transposed); the launcher picks the
// kernel from the params, the kernel does not look at them.
// Launch: grid (ceil(M/BM) * ceil(N/BN), 1, 1), block (TC_MAIN_THREADS = 128, 1, 1),
//   dynamic shared memory TcMain::SMEM_BYTES = 81920 bytes; sm_80 or newer. Block b
//   computes the tile of the grouped order in tc_gemm_body; warp w the WM x WN
//   sub-tile (w / (BN/WN), w % (BN/WN)); lane (g, t) the fragment elements listed at
//   tc_mma.
// Memory traffic: each block reads BM * K elements of A and BN * K of B (A is read
//   ceil(N/BN) times and B ceil(M/BM) times in all, mostly from L2 thanks to the
//   grouped order), the bias once per output column it owns, and writes its BM x BN
//   outputs once: 2 (f16) or 4 (f32) bytes each, in 4- or 8-byte pairs. Minimum
//   DRAM traffic for square n: 3 n^2 x 2 bytes (f16 out), against 2 n^3 flop.
// Order: k tiles ascending, two k16 mma steps each; fixed tile -> thread mapping;
//   no split-K, no atomics on data (the flag is an integer OR). Not bitwise equal
//   to the CPU: see the file header.
// TWIN (within tolerance, not bitwise): src/ops/gemm/cpu.rs::gemm
// Kernel args: (params, a, b, bias (null unless has_bias), c, status). Written out.
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_nn_f16_f32(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       float* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, false, false, true, float>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_nt_f16_f32(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       float* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, false, true, true, float>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_tn_f16_f32(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       float* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, true, false, true, float>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_tt_f16_f32(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       float* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, true, true, true, float>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_nn_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, false, false, true, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_nt_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, false, true, true, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_tn_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, true, false, true, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(TC_MAIN_THREADS, 2)
    gemm_tc_tt_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       unsigned short* __restrict__ c, unsigned int* status) {
    tc_gemm<TcMain, true, true, true, unsigned short>(p, a, b, bias, c, status);
}
