//! CPU twin of `kernels/dropout.cu`, on the Philox twin's bulk fill.
//!
//! Same rule as `kernels/common/dropout.cuh`: mask entry `m` keeps iff word
//! `m % 4` of Philox block `m / 4` (stream and step in counter words 2 and 3)
//! is `>= threshold` as a 64-bit integer, and a kept element is `x * scale`
//! (one f32 multiply), a dropped one `+0.0`. The kernels regenerate each block
//! where they need it; here the words of a run of consecutive blocks are filled
//! at once ([`fill_words`](crate::ops::philox::cpu::fill_words), 16 blocks per
//! SIMD step) and then applied. Every rayon task
//! addresses its blocks by index, so the pool size cannot change the bits.

use crate::device::abi::ss_dropout_mask_params;
use crate::numerics::canonical_nan;
use crate::ops::philox::PhiloxCounter;
use rayon::prelude::*;

/// Elements (or mask entries) per rayon task: a multiple of 4, so each task
/// starts on a Philox block. Not part of the numerics.
const ELEMS_PER_TASK: usize = 64 * 1024;
/// Mask words generated per fill inside a task (a stack buffer of 16 KiB).
const WORDS_PER_FILL: usize = 4 * 1024;

/// Whether a mask word keeps its entry (the kernels' `ss_dropout_word_keeps`).
#[inline]
pub fn word_keeps(word: u32, threshold: u64) -> bool {
    u64::from(word) >= threshold
}

/// One element (the kernels' `ss_dropout_apply`): `x * scale` if kept (a NaN
/// product as the canonical NaN), else `+0.0`.
#[inline]
pub fn apply(x: f32, keep: bool, scale: f32) -> f32 {
    if keep {
        canonical_nan(x * scale)
    } else {
        0.0
    }
}

/// `out[i] = keep(words[i]) ? input[i] * scale : +0.0` over one run: the same
/// values as [`apply`]`(x, `[`word_keeps`]`(w, threshold), scale)`, written
/// without a branch so that it vectorizes (a 50% mask defeats branch
/// prediction): a threshold below 2^32 is compared as a u32, the product's bits
/// (NaN canonical) are ANDed with all-ones (kept) or zero (dropped: +0.0); `threshold = 2^32`
/// (p = 1) keeps nothing.
#[inline(always)]
fn apply_words(m: &ss_dropout_mask_params, words: &[u32], input: &[f32], out: &mut [f32]) {
    let Ok(t) = u32::try_from(m.threshold) else {
        out.fill(0.0);
        return;
    };
    for ((o, &x), &w) in out.iter_mut().zip(input).zip(words) {
        let keep_bits = u32::from(w >= t).wrapping_neg();
        *o = f32::from_bits(canonical_nan(x * m.scale).to_bits() & keep_bits);
    }
}

crate::simd_dispatch! {
    /// [`apply_words`] in the widest build the CPU allows.
    fn apply_words_widest(m: &ss_dropout_mask_params, words: &[u32], input: &[f32], out: &mut [f32]) => apply_words
}

/// The mask words of entries `4 * first_block ..` into `words` (the Philox
/// stream of `(key, (first_block, stream, step))`, word by word).
fn fill_words(m: &ss_dropout_mask_params, first_block: u64, words: &mut [u32]) {
    let counter = PhiloxCounter::new(first_block, m.stream, m.step);
    crate::ops::philox::cpu::fill_words([m.key.lo, m.key.hi], counter.as_u128(), words);
}

/// The mask words of entries `0..n` (word `m` decides entry `m`).
pub fn mask_words(m: &ss_dropout_mask_params, n: usize) -> Vec<u32> {
    let mut words = vec![0u32; n];
    words
        .par_chunks_mut(ELEMS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| fill_words(m, (task * ELEMS_PER_TASK / 4) as u64, chunk));
    words
}

