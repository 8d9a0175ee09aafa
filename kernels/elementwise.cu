// Elementwise kernels: add, mul, scale, axpy, ReLU, strided column copies,
// f32<->f16 casts, the SGD and AdamW steps on f32
// master weights, and the mixed-precision unscale + finite check that raises the
// overflow bit of the step's status block. Contract: docs/numerics/elementwise.md.
//
// Dimension: N = p.n, the element count of every buffer of a call.
// Every kernel is a 1-D grid-stride loop in which element i depends on element
// i of its inputs only, so any grid/block shape gives the same bits (DESIGN.md
// rule 7); the loops are SS_GRID_STRIDE_LOOP (prelude.cuh). Launch: block = 256,
// grid = min(ceil(N/256), 65535) by default
// (src/ops/elementwise/cuda.rs::DEFAULT_SHAPE); any shape is valid.
// f16 tensors are uint16_t bit patterns. Compiled with --fmad=false: every fused
// multiply-add below is an explicit fmaf; every other a*b+c is two roundings.
#include "common/prelude.cuh"
#include "common/abi.h"

// Every float this family computes with arithmetic is stored through
// ss_canonical_nan (prelude.cuh): a NaN result becomes the project's one NaN,
// 0x7fc00000, the IEEE default quiet NaN that Rust's f32::NAN also has. GPU f32
// arithmetic makes 0x7fffffff for any NaN result, x86 (CPU twin, Sim) propagates
// an input payload or makes 0xffc00000; a bit test, so it means the same under any
// compiler flags. TWIN: src/numerics.rs::canonical_nan

// elementwise_add_f32: out[i] = a[i] + b[i] (one f32 addition), i < N; a NaN
//   result is stored as 0x7fc00000 (ss_canonical_nan), as in every
//   arithmetic kernel below.
// Threads: one element per thread per iteration, grid-stride. Memory: reads
//   8 bytes, writes 4 bytes per element. No accumulation.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_add_f32
extern "C" __global__ void elementwise_add_f32(const ss_elementwise_params p,
                                               const float* __restrict__ a,
                                               const float* __restrict__ b,
                                               float* __restrict__ out) {
    SS_GRID_STRIDE_LOOP(i, p.n) { out[i] = ss_canonical_nan(a[i] + b[i]); }
}

// elementwise_mul_f32: out[i] = a[i] * b[i] (one f32 multiplication), i < N.
// Threads, launch, memory: as elementwise_add_f32.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_mul_f32
extern "C" __global__ void elementwise_mul_f32(const ss_elementwise_params p,
                                               const float* __restrict__ a,
                                               const float* __restrict__ b,
                                               float* __restrict__ out) {
    SS_GRID_STRIDE_LOOP(i, p.n) { out[i] = ss_canonical_nan(a[i] * b[i]); }
}

// elementwise_scale_f32: out[i] = p.alpha * x[i] (one f32 multiplication), i < N.
// Threads, launch: as elementwise_add_f32. Memory: reads 4, writes 4 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_scale_f32
extern "C" __global__ void elementwise_scale_f32(const ss_elementwise_params p,
                                                 const float* __restrict__ x,
                                                 float* __restrict__ out) {
    const float alpha = p.alpha;
    SS_GRID_STRIDE_LOOP(i, p.n) { out[i] = ss_canonical_nan(alpha * x[i]); }
}

// elementwise_axpy_f32: y[i] = fmaf(p.alpha, x[i], y[i]) (one rounding), i < N:
//   ACCUMULATES into y (gradient sums; alpha = 1 is y += x, the same bits as
//   y + x since 1 * x is exact).
// Threads, launch: as elementwise_add_f32. Memory: reads 8, writes 4 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_axpy_f32
extern "C" __global__ void elementwise_axpy_f32(const ss_elementwise_params p,
                                                const float* __restrict__ x,
                                                float* __restrict__ y) {
    const float alpha = p.alpha;
    SS_GRID_STRIDE_LOOP(i, p.n) { y[i] = ss_canonical_nan(fmaf(alpha, x[i], y[i])); }
}

// elementwise_cast_f32_to_f16: out[i] = bits of f16(x[i]), round to nearest
//   even, overflow -> inf, NaN -> quiet NaN keeping the top payload bits
//   (ss_float_to_half_rn, integer code; equal to half::f16::from_f32).
// Threads, launch: as elementwise_add_f32. Memory: reads 4, writes 2 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_cast_f32_to_f16
extern "C" __global__ void elementwise_cast_f32_to_f16(const ss_elementwise_params p,
                                                       const float* __restrict__ x,
                                                       uint16_t* __restrict__ out) {
    SS_GRID_STRIDE_LOOP(i, p.n) { out[i] = ss_float_to_half_rn(x[i]); }
}

