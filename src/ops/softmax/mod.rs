//! Log-softmax over rows and mean cross-entropy, forward and backward, on any
//! device. `x`, `y`, `dx` are `R x C` f32 row-major; `labels` are `R` u32.
//!
//! # Numerics
//! Exact tier (docs/numerics/softmax.md). Per row: `m = canonical_max(row)`,
//! `e_j = exp(x_j - m)`, `s = canonical_sum(e)`, `ls = log(s)`,
//! `y_j = (x_j - m) - ls`, with `exp`/`log` from `detmath` and both
//! reductions in the canonical order of the `reduce` family. Cross-entropy:
//! `nll_r = -y[r, label_r]`, `loss = canonical_sum(nll) / (R as f32)`.
//! Backward: `gscale = dloss / (R as f32)` rounded once on the host, then
//! `dx = (exp(y) - onehot) * gscale`, a subtraction and a multiplication (no
//! fma). Every stored NaN is `0x7fc00000`. Bit-identical on Cpu, Sim and Cuda,
//! for any thread count and launch shape.
//!
//! Limits: `1 <= C <= 2^28` (two levels of the canonical order); for the
//! cross-entropy `1 <= R < 2^24` (so `R as f32` is exact). A label `>= C` is
//! reported through the step's [`Status`] block (bit `SS_STATUS_BAD_LABEL`, the
//! smallest bad row), never read back here; that row's `nll` is NaN, so the
//! loss is NaN too (and flagged non-finite). The loss also goes to the status
//! block, so a training step reads it with the flags in one copy.

pub mod cpu;
pub mod cuda;

use crate::device::abi::{SS_SOFTMAX_MAX_COLS, SS_SOFTMAX_MAX_ROWS};
use crate::device::{Device, DeviceBuffer, View, ViewMut};
use crate::error::{Error, Result};
use crate::status::Status;

pub use cuda::DEFAULT_SHAPE;

/// Checks the shape and returns `R * C`.
fn check_shape(op: &'static str, rows: usize, cols: usize, mean: bool) -> Result<usize> {
    if cols == 0 || cols > SS_SOFTMAX_MAX_COLS as usize {
        return Err(Error::invalid(
            op,
            format!("{cols} columns: rows must have 1..={SS_SOFTMAX_MAX_COLS} columns"),
        ));
    }
    if mean && (rows == 0 || rows > SS_SOFTMAX_MAX_ROWS as usize) {
        return Err(Error::invalid(
            op,
            format!(
                "{rows} rows: the mean needs 1..={SS_SOFTMAX_MAX_ROWS} rows (R must be exact as an f32)"
            ),
        ));
    }
    if rows > u32::MAX as usize {
        return Err(Error::invalid(op, format!("{rows} rows: at most 2^32 - 1")));
    }
    rows.checked_mul(cols)
        .ok_or_else(|| Error::invalid(op, format!("{rows} x {cols} elements overflow")))
}

/// `y = log_softmax(x)` over `rows` rows of `cols` columns, on `device`.
/// Overwrites `y`.
pub fn log_softmax<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    rows: usize,
    cols: usize,
    y: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    log_softmax_with_shape(device, x, rows, cols, y, DEFAULT_SHAPE)
}