/// `out[e] = keep(e) ? input[e] * scale : 0` for the mask entries `e` of the
/// elementwise variant (the kernels' `ss_dropout_elementwise`).
fn elementwise(m: &ss_dropout_mask_params, input: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(ELEMS_PER_TASK)
        .zip(input.par_chunks(ELEMS_PER_TASK))
        .enumerate()
        .for_each(|(task, (out, input))| {
            let mut words = [0u32; WORDS_PER_FILL];
            for (sub, (out, input)) in out
                .chunks_mut(WORDS_PER_FILL)
                .zip(input.chunks(WORDS_PER_FILL))
                .enumerate()
            {
                let first = task * ELEMS_PER_TASK + sub * WORDS_PER_FILL;
                let words = &mut words[..out.len()];
                fill_words(m, (first / 4) as u64, words);
                apply_words_widest(m, words, input, out);
            }
        });
}

/// TWIN: kernels/dropout.cu::dropout_fwd_f32. `x` and `out` hold N floats.
pub fn dropout_fwd_f32(m: &ss_dropout_mask_params, x: &[f32], out: &mut [f32]) {
    elementwise(m, x, out);
}

/// TWIN: kernels/dropout.cu::dropout_bwd_f32. `dy` and `dx` hold N floats.
pub fn dropout_bwd_f32(m: &ss_dropout_mask_params, dy: &[f32], dx: &mut [f32]) {
    elementwise(m, dy, dx);
}

/// `out[t][b][f] = keep(b*F + f) ? input[t][b][f] * scale : 0`. The B*F mask
/// words are generated once and applied to every time step (the kernels
/// regenerate block `j` for each `(t, j)`; the words are the same).
fn variational(m: &ss_dropout_mask_params, row: usize, input: &[f32], out: &mut [f32]) {
    if row == 0 {
        return;
    }
    let words = mask_words(m, row);
    let rows_per_task = (ELEMS_PER_TASK / row).max(1);
    out.par_chunks_mut(row * rows_per_task)
        .zip(input.par_chunks(row * rows_per_task))
        .for_each(|(out, input)| {
            for (out, input) in out.chunks_mut(row).zip(input.chunks(row)) {
                apply_words_widest(m, &words, input, out);
            }
        });
}

/// TWIN: kernels/dropout.cu::dropout_variational_fwd_f32. `x`, `out`: T*B*F
/// floats, time-major; `row` = B*F.
pub fn dropout_variational_fwd_f32(
    m: &ss_dropout_mask_params,
    row: usize,
    x: &[f32],
    out: &mut [f32],
) {
    variational(m, row, x, out);
}

/// TWIN: kernels/dropout.cu::dropout_variational_bwd_f32.
pub fn dropout_variational_bwd_f32(
    m: &ss_dropout_mask_params,
    row: usize,
    dy: &[f32],
    dx: &mut [f32],
) {
    variational(m, row, dy, dx);
}

/// `out[v][e] = keep(v) ? input[v][e] * scale : 0`: mask entry `v` per row of
/// width `e` (the kernels' `ss_dropout_embedding`).
fn embedding(m: &ss_dropout_mask_params, rows: usize, e: usize, input: &[f32], out: &mut [f32]) {
    if e == 0 {
        return;
    }
    let words = mask_words(m, rows);
    let rows_per_task = (ELEMS_PER_TASK / e).max(1);
    out.par_chunks_mut(e * rows_per_task)
        .zip(input.par_chunks(e * rows_per_task))
        .enumerate()
        .for_each(|(task, (out, input))| {
            let first_row = task * rows_per_task;
            for (v, (out, input)) in out.chunks_mut(e).zip(input.chunks(e)).enumerate() {
                let keep = word_keeps(words[first_row + v], m.threshold);
                for (o, &x) in out.iter_mut().zip(input) {
                    *o = apply(x, keep, m.scale);
                }
            }
        });
}

/// TWIN: kernels/dropout.cu::dropout_embedding_fwd_f32. `w`, `out`: V*E floats.
pub fn dropout_embedding_fwd_f32(
    m: &ss_dropout_mask_params,
    (v, e): (usize, usize),
    w: &[f32],
    out: &mut [f32],
) {
    embedding(m, v, e, w, out);
}

/// TWIN: kernels/dropout.cu::dropout_embedding_bwd_f32.
pub fn dropout_embedding_bwd_f32(
    m: &ss_dropout_mask_params,
    (v, e): (usize, usize),
    dout: &[f32],
    dw: &mut [f32],
) {
    embedding(m, v, e, dout, dw);
}
