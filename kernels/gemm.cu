// The exact-tier GEMM: C = alpha * op(A) op(B) (+ bias) (+ C), bit-identical to
// the CPU twin (src/ops/gemm/cpu.rs) because every output is ONE fma chain over k
// ascending, started from +0.0 or (beta = 1, accumulate) from the old C, in f32
// (DESIGN.md rule 4):
//     acc = beta ? 0.0f + C[i,j] : +0.0f;  for kk = 0 .. K-1: acc = fmaf(a[i,kk], b[kk,j], acc)
//     y = has_bias ? fmaf(alpha, acc, bias[j]) : alpha * acc
//     C[i,j] = round-to-nearest-even of ss_canonical_nan(y) into the output type
// and a non-finite stored value ORs SS_STATUS_OVERFLOW into the step's status
// block (abi_status.h). Layouts: abi_gemm.h.
// Tiling over m, n and k never reorders a chain: a thread owns its outputs for
// the whole k loop, and a k tile continues the chain where the last one stopped.
// Contract: docs/numerics/gemm.md.
#include "common/prelude.cuh"
#include "common/abi.h"

// Block tile 128 x 128 outputs, 16 k per shared-memory stage, 256 threads, each
// thread an 8 x 8 register tile: rows {ty*4 + r, 64 + ty*4 + r} and columns
// {tx*4 + c, 64 + tx*4 + c} for r, c in 0..4, with tx = tid % 16, ty = tid / 16.
// The two 4-wide halves (rather than 8 adjacent) keep the shared-memory reads of
// a warp to two broadcast float4s for A and 16 distinct float4s for B.
#define GEMM_BM 128
#define GEMM_BN 128
#define GEMM_BK 16
#define GEMM_THREADS 256

// One operand element as f32. f32 passes through. f16 -> f32 is exact: on the
// GPU the hardware conversion (cvt.f32.f16, no .ftz, so subnormal halves stay
// exact) and in the simulator the prelude's integer twin. The two agree on every
// non-NaN half; a NaN operand can only make the chain's result NaN, which is
// stored as the canonical NaN, so its payload never reaches an output.
SS_DEVICE float gemm_in(float x) { return x; }
SS_DEVICE float gemm_in(unsigned short h) {
#if defined(__CUDACC__)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    return ss_half_to_float(h);
#endif
}

// The stored value and whether it is finite (an f16 that overflowed on rounding
// is not). y is already canonical if NaN.
SS_DEVICE bool gemm_store(float* c, float y) {
    *c = y;
    return ss_isfinite(y);
}
SS_DEVICE bool gemm_store(unsigned short* c, float y) {
    const unsigned short h = ss_float_to_half_rn(y);
    *c = h;
    return (h & 0x7c00u) != 0x7c00u;
}

// Four consecutive floats from 16-byte aligned shared memory: one LDS.128 on
// the GPU, four plain loads in the simulator.
SS_DEVICE void gemm_ld4(const float* s, float* v) {
#if defined(__CUDACC__)
    const float4 q = *reinterpret_cast<const float4*>(s);
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
#else
    v[0] = s[0];
    v[1] = s[1];
    v[2] = s[2];
    v[3] = s[3];
#endif
}

// Four consecutive floats to 16-byte aligned shared memory (STS.128 on the GPU).
SS_DEVICE void gemm_st4(float* s, const float* v) {
#if defined(__CUDACC__)
    *reinterpret_cast<float4*>(s) = make_float4(v[0], v[1], v[2], v[3]);
#else
    s[0] = v[0];
    s[1] = v[1];
    s[2] = v[2];
    s[3] = v[3];
#endif
}

