//! Language-model data: one stream of token ids read as `bs` parallel rows
//! in BPTT windows, fastai's `LMDataLoader` with the variable window length
//! of fastai v1 (and the AWD-LSTM paper), every random choice drawn from a
//! named Philox stream.
//!
//! Letters: `bs` rows, `len` tokens per row, `t` a window's length.
//!
//! - **Stream** ([`epoch_stream`]): the texts, each already `xxbos` first
//!   ([`Vocab::encode`](super::vocab::Vocab::encode)), in the order of
//!   `permutation(seed, data_shuffle[3], epoch)` when training (as given
//!   for validation), concatenated.
//! - **Rows** ([`LmRows`]): row `b` is the stream's tokens
//!   `b * len ..= (b + 1) * len` with `len = (tokens - 1) / bs`; a window
//!   `[s, s + t)` takes inputs at those positions and targets one further.
//!   The few tokens past `bs * len + 1` are not read that epoch.
//! - **Windows** ([`windows`]): window `k` of an epoch is `bptt` long, or
//!   `bptt / 2` with probability 1/20, plus a jitter of 5 standard
//!   normals, truncated toward zero and at least 5 (fastai v1:
//!   `max(5, int(normal(bptt or bptt / 2, 5)))`), cut at the row's end.
//!   The draws are blocks `4k .. 4k + 4` of stream `lm_windows[0]` at step
//!   `epoch`: word 0 of block `4k` decides the halving (`w < 2^32 / 20`),
//!   and the normal is Irwin-Hall, `sum of 12 uniforms - 6` from the top 24
//!   bits of the 12 words of blocks `4k + 1 .. 4k + 4` (mean 0, variance 1,
//!   within 6 of 0), summed as integers, so the lengths are exact integer
//!   and IEEE arithmetic, the same on every machine. They depend on the
//!   seed, the epoch, `bptt` and `len` only.
//!
//! The model carries its hidden state from one window to the next of the
//! same rows (truncated BPTT: the state's value, not its gradient) and
//! starts each epoch from zeros.

use super::shuffle::permutation;
use crate::error::{Error, Result};
use crate::ops::philox::cpu::philox_block;
use crate::rng::{PhiloxCounter, PhiloxKey, Stream, StreamFamily};

/// fastai's default BPTT window.
pub const DEFAULT_BPTT: usize = 72;

/// The stream that orders an epoch's texts.
const TEXT_ORDER: Stream = Stream::new(StreamFamily::DataShuffle, 3);
/// The stream that splits held-out texts from a corpus.
const HOLD_OUT: Stream = Stream::new(StreamFamily::DataShuffle, 4);
/// The stream of window lengths.
const WINDOWS: Stream = Stream::new(StreamFamily::LmWindows, 0);

/// Shortest window (fastai v1's floor).
const MIN_WINDOW: i64 = 5;
/// The jitter's standard deviation.
const JITTER_SD: f64 = 5.0;

/// The epoch's token stream: the texts in the epoch's order (`shuffle`) or
/// as given, concatenated.
pub fn epoch_stream(texts: &[Vec<u32>], seed: u64, epoch: u32, shuffle: bool) -> Vec<u32> {
    let order: Vec<usize> = if shuffle {
        permutation(seed, TEXT_ORDER, epoch, texts.len())
    } else {
        (0..texts.len()).collect()
    };
    let mut out = Vec::with_capacity(texts.iter().map(Vec::len).sum());
    for i in order {
        out.extend_from_slice(&texts[i]);
    }
    out
}

/// Splits `n` texts into (training, held-out) index lists, both ascending:
/// the first `round(n * fraction)` of `permutation(seed, data_shuffle[4],
/// 0)` are held out (at least one when `fraction > 0` and `n > 1`).
pub fn hold_out(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut k = (n as f64 * fraction).round() as usize;
    if fraction > 0.0 && n > 1 {
        k = k.clamp(1, n - 1);
    }
    let perm = permutation(seed, HOLD_OUT, 0, n);
    let mut held: Vec<usize> = perm[..k].to_vec();
    let mut kept: Vec<usize> = perm[k..].to_vec();
    held.sort_unstable();
    kept.sort_unstable();
    (kept, held)
}

/// A stream laid out as `bs` rows of `len` tokens (plus the one target past
/// each row's end).
#[derive(Debug, Clone)]
pub struct LmRows {
    /// Rows.
    pub bs: usize,
    /// Input tokens per row.
    pub len: usize,
    stream: Vec<u32>,
}

/// One window of every row: inputs and targets time-major (`[t * bs]`,
/// position `i * bs + b` is row `b`'s token `start + i`).
#[derive(Debug, Clone, PartialEq)]
pub struct LmWindow {
    /// Steps.
    pub t: usize,
    /// Rows.
    pub bs: usize,
    /// Input ids.
    pub inputs: Vec<u32>,
    /// The next token of each input.
    pub targets: Vec<u32>,
}

