// Tensor-core GEMM machinery shared by kernels/gemm_tc.cu (the product, TcMain for
// every layout and output type) and dev/kernels/gemm_dev_tc.cu (bench-only tile
// shapes and probes, built only with the `dev-kernels` feature): the PTX wrappers,
// the shared-memory tile loader, the stores, the TcShape parameters, the templated
// block body tc_gemm_body / tc_gemm and the product's shape TcMain. Kernels,
// contract and numerics: kernels/gemm_tc.cu. GPU-only (inline PTX, mma.sync):
// include it only from files whose stem ends in _tc, which build.rs keeps out of
// the simulator.
//
// Design (sm_80 mma.sync; Hopper runs it as well, without wgmma): a block owns a
// BM x BN tile of C and walks k in BK = 32 tiles through a STAGES-deep cp.async
// ring in shared memory (16-byte copies, zero-fill at the edges; a predicated
// 2-byte path when an operand's contiguous dimension is not a multiple of 8).
// Each warp owns a WM x WN sub-tile as MT x NT m16n8 accumulator fragments, fed by
// ldmatrix.x4 (.trans where the operand's stored layout is k-major) from padded
// shared rows. The epilogue stages each warp's accumulators through shared memory
// so the global stores are row-contiguous.
//
// Dimension letters: M, N, K as in abi_gemm.h; BM x BN the block tile, BK = 32 the
// k tile, WM x WN the warp tile; MT = WM/16 x NT = WN/8 mma tiles per warp.
//
// Requires sm_80 (cp.async, ldmatrix, mma.m16n8k16).
#pragma once
#if !defined(__CUDACC__)
#error "common/gemm_tc.cuh is GPU-only: include it only from *_tc.cu files, which build.rs leaves out of the simulator"
#endif
#include "common/prelude.cuh"
#include "common/abi.h"

#define TC_BK 32
// Halves of padding after every shared-memory row. Rows are then 80 bytes (32
// halves + 8), 272 (128 + 8) or 528 (256 + 8) bytes: 5, 17 or 33 16-byte units,
// all odd, so the 8 row addresses of one ldmatrix phase (8 consecutive rows, same
// column) fall in 8 different 16-byte bank groups: no bank conflicts. Every row
// start stays 16-byte aligned for cp.async and ldmatrix.
#define TC_PAD 8

SS_DEVICE constexpr int tc_max(int a, int b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------
// PTX wrappers (sm_80+). Shared-memory operands are 32-bit shared-window addresses.
// ---------------------------------------------------------------------------------

SS_DEVICE uint32_t tc_smem_addr(const void* p) {
    uint32_t a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// 16 bytes global -> shared, bypassing L1; src_bytes < 16 zero-fills the rest (0:
// nothing is read, the destination becomes 16 zero bytes).
SS_DEVICE void tc_cp_async16(uint32_t dst, const void* src, uint32_t src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes)
                 : "memory");
}
SS_DEVICE void tc_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
SS_DEVICE void tc_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

SS_DEVICE void tc_st_shared_u16(uint32_t dst, unsigned short v) {
    asm volatile("st.shared.u16 [%0], %1;\n" ::"r"(dst), "h"(v) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and
// register i of every lane receives its part of matrix i (transposed with TRANS).
template <bool TRANS>
SS_DEVICE void tc_ldmatrix_x4(uint32_t* r, uint32_t addr) {
    if (TRANS) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(addr)
                     : "memory");
    } else {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(addr)
                     : "memory");
    }
}

