//! The explicit random-number state (DESIGN.md rule 5).
//!
//! Every random draw in shoestring is `philox4x32_10(counter, key)` with
//! `key = (seed_lo, seed_hi)` and `counter = (block_lo, block_hi, stream, step)`.
//! The whole state of the generator is therefore [`RngState`]: a seed and the
//! current step. It prints, serialises and restores; nothing is hidden in a
//! global or advanced by the number of draws made so far. `stream` names the
//! call site ([`Stream`]), so two dropouts never share masks, and a draw made
//! again (backward, gradient-checkpoint recompute, a resumed run) is the same.

mod address;

pub use address::{PhiloxCounter, PhiloxKey};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The whole generator state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RngState {
    /// The run's seed; the Philox key is its two 32-bit halves.
    pub seed: u64,
    /// The optimizer step (or epoch, for data shuffling): counter word 3.
    pub step: u32,
}

impl RngState {
    /// The state of a run with `seed`, at step 0.
    pub fn new(seed: u64) -> Self {
        RngState { seed, step: 0 }
    }

    /// The Philox key: the seed's two halves.
    pub fn key(&self) -> PhiloxKey {
        PhiloxKey::from_seed(self.seed)
    }

    /// The counter of block `block` of `stream` at the current step.
    pub fn counter(&self, stream: Stream, block: u64) -> PhiloxCounter {
        PhiloxCounter::new(block, stream.id(), self.step)
    }

    /// Moves to the next step. Errors instead of wrapping, which would reuse
    /// every mask of step 0.
    pub fn advance(&mut self) -> Result<()> {
        self.step = self
            .step
            .checked_add(1)
            .ok_or_else(|| Error::invalid("rng", "step counter exhausted (2^32 steps)"))?;
        Ok(())
    }

    /// The state as one line of JSON, e.g. `{"seed":42,"step":7}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses [`RngState::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Format {
            what: "rng state".into(),
            msg: e.to_string(),
        })
    }
}

impl fmt::Display for RngState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.key();
        write!(
            f,
            "philox4x32-10 seed={} key=({:#010x}, {:#010x}) step={}",
            self.seed, k.lo, k.hi, self.step
        )
    }
}

/// A call site's stream id: counter word 2. `family << 8 | index`, so each
/// family has 256 indexed streams (one per layer, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stream {
    /// The call site's family.
    pub family: StreamFamily,
    /// Which one of the family (a layer, a head block).
    pub index: u8,
}

/// The named stream families. Their numbers are part of the reproducibility
/// contract: renumbering one changes every mask drawn from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u32)]
pub enum StreamFamily {
    /// Parameter initialisation.
    Init = 1,
    /// Batch order and per-sample randomness (step = epoch).
    DataShuffle = 2,
    /// Embedding dropout (whole rows of the embedding matrix).
    EmbeddingDropout = 3,
    /// Variational dropout on the LSTM input.
    InputDropout = 4,
    /// Variational dropout between LSTM layers (index = layer).
    HiddenDropout = 5,
    /// DropConnect on the hidden-to-hidden weights (index = layer).
    WeightDrop = 6,
    /// Dropout on the last LSTM layer's output.
    OutputDropout = 7,
    /// Dropout inside the classifier head (index = layer).
    ClassifierDropout = 8,
    /// Language-model data: the BPTT window lengths (step = epoch).
    LmWindows = 9,
    /// Streams for tests and user experiments.
    User = 255,
}

impl StreamFamily {
    /// Every family.
    pub const ALL: [StreamFamily; 10] = [
        StreamFamily::Init,
        StreamFamily::DataShuffle,
        StreamFamily::EmbeddingDropout,
        StreamFamily::InputDropout,
        StreamFamily::HiddenDropout,
        StreamFamily::WeightDrop,
        StreamFamily::OutputDropout,
        StreamFamily::ClassifierDropout,
        StreamFamily::LmWindows,
        StreamFamily::User,
    ];

