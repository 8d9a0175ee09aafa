//! `shoestring bench`: every kernel family, the GEMM and the training step,
//! each timed next to a reference measured in the same process, so that a
//! row's ratio survives a shared, drifting machine (docs/performance.md).
//!
//! - memory-bound families ([`memory`]): GB/s (bytes read + written), next
//!   to a copy moving the same bytes: `copy_from_slice` on the CPU, a
//!   device-to-device copy on the GPU;
//! - GEMM ([`gemm`]): GFLOP/s, next to `matrixmultiply` and the `gemm`
//!   crate on the CPU and cuBLAS on the GPU;
//! - the LSTM layer's forward + backward and the default classifier's
//!   training step ([`train`]): tokens/s, real tokens and padded positions.
//!
//! Inputs are random (Philox, never zeros); buffers rotate through sets
//! larger together than the last-level cache; every op's output is checked
//! once before it is timed (bits against the CPU twin on Cuda and Sim, and
//! against a scalar or f64 reference on every device), and a failed check
//! is an error, not a row.

mod clock;
pub mod cublas;
pub mod gemm;
pub mod memory;
pub mod train;

pub use clock::Clock;

use crate::device::{Device, DeviceBuffer};
use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt::Write as _;

/// The families `--only` selects, in the order they run.
pub const FAMILIES: [&str; 11] = [
    "philox",
    "dropout",
    "elementwise",
    "detmath",
    "reduce",
    "embedding",
    "softmax",
    "lstm-cell",
    "gemm",
    "lstm",
    "train",
];

/// What a bench run covers.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Smaller sizes, fewer repeats (under 3 minutes on 2 CPU cores).
    pub quick: bool,
    /// Only these families (names of [`FAMILIES`]); empty: all.
    pub only: Vec<String>,
}