// d = a (16x16, row) * b (16x8, col) + d, f16 inputs, f32 accumulators. Fragments
// (PTX ISA, "Matrix Fragments for mma.m16n8k16"), g = lane / 4, t = lane % 4:
//   a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   d0, d1 = D[g][2t], D[g][2t+1];  d2, d3 = D[g+8][2t], D[g+8][2t+1]
SS_DEVICE void tc_mma(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// tc_mma as a non-volatile asm (PIPE shapes): a pure function of its operands, so
// the compiler may schedule it among the ldmatrix of the next k step.
SS_DEVICE void tc_mma_nv(float* d, const uint32_t* a, const uint32_t* b) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ---------------------------------------------------------------------------------
// Shared-memory tiles. Each operand tile is kept in its global layout: the stored
// matrix's contiguous dimension is the shared row (padded by TC_PAD halves).
//   A (trans_a 0, m x k): [BM][BK+PAD]      A (trans_a 1, k x m): [BK][BM+PAD]
//   B (trans_b 0, k x n): [BK][BN+PAD]      B (trans_b 1, n x k): [BN][BK+PAD]
// ---------------------------------------------------------------------------------

// ROWS x COLS halves of a row-major matrix src (R rows, C columns, leading
// dimension ld), starting at (r0, c0), into shared rows of COLS + TC_PAD halves at
// `dst`, by THREADS threads, in 16-byte chunks: chunk q = tid + i * THREADS is row
// q / (COLS/8), columns (q % (COLS/8)) * 8 .. +8, so a warp reads whole runs of
// the contiguous dimension. Elements outside the matrix become 0.
//   vec: src is 16-byte aligned and ld % 8 == 0 (ld is C for every operand, so a
//     chunk is all inside or all outside): one cp.async per chunk, zero-filled.
//   otherwise: 8 predicated 2-byte loads and shared stores per chunk, synchronous
//     (a rolled loop: this path only serves shapes cp.async cannot).
template <int THREADS, int ROWS, int COLS>
SS_DEVICE void tc_load_tile(uint32_t dst, const unsigned short* __restrict__ src, uint32_t R, uint32_t C,
                            uint64_t ld, uint32_t r0, uint32_t c0, bool vec, uint32_t tid) {
    constexpr int CPR = COLS / 8;  // chunks per row
    constexpr int CHUNKS = ROWS * CPR;
    static_assert(CHUNKS % THREADS == 0, "tile chunks must divide among the threads");
    if (vec) {
SS_UNROLL
        for (int i = 0; i < CHUNKS / THREADS; i++) {
            const uint32_t q = tid + (uint32_t)i * THREADS;
            const uint32_t row = q / CPR, col = (q % CPR) * 8u;
            const uint32_t gr = r0 + row, gc = c0 + col;
            const bool ok = gr < R && gc < C;
            const unsigned short* s = ok ? src + (uint64_t)gr * ld + gc : src;
            tc_cp_async16(dst + (row * (uint32_t)(COLS + TC_PAD) + col) * 2u, s, ok ? 16u : 0u);
        }
    } else {
#pragma unroll 1
        for (int i = 0; i < CHUNKS / THREADS; i++) {
            const uint32_t q = tid + (uint32_t)i * THREADS;
            const uint32_t row = q / CPR, col = (q % CPR) * 8u;
            const uint32_t gr = r0 + row, gc = c0 + col;
#pragma unroll 1
            for (uint32_t e = 0; e < 8u; e++) {
                const unsigned short v = (gr < R && gc + e < C) ? src[(uint64_t)gr * ld + gc + e] : (unsigned short)0;
                tc_st_shared_u16(dst + (row * (uint32_t)(COLS + TC_PAD) + col + e) * 2u, v);
            }
        }
    }
}

// Stores y0 at c[0] and, when `two`, y1 at c[1]: one 8-byte (f32) or 4-byte (f16)
// store when `pairs` (c is then suitably aligned). Returns whether a stored value
// is not finite, when `check` (the flag variants); false otherwise. f16: the
// hardware's round-to-nearest-even (cvt.rn.f16.f32: overflow to inf, subnormals
// kept), which equals ss_float_to_half_rn on every non-NaN input; a NaN (already
// canonical) is stored as ss_float_to_half_rn stores it, 0x7e00.
SS_DEVICE bool tc_store(float* c, float y0, float y1, bool two, bool pairs, bool check) {
    if (two && pairs) {
        float2 v;
        v.x = y0;
        v.y = y1;
        *reinterpret_cast<float2*>(c) = v;
    } else {
        c[0] = y0;
        if (two) c[1] = y1;
    }
    return check && (!ss_isfinite(y0) || (two && !ss_isfinite(y1)));
}
SS_DEVICE unsigned short tc_to_half(float y) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(y));
    return ss_isnan(y) ? (unsigned short)0x7e00u : h;
}
SS_DEVICE bool tc_store(unsigned short* c, float y0, float y1, bool two, bool pairs, bool check) {
    const unsigned short h0 = tc_to_half(y0), h1 = tc_to_half(y1);
    if (two && pairs) {
        *reinterpret_cast<uint32_t*>(c) = (uint32_t)h0 | ((uint32_t)h1 << 16);
    } else {
        c[0] = h0;
        if (two) c[1] = h1;
    }
    return check && ((h0 & 0x7c00u) == 0x7c00u || (two && (h1 & 0x7c00u) == 0x7c00u));
}

