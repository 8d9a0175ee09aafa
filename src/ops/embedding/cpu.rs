//! CPU twin of `kernels/embedding.cu`.
//!
//! Forward: a row copy per position, positions spread over rayon.
//! Backward: the same keys as the GPU (`ids[t] << 32 | t`), sorted (they are
//! unique, so the sort's algorithm does not matter), cut into one segment per
//! token; rayon spreads the weight *rows* over threads and each row adds its
//! segment's rows of `dy` in increasing position order. One `(v, c)` chain is
//! never split, so the bits do not depend on the pool size.

use crate::device::abi::{
    SS_STATUS_BAD_ID, SS_STATUS_BAD_ID_COUNT, SS_STATUS_BAD_ID_FIRST, SS_STATUS_FLAGS,
};
use crate::numerics::canonical_nan;
use rayon::prelude::*;

/// Positions per rayon task in the forward copy. Not part of the numerics.
const POSITIONS_PER_TASK: usize = 256;
/// Least weight rows per rayon task in the backward pass (most rows of a large
/// vocabulary are untouched and cost almost nothing). Not part of the numerics.
const ROWS_PER_TASK: usize = 64;

/// TWIN: kernels/embedding.cu::embedding_check_ids_u32. For every position
/// `t` with `ids[t] >= v`, into the status block `status`: the bad-id bit, the
/// first bad position (as `u32::MAX - t`, max-combined) and the count. Integer
/// OR, max and sum: the same on any split.
pub fn embedding_check_ids_u32(ids: &[u32], v: usize, status: &mut [u32]) {
    let (first, count) = ids
        .par_iter()
        .enumerate()
        .filter(|(_, &id)| id as usize >= v)
        .map(|(t, _)| (u32::MAX - t as u32, 1u32))
        .reduce(|| (0, 0), |a, b| (a.0.max(b.0), a.1 + b.1));
    if count > 0 {
        status[SS_STATUS_FLAGS as usize] |= SS_STATUS_BAD_ID;
        let w = &mut status[SS_STATUS_BAD_ID_FIRST as usize];
        *w = (*w).max(first);
        status[SS_STATUS_BAD_ID_COUNT as usize] += count;
    }
}

/// TWIN: kernels/embedding.cu::embedding_fwd_f32. `out[t*e..][..e] =
/// w[ids[t]*e..][..e]`. Precondition (checked by the caller): every id `< V`.
pub fn embedding_fwd_f32(w: &[f32], e: usize, ids: &[u32], out: &mut [f32]) {
    if e == 0 {
        return;
    }
    out.par_chunks_mut(e * POSITIONS_PER_TASK)
        .zip(ids.par_chunks(POSITIONS_PER_TASK))
        .for_each(|(out, ids)| {
            for (row, &id) in out.chunks_exact_mut(e).zip(ids) {
                let id = id as usize;
                row.copy_from_slice(&w[id * e..(id + 1) * e]);
            }
        });
}

/// TWIN: kernels/embedding.cu::embedding_sort_keys_init_u64. The keys of the
/// `N` positions (no padding: the CPU sort needs none).
pub fn embedding_sort_keys_init_u64(ids: &[u32]) -> Vec<u64> {
    ids.par_iter()
        .enumerate()
        .map(|(t, &id)| (u64::from(id) << 32) | t as u64)
        .collect()
}

/// TWIN: kernels/embedding.cu::embedding_sort_keys_global_u64 and
/// embedding_sort_keys_local_u64 (the GPU's bitonic network). The keys are
/// unique, so this sort and the network give the same ascending order.
pub fn embedding_sort_keys(keys: &mut [u64]) {
    keys.par_sort_unstable();
}

/// TWIN: kernels/embedding.cu::embedding_bwd_f32. `keys` sorted ascending
/// (token, then position); `dw[v*e + c]` accumulates `dy[t*e + c]` over the
/// segment of token `v` in increasing `t`. Precondition: every token `< V`.
pub fn embedding_bwd_f32(keys: &[u64], dy: &[f32], e: usize, dw: &mut [f32]) {
    if e == 0 || keys.is_empty() {
        return;
    }
    let v = dw.len() / e;
    // segment[v] = the range of sorted indices holding token v (empty if none).
    let mut segment = vec![(0usize, 0usize); v];
    let mut start = 0;
    for i in 1..=keys.len() {
        if i == keys.len() || keys[i] >> 32 != keys[start] >> 32 {
            segment[(keys[start] >> 32) as usize] = (start, i);
            start = i;
        }
    }
    dw.par_chunks_mut(e)
        .zip(segment.par_iter())
        .with_min_len(ROWS_PER_TASK)
        .for_each(|(row, &(s0, s1))| {
            if s1 > s0 {
                accumulate_row_widest(row, &keys[s0..s1], dy);
            }
        });
}

/// One weight row's sum over its token's segment of sorted `keys`. For
/// each column the adds run over the segment in order: the loop over
/// positions is outside so that the column loop vectorises; every `(v, c)`
/// still sees `t` ascending. The row is then stored with one NaN pattern,
/// as the kernel does.
#[inline(always)]
fn accumulate_row(row: &mut [f32], keys: &[u64], dy: &[f32]) {
    let e = row.len();
    for &key in keys {
        let t = (key & 0xffff_ffff) as usize;
        for (acc, &g) in row.iter_mut().zip(&dy[t * e..(t + 1) * e]) {
            *acc += g;
        }
    }
    for acc in row.iter_mut() {
        *acc = canonical_nan(*acc);
    }
}

crate::simd_dispatch! {
    /// [`accumulate_row`] in the widest build the CPU allows.
    fn accumulate_row_widest(row: &mut [f32], keys: &[u64], dy: &[f32]) => accumulate_row
}
