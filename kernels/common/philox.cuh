// Philox4x32-10 as a device function (Salmon et al., SC'11; the Random123
// definition). TWIN: the `rand_philox` crate's `philox4x32_10`, which
// src/ops/philox/cpu.rs uses; tests/philox.rs checks both against Random123's
// known-answer vectors and against each other bit for bit.
//
// Integer-only: no floating point, so it is bit-exact on every device.
#pragma once
#include "common/prelude.cuh"
#include "common/abi.h"

// Multiply two 32-bit words into the high and low halves of the 64-bit product.
SS_DEVICE void ss_mulhilo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
    const uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

// One Philox block: 10 rounds of the S-box with a Weyl-sequence key schedule.
// Constants are Random123's PHILOX_M4x32_{0,1} and PHILOX_W32_{0,1}.
SS_DEVICE void ss_philox4x32_10(const ss_philox_counter ctr, const ss_philox_key key,
                                uint32_t out[4]) {
    uint32_t c0 = ctr.block_lo, c1 = ctr.block_hi, c2 = ctr.stream, c3 = ctr.step;
    uint32_t k0 = key.lo, k1 = key.hi;
    for (int round = 0; round < (int)SS_PHILOX_ROUNDS; ++round) {
        if (round > 0) {  // the key is bumped before every round but the first
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint32_t hi0, lo0, hi1, lo1;
        ss_mulhilo32(0xD2511F53u, c0, &hi0, &lo0);
        ss_mulhilo32(0xCD9E8D57u, c2, &hi1, &lo1);
        const uint32_t n0 = hi1 ^ c1 ^ k0;
        const uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// The counter of block `base + i`: a 64-bit add on the block index; stream and
// step are never touched (the host refuses ranges that would wrap).
SS_DEVICE ss_philox_counter ss_philox_counter_at(const ss_philox_counter base, uint64_t i) {
    const uint64_t b = (((uint64_t)base.block_hi << 32) | base.block_lo) + i;
    ss_philox_counter c = base;
    c.block_lo = (uint32_t)b;
    c.block_hi = (uint32_t)(b >> 32);
    return c;
}
