/* detmath family ABI (kernels/detmath.cu): which function detmath_apply_f32
 * applies, and how many elements. Included by abi.h. */
#ifndef SHOESTRING_ABI_DETMATH_H
#define SHOESTRING_ABI_DETMATH_H

#define SS_DETMATH_OP_EXP 0u
#define SS_DETMATH_OP_LOG 1u
#define SS_DETMATH_OP_LOG1P 2u
#define SS_DETMATH_OP_TANH 3u
#define SS_DETMATH_OP_SIGMOID 4u

/* detmath_apply_f32: out[i] = op(in[i]) for i in 0..n. */
typedef struct ss_detmath_params {
    uint32_t op;  /* one of SS_DETMATH_OP_* */
    uint32_t pad; /* zero; keeps n 8-byte aligned without implicit padding */
    uint64_t n;   /* elements */
} ss_detmath_params;

#endif /* SHOESTRING_ABI_DETMATH_H */
