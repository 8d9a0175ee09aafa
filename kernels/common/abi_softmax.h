/* softmax family: log-softmax and mean cross-entropy (kernels/softmax.cu).
 * Included from abi.h. Plain C, fixed-width types, no pointers, no padding. */
#ifndef SHOESTRING_ABI_SOFTMAX_H
#define SHOESTRING_ABI_SOFTMAX_H

#if !defined(__CUDACC_RTC__)
#include <stdint.h>
#endif

/* The row reductions follow the canonical order of abi_reduce.h (256 lanes,
 * chunks of 16384). Widest row the kernels reduce: two levels of that order,
 * 16384 chunk results of 16384 elements each (2^28). The host refuses wider rows. */
#define SS_SOFTMAX_MAX_COLS 268435456u
/* Most rows a mean cross-entropy takes: R must be exact as an f32 (R < 2^24). */
#define SS_SOFTMAX_MAX_ROWS 16777215u

/* softmax_log_fwd_f32, softmax_xent_fwd_f32, softmax_xent_loss_f32:
 * R rows of C columns, row-major. */
typedef struct ss_softmax_rows_params {
    uint32_t rows; /* R */
    uint32_t cols; /* C, 1..=SS_SOFTMAX_MAX_COLS */
} ss_softmax_rows_params;

/* softmax_xent_bwd_f32: dx[r,j] = (exp(y[r,j]) - [j == label_r]) * gscale. */
typedef struct ss_softmax_bwd_params {
    uint32_t rows;  /* R */
    uint32_t cols;  /* C */
    float gscale;   /* dloss / (float)R, rounded once on the host */
} ss_softmax_bwd_params;

#endif /* SHOESTRING_ABI_SOFTMAX_H */
