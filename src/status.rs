//! The per-step status block (DESIGN.md, "The tensor and autograd layer"):
//! a few device words that a step's kernels write and the host reads **once**
//! per step, at its end, together with the loss. Layout and bits:
//! `kernels/common/abi_status.h`.
//!
//! Kernels never read results back on their own: a GEMM or an unscale check
//! that stores a non-finite value ORs [`SS_STATUS_OVERFLOW`]; the embedding
//! ORs [`SS_STATUS_BAD_ID`] with the first bad position and the count; the
//! cross-entropy ORs [`SS_STATUS_BAD_LABEL`] with the first bad row, and
//! writes the loss (ORing [`SS_STATUS_NONFINITE_LOSS`] when it is inf or NaN);
//! gradient clipping writes the norm. Every write is an integer atomic (OR,
//! MAX, ADD: order-independent) or one thread's store, so the block's bits do
//! not depend on scheduling. [`Status::clear`] zeroes it in place (a memset,
//! no allocation) and [`Status::read`] is the one device-to-host copy.

use crate::device::abi::{
    SS_STATUS_BAD_ID, SS_STATUS_BAD_ID_COUNT, SS_STATUS_BAD_ID_FIRST, SS_STATUS_BAD_LABEL,
    SS_STATUS_BAD_LABEL_FIRST, SS_STATUS_FLAGS, SS_STATUS_GRAD_NORM, SS_STATUS_LOSS,
    SS_STATUS_NONFINITE_LOSS, SS_STATUS_OVERFLOW, SS_STATUS_WORDS,
};
use crate::device::{Device, DeviceBuffer, ViewMut};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The step's status words on one device.
pub struct Status {
    words: DeviceBuffer<u32>,
}

impl Status {
    /// A clear block on `device`.
    pub fn new(device: &Device) -> Result<Status> {
        Ok(Status {
            words: DeviceBuffer::zeros(device, SS_STATUS_WORDS as usize)?,
        })
    }

    /// The device the block lives on.
    pub fn device(&self) -> &Device {
        self.words.device()
    }

    /// Zeroes every word, in place (queued on the stream on Cuda).
    pub fn clear(&mut self) -> Result<()> {
        self.words.view_mut().fill_zeros()
    }

    /// Copies the block to the host: the step's one device-to-host read.
    pub fn read(&self) -> Result<StatusReport> {
        let mut w = [0u32; SS_STATUS_WORDS as usize];
        self.words.view().copy_dtoh_into(&mut w)?;
        Ok(StatusReport::from_words(&w))
    }

    /// The words, for a kernel to write (Cuda, Sim): the `status` argument of
    /// a [`Launch`](crate::device::Launch). Public for code that launches its
    /// own kernels (the dev-only launchers of `dev/gemm_tc.rs`), whose kernels
    /// must write it as the layout and bits of `kernels/common/abi_status.h`
    /// say (a GEMM ORs `SS_STATUS_OVERFLOW` into word 0). Not part of the
    /// stable API.
    #[doc(hidden)]
    pub fn words_mut(&mut self) -> ViewMut<'_, u32> {
        self.words.view_mut()
    }

    /// The words as a host slice, for a CPU twin; an error naming `op` on a GPU.
    pub(crate) fn host_words_mut(&mut self, op: &'static str) -> Result<&mut [u32]> {
        self.words.host_mut(op)
    }

    /// Errors unless the block lives on `device`.
    pub(crate) fn check(&self, op: &'static str, device: &Device) -> Result<()> {
        self.words
            .check(op, "status", device, SS_STATUS_WORDS as usize)
    }
}

/// What the kernels of a step reported, as read by [`Status::read`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StatusReport {
    /// The OR of the `SS_STATUS_*` bits.
    pub flags: u32,
    /// The first (smallest) position whose token id was out of range.
    pub first_bad_id: Option<u32>,
    /// How many positions had an out-of-range id.
    pub bad_ids: u32,
    /// The first (smallest) row whose label was out of range.
    pub first_bad_label: Option<u32>,
    /// The last cross-entropy loss computed (0 when none was).
    pub loss: f32,
    /// The last gradient norm computed by clipping (0 when none was).
    pub grad_norm: f32,
}

