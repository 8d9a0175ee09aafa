// Raw Philox4x32-10 blocks: the generator itself, exposed so that the promise
// "every draw is a pure function of (key, counter)" can be checked against the
// CPU twin on any device. The dropout family uses common/philox.cuh directly.
#include "common/prelude.cuh"
#include "common/abi.h"
#include "common/philox.cuh"

// philox_blocks_u32: out[4*i + w] = word w of philox4x32_10(base + i, key),
//   for i in 0..n_blocks (block index added as a 64-bit integer).
// Threads: one block of output per thread per iteration, grid-stride loop, so
//   any grid/block shape gives the same output (each element depends on i only).
// Launch: 1-D, block = 256 (any size works), grid = min(ceil(n/256), 65535).
// Memory: writes 16 bytes per block, reads nothing.
// TWIN: src/ops/philox/cpu.rs::philox_blocks_u32
extern "C" __global__ void philox_blocks_u32(const ss_philox_blocks_params p, uint32_t* out) {
    SS_GRID_STRIDE_LOOP(i, p.n_blocks) {
        uint32_t r[4];
        ss_philox4x32_10(ss_philox_counter_at(p.base, i), p.key, r);
        out[4 * i + 0] = r[0];
        out[4 * i + 1] = r[1];
        out[4 * i + 2] = r[2];
        out[4 * i + 3] = r[3];
    }
}
