/* The per-step status block (DESIGN.md "The tensor and autograd layer"): a few
 * u32 words that a step's kernels write and the host reads ONCE per step, at
 * its end, with the loss. Included by abi.h. The host zeroes the block when a
 * step starts (a memset, no allocation); every write is an integer atomic OR,
 * MAX or ADD (order-independent, so the block's bits do not depend on
 * scheduling) or a plain store by one thread. */
#ifndef SHOESTRING_ABI_STATUS_H
#define SHOESTRING_ABI_STATUS_H

#define SS_STATUS_WORDS 8u

/* Word indices. */
#define SS_STATUS_FLAGS 0u           /* OR of the SS_STATUS_* bits below */
#define SS_STATUS_BAD_ID_FIRST 1u    /* atomicMax of (0xffffffff - t) over bad positions t; 0: none */
#define SS_STATUS_BAD_ID_COUNT 2u    /* atomicAdd: positions whose id is >= V */
#define SS_STATUS_BAD_LABEL_FIRST 3u /* atomicMax of (0xffffffff - r) over bad rows r; 0: none */
#define SS_STATUS_LOSS 4u            /* the last mean cross-entropy, as f32 bits */
#define SS_STATUS_GRAD_NORM 5u       /* the last gradient norm, as f32 bits (clipping) */

/* Bits of word SS_STATUS_FLAGS. */
#define SS_STATUS_OVERFLOW 1u       /* a GEMM stored a non-finite value, or an unscale check found one */
#define SS_STATUS_BAD_ID 2u         /* an embedding id >= V (see words 1, 2) */
#define SS_STATUS_BAD_LABEL 4u      /* a cross-entropy label >= C (see word 3) */
#define SS_STATUS_NONFINITE_LOSS 8u /* the loss is inf or NaN */

#endif /* SHOESTRING_ABI_STATUS_H */
