//! Packed sequences: a batch of sequences of different lengths, sorted longest
//! first, laid out time-major with no padding, so that step `t` of the
//! recurrence runs over exactly the rows still active and padding is never
//! computed (DESIGN.md, "The tensor and autograd layer").
//!
//! Letters: `B` sequences (rows of the batch), `T` steps (the longest length),
//! `P` packed positions (the sum of the lengths). Row `b` has length
//! `lengths[b]`, lengths non-increasing and at least 1. Step `t` has
//! `batch_sizes[t] = #{b : lengths[b] > t}` active rows, always a prefix
//! `0..batch_sizes[t]` of the rows; its positions are the packed rows
//! `offsets[t] .. offsets[t] + batch_sizes[t]`, `offsets[t] = sum of
//! batch_sizes[..t]`. So position `(t, b)` is packed row `offsets[t] + b`,
//! and a tensor over positions is `[P, F]`.
//!
//! Because the active rows of a step are a prefix, a step's inputs, outputs
//! and the previous step's state for those rows are contiguous windows
//! ([`crate::device::View`]s), and a row's results never depend on
//! which other rows are in the batch: a sequence packed with others gives the
//! bits it gives alone.
//!
//! A [`PackedSeq`] is built on the host (where its invariants are checked)
//! and uploads, in one copy, the index arrays kernels read: step offsets, row
//! lengths, the step of every packed row, the reversal map (for a backward
//! direction) and the previous step's row of every packed row.

use crate::device::{Device, DeviceBuffer, View};
use crate::error::{Error, Result};

/// A validated packed layout and its index arrays on one device.
pub struct PackedSeq {
    lengths: Vec<usize>,
    batch_sizes: Vec<usize>,
    offsets: Vec<usize>,
    total: usize,
    /// On the device: `[offsets (T) | lengths (B) | row_step (P) | reverse (P) |
    /// prev_row (P) | last_row (B)]`.
    index: DeviceBuffer<u32>,
}

/// Rows active at each step of sequences of `lengths` (longest first): step
/// `t` holds the sequences longer than `t`. The host side of the layout,
/// shared by [`PackedSeq::new`] and packing on the host.
pub fn batch_sizes(lengths: &[usize]) -> Vec<usize> {
    let steps = lengths.first().copied().unwrap_or(0);
    (0..steps)
        .map(|t| lengths.iter().take_while(|&&l| l > t).count())
        .collect()
}

impl PackedSeq {
    /// The layout of sequences with these lengths (longest first, each at
    /// least 1, `P < 2^31`), its index arrays uploaded to `device`.
    pub fn new(device: &Device, lengths: &[usize]) -> Result<PackedSeq> {
        const OP: &str = "PackedSeq";
        if lengths.is_empty() {
            return Err(Error::invalid(OP, "a batch needs at least one sequence"));
        }
        if let Some(b) = lengths.iter().position(|&l| l == 0) {
            return Err(Error::invalid(
                OP,
                format!("sequence {b} is empty: every sequence needs at least one token"),
            ));
        }
        if let Some(b) = lengths.windows(2).position(|w| w[1] > w[0]) {
            return Err(Error::invalid(
                OP,
                format!(
                    "lengths must be sorted longest first: sequence {} has {} tokens after {}",
                    b + 1,
                    lengths[b + 1],
                    lengths[b]
                ),
            ));
        }
        let total: usize = lengths.iter().sum();
        if total >= 1 << 31 {
            return Err(Error::invalid(
                OP,
                format!("{total} positions: at most 2^31 - 1"),
            ));
        }
        let steps = lengths[0];
        let batch_sizes = batch_sizes(lengths);
        let mut offsets = Vec::with_capacity(steps);
        let mut at = 0;
        for &bs in &batch_sizes {
            offsets.push(at);
            at += bs;
        }
        let mut row_step = Vec::with_capacity(total);
        let mut reverse = Vec::with_capacity(total);
        let mut prev_row = Vec::with_capacity(total);
        for (t, &bs) in batch_sizes.iter().enumerate() {
            for b in 0..bs {
                row_step.push(t as u32);
                // Position (t, b) read backwards is (len_b - 1 - t, b).
                let rt = lengths[b] - 1 - t;
                reverse.push((offsets[rt] + b) as u32);
                // The previous step's row of (t, b); (0, b) maps to b, the
                // row of the initial state in a [B + P] state buffer, whose
                // packed rows start at B (see `prev_row`).
                prev_row.push(if t == 0 {
                    b as u32
                } else {
                    (lengths.len() + offsets[t - 1] + b) as u32
                });
            }
        }
        let mut host: Vec<u32> = offsets.iter().map(|&o| o as u32).collect();
        host.extend(lengths.iter().map(|&l| l as u32));
        host.extend(row_step);
        host.extend(reverse);
        host.extend(prev_row);
        // The packed row of each sequence's last position.
        host.extend(
            lengths
                .iter()
                .enumerate()
                .map(|(b, &l)| (offsets[l - 1] + b) as u32),
        );
        Ok(PackedSeq {
            lengths: lengths.to_vec(),
            batch_sizes,
            offsets,
            total,
            index: DeviceBuffer::copy_htod(device, &host)?,
        })
    }

