/* The kernel ABI: every struct and constant that Rust passes to a kernel,
 * declared once. Plain C so that bindgen can read it; `src/device/abi.rs` is
 * generated from this file (see tests/abi_is_current.rs) and committed.
 *
 * Rules: fixed-width types only, no pointers (buffers are separate kernel
 * arguments), fields ordered so that no padding is needed, every struct passed
 * BY VALUE as the first kernel argument. */
#ifndef SHOESTRING_ABI_H
#define SHOESTRING_ABI_H

#if !defined(__CUDACC_RTC__)
#include <stdint.h>
#endif

/* Philox4x32-10 (DESIGN.md rule 5). The 128-bit counter is four words, in
 * Random123's order: the 64-bit block index (lo, hi), the call site's stream id,
 * and the optimizer step (or epoch). A draw's word w of block b is word w of
 * philox4x32_10(counter with block index b, key). */
#define SS_PHILOX_WORDS_PER_BLOCK 4u
#define SS_PHILOX_ROUNDS 10u

typedef struct ss_philox_key {
    uint32_t lo; /* seed bits 0..31 */
    uint32_t hi; /* seed bits 32..63 */
} ss_philox_key;

typedef struct ss_philox_counter {
    uint32_t block_lo; /* block index bits 0..31 */
    uint32_t block_hi; /* block index bits 32..63 */
    uint32_t stream;   /* call-site stream id */
    uint32_t step;     /* optimizer step / epoch */
} ss_philox_counter;

/* philox_blocks_u32: out[4*i + w] = word w of the block at base + i. */
typedef struct ss_philox_blocks_params {
    ss_philox_key key;
    ss_philox_counter base; /* block index of out[0..4] */
    uint64_t n_blocks;
} ss_philox_blocks_params;

#include "abi_status.h"
#include "abi_detmath.h"
#include "abi_reduce.h"
#include "abi_elementwise.h"
#include "abi_dropout.h"
#include "abi_embedding.h"
#include "abi_softmax.h"
#include "abi_lstm.h"
#include "abi_gemm.h"
#include "abi_pool.h"
#include "abi_batchnorm.h"

#endif /* SHOESTRING_ABI_H */
