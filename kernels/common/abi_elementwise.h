/* The elementwise family's by-value kernel parameters (kernels/elementwise.cu).
 * Included by abi.h; plain C, fixed-width types, no pointers, no padding. */
#ifndef SHOESTRING_ABI_ELEMENTWISE_H
#define SHOESTRING_ABI_ELEMENTWISE_H

/* add, mul, scale, casts, unscale+check: n elements; `alpha` is the scalar of
 * `elementwise_scale_f32` (out = alpha * x) and the inverse loss scale of
 * `elementwise_unscale_check_f32` (g = g * alpha); the other kernels ignore it. */
typedef struct ss_elementwise_params {
    uint64_t n;         /* elements in every buffer of the call */
    float alpha;        /* scale factor / inverse loss scale; ignored elsewhere */
    uint32_t reserved;  /* keeps the struct free of padding; always 0 */
} ss_elementwise_params;

/* elementwise_adam_f32: one AdamW step at step t >= 1 (see
 * docs/numerics/elementwise.md). Every derived constant is computed ON THE
 * HOST, once per step, by src/ops/elementwise/mod.rs::AdamParams::kernel_params,
 * the one function that feeds both the CPU twin and the kernels:
 *   one_minus_beta1   = 1.0f - beta1              (one f32 subtraction)
 *   one_minus_beta2   = 1.0f - beta2              (one f32 subtraction)
 *   bias_correction1  = (float)(1.0 - pow(beta1, t)) with pow evaluated in f64
 *                       by binary exponentiation (square-and-multiply over the
 *                       bits of t, lowest first), the result rounded once to f32
 *   bias_correction2  = the same with beta2
 *   lr_weight_decay   = lr * weight_decay         (one f32 multiplication) */
typedef struct ss_elementwise_adam_params {
    uint64_t n;               /* elements of param, grad, m and v */
    float lr;                 /* learning rate */
    float beta1;              /* first-moment decay */
    float beta2;              /* second-moment decay */
    float eps;                /* added to sqrt(v_hat) */
    float weight_decay;       /* decoupled (AdamW) weight decay; enters via lr_weight_decay */
    float one_minus_beta1;    /* host: 1.0f - beta1 */
    float one_minus_beta2;    /* host: 1.0f - beta2 */
    float bias_correction1;   /* host: 1 - beta1^t (f64, rounded once to f32) */
    float bias_correction2;   /* host: 1 - beta2^t (f64, rounded once to f32) */
    float lr_weight_decay;    /* host: lr * weight_decay (f32) */
} ss_elementwise_adam_params;

/* elementwise_sgd_f32: one SGD step with momentum and (coupled, as in
 * torch.optim.SGD) weight decay; see docs/numerics/elementwise.md. */
typedef struct ss_elementwise_sgd_params {
    uint64_t n;           /* elements of param, grad and velocity */
    float lr;             /* learning rate */
    float momentum;       /* velocity decay, in [0, 1) */
    float weight_decay;   /* added to the gradient as weight_decay * param */
    uint32_t reserved;    /* keeps the struct free of padding; always 0 */
} ss_elementwise_sgd_params;

/* elementwise_copy_cols_f32: a 2-D strided bit copy,
 *   dst[r * dst_ld + dst_off + c] = src[r * src_ld + src_off + c]
 * for r < rows, c < cols: concatenating or splitting features (columns). */
typedef struct ss_elementwise_copy_cols_params {
    uint64_t rows;
    uint64_t cols;
    uint64_t src_ld;  /* elements per row of src */
    uint64_t src_off; /* first column read in each row of src */
    uint64_t dst_ld;  /* elements per row of dst */
    uint64_t dst_off; /* first column written in each row of dst */
} ss_elementwise_copy_cols_params;

#endif /* SHOESTRING_ABI_ELEMENTWISE_H */