/// [`log_softmax`] with an explicit launch shape `(threads per block of the
/// backward kernel, most blocks)` for Cuda and Sim (ignored on Cpu; row
/// kernels always use 256 threads). Tests vary it to show the bits don't move.
pub fn log_softmax_with_shape<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    rows: usize,
    cols: usize,
    y: impl Into<ViewMut<'a, f32>>,
    shape: (u32, u32),
) -> Result<()> {
    let x = x.into();
    let mut y = y.into();
    const OP: &str = "log_softmax";
    let n = check_shape(OP, rows, cols, false)?;
    x.check(OP, "x", device, n)?;
    y.check(OP, "y", device, n)?;
    match device {
        Device::Cpu => {
            cpu::log_softmax_rows(x.host(OP)?, cols, y.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::log_softmax_rows(device, x, rows, cols, y, shape),
    }
}

/// Mean cross-entropy forward: writes `y = log_softmax(x)` (kept for the
/// backward) and the loss into `loss` (one element on `device`) and into the
/// status block; bad labels and a non-finite loss go to `status`.
/// Overwrites `y` and `loss`.
#[allow(clippy::too_many_arguments)] // the kernel's buffers, dims and the status block
pub fn cross_entropy_fwd<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    labels: impl Into<View<'a, u32>>,
    rows: usize,
    cols: usize,
    y: impl Into<ViewMut<'a, f32>>,
    loss: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
) -> Result<()> {
    cross_entropy_fwd_with_shape(
        device,
        x,
        labels,
        rows,
        cols,
        y,
        loss,
        status,
        DEFAULT_SHAPE,
    )
}

/// [`cross_entropy_fwd`] with an explicit launch shape (see [`log_softmax_with_shape`]).
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_fwd_with_shape<'a>(
    device: &Device,
    x: impl Into<View<'a, f32>>,
    labels: impl Into<View<'a, u32>>,
    rows: usize,
    cols: usize,
    y: impl Into<ViewMut<'a, f32>>,
    loss: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
    shape: (u32, u32),
) -> Result<()> {
    let (x, labels) = (x.into(), labels.into());
    let (mut y, mut loss) = (y.into(), loss.into());
    const OP: &str = "cross_entropy_fwd";
    let n = check_shape(OP, rows, cols, true)?;
    x.check(OP, "x", device, n)?;
    labels.check(OP, "labels", device, rows)?;
    y.check(OP, "y", device, n)?;
    loss.check(OP, "loss", device, 1)?;
    status.check(OP, device)?;
    match device {
        Device::Cpu => {
            let labels = labels.host(OP)?;
            let words = status.host_words_mut(OP)?;
            cpu::check_labels(labels, cols, words);
            let mut nll = vec![0.0f32; rows];
            cpu::xent_rows(x.host(OP)?, labels, cols, y.host_mut(OP)?, &mut nll);
            cpu::mean_loss(&nll, &mut loss.host_mut(OP)?[0], words);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::xent_fwd(
            device,
            x,
            labels,
            rows,
            cols,
            y,
            loss,
            status.words_mut(),
            shape,
        ),
    }
}

/// Mean cross-entropy backward: `dx = (exp(y) - onehot(labels)) * (dloss / R)`
/// from the `y` that [`cross_entropy_fwd`] wrote; bad labels go to `status`.
/// Overwrites `dx`.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_bwd<'a>(
    device: &Device,
    y: impl Into<View<'a, f32>>,
    labels: impl Into<View<'a, u32>>,
    rows: usize,
    cols: usize,
    dloss: f32,
    dx: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
) -> Result<()> {
    cross_entropy_bwd_with_shape(
        device,
        y,
        labels,
        rows,
        cols,
        dloss,
        dx,
        status,
        DEFAULT_SHAPE,
    )
}

/// [`cross_entropy_bwd`] with an explicit launch shape `(threads per block,
/// most blocks)` for Cuda and Sim (ignored on Cpu).
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_bwd_with_shape<'a>(
    device: &Device,
    y: impl Into<View<'a, f32>>,
    labels: impl Into<View<'a, u32>>,
    rows: usize,
    cols: usize,
    dloss: f32,
    dx: impl Into<ViewMut<'a, f32>>,
    status: &mut Status,
    shape: (u32, u32),
) -> Result<()> {
    let y = y.into();
    let labels = labels.into();
    let mut dx = dx.into();
    const OP: &str = "cross_entropy_bwd";
    let n = check_shape(OP, rows, cols, true)?;
    y.check(OP, "y", device, n)?;
    labels.check(OP, "labels", device, rows)?;
    dx.check(OP, "dx", device, n)?;
    status.check(OP, device)?;
    // Rounded once, here, for every device (R < 2^24: `rows as f32` is exact).
    let gscale = dloss / rows as f32;
    match device {
        Device::Cpu => {
            let labels = labels.host(OP)?;
            cpu::check_labels(labels, cols, status.host_words_mut(OP)?);
            cpu::xent_bwd(y.host(OP)?, labels, cols, gscale, dx.host_mut(OP)?);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::xent_bwd(
            device,
            y,
            labels,
            rows,
            cols,
            gscale,
            dx,
            status.words_mut(),
            shape,
        ),
    }
}

/// Logits for `verify` and tests: `rows x cols` values in `[-scale, scale)`
/// from Philox words (`key = seed`, stream 0x50f7), converted exactly from the
/// top 24 bits of each word.
pub fn philox_logits(seed: u64, rows: usize, cols: usize, scale: f32) -> Result<Vec<f32>> {
    use crate::ops::philox::{uniform_floats, PhiloxCounter, PhiloxKey};
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::invalid("philox_logits", "rows * cols overflows"))?;
    uniform_floats(
        PhiloxKey::from_seed(seed),
        PhiloxCounter::new(0, 0x50f7, 0),
        n,
        scale,
    )
}

