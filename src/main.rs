//! The `shoestring` command line. Each subcommand is a thin shell over the
//! library; errors print as one line and exit non-zero.

mod cli;

use clap::{Parser, Subcommand};
use shoestring::device::{kernels, sim_asan, sim_available, Device};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shoestring",
    version,
    about = "Bit-reproducible deep learning on hand-written CUDA kernels with bit-identical CPU twins",
    long_about = "Bit-reproducible deep learning on hand-written CUDA kernels with bit-identical CPU twins.\n\n\
                  Devices: `cpu` (the Rust twins), `cuda[:N]` (an NVIDIA GPU), `sim` (the CUDA kernels \
                  run on the CPU by the SIMT simulator). See README.md and docs/."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the text classifier (by default: on the embedded `fortunes8`
    /// corpus, on the CPU, in under a minute) into a run directory with a
    /// manifest, a per-step log, metrics, a plot, checkpoints and the final
    /// model. Bit-reproducible: the same config gives the same model bytes
    /// on every run, worker count and device of the exact tier, and after
    /// any interruption and `--resume`.
    Train(Box<cli::train::TrainArgs>),
    /// ULMFiT's language-model stages: `lm pretrain` on a general corpus,
    /// then `lm finetune` on the target's training texts; then `train
    /// --encoder FT_RUN`. Each stage is a run directory like `train`'s
    /// (resumable, bit-reproducible), whose manifest names its parent
    /// model's sha256.
    #[command(subcommand)]
    Lm(cli::lm::LmCommand),
    /// Evaluate a trained run's model on a dataset: accuracy, per-class
    /// precision and recall, confusion matrix.
    Eval(cli::eval::EvalArgs),
    /// Classify texts (arguments, or one per line of stdin) with a trained
    /// run's model: the top classes and their probabilities.
    Predict(cli::eval::PredictArgs),
    /// Compare two runs: the manifest fields that differ, the first step
    /// whose loss or fingerprint differs, and which tensors differ and by
    /// how much. Exit 0 when identical, 1 when different, 2 on error.
    Diff(cli::diff::DiffArgs),
    /// Time every kernel family, the GEMM, the LSTM layer and the default
    /// classifier's training step, each next to a reference measured in the
    /// same process (a copy of the same bytes, matrixmultiply and the gemm
    /// crate or cuBLAS), and print one table: median time, throughput,
    /// reference, ratio. Each op's output is checked before it is timed.
    Bench(cli::bench::BenchArgs),
    /// Print what this machine offers: CPU threads, whether CUDA is usable (and
    /// why not), the GPU, the driver, where the kernels came from and their sha256.
    Doctor,
    /// Check the promise on this machine: run every kernel family on a device
    /// (the GPU by default, or the simulator) and compare its output with the
    /// CPU twin bit for bit. Prints one line per family; exits non-zero on any
    /// mismatch.
    Verify {
        /// `cuda`, `cuda:N` or `sim`.
        #[arg(long, default_value = "cuda")]
        device: String,
        /// log2 of the number of output elements per family.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(4..=30))]
        log2_elements: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cli::train::run(*a),
        Command::Lm(c) => cli::lm::run(c),
        Command::Eval(a) => cli::eval::eval(a),
        Command::Predict(a) => cli::eval::predict(a),
        Command::Diff(a) => return cli::diff::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Doctor => doctor(),
        Command::Verify {
            device,
            log2_elements,
        } => verify(&device, log2_elements),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn doctor() -> anyhow::Result<()> {
    println!("shoestring {}", env!("CARGO_PKG_VERSION"));
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "cpu: {threads} threads ({} worker threads for CPU ops), features: {}",
        rayon::current_num_threads(),
        cpu_features()
    );
    match Device::cuda(0) {
        Ok(Device::Cuda(d)) => {
            let i = d.info();
            println!("cuda: usable");
            println!("gpu 0: {}", i.name);
            println!(
                "compute capability: {}.{}",
                i.compute_capability.0, i.compute_capability.1
            );
            println!(
                "driver: CUDA {}.{} ({})",
                i.driver_version / 1000,
                (i.driver_version % 1000) / 10,
                i.driver_version
            );
            println!(
                "memory: {:.1} GiB",
                i.total_memory_bytes as f64 / (1u64 << 30) as f64
            );
        }
        Ok(_) => unreachable!("Device::cuda returns a Cuda device"),
        Err(shoestring::Error::CudaUnavailable(why)) => println!("cuda: not usable: {why}"),
        Err(e) => println!("cuda: not usable: {e}"),
    }
    println!("kernels: {} for {}", kernels::ORIGIN, kernels::ARCH);
    println!("kernels sha256: {}", kernels::SHA256);
    for fam in kernels::FAMILIES {
        println!("  {:<12} {}", fam.name, fam.sha256);
    }
    if sim_available() {
        println!(
            "sim: available{}",
            if sim_asan() {
                " (AddressSanitizer build)"
            } else {
                ""
            }
        );
    } else {
        println!("sim: not available (built without a C++ compiler)");
    }
    Ok(())
}

fn verify(device: &str, log2_elements: u32) -> anyhow::Result<()> {
    let dev = Device::parse(device)?;
    anyhow::ensure!(
        dev.runs_kernels(),
        "--device cpu compares the CPU with itself; use cuda or sim"
    );
    println!("verify: {dev} against the CPU twins");
    let mut failed = 0;
    for (family, check) in shoestring::ops::VERIFY {
        match check(&dev, 1usize << log2_elements) {
            Ok(outcome) => {
                println!("{outcome}");
                failed += usize::from(!outcome.is_bitwise_equal());
            }
            Err(e) => {
                println!("{family:<12} ERROR  {e}");
                failed += 1;
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} kernel families differ from their CPU twins on {dev}"
    );
    Ok(())
}

fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut f = Vec::new();
        if std::arch::is_x86_feature_detected!("avx2") {
            f.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            f.push("fma");
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            f.push("avx512f");
        }
        if f.is_empty() {
            "baseline x86-64".into()
        } else {
            f.join(", ")
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
}

/// The error and its causes on one line, each cause once: our errors
/// already print their source (`path: No space left on device`), so a cause
/// the line holds already is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line.replace('\n', " ")
}
