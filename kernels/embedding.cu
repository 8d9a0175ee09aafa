// Embedding: gather forward, deterministic scatter-add backward (DESIGN.md rule 6).
//
// Letters (defined once for the file): V weight rows (vocabulary), E columns,
// N positions (T*B, time-major; t is the position index), P = the smallest power
// of two >= N. W is V x E row-major, ids has N u32 token ids, out and dy are N x E.
//
// Backward never uses atomics on floats. It sorts the keys
//   key[t] = (uint64)ids[t] << 32 | t
// (unique, so every correct sort gives one order: by token, then by increasing
// position) with a bitonic sort, then one thread per (segment, column) adds the
// segment's rows of dy into dW in that order. Out-of-range ids are found first by
// embedding_check_ids_u32, into the step's status block (abi_status.h; integer
// atomics only). Once its SS_STATUS_BAD_ID bit is set, the forward and backward
// kernels write nothing; the host learns of the ids when it reads the block at
// the end of the step (no read-back here).
#include "common/prelude.cuh"
#include "common/abi.h"

// embedding_check_ids_u32: for every t < N with ids[t] >= V, into the status block:
//   status[FLAGS] |= SS_STATUS_BAD_ID; status[BAD_ID_FIRST] = max(., 0xffffffff - t)
//   (so the smallest bad t wins); status[BAD_ID_COUNT] += 1.
// Threads: one position per thread per iteration, grid-stride loop.
// Launch: 1-D, any block and grid. Precondition: N < 2^32; status holds
//   SS_STATUS_WORDS words.
// Memory: reads 4N bytes; writes at most 12 bytes (integer atomics: OR, MAX and ADD
//   are order-independent, so the result does not depend on scheduling).
// Order: none (integers only).
// TWIN: src/ops/embedding/cpu.rs::embedding_check_ids_u32
extern "C" __global__ void embedding_check_ids_u32(const ss_embedding_params p,
                                                   const uint32_t* __restrict__ ids,
                                                   uint32_t* status) {
    SS_GRID_STRIDE_LOOP(t, p.n) {
        if ((uint64_t)ids[t] >= p.v) {
            atomicOr(&status[SS_STATUS_FLAGS], SS_STATUS_BAD_ID);
            atomicMax(&status[SS_STATUS_BAD_ID_FIRST], 0xffffffffu - (uint32_t)t);
            atomicAdd(&status[SS_STATUS_BAD_ID_COUNT], 1u);
        }
    }
}

// embedding_fwd_f32: out[t, c] = W[ids[t], c] for t < N, c < E (a bit copy).
// Threads: one element (t, c) per thread per iteration, flat index t*E + c,
//   grid-stride loop (consecutive threads read consecutive columns of one row).
// Launch: 1-D, any block and grid. Precondition: embedding_check_ids_u32 ran on
//   the same ids into status; if its SS_STATUS_BAD_ID bit is set nothing is
//   written (and an id >= V is never read even if the check was skipped).
// Memory: reads 4N + 4NE bytes (ids re-read per element, from cache), writes 4NE.
// Order: none (no arithmetic).
// TWIN: src/ops/embedding/cpu.rs::embedding_fwd_f32
extern "C" __global__ void embedding_fwd_f32(const ss_embedding_params p,
                                             const float* __restrict__ w,
                                             const uint32_t* __restrict__ ids,
                                             const uint32_t* __restrict__ status,
                                             float* __restrict__ out) {
    if ((status[SS_STATUS_FLAGS] & SS_STATUS_BAD_ID) != 0u) {
        return;
    }
    const uint64_t total = p.n * p.e;
    SS_GRID_STRIDE_LOOP(i, total) {
        const uint64_t t = i / p.e;
        const uint64_t c = i - t * p.e;
        const uint64_t id = ids[t];
        if (id < p.v) {
            out[i] = w[id * p.e + c];
        }
    }
}

// embedding_sort_keys_init_u64: keys[t] = (uint64)ids[t] << 32 | t for t < N,
//   keys[t] = 0xffffffffffffffff for N <= t < P (padding sorts last; no real key
//   equals it because t < N <= 2^32 - 1).
// Threads: one key per thread per iteration, grid-stride loop.
// Launch: 1-D, any block and grid. Memory: reads 4N bytes, writes 8P.
// Order: none (integers only).
// TWIN: src/ops/embedding/cpu.rs::embedding_sort_keys_init_u64
extern "C" __global__ void embedding_sort_keys_init_u64(const ss_embedding_sort_params p,
                                                        const uint32_t* __restrict__ ids,
                                                        uint64_t* __restrict__ keys) {
    SS_GRID_STRIDE_LOOP(t, p.p) {
        keys[t] = t < p.n ? (((uint64_t)ids[t] << 32) | t) : ~(uint64_t)0;
    }
}

// Bitonic compare-exchange q (0 <= q < P/2) of step j: the pair (i, i + j) where i
// is q with a zero bit inserted at bit log2(j). Stage k sorts the run containing i
// ascending when bit log2(k) of i is clear, descending otherwise (for k = P every
// run is ascending). Keys are unique, so the result of the whole network is the
// one ascending order.
SS_DEVICE uint64_t ss_embedding_pair_low(uint64_t q, uint64_t j) {
    return ((q & ~(j - 1)) << 1) | (q & (j - 1));
}