/// `shoestring verify`: log-softmax, cross-entropy forward (y and loss) and
/// backward on `device` against the CPU twin, bit for bit, on Philox logits
/// with a ragged width, a multi-chunk row, and special values (±inf, NaN,
/// ±80, all-equal rows).
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut out: Option<crate::verify::Outcome> = None;
    let mut merge = |o: crate::verify::Outcome| {
        out = Some(match out.take() {
            None => o,
            Some(a) => a.merge(o),
        });
    };
    // A ragged width, and one row wider than a chunk (two canonical levels).
    let cols_a = 1000usize;
    let shapes = [((elements / cols_a).max(1), cols_a), (2, 16_384 + 257)];
    for (case, &(rows, cols)) in shapes.iter().enumerate() {
        let mut x = philox_logits(0x50f7 + case as u64, rows, cols, 30.0)?;
        // Specials in the first rows: ±inf, NaN, ±80, an all-equal row.
        if case == 0 && rows >= 4 {
            x[1] = f32::INFINITY;
            x[cols + 2] = f32::NAN;
            x[2 * cols + 3] = f32::NEG_INFINITY;
            x[2 * cols + 4] = 80.0;
            x[2 * cols + 5] = -80.0;
            x[3 * cols..4 * cols].fill(7.25);
        }
        let labels: Vec<u32> = (0..rows).map(|r| ((r * 7919) % cols) as u32).collect();
        // log_softmax y, cross-entropy y, loss, dx.
        let run = |d: &Device| -> Result<[Vec<f32>; 4]> {
            let xb = DeviceBuffer::copy_htod(d, &x)?;
            let lb = DeviceBuffer::copy_htod(d, &labels)?;
            let mut y = DeviceBuffer::zeros(d, x.len())?;
            log_softmax(d, &xb, rows, cols, &mut y)?;
            let y_ls = y.copy_dtoh()?;
            let mut status = Status::new(d)?;
            let mut loss = DeviceBuffer::zeros(d, 1)?;
            cross_entropy_fwd(d, &xb, &lb, rows, cols, &mut y, &mut loss, &mut status)?;
            let mut dx = DeviceBuffer::zeros(d, x.len())?;
            cross_entropy_bwd(d, &y, &lb, rows, cols, 0.75, &mut dx, &mut status)?;
            status.read()?.check_inputs()?;
            Ok([y_ls, y.copy_dtoh()?, loss.copy_dtoh()?, dx.copy_dtoh()?])
        };
        let want = run(&Device::Cpu)?;
        let got = run(device)?;
        let cmp = crate::verify::compare_bits;
        merge(cmp(
            "softmax",
            "softmax_log_fwd_f32",
            &bits(&want[0]),
            &bits(&got[0]),
        ));
        merge(cmp(
            "softmax",
            "softmax_xent_fwd_f32",
            &bits(&want[1]),
            &bits(&got[1]),
        ));
        merge(cmp(
            "softmax",
            "softmax_xent_loss_f32",
            &bits(&want[2]),
            &bits(&got[2]),
        ));
        merge(cmp(
            "softmax",
            "softmax_xent_bwd_f32",
            &bits(&want[3]),
            &bits(&got[3]),
        ));
    }
    Ok(out.expect("at least one case"))
}
