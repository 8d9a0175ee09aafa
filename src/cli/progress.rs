//! Progress of a training run: an `indicatif` bar on a terminal (epoch,
//! step, loss, tokens/s, loss scale), plain lines every few seconds when
//! stderr is a file or a pipe (CI logs, `nohup`). Epoch results go to
//! stdout either way.

use indicatif::{ProgressBar, ProgressStyle};
use shoestring::run::EpochMetrics;
use shoestring::train::{Progress, StepEvent};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Seconds between plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The progress display of `shoestring train`.
pub struct TrainProgress {
    bar: Option<ProgressBar>,
    epochs: u32,
    total: u64,
    started: Instant,
    last_line: Instant,
    tokens: u64,
    loss_avg: Option<f64>,
}

impl TrainProgress {
    /// A bar if stderr is a terminal, plain lines otherwise.
    pub fn new() -> TrainProgress {
        let now = Instant::now();
        TrainProgress {
            bar: None,
            epochs: 0,
            total: 0,
            started: now,
            last_line: now,
            tokens: 0,
            loss_avg: None,
        }
    }

    fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }
}

impl Default for TrainProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for TrainProgress {
    fn start(&mut self, step: u64, total: u64, epochs: u32) {
        self.epochs = epochs;
        self.total = total;
        self.started = Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] step {pos}/{len} {msg} ({elapsed} < {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_position(step);
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, e: &StepEvent) {
        self.tokens += e.tokens as u64;
        if e.loss.is_finite() {
            let l = f64::from(e.loss);
            // An exponential average over about 20 steps: the bar's loss.
            self.loss_avg = Some(self.loss_avg.map_or(l, |a| a + (l - a) / 20.0));
        }
        let loss = self.loss_avg.unwrap_or(f64::NAN);
        let scale = e.scale.map_or(String::new(), |s| {
            format!(" scale {s}{}", if e.skipped { " (skipped)" } else { "" })
        });
        let msg = format!("loss {loss:.4} {:.0} tok/s{scale}", self.tokens_per_s());
        if let Some(bar) = &self.bar {
            bar.set_prefix(format!("epoch {}/{}", e.epoch + 1, self.epochs));
            bar.set_message(msg);
            bar.set_position(e.step);
        } else if self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            eprintln!(
                "epoch {}/{} batch {}/{} step {}/{}: {msg}",
                e.epoch + 1,
                self.epochs,
                e.batch.0 + 1,
                e.batch.1,
                e.step,
                self.total
            );
        }
    }

    fn epoch(&mut self, m: &EpochMetrics, seconds: f64) {
        let ppl = m
            .valid_perplexity
            .map_or(String::new(), |p| format!("  valid perplexity {p:.2}"));
        let line = format!(
            "epoch {}/{}: train loss {:.4}  valid loss {:.4}{ppl}  valid accuracy {:.4}  ({seconds:.1} s){}",
            m.epoch + 1,
            self.epochs,
            m.train_loss,
            m.valid_loss,
            m.valid_accuracy,
            if m.partial { "  [stopped by --max-steps]" } else { "" }
        );
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    fn message(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Drop for TrainProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