// elementwise_cast_f16_to_f32: out[i] = f32 value of the half with bits x[i];
//   exact; NaN payload kept with the quiet bit set (ss_half_to_float; equal to
//   half::f16::to_f32).
// Threads, launch: as elementwise_add_f32. Memory: reads 2, writes 4 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_cast_f16_to_f32
extern "C" __global__ void elementwise_cast_f16_to_f32(const ss_elementwise_params p,
                                                       const uint16_t* __restrict__ x,
                                                       float* __restrict__ out) {
    SS_GRID_STRIDE_LOOP(i, p.n) { out[i] = ss_half_to_float(x[i]); }
}

// elementwise_adam_f32: one AdamW step, in place on param, m, v, given grad.
//   With the host constants of ss_elementwise_adam_params (b1 = beta1,
//   c1 = one_minus_beta1, bc1 = bias_correction1, ...), for each i < N:
//     g      = grad[i]
//     m'     = fmaf(b1, m[i], c1 * g)               c1*g rounded, then one fused round
//     v'     = fmaf(b2, v[i], c2 * (g * g))         g*g, c2*(.) rounded, then fused
//     m_hat  = m' / bc1                              IEEE division
//     v_hat  = v' / bc2                              IEEE division
//     denom  = sqrtf(v_hat) + eps                    correctly rounded sqrt, then add
//     upd    = m_hat / denom                         IEEE division
//     p_dec  = fmaf(-lr_weight_decay, p[i], p[i])    p - (lr*wd)*p, one rounding
//     p'     = fmaf(-lr, upd, p_dec)                 p_dec - lr*upd, one rounding
//   then m[i] = m', v[i] = v', param[i] = p' (NaNs canonical). Decay uses the
//   OLD parameter.
// Threads, launch: as elementwise_add_f32. Memory: reads 16, writes 12 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_adam_f32
extern "C" __global__ void elementwise_adam_f32(const ss_elementwise_adam_params p,
                                                float* __restrict__ param,
                                                const float* __restrict__ grad,
                                                float* __restrict__ m,
                                                float* __restrict__ v) {
    SS_GRID_STRIDE_LOOP(i, p.n) {
        const float g = grad[i];
        const float w = param[i];
        const float m1 = fmaf(p.beta1, m[i], p.one_minus_beta1 * g);
        const float v1 = fmaf(p.beta2, v[i], p.one_minus_beta2 * (g * g));
        const float m_hat = m1 / p.bias_correction1;
        const float v_hat = v1 / p.bias_correction2;
        const float denom = sqrtf(v_hat) + p.eps;
        const float upd = m_hat / denom;
        const float w_dec = fmaf(-p.lr_weight_decay, w, w);
        m[i] = ss_canonical_nan(m1);
        v[i] = ss_canonical_nan(v1);
        param[i] = ss_canonical_nan(fmaf(-p.lr, upd, w_dec));
    }
}

// elementwise_unscale_check_f32: g[i] = g[i] * p.alpha (alpha = 1/loss scale,
//   one f32 multiplication) in place; if any result is non-finite (exponent
//   bits all ones: inf or NaN, a bit test via ss_isfinite),
//   status[SS_STATUS_FLAGS] |= SS_STATUS_OVERFLOW.
// Threads: grid-stride; each thread ORs its own elements' verdicts into a
//   register and issues at most one atomicOr. The bit is an integer OR, so the
//   result is independent of order, grid and block. The bit is never cleared
//   here: it stays set until the host clears the block (Status::clear).
// Launch: as elementwise_add_f32. Memory: reads 4, writes 4 bytes/element, plus
//   at most one 4-byte atomic per thread.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_unscale_check_f32
extern "C" __global__ void elementwise_unscale_check_f32(const ss_elementwise_params p,
                                                         float* __restrict__ g,
                                                         unsigned int* __restrict__ status) {
    const float inv_scale = p.alpha;
    unsigned int bad = 0u;
    SS_GRID_STRIDE_LOOP(i, p.n) {
        const float x = g[i] * inv_scale;
        g[i] = ss_canonical_nan(x);
        bad |= ss_isfinite(x) ? 0u : 1u;
    }
    if (bad != 0u) {
        atomicOr(&status[SS_STATUS_FLAGS], SS_STATUS_OVERFLOW);
    }
}

// elementwise_relu_fwd_f32: y[i] = x[i] > 0 ? x[i] : +0.0f, and the canonical
//   NaN for a NaN x (a comparison, no arithmetic). Overwrites y.
// Threads, launch: as elementwise_add_f32. Memory: reads 4, writes 4 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_relu_fwd_f32
extern "C" __global__ void elementwise_relu_fwd_f32(const ss_elementwise_params p,
                                                    const float* __restrict__ x,
                                                    float* __restrict__ y) {
    SS_GRID_STRIDE_LOOP(i, p.n) {
        const float v = x[i];
        y[i] = ss_isnan(v) ? __uint_as_float(SS_CANONICAL_NAN_BITS) : (v > 0.0f ? v : 0.0f);
    }
}

