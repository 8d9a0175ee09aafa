//! CPU twin of `kernels/reduce.cu` and `kernels/common/reduce.cuh`: the
//! canonical reduction (DESIGN.md rule 3, `docs/numerics/reduce.md`).
//!
//! The GPU's 256 lanes are a `[f32; 256]` array updated in a loop the compiler
//! vectorises (one SIMD register holds 4/8/16 lanes); chunks of long inputs
//! and rows go to rayon tasks. A chunk's value depends on its elements only,
//! and the levels are combined in index order, so the pool size never changes
//! the bits.
//!
//! The `canonical_*` functions are the building blocks other families' CPU
//! twins call (softmax rows, pooling).

use super::ReduceOp;
use crate::device::with_fma;
use crate::numerics::{canonical_nan, is_nan, CANONICAL_NAN_BITS};
use rayon::prelude::*;

/// Lanes per chunk (`SS_REDUCE_LANES`).
pub const LANES: usize = crate::device::abi::SS_REDUCE_LANES as usize;
/// Elements per chunk (`SS_REDUCE_CHUNK`).
pub const CHUNK: usize = crate::device::abi::SS_REDUCE_CHUNK as usize;

const _: () = assert!(CHUNK.is_multiple_of(LANES) && LANES.is_power_of_two());

/// The reduction's max: canonical NaN if either operand is NaN, else
/// `if b > a { b } else { a }` (ties, including `max2(-0.0, 0.0)`, keep `a`).
/// TWIN: reduce.cuh::ss_reduce_max2
#[inline(always)]
pub fn max2(a: f32, b: f32) -> f32 {
    if is_nan(a) | is_nan(b) {
        f32::from_bits(CANONICAL_NAN_BITS)
    } else if b > a {
        b
    } else {
        a
    }
}

/// The lanes' start value. TWIN: reduce.cuh::ss_reduce_*_op::identity
pub fn identity(op: ReduceOp) -> f32 {
    match op {
        ReduceOp::Sum | ReduceOp::SumSquares => 0.0,
        ReduceOp::Max => f32::NEG_INFINITY,
    }
}

/// The operation that reduces chunk results. TWIN: reduce.cuh::ss_reduce_*_op::upper
pub fn upper(op: ReduceOp) -> ReduceOp {
    match op {
        ReduceOp::Sum | ReduceOp::SumSquares => ReduceOp::Sum,
        ReduceOp::Max => ReduceOp::Max,
    }
}

/// Folds `c` into the 256 lanes: lane `l` takes `c[l], c[l+256], ...` in
/// increasing order. The body is a fixed-trip loop over a whole lane array, so
/// it vectorises. TWIN: reduce.cuh::ss_lane_accumulate_256
#[inline(always)]
fn lanes_fold(lanes: &mut [f32; LANES], c: &[f32], first: impl Fn(f32, f32) -> f32) {
    let mut rows = c.chunks_exact(LANES);
    for row in &mut rows {
        for (acc, &x) in lanes.iter_mut().zip(row) {
            *acc = first(*acc, x);
        }
    }
    for (acc, &x) in lanes.iter_mut().zip(rows.remainder()) {
        *acc = first(*acc, x);
    }
}

/// The pairwise tree: for s = 128, 64, ..., 1: `v[i] = combine(v[i], v[i+s])`
/// for i < s; the canonicalized `v[0]`. TWIN: reduce.cuh::ss_block_tree_256
#[inline(always)]
fn tree(v: &mut [f32; LANES], combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut s = LANES / 2;
    while s > 0 {
        let (lo, hi) = v.split_at_mut(s);
        for (a, &b) in lo.iter_mut().zip(&hi[..s]) {
            *a = combine(*a, b);
        }
        s /= 2;
    }
    canonical_nan(v[0])
}