// The static shape of one kernel configuration.
// BK_: the k tile (32 or 64: two or four k16 mma steps per barrier). PIPE_: the
// k loop double-buffers the ldmatrix fragments (k step s+1's, or the next k tile's
// first, are loaded before k step s's mma are issued; the barrier sits before the
// last k step of a tile) and issues mma as non-volatile asm, so the compiler may
// interleave them with the loads. Neither changes any output's sequence of k16 mma
// steps: the bits are expected to equal TcMain's.
template <int BM_, int BN_, int WM_, int WN_, int STAGES_, int BK_ = 32, bool PIPE_ = false>
struct TcShape {
    static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, STAGES = STAGES_;
    static constexpr int BK = BK_;
    static constexpr bool PIPE = PIPE_;
    static constexpr int KS = BK / 16;  // k16 mma steps per k tile
    static constexpr int MT = WM / 16, NT = WN / 8;
    static constexpr int WARPS_N = BN / WN;
    static constexpr int THREADS = (BM / WM) * (BN / WN) * 32;
    static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile must be whole 16x16 ldmatrix tiles");
    static_assert(STAGES >= 2, "the pipeline needs at least two stages");
    static_assert(BK == 32 || BK == 64, "k tile of 32 or 64");
    // Halves per stage for each operand: the larger of its two layouts.
    static constexpr int A_HALVES = tc_max(BM * (BK + TC_PAD), BK * (BM + TC_PAD));
    static constexpr int B_HALVES = tc_max(BN * (BK + TC_PAD), BK * (BN + TC_PAD));
    static constexpr int STAGE_BYTES = (A_HALVES + B_HALVES) * 2;
    static constexpr int SMEM_BYTES = STAGE_BYTES * STAGES;
    static_assert(STAGE_BYTES % 16 == 0 && A_HALVES * 2 % 16 == 0, "stage regions must stay 16-byte aligned");
};

