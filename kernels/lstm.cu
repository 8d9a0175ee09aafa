// The pointwise part of one LSTM step: given the gate pre-activations (the two
// GEMMs x*W + h*U + bias, computed elsewhere), the cell and hidden updates and
// their gradients. Exact tier: the transcendentals are detmath's, every fused
// multiply-add is an explicit fmaf, everything else is one IEEE rounding per op.
//
// Dimension letters (used in every header below):
//   B  rows (batch), H  hidden units.
// Layouts, all row-major f32:
//   gates, act, dgates  B x 4H, gate k of unit j of row b at b*4H + k*H + j,
//                       blocks in the order k = 0 i (input), 1 f (forget),
//                       2 g (cell candidate), 3 o (output).
//   c_prev, c, h, dh, dc, dc_prev  B x H, (b, j) at b*H + j.
// Contract: docs/numerics/lstm.md.
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/detmath.cuh"

// NaN results leave as the project's canonical NaN 0x7fc00000 (ss_canonical_nan,
// prelude.cuh), whatever sign and payload the arithmetic produced: GPUs return
// 0x7fffffff for an invalid operation and x86 returns 0xffc00000 or propagates an
// operand's payload, so only this makes NaN outputs bit-identical too. Applied to
// every output computed by arithmetic here (act is detmath's, already canonical).

// (b, j) of flat index t = b*H + j, and the offset b*4H + j of gate 0 of that
// unit. 32-bit division when the whole problem fits, a 64-bit one otherwise;
// both give the same quotient, so the choice never changes which element a
// thread reads.
SS_DEVICE void ss_lstm_unit(uint64_t t, uint64_t hidden, bool narrow, uint64_t* b, uint64_t* j) {
    if (narrow) {
        const uint32_t q = (uint32_t)t / (uint32_t)hidden;
        *b = q;
        *j = t - (uint64_t)q * hidden;
    } else {
        *b = t / hidden;
        *j = t - *b * hidden;
    }
}

// lstm_cell_fwd_f32: per (b, j), with Gk = gates[b, k*H + j]:
//     i = sigmoid(Gi)   f = sigmoid(Gf)   g = tanh(Gg)   o = sigmoid(Go)
//     c = fmaf(f, c_prev, i * g)          (i*g rounded, then one fused multiply-add)
//     h = o * tanh(c)
//   and act[b, k*H + j] = (i, f, g, o)[k], kept for backward. NaN outputs are
//   written as 0x7fc00000 (ss_canonical_nan).
//   sigmoid/tanh are ss_sigmoid/ss_tanh (common/detmath.cuh).
// Threads: one (b, j) per thread per iteration of a grid-stride loop over
//   t = b*H + j in 0..B*H; each output depends on its own t only, so any grid
//   and block shape gives the same bits.
// Launch: 1-D, block = 256 (any size works), grid = min(ceil(B*H/256), 65535).
//   No shared memory. Preconditions (checked on the host): B*4H fits in memory.
// Memory: reads 20 bytes per unit (4 gates + c_prev), writes 24 (c, h, 4 act).
// Order: no accumulation; the per-unit order above is the whole contract.
// TWIN: src/ops/lstm/cpu.rs::lstm_cell_fwd_f32
extern "C" __global__ void lstm_cell_fwd_f32(const ss_lstm_cell_params p, const float* __restrict__ gates,
                                             const float* __restrict__ c_prev, float* __restrict__ c,
                                             float* __restrict__ h, float* __restrict__ act) {
    const uint64_t H = p.hidden;
    const uint64_t n = p.batch * H;
    const bool narrow = n <= 0xffffffffull;
    SS_GRID_STRIDE_LOOP(t, n) {
        uint64_t b, j;
        ss_lstm_unit(t, H, narrow, &b, &j);
        const uint64_t g0 = b * 4u * H + j;
        const float i = ss_sigmoid(gates[g0]);
        const float f = ss_sigmoid(gates[g0 + H]);
        const float g = ss_tanh(gates[g0 + 2u * H]);
        const float o = ss_sigmoid(gates[g0 + 3u * H]);
        const float ig = i * g;
        const float ct = fmaf(f, c_prev[t], ig);
        c[t] = ss_canonical_nan(ct);
        h[t] = ss_canonical_nan(o * ss_tanh(ct));
        act[g0] = i;
        act[g0 + H] = f;
        act[g0 + 2u * H] = g;
        act[g0 + 3u * H] = o;
    }
}

// lstm_cell_bwd_f32: per (b, j), with (i, f, g, o) = act[b, k*H + j] for k = 0..3,
//   cp = c_prev[b, j], ct = c[b, j], and the incoming gradients dh, dc:
//     tc  = tanh(ct)                        (recomputed; act does not store it)
//     dO  = dh * tc
//     dct = fmaf(dh * o, fmaf(-tc, tc, 1), dc)   (dh*o rounded; 1 - tc^2 one rounding)
//     di = dct * g   df = dct * cp   dg = dct * i   dc_prev = dct * f
//     dGi = di * fmaf(-i, i, i)             (i*(1-i), one rounding)
//     dGf = df * fmaf(-f, f, f)
//     dGg = dg * fmaf(-g, g, 1)             (1 - g^2, one rounding)
//     dGo = dO * fmaf(-o, o, o)
//   dgates[b, k*H + j] = (dGi, dGf, dGg, dGo)[k]; dc_prev[b, j] as above.
//   NaN outputs are written as 0x7fc00000 (ss_canonical_nan).
//   dc may be all zeros (the last step). Both outputs are overwritten, not accumulated.
// Threads, launch, preconditions: as lstm_cell_fwd_f32 (grid-stride over t = b*H + j).
// Memory: reads 32 bytes per unit (4 act, c_prev, c, dh, dc), writes 20 (4 dgates,
//   dc_prev).
// Order: no accumulation; the per-unit order above is the whole contract.
// TWIN: src/ops/lstm/cpu.rs::lstm_cell_bwd_f32
extern "C" __global__ void lstm_cell_bwd_f32(const ss_lstm_cell_params p, const float* __restrict__ dh,
                                             const float* __restrict__ dc, const float* __restrict__ act,
                                             const float* __restrict__ c_prev, const float* __restrict__ c,
                                             float* __restrict__ dgates, float* __restrict__ dc_prev) {
    const uint64_t H = p.hidden;
    const uint64_t n = p.batch * H;
    const bool narrow = n <= 0xffffffffull;
    SS_GRID_STRIDE_LOOP(t, n) {
        uint64_t b, j;
        ss_lstm_unit(t, H, narrow, &b, &j);
        const uint64_t g0 = b * 4u * H + j;
        const float i = act[g0];
        const float f = act[g0 + H];
        const float g = act[g0 + 2u * H];
        const float o = act[g0 + 3u * H];
        const float dht = dh[t];
        const float tc = ss_tanh(c[t]);
        const float dO = dht * tc;
        const float dct = fmaf(dht * o, fmaf(-tc, tc, 1.0f), dc[t]);
        const float di = dct * g;
        const float df = dct * c_prev[t];
        const float dg = dct * i;
        dc_prev[t] = ss_canonical_nan(dct * f);
        dgates[g0] = ss_canonical_nan(di * fmaf(-i, i, i));
        dgates[g0 + H] = ss_canonical_nan(df * fmaf(-f, f, f));
        dgates[g0 + 2u * H] = ss_canonical_nan(dg * fmaf(-g, g, 1.0f));
        dgates[g0 + 3u * H] = ss_canonical_nan(dO * fmaf(-o, o, o));
    }
}
