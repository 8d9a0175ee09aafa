//! CPU twin of `kernels/philox.cu`, on the `rand_philox` crate.
//! Chunks of blocks are spread over rayon; each chunk is addressed by its own
//! counter, so the thread count cannot change the output.

use super::{PhiloxCounter, PhiloxKey};
use rand_philox::Philox;
use rayon::prelude::*;

/// Blocks per rayon task: large enough to amortise scheduling, small enough
/// to balance on many cores. Not part of the numerics (any value gives the same bits).
const BLOCKS_PER_TASK: usize = 16 * 1024;

/// TWIN: kernels/philox.cu::philox_blocks_u32. `out.len() / 4` blocks from `base`.
pub fn philox_blocks_u32(key: PhiloxKey, base: PhiloxCounter, out: &mut [u32]) {
    let key = [key.lo, key.hi];
    let base = base.as_u128();
    out.par_chunks_mut(4 * BLOCKS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| {
            // The caller guarantees the block index never wraps, so this add
            // stays inside the 64 block-index bits.
            let first = base + (task * BLOCKS_PER_TASK) as u128;
            Philox::new(key, first).fill_u32(chunk);
        });
}

/// One block, for tests and host-side draws.
pub fn philox_block(key: PhiloxKey, counter: PhiloxCounter) -> [u32; 4] {
    rand_philox::philox4x32_10(
        [
            counter.block_lo,
            counter.block_hi,
            counter.stream,
            counter.step,
        ],
        [key.lo, key.hi],
    )
}