// ---------------------------------------------------------------------------------
// The block body for one layout (TA = trans_a, TB = trans_b).
// ---------------------------------------------------------------------------------
template <typename S, bool TA, bool TB, bool FLAG, typename TO>
SS_DEVICE void tc_gemm_body(const ss_gemm_params& p, const unsigned short* __restrict__ A,
                            const unsigned short* __restrict__ B, const float* __restrict__ bias,
                            TO* __restrict__ C, unsigned int* status, unsigned char* smem) {
    constexpr int BK = S::BK, KS = S::KS;
    constexpr int BM = S::BM, BN = S::BN, WM = S::WM, WN = S::WN, MT = S::MT, NT = S::NT;
    constexpr int STAGES = S::STAGES;
    const uint32_t M = p.m, N = p.n, K = p.k;
    const uint32_t tid = threadIdx.x, lane = tid % 32u, warp = tid / 32u;
    const uint32_t wm = warp / (uint32_t)S::WARPS_N, wn = warp % (uint32_t)S::WARPS_N;

    // Block -> tile: a 1-D grid walked in groups of 8 tile rows (all column tiles of
    // those rows before the next group), so blocks running together share A rows
    // and B columns in L2. Fixed by (M, N): it changes which block computes a tile,
    // never how.
    const uint32_t tiles_m = (M + BM - 1u) / BM, tiles_n = (N + BN - 1u) / BN;
    const uint32_t group = 8u * tiles_n;
    const uint32_t first_m = (blockIdx.x / group) * 8u;
    const uint32_t group_m = tiles_m - first_m < 8u ? tiles_m - first_m : 8u;
    const uint32_t in_group = blockIdx.x % group;
    const uint32_t m0 = (first_m + in_group % group_m) * BM, n0 = (in_group / group_m) * BN;

    // Stored shapes: A is M x K (ld K) or K x M (ld M); B is K x N (ld N) or N x K (ld K).
    const uint64_t lda = TA ? M : K, ldb = TB ? K : N;
    const bool vec_a = (lda % 8u == 0u) && (((uint64_t)A & 15u) == 0u);
    const bool vec_b = (ldb % 8u == 0u) && (((uint64_t)B & 15u) == 0u);

    const uint32_t s_base = tc_smem_addr(smem);
    const uint32_t tiles_k = (K + BK - 1u) / BK;

    // Brings k tile `kt` into stage `st` (cp.async, or plain stores on the slow path).
    auto load_stage = [&](uint32_t st, uint32_t kt) {
        const uint32_t sa = s_base + st * (uint32_t)S::STAGE_BYTES;
        const uint32_t sb = sa + (uint32_t)S::A_HALVES * 2u;
        const uint32_t k0 = kt * BK;
        constexpr int T = S::THREADS;
        if (TA) tc_load_tile<T, BK, BM>(sa, A, K, M, lda, k0, m0, vec_a, tid);
        else tc_load_tile<T, BM, BK>(sa, A, M, K, lda, m0, k0, vec_a, tid);
        if (TB) tc_load_tile<T, BN, BK>(sb, B, N, K, ldb, n0, k0, vec_b, tid);
        else tc_load_tile<T, BK, BN>(sb, B, K, N, ldb, k0, n0, vec_b, tid);
    };

    // Per-lane ldmatrix offsets (bytes) for mma tile (0, 0) at k step 0; the other
    // tiles and k steps add compile-time constants. i = lane / 8 picks the matrix
    // this lane addresses, r = lane % 8 its row.
    const uint32_t li = lane / 8u, lr = lane % 8u;
    uint32_t a_lane, b_lane;
    if (TA) {  // [BK][BM+PAD], .trans: matrix i = (m half i%2, k half i/2)
        a_lane = ((lr + (li / 2u) * 8u) * (BM + TC_PAD) + wm * WM + (li % 2u) * 8u) * 2u;
    } else {  // [BM][BK+PAD]: matrix i = (m half i%2, k half i/2)
        a_lane = ((wm * WM + lr + (li % 2u) * 8u) * (BK + TC_PAD) + (li / 2u) * 8u) * 2u;
    }
    if (TB) {  // [BN][BK+PAD]: matrix i = (n half i/2, k half i%2)
        b_lane = ((wn * WN + lr + (li / 2u) * 8u) * (BK + TC_PAD) + (li % 2u) * 8u) * 2u;
    } else {  // [BK][BN+PAD], .trans: matrix i = (n half i/2, k half i%2)
        b_lane = ((lr + (li % 2u) * 8u) * (BN + TC_PAD) + wn * WN + (li / 2u) * 8u) * 2u;
    }

    float acc[MT][NT][4];
SS_UNROLL
    for (int mt = 0; mt < MT; mt++) {
SS_UNROLL
        for (int nt = 0; nt < NT; nt++) {
SS_UNROLL
            for (int e = 0; e < 4; e++) acc[mt][nt][e] = 0.0f;
        }
    }

    // The fragments of k step ks of the stage at (sa, sb): MT A tiles, NT B tiles.
    auto load_frags = [&](uint32_t (&af)[MT][4], uint32_t (&bf)[NT][2], uint32_t sa, uint32_t sb, int ks) {
SS_UNROLL
        for (int mt = 0; mt < MT; mt++) {
            const uint32_t off = TA ? (uint32_t)((ks * 16 * (BM + TC_PAD) + mt * 16) * 2)
                                    : (uint32_t)((mt * 16 * (BK + TC_PAD) + ks * 16) * 2);
            tc_ldmatrix_x4<TA>(af[mt], sa + a_lane + off);
        }
SS_UNROLL
        for (int np = 0; np < NT / 2; np++) {
            const uint32_t off = TB ? (uint32_t)((np * 16 * (BK + TC_PAD) + ks * 16) * 2)
                                    : (uint32_t)((ks * 16 * (BN + TC_PAD) + np * 16) * 2);
            uint32_t r[4];
            tc_ldmatrix_x4<!TB>(r, sb + b_lane + off);
            bf[2 * np][0] = r[0];
            bf[2 * np][1] = r[1];
            bf[2 * np + 1][0] = r[2];
            bf[2 * np + 1][1] = r[3];
        }
    };

    // Pipeline: STAGES-1 k tiles in flight ahead of the one being multiplied. One
    // commit group per tile (empty groups past the end keep the count uniform).
#pragma unroll 1
    for (uint32_t s = 0; s < (uint32_t)(STAGES - 1); s++) {
        if (s < tiles_k) load_stage(s, s);
        tc_cp_async_commit();
    }
    if (!S::PIPE) {
        uint32_t st_read = 0, st_write = STAGES - 1;
        for (uint32_t kt = 0; kt < tiles_k; kt++) {
            // Tile kt's group is complete for this thread; the barrier makes every
            // thread's copies visible and ends every warp's reads of tile kt-1, whose
            // stage is the one refilled below.
            tc_cp_async_wait<STAGES - 2>();
            __syncthreads();
            if (kt + (uint32_t)(STAGES - 1) < tiles_k) load_stage(st_write, kt + (uint32_t)(STAGES - 1));
            tc_cp_async_commit();

            const uint32_t sa = s_base + st_read * (uint32_t)S::STAGE_BYTES;
            const uint32_t sb = sa + (uint32_t)S::A_HALVES * 2u;
SS_UNROLL
            for (int ks = 0; ks < KS; ks++) {
                uint32_t af[MT][4], bf[NT][2];
                load_frags(af, bf, sa, sb, ks);
SS_UNROLL
                for (int mt = 0; mt < MT; mt++) {
SS_UNROLL
                    for (int nt = 0; nt < NT; nt++) tc_mma(acc[mt][nt], af[mt], bf[nt]);
                }
            }
            st_read = st_read + 1u == (uint32_t)STAGES ? 0u : st_read + 1u;
            st_write = st_write + 1u == (uint32_t)STAGES ? 0u : st_write + 1u;
        }
    } else if (tiles_k > 0u) {
        // Fragment double-buffering: the fragments of k step ks+1 (for the last
        // step, the next tile's step 0) are loaded before step ks's mma issue. The
        // barrier that publishes tile kt+1 sits before the last k step of tile kt;
        // every warp's reads of tile kt-1 happened before the previous such
        // barrier, so at step 0 of tile kt its stage takes tile kt+STAGES-1.
        uint32_t af[2][MT][4], bf[2][NT][2];
        tc_cp_async_wait<STAGES - 2>();
        __syncthreads();
        uint32_t st_read = 0, st_write = STAGES - 1;
        load_frags(af[0], bf[0], s_base, s_base + (uint32_t)S::A_HALVES * 2u, 0);
        for (uint32_t kt = 0; kt < tiles_k; kt++) {
            const uint32_t sa = s_base + st_read * (uint32_t)S::STAGE_BYTES;
            const uint32_t sb = sa + (uint32_t)S::A_HALVES * 2u;
            const uint32_t st_next = st_read + 1u == (uint32_t)STAGES ? 0u : st_read + 1u;
SS_UNROLL
            for (int ks = 0; ks < KS; ks++) {
                if (ks == KS - 1) {
                    // Tile kt+1 is complete for this thread; the barrier makes it
                    // visible to all and ends every warp's reads of tile kt-1
                    // (its last fragments were loaded before this point).
                    tc_cp_async_wait<STAGES - 2>();
                    __syncthreads();
                    if (kt + 1u < tiles_k) {
                        const uint32_t na = s_base + st_next * (uint32_t)S::STAGE_BYTES;
                        load_frags(af[(ks + 1) % 2], bf[(ks + 1) % 2], na, na + (uint32_t)S::A_HALVES * 2u, 0);
                    }
                } else {
                    load_frags(af[(ks + 1) % 2], bf[(ks + 1) % 2], sa, sb, ks + 1);
                }
                if (ks == 0) {
                    // Tile kt+STAGES-1 into the stage of tile kt-1 (see above).
                    if (kt + (uint32_t)(STAGES - 1) < tiles_k) load_stage(st_write, kt + (uint32_t)(STAGES - 1));
                    tc_cp_async_commit();
                }
SS_UNROLL
                for (int mt = 0; mt < MT; mt++) {
SS_UNROLL
                    for (int nt = 0; nt < NT; nt++) tc_mma_nv(acc[mt][nt], af[ks % 2][mt], bf[ks % 2][nt]);
                }
            }
            st_read = st_next;
            st_write = st_write + 1u == (uint32_t)STAGES ? 0u : st_write + 1u;
        }
    }
    tc_cp_async_wait<0>();
    // Every warp is done reading the pipeline's shared memory: the epilogue reuses it.
    __syncthreads();

    // Epilogue, through shared memory, 32 rows of the warp tile (two m16 tiles) per
    // pass. Lane (g, t) holds rows g and g+8 and columns 2t, 2t+1 of each 16 x 8 mma
    // tile; it writes them to the warp's staging rows (EP_LD floats apart: 8-word
    // offsets between the 8 rows of a half-warp, no bank conflicts), then the warp
    // reads whole rows back, each lane a fixed pair of columns (pc, pc+1), and
    // stores them coalesced: one row of WN outputs per WN/2 lanes. Pairs are stored
    // as one 4- or 8-byte access when N is even and C is aligned to a pair (every
    // pair then starts at an even element), else one element at a time.
    constexpr int EP_MT = 2, EP_ROWS = 16 * EP_MT, EP_LD = WN + 8;
    constexpr int PAIRS = WN / 2, RPI = 32 / PAIRS;  // column pairs per row, rows per step
    static_assert(MT % EP_MT == 0 && 32 % PAIRS == 0, "epilogue passes must tile the warp tile");
    static_assert((S::THREADS / 32) * EP_ROWS * EP_LD * 4 <= S::SMEM_BYTES, "staging must fit in smem");
    float* stage = reinterpret_cast<float*>(smem) + warp * (uint32_t)(EP_ROWS * EP_LD);
    const uint32_t g = lane / 4u, t4 = lane % 4u;
    const uint32_t pr = lane / (uint32_t)PAIRS, pc = (lane % (uint32_t)PAIRS) * 2u;
    const uint32_t j = n0 + wn * WN + pc;
    const bool in_n = j < N, two = j + 1u < N;
    const bool pairs = (N % 2u) == 0u && ((uint64_t)C % (2u * sizeof(TO))) == 0u;
    const bool has_bias = p.has_bias != 0u;
    const float alpha = p.alpha;
    const float b0 = (has_bias && in_n) ? bias[j] : 0.0f;
    const float b1 = (has_bias && two) ? bias[j + 1u] : 0.0f;
    bool nonfinite = false;
SS_UNROLL
    for (int pass = 0; pass < MT / EP_MT; pass++) {
SS_UNROLL
        for (int mm = 0; mm < EP_MT; mm++) {
SS_UNROLL
            for (int nt = 0; nt < NT; nt++) {
SS_UNROLL
                for (int h = 0; h < 2; h++) {
                    float2 v;
                    v.x = acc[pass * EP_MT + mm][nt][2 * h];
                    v.y = acc[pass * EP_MT + mm][nt][2 * h + 1];
                    *reinterpret_cast<float2*>(&stage[(uint32_t)(mm * 16 + h * 8) * EP_LD + g * EP_LD +
                                                      (uint32_t)(nt * 8) + t4 * 2u]) = v;
                }
            }
        }
        __syncwarp();
        if (in_n) {
#pragma unroll 4
            for (uint32_t r = pr; r < (uint32_t)EP_ROWS; r += (uint32_t)RPI) {
                const uint32_t i = m0 + wm * WM + (uint32_t)(pass * EP_ROWS) + r;
                if (i >= M) break;
                const float2 a2 = *reinterpret_cast<const float2*>(&stage[r * EP_LD + pc]);
                const float y0 = ss_canonical_nan(has_bias ? fmaf(alpha, a2.x, b0) : alpha * a2.x);
                const float y1 = ss_canonical_nan(has_bias ? fmaf(alpha, a2.y, b1) : alpha * a2.y);
                nonfinite |= tc_store(C + (uint64_t)i * N + j, y0, y1, two, pairs, FLAG);
            }
        }
        __syncwarp();
    }
    if (FLAG && nonfinite) atomicOr(&status[SS_STATUS_FLAGS], SS_STATUS_OVERFLOW);
}