impl BenchOptions {
    /// Whether `family` runs.
    pub fn wants(&self, family: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|f| f == family)
    }

    /// Refuses unknown family names, naming the known ones.
    pub fn validate(&self) -> Result<()> {
        for f in &self.only {
            if !FAMILIES.contains(&f.as_str()) {
                return Err(Error::invalid(
                    "bench",
                    format!(
                        "unknown family `{f}`: expected one of {}",
                        FAMILIES.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What one call of a row's op does, for its throughput.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Bytes read plus bytes written.
    Bytes(u64),
    /// Floating-point operations.
    Flops(f64),
    /// Tokens: the real ones, and the positions a padded batch would hold
    /// (rows x longest row, summed over the batches).
    Tokens {
        /// Tokens of the texts.
        real: u64,
        /// Rows times the longest row, per batch.
        padded: u64,
    },
}

impl Work {
    /// Per second at `seconds` per call, in the row's unit.
    pub fn rate(&self, seconds: f64) -> f64 {
        match *self {
            Work::Bytes(b) => b as f64 / seconds / 1e9,
            Work::Flops(f) => f / seconds / 1e9,
            Work::Tokens { real, .. } => real as f64 / seconds,
        }
    }

    /// The unit of [`Work::rate`].
    pub fn unit(&self) -> &'static str {
        match self {
            Work::Bytes(_) => "GB/s",
            Work::Flops(_) => "GFLOP/s",
            Work::Tokens { .. } => "tok/s",
        }
    }
}

/// A reference timed in the same process as its row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    /// What it is (`copy_from_slice`, `cuBLAS SGEMM`, ...).
    pub name: String,
    /// Median time per call, ms.
    pub median_ms: f64,
    /// In the row's unit.
    pub throughput: f64,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The family (one of [`FAMILIES`]).
    pub family: &'static str,
    /// The operation.
    pub op: String,
    /// The problem size.
    pub size: String,
    /// Median time per call, ms.
    pub median_ms: f64,
    /// What a call does.
    pub work: Work,
    /// [`Work::rate`] at the median.
    pub throughput: f64,
    /// [`Work::unit`].
    pub unit: &'static str,
    /// Padded positions per second (token rows only).
    pub padded_per_s: Option<f64>,
    /// The reference, when the row has one.
    pub reference: Option<Reference>,
    /// The row's throughput over the reference's (above 1: faster).
    pub ratio: Option<f64>,
    /// How the output was checked before timing.
    pub check: String,
}

impl Row {
    /// A row from a median time, with its reference's median when it has one.
    pub fn new(
        family: &'static str,
        op: impl Into<String>,
        size: impl Into<String>,
        seconds: f64,
        work: Work,
        reference: Option<(String, f64)>,
        check: impl Into<String>,
    ) -> Row {
        let throughput = work.rate(seconds);
        let reference = reference.map(|(name, s)| Reference {
            name,
            median_ms: s * 1e3,
            throughput: work.rate(s),
        });
        Row {
            family,
            op: op.into(),
            size: size.into(),
            median_ms: seconds * 1e3,
            work,
            throughput,
            unit: work.unit(),
            padded_per_s: match work {
                Work::Tokens { padded, .. } => Some(padded as f64 / seconds),
                _ => None,
            },
            ratio: reference.as_ref().map(|r| r.median_ms / (seconds * 1e3)),
            reference,
            check: check.into(),
        }
    }
}

/// Everything a family's rows need: the device, the clock, the options,
/// and where progress goes.
pub struct Bench<'p> {
    /// Where the ops run.
    pub device: Device,
    /// How they are timed.
    pub clock: Clock,
    /// Sizes and families.
    pub options: BenchOptions,
    rows: Vec<Row>,
    progress: &'p mut dyn FnMut(&Row),
}

/// Together, the rotating buffer sets of one row hold at least this many
/// bytes: more than the last-level cache of the machines we run on (32 MiB
/// L3 on the CI machine, 50 MB L2 on an H100).
pub const ROTATION_BYTES: u64 = 128 << 20;

/// At most this many buffer sets per row.
pub const MAX_SETS: usize = 16;

impl<'p> Bench<'p> {
    /// A bench on `device`; `progress` sees each row as it is measured.
    pub fn new(device: &Device, options: BenchOptions, progress: &'p mut dyn FnMut(&Row)) -> Self {
        Bench {
            device: device.clone(),
            clock: Clock::new(device, options.quick),
            options,
            rows: Vec::new(),
            progress,
        }
    }

    /// How many buffer sets of `set_bytes` each a row rotates through.
    pub fn sets(set_bytes: u64) -> usize {
        (ROTATION_BYTES.div_ceil(set_bytes.max(1)) as usize).clamp(1, MAX_SETS)
    }

    /// Records a row and reports it.
    pub fn push(&mut self, row: Row) {
        (self.progress)(&row);
        self.rows.push(row);
    }

    /// The measured rows so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The rows, ending the bench.
    pub fn into_rows(self) -> Vec<Row> {
        self.rows
    }

    /// The reference for `traffic` bytes (read + written): a copy of
    /// `traffic / 2` bytes, rotating through its own buffer sets like the
    /// rows; its name says what it is on this device.
    pub fn copy_reference(&self, traffic: u64) -> Result<CopyRef> {
        let words = (traffic / 2).div_ceil(4).max(1) as usize;
        let sets = Self::sets(8 * words as u64);
        Ok(match &self.device {
            Device::Cpu => {
                let src: Vec<Vec<u32>> = (0..sets).map(|k| vec![k as u32 | 1; words]).collect();
                let mut dst: Vec<Vec<u32>> = (0..sets).map(|_| vec![u32::MAX; words]).collect();
                CopyRef {
                    name: "copy_from_slice".into(),
                    sets,
                    run: Box::new(move |i| {
                        let k = i % sets;
                        dst[k].copy_from_slice(std::hint::black_box(&src[k]));
                        Ok(())
                    }),
                }
            }
            dev => {
                let src = (0..sets)
                    .map(|k| DeviceBuffer::copy_htod(dev, &vec![k as u32 | 1; words]))
                    .collect::<Result<Vec<_>>>()?;
                let mut dst = (0..sets)
                    .map(|_| DeviceBuffer::<u32>::zeros(dev, words))
                    .collect::<Result<Vec<_>>>()?;
                CopyRef {
                    name: if matches!(dev, Device::Cuda(_)) {
                        "cuMemcpyDtoD".into()
                    } else {
                        "sim buffer copy".into()
                    },
                    sets,
                    run: Box::new(move |i| {
                        let k = i % sets;
                        dst[k].copy_from(&src[k])
                    }),
                }
            }
        })
    }
}

/// A memory-bound row's reference: a copy of the same bytes, with its own
/// rotating buffers, timed beside the row ([`Clock::median_pair`]).
pub struct CopyRef {
    /// `copy_from_slice`, `cuMemcpyDtoD` or `sim buffer copy`.
    pub name: String,
    /// Its buffer sets.
    pub sets: usize,
    /// One copy; the argument counts calls (the set is `i % sets`).
    pub run: Box<dyn FnMut(usize) -> Result<()>>,
}

/// Runs the families `options` selects on `device`, reporting each row to
/// `progress` as it is measured.
pub fn run(
    device: &Device,
    options: &BenchOptions,
    progress: &mut dyn FnMut(&Row),
) -> Result<Vec<Row>> {
    options.validate()?;
    let mut b = Bench::new(device, options.clone(), progress);
    memory::run(&mut b)?;
    if b.options.wants("gemm") {
        gemm::run(&mut b)?;
    }
    if b.options.wants("lstm") {
        train::lstm_layer(&mut b)?;
    }
    if b.options.wants("train") {
        train::classifier_step(&mut b)?;
    }
    Ok(b.into_rows())
}

/// `x` with 3 significant digits, or `-`.
fn sig3(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) if v >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// Tokens per second in thousands (`123.4k`).
fn kilo(x: f64) -> String {
    format!("{:.1}k", x / 1e3)
}

/// One line per row, aligned, under a header naming the device.
pub fn table(title: &str, rows: &[Row]) -> String {
    let head = [
        "op",
        "size",
        "median",
        "throughput",
        "reference",
        "ref",
        "ratio",
        "check",
    ];
    let mut cells: Vec<[String; 8]> = vec![head.map(String::from)];
    for r in rows {
        let tput = match r.padded_per_s {
            Some(p) => format!("{} tok/s ({} padded)", kilo(r.throughput), kilo(p)),
            None => format!("{} {}", sig3(Some(r.throughput)), r.unit),
        };
        let (rname, rtput) = match &r.reference {
            Some(x) => (
                x.name.clone(),
                format!("{} {}", sig3(Some(x.throughput)), r.unit),
            ),
            None => ("-".into(), "-".into()),
        };
        cells.push([
            format!("{} {}", r.family, r.op),
            r.size.clone(),
            format!("{} ms", sig3(Some(r.median_ms))),
            tput,
            rname,
            rtput,
            r.ratio.map_or("-".into(), |x| format!("{x:.2}x")),
            r.check.clone(),
        ]);
    }
    let mut width = [0usize; 8];
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = format!("{title}\n");
    for (k, c) in cells.iter().enumerate() {
        let mut line = String::new();
        for (j, (s, w)) in c.iter().zip(width).enumerate() {
            if j > 0 {
                line.push_str("  ");
            }
            // Names left, numbers right.
            if matches!(j, 0 | 1 | 4 | 7) {
                let _ = write!(line, "{s:<w$}");
            } else {
                let _ = write!(line, "{s:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if k == 0 {
            let total: usize = width.iter().sum::<usize>() + 2 * (width.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

/// Compares `got` with `want` bit for bit: `Ok` or the first differing
/// index, as a [`Error::BenchCheck`] of `op`.
pub fn same_bits<T: Copy + PartialEq + std::fmt::Debug>(
    op: &str,
    got: &[T],
    want: &[T],
) -> Result<()> {
    if got.len() != want.len() {
        return Err(Error::BenchCheck {
            op: op.into(),
            msg: format!("{} values, expected {}", got.len(), want.len()),
        });
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(Error::BenchCheck {
            op: op.into(),
            msg: format!("value {i} is {:?}, expected {:?}", got[i], want[i]),
        }),
    }
}

/// Compares `got` with an f64 reference: each value within `tol` (absolute,
/// plus `tol` relative) of it.
pub fn close_to(op: &str, got: &[f32], want: &[f64], tol: f64) -> Result<()> {
    if got.len() != want.len() {
        return Err(Error::BenchCheck {
            op: op.into(),
            msg: format!("{} values, expected {}", got.len(), want.len()),
        });
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        if err.is_nan() || err > tol * (1.0 + w.abs()) {
            return Err(Error::BenchCheck {
                op: op.into(),
                msg: format!("value {i} is {g}, the f64 reference {w} (tolerance {tol:e})"),
            });
        }
    }
    Ok(())
}