// One BK x 128 operand tile, brought in EPT = BK / 2 elements per thread and
// stored to shared memory as tile[kk][x] (kk the k offset, x the m or n offset).
//   k_major: the operand is stored with k as its row (A^T as k x m, B as k x n):
//     thread t reads row kk = t / (128/EPT), elements x = (t % (128/EPT)) * EPT
//     .. +EPT, consecutive, and stores them as EPT/4 aligned float4s.
//   otherwise (A as m x k, B^T as n x k): thread t reads row x = t % 128, elements
//     kk = (t / 128) * EPT .. +EPT, consecutive; a warp covers 32 rows, so the
//     transposed shared stores hit 32 different banks.
// Elements outside the matrix read as 0: rows and columns beyond M and N are
// never stored, and k beyond K adds fmaf(0, 0, acc) == acc (see the k loop).
template <int EPT>
struct GemmTile {
    float v[EPT];
    uint32_t kk0, x0;
    bool k_major;
};

// Which EPT elements of the tile thread `tid` brings in, for the whole kernel.
template <int EPT>
SS_DEVICE GemmTile<EPT> gemm_tile_init(bool k_major, uint32_t tid) {
    constexpr uint32_t PER_ROW = GEMM_BM / EPT;  // threads per k row, k_major
    GemmTile<EPT> t;
    t.k_major = k_major;
    t.kk0 = k_major ? tid / PER_ROW : (tid / (uint32_t)GEMM_BM) * EPT;
    t.x0 = k_major ? (tid % PER_ROW) * EPT : tid % (uint32_t)GEMM_BM;
    SS_UNROLL
    for (int q = 0; q < EPT; q++) t.v[q] = 0.0f;
    return t;
}

template <int EPT, typename TI>
SS_DEVICE void gemm_tile_load(GemmTile<EPT>* t, const TI* __restrict__ src, uint64_t ld, uint32_t k0, uint32_t K,
                              uint32_t xbase, uint32_t X) {
    if (t->k_major) {
        const uint32_t kk = k0 + t->kk0;
        SS_UNROLL
        for (int q = 0; q < EPT; q++) {
            const uint32_t x = xbase + t->x0 + (uint32_t)q;
            t->v[q] = (kk < K && x < X) ? gemm_in(src[(uint64_t)kk * ld + x]) : 0.0f;
        }
    } else {
        const uint32_t x = xbase + t->x0;
        SS_UNROLL
        for (int q = 0; q < EPT; q++) {
            const uint32_t kk = k0 + t->kk0 + (uint32_t)q;
            t->v[q] = (kk < K && x < X) ? gemm_in(src[(uint64_t)x * ld + kk]) : 0.0f;
        }
    }
}

template <int EPT>
SS_DEVICE void gemm_tile_store(const GemmTile<EPT>* t, float (*tile)[GEMM_BM]) {
    if (t->k_major) {
        // x0 is a multiple of EPT, itself a multiple of 4: aligned float4 stores.
        SS_UNROLL
        for (int q = 0; q < EPT; q += 4) gemm_st4(&tile[t->kk0][t->x0 + (uint32_t)q], t->v + q);
    } else {
        SS_UNROLL
        for (int q = 0; q < EPT; q++) tile[t->kk0 + (uint32_t)q][t->x0] = t->v[q];
    }
}

// The A and B fragments of k step kk: rows {r0 + i, r1 + i} of A's column and
// columns {c0 + j, c1 + j} of B's row, i, j in 0..4 (a GemmLane's tile).
struct GemmLane {
    uint32_t r0, r1, c0, c1;
};

SS_DEVICE void gemm_frags(const float (*As)[GEMM_BM], const float (*Bs)[GEMM_BN], uint32_t kk, GemmLane l,
                          float* a, float* b) {
    gemm_ld4(&As[kk][l.r0], a);
    gemm_ld4(&As[kk][l.r1], a + 4);
    gemm_ld4(&Bs[kk][l.c0], b);
    gemm_ld4(&Bs[kk][l.c1], b + 4);
}