// embedding_sort_keys_global_u64: one bitonic step (stage p.k, distance p.j) over
//   keys[0..P) in global memory: for each pair (i, i + j), swap when out of the
//   stage's order.
// Threads: one pair per thread per iteration, grid-stride loop over q < P/2.
// Launch: 1-D, any block and grid; one launch per (k, j) with j >= the local
//   tile (smaller steps run in embedding_sort_keys_local_u64). Stream order makes
//   each step see the previous one's writes.
// Memory: reads and writes 16 bytes per pair: 8P each way.
// Order: none (integer compare-exchange; pairs of one step are disjoint).
// TWIN: src/ops/embedding/cpu.rs::embedding_sort_keys (the CPU sorts the same
//   unique keys; any correct sort gives the same order)
extern "C" __global__ void embedding_sort_keys_global_u64(const ss_embedding_sort_params p,
                                                          uint64_t* __restrict__ keys) {
    const uint64_t pairs = p.p / 2;
    SS_GRID_STRIDE_LOOP(q, pairs) {
        const uint64_t i = ss_embedding_pair_low(q, p.j);
        const uint64_t l = i + p.j;
        const bool ascending = (i & p.k) == 0;
        const uint64_t a = keys[i];
        const uint64_t b = keys[l];
        if (ascending ? a > b : a < b) {
            keys[i] = b;
            keys[l] = a;
        }
    }
}

// embedding_sort_keys_local_u64: the bitonic steps that stay inside one tile of
//   p.tile keys (tile a power of two, tile <= P, every j < tile), in shared
//   memory: stage p.k from distance p.j down to 1, then every later stage
//   kk = 2k, 4k, ... <= p.k_end from distance kk/2 down to 1. With k = 2, j = 1,
//   k_end = tile it sorts every tile (alternately ascending and descending, as
//   the network needs); with k = k_end > tile, j = tile/2 it finishes stage k.
// Threads: a block owns one tile per iteration (grid-stride over the P/tile
//   tiles); its threads stride over the tile's tile/2 pairs; __syncthreads()
//   between steps.
// Launch: 1-D, any block size, any grid; dynamic shared memory 8*tile bytes
//   (16 KiB at SS_EMBEDDING_SORT_TILE).
// Memory: reads and writes 8P bytes of global memory per launch.
// Order: none (integer compare-exchange).
// TWIN: src/ops/embedding/cpu.rs::embedding_sort_keys
extern "C" __global__ void embedding_sort_keys_local_u64(const ss_embedding_sort_params p,
                                                         uint64_t* __restrict__ keys) {
    SS_DYNAMIC_SHARED(uint64_t, s);
    const uint64_t tiles = p.p / p.tile;
    for (uint64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const uint64_t base = tile * p.tile;
        for (uint64_t x = threadIdx.x; x < p.tile; x += blockDim.x) {
            s[x] = keys[base + x];
        }
        __syncthreads();
        for (uint64_t k = p.k; k <= p.k_end; k <<= 1) {
            for (uint64_t j = (k == p.k ? p.j : k >> 1); j > 0; j >>= 1) {
                for (uint64_t q = threadIdx.x; q < p.tile / 2; q += blockDim.x) {
                    const uint64_t i = ss_embedding_pair_low(q, j);
                    const uint64_t l = i + j;
                    const bool ascending = ((base + i) & k) == 0;
                    const uint64_t a = s[i];
                    const uint64_t b = s[l];
                    if (ascending ? a > b : a < b) {
                        s[i] = b;
                        s[l] = a;
                    }
                }
                __syncthreads();
            }
        }
        for (uint64_t x = threadIdx.x; x < p.tile; x += blockDim.x) {
            keys[base + x] = s[x];
        }
        __syncthreads();  // the next tile's loads overwrite s
    }
}

// embedding_bwd_f32: dW[v, c] += dy[t, c] over the positions t with ids[t] == v,
//   in increasing t:  acc = dW[v, c]; for each such t ascending: acc = acc + dy[t, c];
//   dW[v, c] = acc (a NaN stored as the canonical NaN). Rows v that no position
//   names are not touched.
// Input: keys[0..N) sorted ascending (embedding_sort_keys_*), so the positions of
//   one token form a segment, in increasing t.
// Threads: one (sorted index i, column c) per thread per iteration, flat index
//   i*E + c, grid-stride loop. The thread whose i starts a segment (i == 0 or
//   the token differs from keys[i-1]'s) walks the whole segment and writes
//   dW[v, c] once; every other thread does nothing. Each (v, c) has exactly one
//   writer, so no atomics and no races.
// Launch: 1-D, any block and grid. Precondition: embedding_check_ids_u32 ran on
//   the same ids into status; if its SS_STATUS_BAD_ID bit is set nothing is written.
// Memory: reads 8N (keys, per column) + 4NE (dy) + 4UE (dW), writes 4UE bytes,
//   U = number of distinct ids.
// Order: per (v, c), plain f32 adds in increasing t (DESIGN.md rule 6).
// TWIN: src/ops/embedding/cpu.rs::embedding_bwd_f32
extern "C" __global__ void embedding_bwd_f32(const ss_embedding_params p,
                                             const uint64_t* __restrict__ keys,
                                             const float* __restrict__ dy,
                                             const uint32_t* __restrict__ status,
                                             float* __restrict__ dw) {
    if ((status[SS_STATUS_FLAGS] & SS_STATUS_BAD_ID) != 0u) {
        return;
    }
    const uint64_t total = p.n * p.e;
    SS_GRID_STRIDE_LOOP(x, total) {
        const uint64_t i = x / p.e;
        const uint64_t c = x - i * p.e;
        const uint64_t id = keys[i] >> 32;
        if ((i > 0 && (keys[i - 1] >> 32) == id) || id >= p.v) {
            continue;  // not a segment start (or an id the check refused)
        }
        float acc = dw[id * p.e + c];
        for (uint64_t s = i; s < p.n && (keys[s] >> 32) == id; ++s) {
            const uint64_t t = keys[s] & 0xffffffffu;
            acc = acc + dy[t * p.e + c];
        }
        dw[id * p.e + c] = ss_canonical_nan(acc);  // one NaN on every device
    }
}
