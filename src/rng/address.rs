//! The address of a Philox draw (DESIGN.md rule 5): the key (the run's seed)
//! and the 128-bit counter `(block_lo, block_hi, stream, step)`. A leaf module:
//! the RNG state above it and every kernel family below it name draws with
//! these two types, which are the kernels' own ABI structs.

use crate::device::abi::{ss_philox_counter, ss_philox_key};

/// The Philox key: DESIGN.md's `(seed_lo, seed_hi)`.
pub type PhiloxKey = ss_philox_key;
/// The Philox counter: `(block_lo, block_hi, stream, step)`.
pub type PhiloxCounter = ss_philox_counter;

impl PhiloxKey {
    /// The key of a 64-bit seed, used verbatim (no mixing), so that cuRAND's
    /// `curand_init(seed, ...)` addresses the same stream.
    pub fn from_seed(seed: u64) -> Self {
        PhiloxKey {
            lo: seed as u32,
            hi: (seed >> 32) as u32,
        }
    }
}

impl PhiloxCounter {
    /// Block `block` of stream `stream` at step `step`.
    pub fn new(block: u64, stream: u32, step: u32) -> Self {
        PhiloxCounter {
            block_lo: block as u32,
            block_hi: (block >> 32) as u32,
            stream,
            step,
        }
    }

    /// The 64-bit block index.
    pub fn block(&self) -> u64 {
        (u64::from(self.block_hi) << 32) | u64::from(self.block_lo)
    }

    /// The counter as one little-endian 128-bit integer (`rand_philox`'s form).
    pub fn as_u128(&self) -> u128 {
        u128::from(self.block()) | (u128::from(self.stream) << 64) | (u128::from(self.step) << 96)
    }
}