// Which 8 x 8 outputs of the block tile thread `tid` owns: tx = tid % 16,
// ty = tid / 16; rows {ty*4, 64 + ty*4} + 0..4, columns {tx*4, 64 + tx*4} + 0..4.
// (Warps owning 32 x 64 sub-tiles instead measured the same on an H100:
// docs/gpu-runs/2026-11-26-h100-final.md.)
SS_DEVICE GemmLane gemm_lane(uint32_t tid) {
    GemmLane l;
    l.r0 = (tid / 16u) * 4u;
    l.r1 = 64u + l.r0;
    l.c0 = (tid % 16u) * 4u;
    l.c1 = 64u + l.c0;
    return l;
}

// One k step of the register tile: acc[r][c] = fmaf(a_r, b_c, acc[r][c]).
SS_DEVICE void gemm_fmas(const float* a, const float* b, float (*acc)[8]) {
    SS_UNROLL
    for (int r = 0; r < 8; r++) {
        SS_UNROLL
        for (int c = 0; c < 8; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
    }
}

// The BK k steps of one shared-memory stage, in order.
template <int BK>
SS_DEVICE void gemm_stage(const float (*As)[GEMM_BM], const float (*Bs)[GEMM_BN], GemmLane l, float (*acc)[8]) {
    SS_UNROLL
    for (int kk = 0; kk < BK; kk++) {
        float a[8], b[8];
        gemm_frags(As, Bs, (uint32_t)kk, l, a, b);
        gemm_fmas(a, b, acc);
    }
}

// gemm_exact_<in>_<out>: see the file header for what each output is.
// Launch: grid (ceil(N/128), ceil(M/128)), block 256 (exactly), no dynamic
//   shared memory; 32 KiB static shared (two stages of A and B, f32).
// Per block: reads (128 + 128) * K operand elements (each element of A is read
//   by ceil(N/128) blocks, each of B by ceil(M/128)), writes its 128 x 128 outputs
//   once (reading each first when beta = 1); the inner loop does 64 fmas per 4
//   shared-memory float4 loads.
// Pipeline: the next k tile is loaded from global memory into registers while
//   the current one is multiplied from shared memory; one barrier per tile.
// Order: per output, the fma chain over k ascending; no split-K, no atomics on
//   floats (the overflow bit is an integer OR).
// TWIN: src/ops/gemm/cpu.rs::gemm
template <int BK, typename TI, typename TO>
SS_DEVICE void gemm_exact(const ss_gemm_params p, const TI* __restrict__ A, const TI* __restrict__ B,
                          const float* __restrict__ bias, TO* __restrict__ C, unsigned int* status) {
    static_assert(BK % 8 == 0 && BK <= 32, "EPT = BK/2 must be a multiple of 4");
    constexpr int EPT = BK / 2;
    __shared__ __align__(16) float As[2][BK][GEMM_BM];
    __shared__ __align__(16) float Bs[2][BK][GEMM_BN];

    const uint32_t tid = threadIdx.x;
    const GemmLane lane = gemm_lane(tid);
    const uint32_t m0 = blockIdx.y * GEMM_BM, n0 = blockIdx.x * GEMM_BN;
    const uint32_t M = p.m, N = p.n, K = p.k;
    // A as stored: m x k (ld = K) or, transposed, k x m (ld = M); B: k x n (ld = N)
    // or n x k (ld = K).
    const bool a_kmaj = p.trans_a != 0u, b_kmaj = p.trans_b == 0u;
    const uint64_t lda = a_kmaj ? M : K, ldb = b_kmaj ? N : K;

    // Chain starts: +0.0, or with beta = 1 the old C as f32 plus +0.0 (so a
    // -0.0 starts as +0.0 and the chain never holds -0.0: see the k loop).
    // Outputs outside C keep +0.0 and are never stored.
    float acc[8][8];
SS_UNROLL
    for (int r = 0; r < 8; r++) {
        const uint32_t i = m0 + (r < 4 ? lane.r0 + (uint32_t)r : lane.r1 + (uint32_t)(r - 4));
SS_UNROLL
        for (int c = 0; c < 8; c++) {
            const uint32_t j = n0 + (c < 4 ? lane.c0 + (uint32_t)c : lane.c1 + (uint32_t)(c - 4));
            acc[r][c] = (p.beta != 0u && i < M && j < N) ? 0.0f + gemm_in(C[(uint64_t)i * N + j]) : 0.0f;
        }
    }

    const uint32_t tiles = (K + BK - 1u) / BK;
    GemmTile<EPT> la = gemm_tile_init<EPT>(a_kmaj, tid), lb = gemm_tile_init<EPT>(b_kmaj, tid);
    if (tiles > 0u) {
        gemm_tile_load(&la, A, lda, 0u, K, m0, M);
        gemm_tile_load(&lb, B, ldb, 0u, K, n0, N);
        gemm_tile_store(&la, As[0]);
        gemm_tile_store(&lb, Bs[0]);
    }
    __syncthreads();
    for (uint32_t t = 0; t < tiles; t++) {
        const uint32_t cur = t & 1u;
        const uint32_t k0 = t * BK;
        const bool more = t + 1u < tiles;
        if (more) {
            gemm_tile_load(&la, A, lda, k0 + BK, K, m0, M);
            gemm_tile_load(&lb, B, ldb, k0 + BK, K, n0, N);
        }
        // A partial last tile runs all GEMM_BK steps too: beyond K both operands
        // are zero, and fmaf(0, 0, acc) == acc for every acc a chain can hold
        // (it starts at +0.0 or 0.0f + C, and +0.0 + -0.0 is +0.0, so acc is
        // never -0.0; a NaN stays NaN and is made canonical at the store).
        gemm_stage<BK>(As[cur], Bs[cur], lane, acc);
        if (more) {
            gemm_tile_store(&la, As[cur ^ 1u]);
            gemm_tile_store(&lb, Bs[cur ^ 1u]);
        }
        __syncthreads();
    }

    bool nonfinite = false;
SS_UNROLL
    for (int r = 0; r < 8; r++) {
        const uint32_t i = m0 + (r < 4 ? lane.r0 + (uint32_t)r : lane.r1 + (uint32_t)(r - 4));
        if (i >= M) continue;
SS_UNROLL
        for (int c = 0; c < 8; c++) {
            const uint32_t j = n0 + (c < 4 ? lane.c0 + (uint32_t)c : lane.c1 + (uint32_t)(c - 4));
            if (j >= N) continue;
            const float y = p.has_bias != 0u ? fmaf(p.alpha, acc[r][c], bias[j]) : p.alpha * acc[r][c];
            nonfinite |= !gemm_store(&C[(uint64_t)i * N + j], ss_canonical_nan(y));
        }
    }
    if (nonfinite) atomicOr(&status[SS_STATUS_FLAGS], SS_STATUS_OVERFLOW);
}

// Kernel args: (params, a, b, bias (null unless has_bias), c, status). Written out
// (no macro) so that build.rs finds each name.
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2)
    gemm_exact_f32_f32(const ss_gemm_params p, const float* __restrict__ a, const float* __restrict__ b,
                       const float* __restrict__ bias, float* __restrict__ c, unsigned int* status) {
    gemm_exact<GEMM_BK, float, float>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2)
    gemm_exact_f32_f16(const ss_gemm_params p, const float* __restrict__ a, const float* __restrict__ b,
                       const float* __restrict__ bias, unsigned short* __restrict__ c, unsigned int* status) {
    gemm_exact<GEMM_BK, float, unsigned short>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2)
    gemm_exact_f16_f32(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       float* __restrict__ c, unsigned int* status) {
    gemm_exact<GEMM_BK, unsigned short, float>(p, a, b, bias, c, status);
}
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2)
    gemm_exact_f16_f16(const ss_gemm_params p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       unsigned short* __restrict__ c, unsigned int* status) {
    gemm_exact<GEMM_BK, unsigned short, unsigned short>(p, a, b, bias, c, status);
}
