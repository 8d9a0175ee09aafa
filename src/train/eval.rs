//! Evaluation and prediction with a trained classifier: inference graphs
//! (no dropout, BatchNorm's running statistics), logits read back, and the
//! log-probabilities computed on the host by the softmax family's CPU twin
//! (detmath, canonical order), so every device and every host gives the
//! same bits; losses are summed in f64 in text order.

use crate::amp::Precision;
use crate::autograd::Graph;
use crate::device::Device;
use crate::error::Result;
use crate::nn::{TextBatch, TextClassifier};
use crate::rng::RngState;

/// What [`evaluate`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Share of texts whose top class is the label.
    pub accuracy: f64,
    /// Truth against prediction, by class.
    pub confusion: Confusion,
}

/// The logits of `texts` (token ids), `[texts.len()][classes]` in input
/// order, `batch_size` texts per forward (longest first).
pub fn logits(
    model: &mut TextClassifier,
    device: &Device,
    precision: Precision,
    texts: &[Vec<u32>],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let classes = model.config.classes;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by(|&a, &b| texts[b].len().cmp(&texts[a].len()));
    let mut out = vec![Vec::new(); texts.len()];
    let rng = RngState::new(0); // no dropout in inference: never drawn
    for chunk in order.chunks(batch_size.max(1)) {
        let batch_texts: Vec<Vec<u32>> = chunk.iter().map(|&i| texts[i].clone()).collect();
        let zeros = vec![0u32; chunk.len()];
        let batch = TextBatch::new(device, &batch_texts, &zeros)?;
        let mut g = Graph::inference(device, precision)?;
        let z = model.forward(&mut g, &batch, &rng)?;
        let values = g.value(z).to_host_f32()?;
        for (row, &sorted_i) in batch.order.iter().enumerate() {
            out[chunk[sorted_i]] = values[row * classes..(row + 1) * classes].to_vec();
        }
    }
    Ok(out)
}

/// Log-softmax of one row: the softmax family's CPU twin
/// (`ops::softmax::cpu::log_softmax_row`), the exact tier's bits.
pub fn log_softmax(row: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; row.len()];
    crate::ops::softmax::cpu::log_softmax_row(row, &mut out);
    out
}

/// The probabilities of one row (`detmath::exp` of [`log_softmax`]).
pub fn probabilities(row: &[f32]) -> Vec<f32> {
    log_softmax(row)
        .into_iter()
        .map(crate::detmath::exp)
        .collect()
}

/// The index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Loss, accuracy and confusion of `model` on `texts` with `labels`.
pub fn evaluate(
    model: &mut TextClassifier,
    device: &Device,
    precision: Precision,
    texts: &[Vec<u32>],
    labels: &[u32],
    batch_size: usize,
) -> Result<Evaluation> {
    let all = logits(model, device, precision, texts, batch_size)?;
    if labels.len() != all.len() {
        return Err(crate::error::Error::invalid(
            "evaluate",
            format!("{} texts but {} labels", all.len(), labels.len()),
        ));
    }
    let labels: Vec<usize> = labels.iter().map(|&y| y as usize).collect();
    // Checks every label against the classes before the loss indexes rows.
    let confusion = Confusion::new(&all, &labels, model.config.classes)?;
    let loss: f64 = all
        .iter()
        .zip(&labels)
        .map(|(row, &y)| -f64::from(log_softmax(row)[y]))
        .sum();
    let n = all.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss / n,
        accuracy: confusion.correct() as f64 / n,
        confusion,
    })
}

/// Counts of (true class, predicted class) pairs, and the precision and
/// recall they give.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    /// `counts[truth][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// The confusion of `logits` (one row per text) against `labels` over
    /// `classes` classes; a label out of range is an error.
    pub fn new(logits: &[Vec<f32>], labels: &[usize], classes: usize) -> Result<Confusion> {
        let mut counts = vec![vec![0usize; classes]; classes];
        for (row, &y) in logits.iter().zip(labels) {
            let p = argmax(row) as usize;
            if y >= classes || p >= classes {
                return Err(crate::error::Error::invalid(
                    "confusion",
                    format!("class {y} or {p} outside {classes} classes"),
                ));
            }
            counts[y][p] += 1;
        }
        Ok(Confusion { counts })
    }

    /// Texts counted.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Texts whose predicted class is right.
    pub fn correct(&self) -> usize {
        (0..self.counts.len()).map(|i| self.counts[i][i]).sum()
    }

    /// Texts of class `k`.
    pub fn support(&self, k: usize) -> usize {
        self.counts[k].iter().sum()
    }

    /// Of the texts predicted `k`, the share that are `k` (`None` if none were).
    pub fn precision(&self, k: usize) -> Option<f64> {
        let predicted: usize = self.counts.iter().map(|r| r[k]).sum();
        (predicted > 0).then(|| self.counts[k][k] as f64 / predicted as f64)
    }

    /// Of the texts of class `k`, the share predicted `k` (`None` if none are).
    pub fn recall(&self, k: usize) -> Option<f64> {
        let support = self.support(k);
        (support > 0).then(|| self.counts[k][k] as f64 / support as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts_precision_and_recall() {
        // Truth 0, 0, 1, 1; predicted 0, 1, 1, 1.
        let logits = vec![
            vec![2.0, 1.0],
            vec![0.0, 1.0],
            vec![0.0, 3.0],
            vec![1.0, 1.5],
        ];
        let c = Confusion::new(&logits, &[0, 0, 1, 1], 2).unwrap();
        assert_eq!(c.counts, [[1, 1], [0, 2]]);
        assert_eq!((c.correct(), c.total()), (3, 4));
        assert_eq!(c.precision(0), Some(1.0));
        assert_eq!(c.precision(1), Some(2.0 / 3.0));
        assert_eq!(c.recall(0), Some(0.5));
        assert_eq!(c.recall(1), Some(1.0));
        assert!(Confusion::new(&logits, &[0, 0, 1, 2], 2).is_err());
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }
}
