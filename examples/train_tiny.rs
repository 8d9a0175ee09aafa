//! Build a tiny text classifier, train it a few steps, save it and load it
//! back: the example of docs/autograd.md, run by CI. `cargo run --release
//! --example train_tiny [-- cpu|sim|cuda]`.
use shoestring::amp::Precision;
use shoestring::nn::{ClassifierConfig, TextBatch, TextClassifier};
use shoestring::optim::Optimizer;
use shoestring::rng::RngState;
use shoestring::step::{train_step, StepConfig};
use shoestring::Device;

fn main() -> shoestring::Result<()> {
    let device = Device::parse(&std::env::args().nth(1).unwrap_or_else(|| "cpu".into()))?;
    // Texts as token ids (a real run tokenizes a corpus), two classes.
    let texts: Vec<Vec<u32>> = (0..16u32)
        .map(|i| (0..3 + i % 5).map(|j| (i * 7 + j) % 50).collect())
        .collect();
    let labels: Vec<u32> = (0..16).map(|i| i % 2).collect();
    let batch = TextBatch::new(&device, &texts, &labels)?;

    let config = ClassifierConfig::small(50, 2);
    let mut model = TextClassifier::new(&device, &config, 42)?; // weights from Philox, seed 42
    let mut opt = Optimizer::adam(&model.params, 1e-2, 0.01);
    let step = StepConfig {
        precision: Precision::F32,
        clip: Some(1.0),
        ..StepConfig::default()
    };
    let mut rng = RngState::new(42); // the whole RNG state: seed and step
    for _ in 0..5 {
        let out = train_step(&mut model, &mut opt, None, &step, &batch, &mut rng)?;
        println!(
            "step {} loss {:.6} grad norm {:.4}",
            rng.step, out.report.loss, out.report.grad_norm
        );
    }

    let path = std::env::temp_dir().join("shoestring-train-tiny.safetensors");
    model.save(&path)?;
    let loaded = TextClassifier::load(&device, &path)?;
    let same = loaded.tensors()? == model.tensors()?;
    println!(
        "saved {} and loaded it back: {}",
        path.display(),
        if same { "identical" } else { "DIFFERENT" }
    );
    assert!(same, "a saved model must load back bit for bit");
    Ok(())
}
