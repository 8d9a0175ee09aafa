// Dropout on Philox masks (DESIGN.md rule 5): standard (elementwise, also used
// as DropConnect on a weight matrix), variational/locked (one mask per (batch,
// feature), shared along time) and embedding dropout (whole rows). Forward
// writes only the output; backward regenerates the mask from (key, counter).
//
// Letters: N elements; T time steps, B batch, F features (x[t][b][f], f
// fastest); V rows of width E (W[v][e], e fastest).
//
// Mask entry m keeps iff word (m % 4) of philox4x32_10((m / 4, 0, stream, step),
// key) >= threshold (64-bit compare); see common/dropout.cuh. Every element:
//   out = keep ? x * scale : +0.0f      (one f32 multiply, no other arithmetic)
// so no accumulation order exists; the mask depends on the mask index alone.
// Backward is the same map applied to dy: dx = keep ? dy * scale : +0.0f.
//
// Launch (all kernels): 1-D, any block size (default 256), any grid (default
// min(ceil(items / 256), 65535)); grid-stride loops over "items" of up to four
// elements that share one Philox block, so every shape gives the same bits.
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/philox.cuh"
#include "common/dropout.cuh"

// Elements base + w (w = 0..3, those below `end`) of `in` to `out`, each kept
// iff word w of r keeps it.
SS_DEVICE void ss_dropout_store4(const ss_dropout_mask_params m, const uint32_t r[4],
                                 const float* __restrict__ in, float* __restrict__ out,
                                 uint64_t base, uint64_t end) {
    if (base + 0 < end) out[base + 0] = ss_dropout_apply(in[base + 0], ss_dropout_word_keeps(r[0], m.threshold), m.scale);
    if (base + 1 < end) out[base + 1] = ss_dropout_apply(in[base + 1], ss_dropout_word_keeps(r[1], m.threshold), m.scale);
    if (base + 2 < end) out[base + 2] = ss_dropout_apply(in[base + 2], ss_dropout_word_keeps(r[2], m.threshold), m.scale);
    if (base + 3 < end) out[base + 3] = ss_dropout_apply(in[base + 3], ss_dropout_word_keeps(r[3], m.threshold), m.scale);
}

// Item i = mask block i = elements 4i .. min(4i+4, N): one Philox block per thread
// per iteration, its four words used for four consecutive elements.
SS_DEVICE void ss_dropout_elementwise(const ss_dropout_params p, const float* __restrict__ in,
                                      float* __restrict__ out) {
    const uint64_t items = p.n / 4 + (p.n % 4 != 0 ? 1 : 0);
    SS_GRID_STRIDE_LOOP(i, items) {
        uint32_t r[4];
        ss_dropout_block(p.mask.key, p.mask.stream, p.mask.step, i, r);
        ss_dropout_store4(p.mask, r, in, out, 4 * i, p.n);
    }
}

// dropout_fwd_f32: out[e] = keep(e) ? x[e] * scale : 0, e in 0..N. Also
//   DropConnect (AWD-LSTM weight-drop): x is the weight matrix, flattened.
// Threads: item i = elements 4i..4i+3 (mask block i), grid-stride over
//   ceil(N/4) items.
// Launch: 1-D, any shape; preconditions: x, out hold N floats, do not overlap.
// Memory: reads 4N bytes, writes 4N bytes.
// Order: none (one multiply per element).
// TWIN: src/ops/dropout/cpu.rs::dropout_fwd_f32
extern "C" __global__ void dropout_fwd_f32(const ss_dropout_params p, const float* __restrict__ x,
                                           float* __restrict__ out) {
    ss_dropout_elementwise(p, x, out);
}

// dropout_bwd_f32: dx[e] = keep(e) ? dy[e] * scale : 0, the mask regenerated
//   from (key, stream, step) exactly as in dropout_fwd_f32.
// Threads, launch, memory, order: as dropout_fwd_f32.
// TWIN: src/ops/dropout/cpu.rs::dropout_bwd_f32
extern "C" __global__ void dropout_bwd_f32(const ss_dropout_params p, const float* __restrict__ dy,
                                           float* __restrict__ dx) {
    ss_dropout_elementwise(p, dy, dx);
}

