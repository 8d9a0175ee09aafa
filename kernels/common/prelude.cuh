// prelude.cuh: the only header kernels include.
//
// Under nvcc or NVRTC (__CUDACC__) it maps to CUDA built-ins; compiled as plain C++
// it includes sim.h, the SIMT simulator, so one kernel source runs as Device::Cuda
// and as Device::Sim (DESIGN.md, "Three devices, one kernel source").
//
// Spellings kernels may use on both sides, and nothing else:
//   threadIdx blockIdx blockDim gridDim, __global__ __device__ __forceinline__
//   __shared__ __restrict__, SS_DYNAMIC_SHARED(type, name), SS_DEVICE (helpers in
//   .cuh files), SS_WARP_SIZE, __syncthreads __syncwarp, __shfl_sync
//   __shfl_up_sync __shfl_down_sync __shfl_xor_sync (width 32; int, unsigned, float
//   and 64-bit types), __ballot_sync __any_sync __all_sync, fmaf sqrtf fabsf fminf
//   fmaxf and IEEE `/`, __float_as_uint __uint_as_float __float_as_int
//   __int_as_float, ss_isfinite ss_isnan ss_canonical_nan SS_CANONICAL_NAN_BITS,
//   atomicOr/atomicAdd/atomicMax on unsigned int, ss_half_to_float,
//   ss_float_to_half_rn, SS_GRID_STRIDE_LOOP(i, n), SS_UNROLL (before a for loop),
//   <stdint.h> fixed-width types.
// The bit-level helpers below (NaN, finiteness, f16 conversions) have one Rust twin
// each in src/numerics.rs.
// No float atomics anywhere (DESIGN.md, numerics contract rule 3).
#ifndef SHOESTRING_PRELUDE_CUH
#define SHOESTRING_PRELUDE_CUH

#if defined(__CUDACC__)

#if defined(__CUDACC_RTC__)
// NVRTC has no standard headers.
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#endif

#define SS_DEVICE __device__ __forceinline__
#define SS_WARP_SIZE 32
// `#pragma unroll` on the next loop (a no-op in the simulator).
#define SS_UNROLL _Pragma("unroll")
// One extern array for every use, aligned for float4-style access; a kernel takes a
// typed pointer into it.
#define SS_DYNAMIC_SHARED(type, name)                                   \
    extern __shared__ __align__(16) unsigned char ss_dyn_smem_[];       \
    type* name = reinterpret_cast<type*>(ss_dyn_smem_)

#else  // plain C++: the simulator

#include "sim.h"

#endif

// The 1-D grid-stride loop over i = 0 .. n-1: thread g = blockIdx.x * blockDim.x +
// threadIdx.x takes i = g, g + S, g + 2S, ... with S = gridDim.x * blockDim.x. The
// index, the stride and the bound are 64-bit, so nothing wraps for n near or above
// 2^32 (a 32-bit i would wrap to a small value and loop forever or alias). `n` is
// evaluated on every iteration, so pass a by-value parameter or a local. Use it for every
// loop of that exact shape; loops that step otherwise (block-stride over rows or
// tiles, lanes within a block) are written out. The stride is declared before i on
// purpose: with ptxas (sm_90, CUDA 13) the other order costs 2-4 registers in
// several kernels.
#define SS_GRID_STRIDE_LOOP(i, n)                                                      \
    for (uint64_t ss_stride_ = (uint64_t)gridDim.x * blockDim.x,                       \
                  i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;                 \
         i < (uint64_t)(n); i += ss_stride_)

// Finite = exponent field not all ones. A bit test, so it means the same on both
// sides whatever the compiler's idea of isfinite under any flags.
// TWIN: src/numerics.rs::is_finite
SS_DEVICE bool ss_isfinite(float x) {
    return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u;
}

// ---------------------------------------------------------------------------------
// One NaN for the whole project (docs/numerics.md, "One NaN"). GPU f32 arithmetic
// returns 0x7fffffff for an invalid operation, x86 returns 0xffc00000 or passes an
// input's payload through, so every float a kernel stores that arithmetic could
// have made NaN goes through ss_canonical_nan: any NaN leaves as 0x7fc00000, the
// IEEE default quiet NaN (Rust's f32::NAN has the same bits).
// ---------------------------------------------------------------------------------

#define SS_CANONICAL_NAN_BITS 0x7fc00000u

// NaN = exponent field all ones, mantissa nonzero. A bit test, like ss_isfinite.
// TWIN: src/numerics.rs::is_nan
SS_DEVICE bool ss_isnan(float x) {
    return (__float_as_uint(x) & 0x7fffffffu) > 0x7f800000u;
}

// x, or the canonical NaN when x is any NaN (whatever its sign and payload).
// TWIN: src/numerics.rs::canonical_nan
SS_DEVICE float ss_canonical_nan(float x) {
    return ss_isnan(x) ? __uint_as_float(SS_CANONICAL_NAN_BITS) : x;
}

// ---------------------------------------------------------------------------------
// f16 <-> f32, our own integer code on both sides (cuda_fp16.h's __float2half_rn
// turns every NaN into 0x7fff; the Rust `half` crate keeps the payload). These match
// half 2.x f16::from_f32 / f16::to_f32 bit for bit on every input (checked over all
// 2^32 floats and 2^16 halves).
// ---------------------------------------------------------------------------------

// Exact. NaN: payload kept, quiet bit set, as `half` does.
// TWIN: src/numerics.rs::half_to_float
SS_DEVICE float ss_half_to_float(unsigned short h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = ((uint32_t)h >> 10) & 0x1fu;
    uint32_t man = (uint32_t)h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (man != 0u ? (0x00400000u | (man << 13)) : 0u);
    } else if (exp != 0u) {
        bits = sign | ((exp + (127u - 15u)) << 23) | (man << 13);
    } else if (man == 0u) {
        bits = sign;
    } else {
        // Subnormal man * 2^-24: shift the leading one up to the hidden-bit position.
        uint32_t e = 127u - 14u;
        while ((man & 0x400u) == 0u) {
            man <<= 1;
            e -= 1u;
        }
        bits = sign | (e << 23) | ((man & 0x3ffu) << 13);
    }
    return __uint_as_float(bits);
}

// Round to nearest, ties to even; overflow -> inf; NaN -> 0x7e00 | top payload bits
// (quiet), sign kept; subnormal results correctly rounded.
// TWIN: src/numerics.rs::float_to_half_rn
SS_DEVICE unsigned short ss_float_to_half_rn(float f) {
    uint32_t x = __float_as_uint(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x007fffffu;
    if (exp == 0xffu) {
        return (unsigned short)(sign | 0x7c00u | (man != 0u ? (0x0200u | (man >> 13)) : 0u));
    }
    int e = (int)exp - 127 + 15;  // biased half exponent
    if (e >= 31) {
        return (unsigned short)(sign | 0x7c00u);
    }
    if (e <= 0) {
        // Half subnormal (or zero): below half the smallest subnormal rounds to 0.
        if (e < -10) {
            return (unsigned short)sign;
        }
        uint32_t m = man | 0x00800000u;
        uint32_t shift = (uint32_t)(14 - e);  // 14..24
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (q & 1u) != 0u)) {
            q += 1u;  // may carry into the smallest normal: still the right encoding
        }
        return (unsigned short)(sign | q);
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u) != 0u)) {
        q += 1u;  // may carry into the exponent, up to inf: still right
    }
    return (unsigned short)(sign | q);
}

#endif  // SHOESTRING_PRELUDE_CUH