impl LmRows {
    /// `stream` in `bs` rows; an error when a row would have fewer than 2
    /// tokens.
    pub fn new(stream: Vec<u32>, bs: usize) -> Result<LmRows> {
        let len = stream.len().saturating_sub(1) / bs.max(1);
        if bs == 0 || len < 2 {
            return Err(Error::invalid(
                "language-model data",
                format!(
                    "{} tokens cannot fill {bs} rows of at least 2: use a smaller batch size or more text",
                    stream.len()
                ),
            ));
        }
        Ok(LmRows { bs, len, stream })
    }

    /// The window `[start, start + t)` of every row.
    pub fn window(&self, start: usize, t: usize) -> LmWindow {
        let mut inputs = Vec::with_capacity(t * self.bs);
        let mut targets = Vec::with_capacity(t * self.bs);
        for i in start..start + t {
            for b in 0..self.bs {
                let at = b * self.len + i;
                inputs.push(self.stream[at]);
                targets.push(self.stream[at + 1]);
            }
        }
        LmWindow {
            t,
            bs: self.bs,
            inputs,
            targets,
        }
    }
}

/// The window lengths of an epoch over rows of `len` tokens (module docs);
/// without `jitter` (validation) every window is `bptt` but the last. They
/// sum to `len`.
pub fn windows(seed: u64, epoch: u32, bptt: usize, len: usize, jitter: bool) -> Vec<usize> {
    let key = PhiloxKey::from_seed(seed);
    let bptt = bptt.max(1);
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < len {
        let t = if jitter {
            let k = out.len() as u64;
            let block =
                |j: u64| philox_block(key, PhiloxCounter::new(4 * k + j, WINDOWS.id(), epoch));
            let halve = u64::from(block(0)[0]) * 20 < 1 << 32;
            let base = if halve {
                bptt as f64 / 2.0
            } else {
                bptt as f64
            };
            let sum: i64 = (1..4)
                .flat_map(|j| block(j).into_iter())
                .map(|w| i64::from(w >> 8))
                .sum();
            let z = (sum - 6 * (1 << 24)) as f64 / f64::from(1u32 << 24);
            ((base + JITTER_SD * z).trunc() as i64).max(MIN_WINDOW) as usize
        } else {
            bptt
        };
        let t = t.min(len - at);
        out.push(t);
        at += t;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_rows_and_depend_on_seed_and_epoch_only() {
        let a = windows(42, 0, 72, 10_000, true);
        assert_eq!(a.iter().sum::<usize>(), 10_000);
        assert_eq!(a, windows(42, 0, 72, 10_000, true));
        assert_ne!(a, windows(42, 1, 72, 10_000, true));
        assert_ne!(a, windows(43, 0, 72, 10_000, true));
        // Mostly around 72, some around 36, never below 5 (but the last).
        let n = a.len() - 1;
        assert!(a[..n].iter().all(|t| (5..=72 + 30).contains(t)));
        let short = a[..n].iter().filter(|&&t| t < 54).count();
        assert!(short > 0 && short < n / 5, "{short} of {n}");
        let mean = a[..n].iter().sum::<usize>() as f64 / n as f64;
        assert!((60.0..74.0).contains(&mean), "{mean}");
        let fixed = windows(42, 0, 72, 1000, false);
        assert_eq!(fixed[..13], [72; 13]);
        assert_eq!(fixed[13], 1000 - 13 * 72);
    }

    #[test]
    fn rows_read_the_stream_in_parallel_and_targets_are_the_next_token() {
        let rows = LmRows::new((0..23).collect(), 2).unwrap();
        assert_eq!(rows.len, 11);
        let w = rows.window(3, 2);
        assert_eq!(w.inputs, [3, 14, 4, 15]);
        assert_eq!(w.targets, [4, 15, 5, 16]);
        let last = rows.window(10, 1);
        assert_eq!(last.targets, [11, 22]);
        assert!(LmRows::new(vec![1, 2, 3], 2).is_err());
    }

    #[test]
    fn an_epoch_stream_is_a_permutation_of_whole_texts() {
        let texts: Vec<Vec<u32>> = (0..20).map(|i| vec![2, i, i]).collect();
        let s = epoch_stream(&texts, 7, 0, true);
        assert_eq!(s.len(), 60);
        assert_ne!(s, epoch_stream(&texts, 7, 1, true));
        let mut firsts: Vec<u32> = s.chunks(3).map(|c| c[1]).collect();
        assert!(s.chunks(3).all(|c| c[0] == 2 && c[1] == c[2]));
        firsts.sort_unstable();
        assert_eq!(firsts, (0..20).collect::<Vec<_>>());
        assert_eq!(epoch_stream(&texts, 7, 0, false)[..3], [2, 0, 0]);
    }

    #[test]
    fn hold_out_splits_by_the_seed() {
        let (kept, held) = hold_out(100, 0.1, 3);
        assert_eq!((kept.len(), held.len()), (90, 10));
        assert!(held.iter().all(|h| !kept.contains(h)));
        assert_eq!(hold_out(100, 0.1, 3), (kept, held));
        assert_eq!(hold_out(5, 0.0, 3).1.len(), 0);
    }
}
