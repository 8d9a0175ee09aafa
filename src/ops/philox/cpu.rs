//! CPU twin of `kernels/philox.cu`: Philox4x32-10 (Random123's algorithm;
//! single blocks from the `rand_philox` crate, bulk runs here).
//!
//! Bulk runs compute 16 blocks at once, one lane each, in the widest SIMD
//! build the CPU allows ([`crate::simd_dispatch`]): the crate's own bulk fill
//! is compiled for the baseline x86-64 (two 32 x 32 -> 64 products per SSE2
//! multiply) and kept out of line, so no dispatch can widen it; with AVX-512F
//! one multiply does eight. Each lane is the block function of its own
//! counter, so the words are the crate's (`tests/philox.rs` checks the
//! Random123 known answers and the crate's stream).
//!
//! Chunks of blocks are spread over rayon; each chunk is addressed by its own
//! counter, so the thread count cannot change the output.

use super::{PhiloxCounter, PhiloxKey};
use rayon::prelude::*;

/// Blocks per rayon task: large enough to amortise scheduling, small enough
/// to balance on many cores. Not part of the numerics (any value gives the same bits).
const BLOCKS_PER_TASK: usize = 16 * 1024;

/// Blocks computed together, one per SIMD lane.
const LANES: usize = 16;

/// Random123's round multipliers and key increments (PHILOX_M4x32_0/1,
/// PHILOX_W32_0/1).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// The ten rounds on `LANES` blocks held as four words of lanes: `x[w][l]`
/// is word `w` of block `l` (its counter on entry, its output on exit).
#[inline(always)]
fn ten_rounds(x: &mut [[u32; LANES]; 4], key: [u32; 2]) {
    let (mut k0, mut k1) = (key[0], key[1]);
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let [a, b, c, d] = *x;
        for l in 0..LANES {
            let pa = u64::from(a[l]) * u64::from(M0);
            let pc = u64::from(c[l]) * u64::from(M1);
            x[0][l] = (pc >> 32) as u32 ^ b[l] ^ k0;
            x[1][l] = c[l].wrapping_mul(M1);
            x[2][l] = (pa >> 32) as u32 ^ d[l] ^ k1;
            x[3][l] = a[l].wrapping_mul(M0);
        }
    }
}

/// The counter `c` as Philox's four words, least significant first.
fn words(c: u128) -> [u32; 4] {
    [
        c as u32,
        (c >> 32) as u32,
        (c >> 64) as u32,
        (c >> 96) as u32,
    ]
}

/// The words of blocks `first, first + 1, ...` (counters modulo 2^128) into
/// `out`, four per block; a last partial block gives its first words.
#[inline(always)]
fn fill_body(key: [u32; 2], first: u128, out: &mut [u32]) {
    let mut ctr = first;
    let mut groups = out.chunks_exact_mut(4 * LANES);
    for g in &mut groups {
        let [w0, w1, w2, w3] = words(ctr);
        if w0.checked_add(LANES as u32 - 1).is_some() {
            // The group's counters differ in word 0 only.
            let mut x = [[0; LANES], [w1; LANES], [w2; LANES], [w3; LANES]];
            for (l, w) in x[0].iter_mut().enumerate() {
                *w = w0 + l as u32;
            }
            ten_rounds(&mut x, key);
            // Lanes to blocks: a 4 x 16 transpose the compiler does with
            // shuffles.
            for (i, o) in g.iter_mut().enumerate() {
                *o = x[i % 4][i / 4];
            }
        } else {
            for (l, block) in g.chunks_exact_mut(4).enumerate() {
                block.copy_from_slice(&one(key, ctr.wrapping_add(l as u128)));
            }
        }
        ctr = ctr.wrapping_add(LANES as u128);
    }
    for (l, block) in groups.into_remainder().chunks_mut(4).enumerate() {
        let w = one(key, ctr.wrapping_add(l as u128));
        block.copy_from_slice(&w[..block.len()]);
    }
}

/// One block through the crate.
fn one(key: [u32; 2], ctr: u128) -> [u32; 4] {
    rand_philox::philox4x32_10(words(ctr), key)
}

crate::simd_dispatch! {
    /// The Philox stream of `key` from block `first` into `out`: the words of
    /// blocks `first, first + 1, ...` in order (what `rand_philox`'s
    /// `Philox::new(key, first).fill_u32(out)` writes), in the widest build
    /// the CPU allows.
    pub fn fill_words(key: [u32; 2], first: u128, out: &mut [u32]) => fill_body
}

/// TWIN: kernels/philox.cu::philox_blocks_u32. `out.len() / 4` blocks from `base`.
pub fn philox_blocks_u32(key: PhiloxKey, base: PhiloxCounter, out: &mut [u32]) {
    let key = [key.lo, key.hi];
    let base = base.as_u128();
    out.par_chunks_mut(4 * BLOCKS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| {
            // The caller guarantees the block index never wraps, so this add
            // stays inside the 64 block-index bits.
            fill_words(key, base + (task * BLOCKS_PER_TASK) as u128, chunk);
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