    /// The family's name in `Stream::parse` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            StreamFamily::Init => "init",
            StreamFamily::DataShuffle => "data_shuffle",
            StreamFamily::EmbeddingDropout => "embedding_dropout",
            StreamFamily::InputDropout => "input_dropout",
            StreamFamily::HiddenDropout => "hidden_dropout",
            StreamFamily::WeightDrop => "weight_drop",
            StreamFamily::OutputDropout => "output_dropout",
            StreamFamily::ClassifierDropout => "classifier_dropout",
            StreamFamily::LmWindows => "lm_windows",
            StreamFamily::User => "user",
        }
    }
}

impl Stream {
    /// Stream `index` of `family`.
    pub const fn new(family: StreamFamily, index: u8) -> Self {
        Stream { family, index }
    }

    /// Stream `index` of `family` for a layer counted in `usize`; an error
    /// past the family's 256 streams (two layers must never share one).
    pub fn indexed(family: StreamFamily, index: usize) -> Result<Self> {
        u8::try_from(index)
            .map(|i| Stream::new(family, i))
            .map_err(|_| {
                Error::invalid(
                    "rng stream",
                    format!(
                        "{} has 256 streams; index {index} is past them (too many layers)",
                        family.name()
                    ),
                )
            })
    }

    /// Counter word 2.
    pub fn id(&self) -> u32 {
        ((self.family as u32) << 8) | u32::from(self.index)
    }

    /// Parses `name` or `name[index]`, e.g. `hidden_dropout[2]`.
    pub fn parse(text: &str) -> Result<Stream> {
        let bad = || {
            let names: Vec<&str> = StreamFamily::ALL.iter().map(|f| f.name()).collect();
            Error::invalid(
                "stream",
                format!(
                    "`{text}` is not a stream: expected NAME or NAME[0..255], NAME one of {}",
                    names.join(", ")
                ),
            )
        };
        let (name, index) = match text.split_once('[') {
            Some((n, rest)) => {
                let idx = rest.strip_suffix(']').ok_or_else(bad)?;
                (n, idx.parse::<u8>().map_err(|_| bad())?)
            }
            None => (text, 0),
        };
        let family = StreamFamily::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(bad)?;
        Ok(Stream { family, index })
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.family.name(), self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_state_round_trips_through_json() {
        let mut s = RngState::new(0xdead_beef_0123_4567);
        s.advance().unwrap();
        s.advance().unwrap();
        let back = RngState::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.step, 2);
    }

    #[test]
    fn rng_state_refuses_to_wrap_the_step() {
        let mut s = RngState {
            seed: 1,
            step: u32::MAX,
        };
        assert!(s.advance().is_err());
        assert_eq!(s.step, u32::MAX);
    }

    #[test]
    fn key_is_the_seed_halves_verbatim() {
        let k = RngState::new(0x0123_4567_89ab_cdef).key();
        assert_eq!((k.lo, k.hi), (0x89ab_cdef, 0x0123_4567));
    }

    #[test]
    fn stream_ids_are_distinct_and_names_parse_back() {
        let mut ids = std::collections::BTreeSet::new();
        for f in StreamFamily::ALL {
            for i in [0u8, 1, 255] {
                let s = Stream::new(f, i);
                assert!(ids.insert(s.id()), "duplicate id for {s}");
                assert_eq!(Stream::parse(&s.to_string()).unwrap(), s);
            }
        }
        assert_eq!(
            Stream::parse("hidden_dropout").unwrap(),
            Stream::new(StreamFamily::HiddenDropout, 0)
        );
        assert!(Stream::parse("hidden_dropout[256]").is_err());
        assert!(Stream::parse("nope").is_err());
    }

    #[test]
    fn counter_places_stream_and_step_in_words_2_and_3() {
        let mut s = RngState::new(5);
        s.advance().unwrap();
        let c = s.counter(Stream::new(StreamFamily::WeightDrop, 3), 0x1_0000_0002);
        assert_eq!(
            (c.block_lo, c.block_hi, c.stream, c.step),
            (2, 1, (6 << 8) | 3, 1)
        );
    }
}
