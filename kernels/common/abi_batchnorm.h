/* BatchNorm1d over a batch (kernels/batchnorm.cu): x is N x F row-major, one
 * feature per column, statistics over the N rows. Included by abi.h. Plain C,
 * fixed-width types, no pointers, no padding. */
#ifndef SHOESTRING_ABI_BATCHNORM_H
#define SHOESTRING_ABI_BATCHNORM_H

/* batchnorm_fwd_train_f32, batchnorm_fwd_eval_f32, batchnorm_bwd_f32. */
typedef struct ss_batchnorm_params {
    uint32_t rows;     /* N, the batch: 1 .. 2^24 - 1, so (float)N is exact */
    uint32_t features; /* F */
    float eps;         /* added to the variance before the square root */
    float momentum;    /* running stats: r = fmaf(momentum, stat - r, r) */
} ss_batchnorm_params;

#endif /* SHOESTRING_ABI_BATCHNORM_H */
