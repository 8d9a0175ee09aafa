//! Evaluation and prediction with a trained classifier: inference graphs
//! (no dropout, BatchNorm's running statistics), logits read back, and the
//! loss and probabilities computed on the host in f64 from those bits, so
//! every device gives the same numbers.

use crate::amp::Precision;
use crate::autograd::Graph;
use crate::device::Device;
use crate::error::Result;
use crate::nn::{TextBatch, TextClassifier};
use crate::rng::RngState;
use crate::tensor::{DType, Tensor};

/// What [`evaluate`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Share of texts whose top class is the label.
    pub accuracy: f64,
    /// The top class of each text, in input order.
    pub predictions: Vec<u32>,
}

fn logits_to_host(t: &Tensor) -> Result<Vec<f32>> {
    match t.dtype() {
        DType::F16 => Ok(t
            .to_f16_bits()?
            .into_iter()
            .map(|b| half::f16::from_bits(b).to_f32())
            .collect()),
        _ => t.to_vec_f32(),
    }
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
        let values = logits_to_host(g.value(z))?;
        for (row, &sorted_i) in batch.order.iter().enumerate() {
            out[chunk[sorted_i]] = values[row * classes..(row + 1) * classes].to_vec();
        }
    }
    Ok(out)
}

/// Log-softmax of one row, in f64.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row
        .iter()
        .map(|&v| f64::from(v))
        .fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|&v| f64::from(v) - lse).collect()
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

/// Loss and accuracy of `model` on `texts` with `labels`.
pub fn evaluate(
    model: &mut TextClassifier,
    device: &Device,
    precision: Precision,
    texts: &[Vec<u32>],
    labels: &[u32],
    batch_size: usize,
) -> Result<Evaluation> {
    let all = logits(model, device, precision, texts, batch_size)?;
    let mut loss = 0.0;
    let mut right = 0usize;
    let mut predictions = Vec::with_capacity(all.len());
    if labels.len() != all.len() {
        return Err(crate::error::Error::invalid(
            "evaluate",
            format!("{} texts but {} labels", all.len(), labels.len()),
        ));
    }
    for (row, &label) in all.iter().zip(labels) {
        let lp = log_softmax(row);
        let l = lp.get(label as usize).ok_or_else(|| {
            crate::error::Error::invalid(
                "evaluate",
                format!("label {label}, but the model has {} classes", row.len()),
            )
        })?;
        loss -= l;
        let p = argmax(row);
        right += usize::from(p == label);
        predictions.push(p);
    }
    let n = all.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss / n,
        accuracy: right as f64 / n,
        predictions,
    })
}