// elementwise_relu_bwd_f32: dx[i] = x[i] > 0 ? dy[i] : +0.0f (x the forward's
//   input; a NaN dy that passes is stored canonical). Overwrites dx.
// Threads, launch: as elementwise_add_f32. Memory: reads 8, writes 4 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_relu_bwd_f32
extern "C" __global__ void elementwise_relu_bwd_f32(const ss_elementwise_params p,
                                                    const float* __restrict__ x,
                                                    const float* __restrict__ dy,
                                                    float* __restrict__ dx) {
    SS_GRID_STRIDE_LOOP(i, p.n) { dx[i] = x[i] > 0.0f ? ss_canonical_nan(dy[i]) : 0.0f; }
}

// elementwise_copy_cols_f32: dst[r*dst_ld + dst_off + c] = src[r*src_ld + src_off + c]
//   for r < rows, c < cols: a bit copy (NaN payloads kept). Overwrites those
//   elements of dst only.
// Threads: one element per thread per iteration, flat index r*cols + c, grid-stride.
// Launch: 1-D, any block and grid. Preconditions (host): the windows lie in src
//   and dst, which do not overlap. Memory: reads and writes 4*rows*cols bytes.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_copy_cols_f32
extern "C" __global__ void elementwise_copy_cols_f32(const ss_elementwise_copy_cols_params p,
                                                     const float* __restrict__ src,
                                                     float* __restrict__ dst) {
    const uint64_t total = p.rows * p.cols;
    SS_GRID_STRIDE_LOOP(i, total) {
        const uint64_t r = i / p.cols;
        const uint64_t c = i - r * p.cols;
        dst[r * p.dst_ld + p.dst_off + c] = src[r * p.src_ld + p.src_off + c];
    }
}

// elementwise_sgd_f32: one SGD step with momentum, in place, for i < N:
//     g  = fmaf(weight_decay, w, grad[i])      coupled decay, one rounding
//     v' = fmaf(momentum, v[i], g)             one rounding
//     w' = fmaf(-lr, v', w)                    one rounding
//   then v[i] = v', param[i] = w' (NaNs canonical).
// Threads, launch: as elementwise_add_f32. Memory: reads 12, writes 8 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_sgd_f32
extern "C" __global__ void elementwise_sgd_f32(const ss_elementwise_sgd_params p,
                                               float* __restrict__ param,
                                               const float* __restrict__ grad,
                                               float* __restrict__ v) {
    SS_GRID_STRIDE_LOOP(i, p.n) {
        const float w = param[i];
        const float g = fmaf(p.weight_decay, w, grad[i]);
        const float v1 = fmaf(p.momentum, v[i], g);
        v[i] = ss_canonical_nan(v1);
        param[i] = ss_canonical_nan(fmaf(-p.lr, v1, w));
    }
}

// elementwise_scale_by_f32: x[i] = x[i] * s[0], in place (s a device scalar,
//   e.g. a clipping coefficient computed on the device: no host read).
// Threads, launch: as elementwise_add_f32. Memory: reads 4, writes 4 bytes/element.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_scale_by_f32
extern "C" __global__ void elementwise_scale_by_f32(const ss_elementwise_params p,
                                                    const float* __restrict__ s,
                                                    float* __restrict__ x) {
    const float k = s[0];
    SS_GRID_STRIDE_LOOP(i, p.n) { x[i] = ss_canonical_nan(x[i] * k); }
}

// elementwise_clip_coef_f32: from a total sum of squares t = sumsq[0]:
//     norm = sqrtf(t)                    correctly rounded
//     q    = p.alpha / (norm + 1e-6f)    max_norm / (norm + eps), two roundings
//     coef[0] = q < 1 ? q : 1
//   and the status block's grad-norm word = bits of norm. A norm that is not
//   finite makes coef the canonical NaN and ORs SS_STATUS_OVERFLOW: the step
//   must be skipped (the optimizer never runs on an overflowed step).
// Threads: one (thread 0 of block 0). Launch: grid 1, block 1.
// TWIN: src/ops/elementwise/cpu.rs::elementwise_clip_coef_f32
extern "C" __global__ void elementwise_clip_coef_f32(const ss_elementwise_params p,
                                                     const float* __restrict__ sumsq,
                                                     float* __restrict__ coef,
                                                     uint32_t* __restrict__ status) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        const float norm = ss_canonical_nan(sqrtf(sumsq[0]));
        const float q = p.alpha / (norm + 1e-6f);
        status[SS_STATUS_GRAD_NORM] = __float_as_uint(norm);
        if (ss_isfinite(norm)) {
            coef[0] = q < 1.0f ? q : 1.0f;
        } else {
            coef[0] = __uint_as_float(SS_CANONICAL_NAN_BITS);
            atomicOr(&status[SS_STATUS_FLAGS], SS_STATUS_OVERFLOW);
        }
    }
}
