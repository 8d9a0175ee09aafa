//! `shoestring bench`: the library's bench ([`shoestring::bench`]) as a
//! table on stdout, a progress line per row on stderr, and `--json` for
//! machines.

use anyhow::Context;
use clap::Args;
use shoestring::bench::{self, BenchOptions, Row};
use shoestring::device::{cpu_level, Device};
use std::path::PathBuf;
use std::time::Instant;

/// `shoestring bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// `cpu`, `sim` or `cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Smaller sizes and fewer repeats: under 3 minutes on 2 CPU cores,
    /// under 2 on an H100.
    #[arg(long)]
    pub quick: bool,
    /// Also write the rows, the machine and the command as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Only these families (comma-separated): philox, dropout, elementwise,
    /// detmath, reduce, embedding, softmax, lstm-cell, gemm, lstm, train.
    #[arg(long, value_name = "FAMILY", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Write the default classifier's training texts (as token ids), sizes
    /// and batches to PATH for `bench/torch_reference.py`, and exit.
    #[arg(long, value_name = "PATH")]
    pub export_batches: Option<PathBuf>,
}

/// The machine, in one line.
fn describe(dev: &Device) -> String {
    match dev {
        Device::Cpu => {
            let model = std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split(':').nth(1))
                        .map(|m| m.trim().to_string())
                })
                .unwrap_or_else(|| std::env::consts::ARCH.to_string());
            format!(
                "cpu: {model}, {} threads, {} path",
                rayon::current_num_threads(),
                cpu_level().name()
            )
        }
        Device::Cuda(d) => {
            let i = d.info();
            format!(
                "cuda: {}, compute capability {}.{}, driver {}",
                i.name, i.compute_capability.0, i.compute_capability.1, i.driver_version
            )
        }
        Device::Sim(_) => "sim: the SIMT simulator (for checking, not speed)".into(),
    }
}

/// Runs `shoestring bench`.
pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.export_batches {
        bench::train::export_batches(path)?;
        println!("wrote {}", path.display());
        return Ok(());
    }
    let options = BenchOptions {
        quick: a.quick,
        only: a.only.clone(),
    };
    options.validate()?;
    // Opened first: a path that cannot be written fails now, not after the run.
    let json_file = match &a.json {
        Some(path) => Some(
            std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?,
        ),
        None => None,
    };
    let dev = Device::parse(&a.device)?;
    let title = describe(&dev);
    eprintln!(
        "bench on {title}{}",
        if a.quick { " (--quick)" } else { "" }
    );
    let started = Instant::now();
    let mut n = 0usize;
    let mut progress = |r: &Row| {
        n += 1;
        let vs = match (&r.reference, r.ratio) {
            (Some(x), Some(q)) => format!(" ({q:.2}x {})", x.name),
            _ => String::new(),
        };
        eprintln!(
            "[{n:>2}, {:>5.1} s] {} {} {}: {:.3} ms{vs}",
            started.elapsed().as_secs_f64(),
            r.family,
            r.op,
            r.size,
            r.median_ms
        );
    };
    let rows = bench::run(&dev, &options, &mut progress)?;
    let reps = bench::Clock::new(&dev, a.quick).reps();
    let heading = format!(
        "{title}; median of {reps} timed batches after a warm-up call; ratio = ours / reference throughput"
    );
    print!("{}", bench::table(&heading, &rows));
    println!(
        "{} rows in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if let (Some(path), Some(file)) = (&a.json, json_file) {
        let doc = serde_json::json!({
            "format": "shoestring-bench-v1",
            "version": env!("CARGO_PKG_VERSION"),
            "machine": title,
            "device": a.device,
            "quick": a.quick,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "seconds": started.elapsed().as_secs_f64(),
            "rows": rows,
        });
        serde_json::to_writer_pretty(std::io::BufWriter::new(file), &doc)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
