//! `shoestring verify`: each kernel family checks a device against its CPU
//! twin on inputs it draws itself, and reports one [`Outcome`].

use std::fmt;

/// The result of comparing one family's kernels on a device with the CPU twin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The family, e.g. `dropout`.
    pub family: &'static str,
    /// Output elements compared, summed over every kernel of the family.
    pub elements: u64,
    /// Elements whose bits differ.
    pub mismatches: u64,
    /// The first mismatch, described for a human (kernel, index, both values).
    pub first_mismatch: Option<String>,
}

impl Outcome {
    /// Whether no element differed.
    pub fn is_bitwise_equal(&self) -> bool {
        self.mismatches == 0
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = if self.elements.is_power_of_two() {
            format!("2^{} elements", self.elements.trailing_zeros())
        } else {
            format!("{} elements", self.elements)
        };
        match &self.first_mismatch {
            None => write!(f, "{:<12} bitwise equal  {size}", self.family),
            Some(first) => write!(
                f,
                "{:<12} MISMATCH  {} of {size} differ; first: {first}",
                self.family, self.mismatches
            ),
        }
    }
}

/// Counts bit mismatches between two equally long slices of bit patterns and
/// describes the first one. Every family's `verify` ends here.
pub fn compare_bits(family: &'static str, kernel: &str, want: &[u32], got: &[u32]) -> Outcome {
    let mut mismatches = 0u64;
    let mut first = None;
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w != g {
            mismatches += 1;
            if first.is_none() {
                first = Some(format!("{kernel}[{i}]: device {g:#010x}, cpu {w:#010x}"));
            }
        }
    }
    if want.len() != got.len() {
        mismatches += want.len().abs_diff(got.len()) as u64;
        first.get_or_insert_with(|| {
            format!(
                "{kernel}: device gave {} values, cpu {}",
                got.len(),
                want.len()
            )
        });
    }
    Outcome {
        family,
        elements: want.len() as u64,
        mismatches,
        first_mismatch: first,
    }
}

impl Outcome {
    /// Adds another kernel's comparison into this family's outcome.
    pub fn merge(mut self, other: Outcome) -> Outcome {
        self.elements += other.elements;
        self.mismatches += other.mismatches;
        if self.first_mismatch.is_none() {
            self.first_mismatch = other.first_mismatch;
        }
        self
    }
}
