/* Masked concat pooling over time on packed sequences (kernels/pool.cu; the
 * layout is src/seq.rs: B sequences longest first, T steps, P packed rows,
 * position (t, b) at packed row offsets[t] + b, F features). Included by abi.h.
 * Plain C, fixed-width types, no pointers, no padding. */
#ifndef SHOESTRING_ABI_POOL_H
#define SHOESTRING_ABI_POOL_H

/* pool_concat_fwd_f32 and pool_concat_bwd_f32. */
typedef struct ss_pool_params {
    uint32_t batch;    /* B */
    uint32_t steps;    /* T */
    uint32_t total;    /* P */
    uint32_t features; /* F */
} ss_pool_params;

#endif /* SHOESTRING_ABI_POOL_H */