// ---------------------------------------------------------------------------------
// The product's shape and the kernel body
// ---------------------------------------------------------------------------------

// TcMain, the product: 128 x 128 block tile, BK 32, 4 warps as 2 (m) x 2 (n), warp
// tile 64 x 64 (4 x 8 mma tiles: 128 f32 accumulators per thread), 4 stages.
// Shared memory per stage: A 128 x 40 halves (or 32 x 136) + B the same = 20480
// bytes; x4 = 81920 bytes dynamic (needs the > 48 KiB opt-in). Two blocks per SM on
// sm_80 (2 x 81 KiB of 164) and sm_90 (of 228): __launch_bounds__(128, 2) leaves
// up to 255 registers. Per warp per k16 step: 4 + 4 ldmatrix.x4 (4 KiB of shared
// reads) for 32 mma.
#define TC_MAIN_THREADS 128
typedef TcShape<128, 128, 64, 64, 4> TcMain;
static_assert(TcMain::THREADS == TC_MAIN_THREADS, "block size must match the launch bounds");

// The body of every gemm_tc kernel (kernels/gemm_tc.cu, dev/kernels/gemm_dev_tc.cu):
// shape S, layout TA = trans_a, TB = trans_b, FLAG (OR SS_STATUS_OVERFLOW into the
// status block on a non-finite stored value; without it `status` is never
// touched) and output type TO (float, or unsigned short for f16 bits).
// Kernel args: (params, a, b, bias (null unless has_bias), c, status). Launch: grid
// (ceil(M/BM) * ceil(N/BN), 1, 1), block (S::THREADS, 1, 1), dynamic shared memory
// S::SMEM_BYTES; sm_80 or newer.
template <typename S, bool TA, bool TB, bool FLAG, typename TO>
SS_DEVICE void tc_gemm(const ss_gemm_params& p, const unsigned short* __restrict__ a,
                       const unsigned short* __restrict__ b, const float* __restrict__ bias,
                       TO* __restrict__ c, unsigned int* status) {
    SS_DYNAMIC_SHARED(unsigned char, smem);
    tc_gemm_body<S, TA, TB, FLAG, TO>(p, a, b, bias, c, status, smem);
}
