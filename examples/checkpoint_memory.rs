//! Activation memory of gradient checkpointing: a 2-layer, 512-hidden LSTM
//! classifier on 16 sequences of length 256, forward and backward with
//! `checkpoint_segments` = 0 (off), 4, 16 and 64, on the CPU. Prints, per
//! setting, the bytes held between forward and backward (the activations
//! kept for the backward), the peak bytes of the whole step, the time, and
//! whether the gradients are bitwise those of the un-checkpointed model.
//! `cargo run --release --example checkpoint_memory` (numbers in docs/autograd.md).
use shoestring::autograd::{Graph, ParamId};
use shoestring::nn::{ClassifierConfig, TextBatch, TextClassifier};
use shoestring::rng::RngState;
use shoestring::Device;
use std::time::Instant;

fn main() -> shoestring::Result<()> {
    let device = Device::Cpu;
    let (batch, len, vocab) = (16usize, 256usize, 1000u32);
    let texts: Vec<Vec<u32>> = (0..batch as u32)
        .map(|i| {
            (0..len as u32)
                .map(|j| (i * 131 + j * 17) % vocab)
                .collect()
        })
        .collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 2).collect();
    let data = TextBatch::new(&device, &texts, &labels)?;
    let rng = RngState::new(1);
    let mut reference: Option<Vec<Vec<u32>>> = None;
    println!("segments  kept_between_fwd_and_bwd_MiB  peak_MiB  seconds  gradients");
    for k in [0usize, 4, 16, 64] {
        let config = ClassifierConfig {
            emb: 512,
            hidden: vec![512, 512],
            checkpoint_segments: k,
            ..ClassifierConfig::small(vocab as usize, 2)
        };
        let mut model = TextClassifier::new(&device, &config, 7)?;
        let start = Instant::now();
        let base = device.counters().live_bytes;
        device.reset_peak();
        let mut g = Graph::new(&device)?;
        let loss = model.loss(&mut g, &data, &rng)?;
        let kept = device.counters().live_bytes - base;
        let grads = g.backward(loss)?;
        let peak = device.counters().peak_live_bytes - base;
        let secs = start.elapsed().as_secs_f64();
        let bits: Vec<Vec<u32>> = (0..model.params.len())
            .map(|i| {
                let g = grads
                    .get(ParamId(i))
                    .expect("every parameter reaches the loss");
                g.to_vec_f32()
                    .map(|v| v.iter().map(|x| x.to_bits()).collect())
            })
            .collect::<shoestring::Result<_>>()?;
        let same = match &reference {
            None => {
                reference = Some(bits);
                "reference"
            }
            Some(r) if *r == bits => "bitwise equal",
            Some(_) => "DIFFERENT",
        };
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "{k:>8}  {:>28.1}  {:>8.1}  {secs:>7.2}  {same}",
            mib(kept),
            mib(peak)
        );
    }
    Ok(())
}