impl StatusReport {
    fn from_words(w: &[u32]) -> StatusReport {
        let first = |word: u32| (word != 0).then(|| u32::MAX - word);
        StatusReport {
            flags: w[SS_STATUS_FLAGS as usize],
            first_bad_id: first(w[SS_STATUS_BAD_ID_FIRST as usize]),
            bad_ids: w[SS_STATUS_BAD_ID_COUNT as usize],
            first_bad_label: first(w[SS_STATUS_BAD_LABEL_FIRST as usize]),
            loss: f32::from_bits(w[SS_STATUS_LOSS as usize]),
            grad_norm: f32::from_bits(w[SS_STATUS_GRAD_NORM as usize]),
        }
    }

    /// A GEMM or an unscale check stored a non-finite value: with a loss
    /// scale, the step must be skipped.
    pub fn overflow(&self) -> bool {
        self.flags & SS_STATUS_OVERFLOW != 0
    }

    /// Some token id was out of range for its embedding.
    pub fn bad_id(&self) -> bool {
        self.flags & SS_STATUS_BAD_ID != 0
    }

    /// Some label was out of range for the classes.
    pub fn bad_label(&self) -> bool {
        self.flags & SS_STATUS_BAD_LABEL != 0
    }

    /// The loss was inf or NaN.
    pub fn nonfinite_loss(&self) -> bool {
        self.flags & SS_STATUS_NONFINITE_LOSS != 0
    }

    /// An error for bad input (an out-of-range id or label), naming the first
    /// position or row; the same text on every device. Overflow and a
    /// non-finite loss are not input errors: the caller decides (a loss
    /// scaler skips the step).
    pub fn check_inputs(&self) -> Result<()> {
        if self.bad_id() {
            return Err(Error::invalid(
                "embedding",
                format!(
                    "{} token ids are out of range for the embedding's rows; the first is at \
                     position {}",
                    self.bad_ids,
                    self.first_bad_id.map_or(-1, i64::from)
                ),
            ));
        }
        if self.bad_label() {
            return Err(Error::invalid(
                "cross_entropy",
                format!(
                    "labels[{}] is out of range for the number of classes",
                    self.first_bad_label.map_or(-1, i64::from)
                ),
            ));
        }
        Ok(())
    }
}

/// The status bits, for code that reads [`StatusReport::flags`] itself.
pub mod bits {
    pub use crate::device::abi::{
        SS_STATUS_BAD_ID as BAD_ID, SS_STATUS_BAD_LABEL as BAD_LABEL,
        SS_STATUS_NONFINITE_LOSS as NONFINITE_LOSS, SS_STATUS_OVERFLOW as OVERFLOW,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_decodes_first_positions_from_their_max_encoding() {
        let mut w = [0u32; SS_STATUS_WORDS as usize];
        assert_eq!(StatusReport::from_words(&w), StatusReport::default());
        w[SS_STATUS_FLAGS as usize] = SS_STATUS_BAD_ID | SS_STATUS_OVERFLOW;
        w[SS_STATUS_BAD_ID_FIRST as usize] = u32::MAX - 17;
        w[SS_STATUS_BAD_ID_COUNT as usize] = 3;
        w[SS_STATUS_LOSS as usize] = 1.5f32.to_bits();
        let r = StatusReport::from_words(&w);
        assert!(r.overflow() && r.bad_id() && !r.bad_label());
        assert_eq!((r.first_bad_id, r.bad_ids, r.loss), (Some(17), 3, 1.5));
        let err = r.check_inputs().unwrap_err().to_string();
        assert!(
            err.contains("3 token ids") && err.contains("position 17"),
            "{err}"
        );
    }
}
