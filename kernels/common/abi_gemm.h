/* The gemm family's by-value kernel parameters (kernels/gemm.cu and the fast
 * tier kernels/gemm_tc.cu). Included by abi.h; plain C, fixed-width types, no
 * pointers, no padding.
 *
 * C (m x n, row-major, contiguous) = alpha * op(A) op(B) (+ bias) (+ C), where
 *   op(A) is m x k: A stored m x k row-major when trans_a == 0, k x m when 1;
 *   op(B) is k x n: B stored k x n row-major when trans_b == 0, n x k when 1;
 *   bias (when has_bias == 1) has n f32 elements, one per output column.
 * Every output (docs/numerics/gemm.md):
 *   acc = beta ? 0.0f + C[i,j] : +0.0f    (the old C, as f32, with -0.0 made +0.0)
 *   for kk = 0 .. k-1 ascending: acc = fmaf(a[i,kk], b[kk,j], acc)
 *   y = has_bias ? fmaf(alpha, acc, bias[j]) : alpha * acc
 *   stored = round-to-nearest-even of canonical_nan(y) into the output dtype;
 *   a non-finite stored value ORs 1 into the overflow flag. */
#ifndef SHOESTRING_ABI_GEMM_H
#define SHOESTRING_ABI_GEMM_H

/* Every dimension is below 2^31 (checked on the host); offsets are 64-bit. */
typedef struct ss_gemm_params {
    uint32_t m;        /* rows of C and of op(A) */
    uint32_t n;        /* columns of C and of op(B) */
    uint32_t k;        /* the reduction length */
    uint32_t trans_a;  /* 0: A is m x k; 1: A is k x m (op(A) = A^T) */
    uint32_t trans_b;  /* 0: B is k x n; 1: B is n x k (op(B) = B^T) */
    uint32_t has_bias; /* 1: add bias[j] in the epilogue fma; 0: no bias buffer is read */
    float alpha;       /* scales op(A) op(B), never the bias; 1 when beta == 1 */
    uint32_t beta;     /* 0: C is overwritten; 1: each chain starts from the old C[i,j] */
} ss_gemm_params;

#endif /* SHOESTRING_ABI_GEMM_H */