    /// `B`, the number of sequences.
    pub fn batch(&self) -> usize {
        self.lengths.len()
    }

    /// `T`, the longest length (the number of steps).
    pub fn steps(&self) -> usize {
        self.batch_sizes.len()
    }

    /// `P`, the number of packed positions (the sum of the lengths).
    pub fn total(&self) -> usize {
        self.total
    }

    /// The length of each sequence, longest first.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// The active rows of each step.
    pub fn batch_sizes(&self) -> &[usize] {
        &self.batch_sizes
    }

    /// The first packed row of each step.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// The packed rows of step `t`: `offsets[t] .. offsets[t] + batch_sizes[t]`.
    pub fn step_rows(&self, t: usize) -> std::ops::Range<usize> {
        self.offsets[t]..self.offsets[t] + self.batch_sizes[t]
    }

    /// The device the index arrays live on.
    pub fn device(&self) -> &Device {
        self.index.device()
    }

    fn part(&self, start: usize, len: usize) -> View<'_, u32> {
        self.index.slice(start..start + len)
    }

    /// `offsets` as u32 on the device (`T`).
    pub fn offsets_view(&self) -> View<'_, u32> {
        self.part(0, self.steps())
    }

    /// `lengths` as u32 on the device (`B`).
    pub fn lengths_view(&self) -> View<'_, u32> {
        self.part(self.steps(), self.batch())
    }

    /// The step `t` of every packed row, on the device (`P`).
    pub fn row_step_view(&self) -> View<'_, u32> {
        self.part(self.steps() + self.batch(), self.total)
    }

    /// The reversal map on the device (`P`): packed row `r` = `(t, b)` maps to
    /// `(len_b - 1 - t, b)`. A permutation and its own inverse: gathering rows
    /// by it turns each sequence back to front.
    pub fn reverse_view(&self) -> View<'_, u32> {
        self.part(self.steps() + self.batch() + self.total, self.total)
    }

    /// For every packed row `(t, b)`, the row of its previous state in a
    /// `[B + P]` state buffer whose first `B` rows hold the initial states and
    /// whose packed rows start at `B`: `b` for `t = 0`, else `B + offsets[t-1]
    /// + b`. On the device (`P`).
    pub fn prev_row_view(&self) -> View<'_, u32> {
        self.part(self.steps() + self.batch() + 2 * self.total, self.total)
    }
}

impl PackedSeq {
    /// The packed row of each sequence's last position, on the device (`B`).
    pub fn last_row_view(&self) -> View<'_, u32> {
        self.part(self.steps() + self.batch() + 3 * self.total, self.batch())
    }
}

impl std::fmt::Debug for PackedSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedSeq")
            .field("lengths", &self.lengths)
            .field("total", &self.total)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_three_sequences() {
        let p = PackedSeq::new(&Device::Cpu, &[3, 2, 2]).unwrap();
        assert_eq!((p.batch(), p.steps(), p.total()), (3, 3, 7));
        assert_eq!(p.batch_sizes(), [3, 3, 1]);
        assert_eq!(p.offsets(), [0, 3, 6]);
        assert_eq!(p.step_rows(2), 6..7);
        assert_eq!(p.offsets_view().copy_dtoh().unwrap(), [0, 3, 6]);
        assert_eq!(p.lengths_view().copy_dtoh().unwrap(), [3, 2, 2]);
        assert_eq!(
            p.row_step_view().copy_dtoh().unwrap(),
            [0, 0, 0, 1, 1, 1, 2]
        );
        // (0,0)->(2,0)=6, (0,1)->(1,1)=4, (0,2)->(1,2)=5, (1,0)->(1,0)=3, ...
        assert_eq!(p.reverse_view().copy_dtoh().unwrap(), [6, 4, 5, 3, 1, 2, 0]);
        assert_eq!(
            p.prev_row_view().copy_dtoh().unwrap(),
            [0, 1, 2, 3, 4, 5, 6]
        );
        assert_eq!(p.last_row_view().copy_dtoh().unwrap(), [6, 4, 5]);
    }

    #[test]
    fn unsorted_empty_and_zero_lengths_are_refused() {
        assert!(PackedSeq::new(&Device::Cpu, &[]).is_err());
        assert!(PackedSeq::new(&Device::Cpu, &[2, 0]).is_err());
        let e = PackedSeq::new(&Device::Cpu, &[2, 3]).unwrap_err();
        assert!(e.to_string().contains("longest first"), "{e}");
    }
}
