//! Canonical reductions: sum, max and sum of squares, over a whole tensor or
//! per row, in the one order of DESIGN.md rule 3.
//!
//! # Numerics
//! A reduction of `n` values is defined independently of the hardware
//! (`docs/numerics/reduce.md` is the contract):
//! - `chunk_reduce(c)`, `c.len() <= CHUNK = 16384`: each of `LANES = 256`
//!   lanes starts from the identity (`0.0`, or `-inf` for max) and folds
//!   `c[l], c[l+256], ...` in increasing order (`acc + x`; `fma(x, x, acc)`
//!   for the sum of squares; `max2(acc, x)` for max); then the pairwise tree
//!   `v[i] = v[i] op v[i+s]` for `s = 128, 64, ..., 1`; the result is `v[0]`
//!   with any NaN replaced by the canonical `0x7fc00000`.
//! - `reduce(x)`: `chunk_reduce(x)` if `n <= CHUNK`, else the chunk results
//!   (chunk `k` = elements `k*CHUNK ..`) reduced again, with plain sums for
//!   the sum of squares. `n = 0` gives the identity.
//! - `max2(a, b)`: canonical NaN if either is NaN, else `if b > a { b } else { a }`
//!   (ties keep `a`, so the first of `-0.0`/`+0.0` in lane and tree order wins).
//! - Rows: `out[r] = reduce(row r)`.
//!
//! The result is bit-identical on Cpu, Sim and Cuda, for every launch shape
//! and thread count. Against exact arithmetic a sum's error is at most
//! `71 * L * 2^-24 * sum|x|` to first order, `L` the number of levels (1 up to
//! 2^14 elements, 2 up to 2^28); max is exact.

pub mod cpu;
pub mod cuda;

use crate::device::{Device, DeviceBuffer, View, ViewMut};
use crate::error::{Error, Result};
use crate::verify::Outcome;

/// What a reduction computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// `x[0] + x[1] + ...` in the canonical order.
    Sum,
    /// The largest element; NaN (canonical bits) if any element is NaN.
    Max,
    /// `x[0]^2 + x[1]^2 + ...`: `fma(x, x, acc)` in the first level's lanes.
    SumSquares,
}

impl ReduceOp {
    /// Every op, for tests and `verify`.
    pub const ALL: [ReduceOp; 3] = [ReduceOp::Sum, ReduceOp::Max, ReduceOp::SumSquares];

    /// The result for an empty input: `0.0`, or `-inf` for max.
    pub fn identity(self) -> f32 {
        cpu::identity(self)
    }
}

/// `out[r]` = the canonical reduction by `op` of row `r` of `x`, a row-major
/// `rows x width` matrix. `out` holds `rows` values; `width == 0` gives the
/// identity per row.
/// Overwrites `out`.
pub fn reduce_rows<'a>(
    device: &Device,
    op: ReduceOp,
    x: impl Into<View<'a, f32>>,
    rows: usize,
    width: usize,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    reduce_rows_with_shape(device, op, x, rows, width, out, cuda::DEFAULT_MAX_BLOCKS)
}

/// [`reduce_rows`] with the most blocks a Cuda/Sim pass may launch (ignored on
/// Cpu). Blocks are always 256 threads (one per lane); tests vary `max_blocks`
/// to show that the grid never changes the bits.
pub fn reduce_rows_with_shape<'a>(
    device: &Device,
    op: ReduceOp,
    x: impl Into<View<'a, f32>>,
    rows: usize,
    width: usize,
    out: impl Into<ViewMut<'a, f32>>,
    max_blocks: u32,
) -> Result<()> {
    let x = x.into();
    let mut out = out.into();
    const OP: &str = "reduce_rows";
    let len = rows
        .checked_mul(width)
        .ok_or_else(|| Error::invalid(OP, format!("{rows} x {width} elements overflow")))?;
    x.check(OP, "x", device, len)?;
    out.check(OP, "out", device, rows)?;
    if max_blocks == 0 {
        return Err(Error::invalid(OP, "max_blocks must be at least 1"));
    }
    if rows == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            let x = x.host(OP)?;
            let out = out.host_mut(OP)?;
            cpu::reduce_rows(op, x, width, out);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::reduce_rows(device, op, x, rows, width, out, max_blocks)
        }
    }
}