// Item k = (t, j), t = k / G, j = k % G, G = ceil(B*F / 4): mask block j, i.e.
// mask entries 4j .. min(4j+4, B*F), applied to x[t][.] at those offsets.
SS_DEVICE void ss_dropout_variational(const ss_dropout_variational_params p,
                                      const float* __restrict__ in, float* __restrict__ out) {
    const uint64_t row = p.b * p.f;  // B*F: one time step
    const uint64_t groups = row / 4 + (row % 4 != 0 ? 1 : 0);
    const uint64_t items = p.t * groups;
    SS_GRID_STRIDE_LOOP(k, items) {
        const uint64_t t = k / groups;
        const uint64_t j = k - t * groups;
        uint32_t r[4];
        ss_dropout_block(p.mask.key, p.mask.stream, p.mask.step, j, r);
        ss_dropout_store4(p.mask, r, in, out, t * row + 4 * j, t * row + row);
    }
}

// dropout_variational_fwd_f32: out[t][b][f] = keep(b*F + f) ? x[t][b][f] * scale : 0
//   (locked dropout: one mask per (b, f), the same at every t).
// Threads: item k = (t = k / G, j = k % G), G = ceil(B*F/4): mask block j applied
//   to x[t][4j .. 4j+3] (flattened b*F + f), grid-stride over T*G items.
// Launch: 1-D, any shape; preconditions: x, out hold T*B*F floats, no overlap.
// Memory: reads 4TBF bytes, writes 4TBF bytes.
// Order: none (one multiply per element).
// TWIN: src/ops/dropout/cpu.rs::dropout_variational_fwd_f32
extern "C" __global__ void dropout_variational_fwd_f32(const ss_dropout_variational_params p,
                                                       const float* __restrict__ x,
                                                       float* __restrict__ out) {
    ss_dropout_variational(p, x, out);
}

// dropout_variational_bwd_f32: dx[t][b][f] = keep(b*F + f) ? dy[t][b][f] * scale : 0.
// Threads, launch, memory, order: as dropout_variational_fwd_f32.
// TWIN: src/ops/dropout/cpu.rs::dropout_variational_bwd_f32
extern "C" __global__ void dropout_variational_bwd_f32(const ss_dropout_variational_params p,
                                                       const float* __restrict__ dy,
                                                       float* __restrict__ dx) {
    ss_dropout_variational(p, dy, dx);
}

// Item k = (v, g), v = k / G, g = k % G, G = ceil(E / 4): elements v*E + 4g ..
// min(v*E + 4g + 4, v*E + E), all under mask entry v.
SS_DEVICE void ss_dropout_embedding(const ss_dropout_embedding_params p,
                                    const float* __restrict__ in, float* __restrict__ out) {
    const uint64_t groups = p.e / 4 + (p.e % 4 != 0 ? 1 : 0);
    const uint64_t items = p.v * groups;
    SS_GRID_STRIDE_LOOP(k, items) {
        const uint64_t v = k / groups;
        const uint64_t g = k - v * groups;
        const bool keep =
            ss_dropout_keep(p.mask.key, p.mask.stream, p.mask.step, p.mask.threshold, v);
        const uint64_t end = v * p.e + p.e;
        for (uint64_t e = v * p.e + 4 * g; e < end && e < v * p.e + 4 * g + 4; ++e) {
            out[e] = ss_dropout_apply(in[e], keep, p.mask.scale);
        }
    }
}

// dropout_embedding_fwd_f32: out[v][e] = keep(v) ? w[v][e] * scale : 0 (embedding
//   dropout: whole rows of the embedding matrix are dropped).
// Threads: item k = (v = k / G, g = k % G), G = ceil(E/4): elements w[v][4g..4g+3],
//   one Philox block (for mask entry v) per item, grid-stride over V*G items.
// Launch: 1-D, any shape; preconditions: w, out hold V*E floats, no overlap.
// Memory: reads 4VE bytes, writes 4VE bytes.
// Order: none (one multiply per element).
// TWIN: src/ops/dropout/cpu.rs::dropout_embedding_fwd_f32
extern "C" __global__ void dropout_embedding_fwd_f32(const ss_dropout_embedding_params p,
                                                     const float* __restrict__ w,
                                                     float* __restrict__ out) {
    ss_dropout_embedding(p, w, out);
}

// dropout_embedding_bwd_f32: dw[v][e] = keep(v) ? dout[v][e] * scale : 0, the
//   gradient of the embedding weights through the row mask.
// Threads, launch, memory, order: as dropout_embedding_fwd_f32.
// TWIN: src/ops/dropout/cpu.rs::dropout_embedding_bwd_f32
extern "C" __global__ void dropout_embedding_bwd_f32(const ss_dropout_embedding_params p,
                                                     const float* __restrict__ dout,
                                                     float* __restrict__ dw) {
    ss_dropout_embedding(p, dout, dw);
}