#[inline(always)]
fn chunk_reduce_body(op: ReduceOp, c: &[f32]) -> f32 {
    let mut lanes = [identity(op); LANES];
    match op {
        ReduceOp::Sum => {
            lanes_fold(&mut lanes, c, |acc, x| acc + x);
            tree(&mut lanes, |a, b| a + b)
        }
        ReduceOp::SumSquares => {
            lanes_fold(&mut lanes, c, |acc, x| x.mul_add(x, acc));
            tree(&mut lanes, |a, b| a + b)
        }
        ReduceOp::Max => {
            lanes_fold(&mut lanes, c, max2);
            tree(&mut lanes, max2)
        }
    }
}

/// chunk_reduce: the reduction of one chunk `c` by `op` at the first level
/// (sum of squares squares `c`). TWIN:
/// kernels/reduce.cu::reduce_{sum,max,sumsq}_chunks_f32 (one block's task).
/// Runs under [`with_fma`]: AVX2 + FMA where the CPU has them (wider vectors,
/// `mul_add` one instruction), the same bits either way.
///
/// # Panics
/// If `c.len() > CHUNK` (use [`canonical_reduce`] for longer inputs).
pub fn chunk_reduce(op: ReduceOp, c: &[f32]) -> f32 {
    assert!(
        c.len() <= CHUNK,
        "chunk_reduce: {} > CHUNK elements",
        c.len()
    );
    with_fma(
        #[inline(always)]
        || chunk_reduce_body(op, c),
    )
}

/// One pass: the chunk results of `x`, `max(1, ceil(len / CHUNK))` of them,
/// chunks spread over rayon. TWIN: kernels/reduce.cu (one launch, one row).
fn chunk_pass(op: ReduceOp, x: &[f32]) -> Vec<f32> {
    if x.len() <= CHUNK {
        return vec![chunk_reduce(op, x)];
    }
    x.par_chunks(CHUNK).map(|c| chunk_reduce(op, c)).collect()
}

/// The canonical reduction of `x` by `op`: one chunk directly; otherwise the
/// chunk results reduced again by `upper(op)`, until one value is left.
/// `x` empty gives the identity. TWIN: src/ops/reduce/cuda.rs::reduce_rows
/// (the pass loop) over kernels/reduce.cu.
pub fn canonical_reduce(op: ReduceOp, x: &[f32]) -> f32 {
    let mut level = chunk_pass(op, x);
    while level.len() > 1 {
        level = chunk_pass(upper(op), &level);
    }
    level[0]
}

/// Canonical sum of `x` (0.0 for an empty slice; any NaN result is 0x7fc00000).
pub fn canonical_sum(x: &[f32]) -> f32 {
    canonical_reduce(ReduceOp::Sum, x)
}

/// Canonical max of `x` (-inf for an empty slice; NaN if any element is NaN).
pub fn canonical_max(x: &[f32]) -> f32 {
    canonical_reduce(ReduceOp::Max, x)
}

/// Canonical sum of squares of `x`: `fma(x, x, acc)` in the lanes of the first
/// level, plain sums above.
pub fn canonical_sum_squares(x: &[f32]) -> f32 {
    canonical_reduce(ReduceOp::SumSquares, x)
}

/// `out[r] = canonical_reduce(op, row r)` for the rows of width `width` in
/// `x` (`x.len() == out.len() * width`), rows spread over rayon.
/// TWIN: src/ops/reduce/cuda.rs::reduce_rows.
pub fn reduce_rows(op: ReduceOp, x: &[f32], width: usize, out: &mut [f32]) {
    if width == 0 {
        out.fill(identity(op));
        return;
    }
    debug_assert_eq!(x.len(), out.len() * width);
    // Short rows: many rows per task; long rows parallelise inside.
    let rows_per_task = (CHUNK / width).max(1);
    out.par_chunks_mut(rows_per_task)
        .zip(x.par_chunks(rows_per_task * width))
        .for_each(|(o, xs)| {
            for (o, row) in o.iter_mut().zip(xs.chunks_exact(width)) {
                *o = canonical_reduce(op, row);
            }
        });
}

