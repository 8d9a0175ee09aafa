// Dropout masks as device functions (DESIGN.md rule 5), shared by
// kernels/dropout.cu and any kernel that must regenerate a dropout mask
// (the LSTM family's fused variational dropout, say).
// TWIN: src/ops/dropout/cpu.rs (mask_words, keeps, apply).
//
// Mask entry m keeps iff word (m % 4) of philox4x32_10((m / 4, 0, stream, step), key)
// is >= threshold, compared as 64-bit integers so that threshold = 2^32 (p = 1)
// drops every entry and threshold = 0 (p = 0) keeps every entry. The block index
// of every mask starts at 0; stream ids separate call sites.
#pragma once
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/philox.cuh"

// The four words of mask block `block` (mask entries 4*block .. 4*block+3).
SS_DEVICE void ss_dropout_block(const ss_philox_key key, uint32_t stream, uint32_t step,
                                uint64_t block, uint32_t r[4]) {
    ss_philox_counter c;
    c.block_lo = (uint32_t)block;
    c.block_hi = (uint32_t)(block >> 32);
    c.stream = stream;
    c.step = step;
    ss_philox4x32_10(c, key, r);
}

// Whether a mask word keeps its entry.
SS_DEVICE bool ss_dropout_word_keeps(uint32_t word, uint64_t threshold) {
    return (uint64_t)word >= threshold;
}

// Whether mask entry `index` is kept: one Philox block per call. Kernels that
// visit four consecutive entries should call ss_dropout_block once instead.
SS_DEVICE bool ss_dropout_keep(const ss_philox_key key, uint32_t stream, uint32_t step,
                               uint64_t threshold, uint64_t index) {
    uint32_t r[4];
    ss_dropout_block(key, stream, step, index >> 2, r);
    const uint32_t w = (uint32_t)(index & 3u);
    // A select chain rather than r[w], so r stays in registers on the GPU.
    const uint32_t word = w == 0u ? r[0] : w == 1u ? r[1] : w == 2u ? r[2] : r[3];
    return ss_dropout_word_keeps(word, threshold);
}

// The value of one element: x * scale (one f32 rounding) if kept, else +0.0f.
// A NaN product is stored as the canonical NaN (the GPU would write 0x7fffffff,
// x86 the input's payload).
SS_DEVICE float ss_dropout_apply(float x, bool keep, float scale) {
    return keep ? ss_canonical_nan(x * scale) : 0.0f;
}