/// `out[0]` = the canonical reduction by `op` of all of `x` (one row of width
/// `x.len()`). `out` holds one value.
/// Overwrites `out`.
pub fn reduce_all<'a>(
    device: &Device,
    op: ReduceOp,
    x: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    let x = x.into();
    reduce_rows(device, op, x, 1, x.len(), out)
}

/// `out[c]` = the canonical reduction by `op` of column `c` of `x`, a
/// row-major `rows x cols` matrix: the bits [`reduce_rows`] gives for the
/// transpose (bias gradients, batch statistics). `out` holds `cols` values;
/// `rows == 0` gives the identity. Overwrites `out`.
pub fn reduce_cols<'a>(
    device: &Device,
    op: ReduceOp,
    x: impl Into<View<'a, f32>>,
    rows: usize,
    cols: usize,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP: &str = "reduce_cols";
    let (x, mut out) = (x.into(), out.into());
    let len = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::invalid(OP, format!("{rows} x {cols} elements overflow")))?;
    if rows > cpu::CHUNK * cpu::CHUNK {
        return Err(Error::invalid(
            OP,
            format!("{rows} rows: at most 2^28 (two levels of the canonical order)"),
        ));
    }
    x.check(OP, "x", device, len)?;
    out.check(OP, "out", device, cols)?;
    if cols == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            cpu::reduce_cols(op, x.host(OP)?, rows, out.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::reduce_cols(device, op, x, rows, cols, out),
    }
}

/// Philox-drawn floats uniform in `[-scale, scale)`, on the CPU.
fn random_floats(n: usize, stream: u32, scale: f32) -> Result<Vec<f32>> {
    use crate::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
    uniform_floats(
        PhiloxKey::from_seed(0x7ed0_c3e5),
        PhiloxCounter::new(0, stream, 0),
        n,
        scale,
    )
}

/// `shoestring verify`: every kernel (through every op) on `device` against the
/// CPU twin: a whole-tensor reduction of `elements` values (two passes from
/// 16385 on), ragged rows, and rows holding NaN, +-inf and +-0.
pub fn verify(device: &Device, elements: usize) -> Result<Outcome> {
    let n = elements.max(1);
    let clean = random_floats(n, 1, 4.0)?;
    let width = 1_000.min(n);
    let rows = n / width;
    // Specials in the first rows (when there are enough rows to keep some clean).
    let mut special = random_floats(rows * width, 2, 4.0)?;
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        f32::from_bits(0x7f80_0001), // a signalling NaN
    ];
    for (r, s) in specials.iter().enumerate().take(rows.saturating_sub(1)) {
        special[r * width + (7 * r) % width] = *s;
    }
    let mut outcome: Option<Outcome> = None;
    for op in ReduceOp::ALL {
        for (rows, width, x) in [(1, n, &clean), (rows, width, &special)] {
            let run = |dev: &Device| -> Result<Vec<u32>> {
                let xb = DeviceBuffer::copy_htod(dev, x)?;
                let mut out = DeviceBuffer::zeros(dev, rows)?;
                reduce_rows(dev, op, &xb, rows, width, &mut out)?;
                Ok(out.copy_dtoh()?.iter().map(|v| v.to_bits()).collect())
            };
            let kernel = format!("{op:?} {rows}x{width}");
            let o =
                crate::verify::compare_bits("reduce", &kernel, &run(&Device::Cpu)?, &run(device)?);
            outcome = Some(match outcome {
                None => o,
                Some(prev) => prev.merge(o),
            });
        }
    }
    Ok(outcome.expect("three ops ran"))
}