/// `out[c] = canonical_reduce(op, column c)` of the row-major `rows x cols`
/// matrix `x`. The kernels read each column in place, strided; here a task
/// takes a block of columns and runs the canonical reduction of all of them
/// at once, row by row: row `r` of a chunk folds into lane `r % 256` of every
/// column (one contiguous vector operation per row), then the lanes' tree
/// pairs lane `l` with `l + s` in every column. Each column sees exactly the
/// operations, in the order, of [`canonical_reduce`] on it, so the bits are
/// the same; but the reads are contiguous and the loops vectorise.
/// TWIN: kernels/reduce.cu::reduce_{sum,max,sumsq}_cols_f32.
pub fn reduce_cols(op: ReduceOp, x: &[f32], rows: usize, out: &mut [f32]) {
    let cols = out.len();
    debug_assert_eq!(x.len(), rows * cols);
    out.par_chunks_mut(COLS_PER_TASK)
        .enumerate()
        .for_each(|(t, o)| {
            let first = t * COLS_PER_TASK;
            let mut lanes = vec![0f32; LANES * o.len()];
            with_fma(
                #[inline(always)]
                || match op {
                    ReduceOp::Sum => cols_block(
                        op,
                        x,
                        rows,
                        cols,
                        first,
                        o,
                        &mut lanes,
                        |a, v| a + v,
                        |a, b| a + b,
                    ),
                    ReduceOp::SumSquares => cols_block(
                        op,
                        x,
                        rows,
                        cols,
                        first,
                        o,
                        &mut lanes,
                        |a, v| v.mul_add(v, a),
                        |a, b| a + b,
                    ),
                    ReduceOp::Max => {
                        cols_block(op, x, rows, cols, first, o, &mut lanes, max2, max2)
                    }
                },
            );
        });
}

/// Columns per rayon task of [`reduce_cols`]: their 256 lanes take 256 KiB.
/// Not part of the numerics (any value gives the same bits).
const COLS_PER_TASK: usize = 256;

/// The canonical reductions of columns `first..first + out.len()` of `x`
/// (`rows x cols`) into `out`: per chunk of `CHUNK` rows, the first level's
/// fold (`first_op`) and tree (`combine`) for every column at once, in
/// `lanes` (`LANES x out.len()`, lane-major); the chunk results are then
/// reduced as [`canonical_reduce`] reduces them.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one block of columns, and the op's two halves
fn cols_block(
    op: ReduceOp,
    x: &[f32],
    rows: usize,
    cols: usize,
    first: usize,
    out: &mut [f32],
    lanes: &mut [f32],
    first_op: impl Fn(f32, f32) -> f32,
    combine: impl Fn(f32, f32) -> f32,
) {
    let w = out.len();
    let chunks = rows.div_ceil(CHUNK).max(1);
    let mut levels: Vec<Vec<f32>> = vec![Vec::with_capacity(chunks); w];
    for ch in 0..chunks {
        lanes.fill(identity(op));
        let r0 = ch * CHUNK;
        for r in r0..(r0 + CHUNK).min(rows) {
            let l = (r - r0) % LANES;
            let row = &x[r * cols + first..r * cols + first + w];
            for (acc, &v) in lanes[l * w..(l + 1) * w].iter_mut().zip(row) {
                *acc = first_op(*acc, v);
            }
        }
        let mut s = LANES / 2;
        while s > 0 {
            let (lo, hi) = lanes.split_at_mut(s * w);
            for (a, &b) in lo.iter_mut().zip(&hi[..s * w]) {
                *a = combine(*a, b);
            }
            s /= 2;
        }
        for (level, &v) in levels.iter_mut().zip(&lanes[..w]) {
            level.push(canonical_nan(v));
        }
    }
    for (o, mut level) in out.iter_mut().zip(levels) {
        while level.len() > 1 {
            level = chunk_pass(upper(op), &level);
        }
        *o = level[0];
    }
}
