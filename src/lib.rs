//! shoestring: bit-reproducible deep learning on hand-written CUDA kernels with
//! bit-identical CPU twins.
//!
//! Layers, each depending only on the ones above it in this list
//! (`../shared/DESIGN.md` has the whole map):
//! - [`device`]: `Device = Cpu | Cuda | Sim`, probing that never panics, the
//!   launcher shared by Cuda and Sim, pooled device buffers and views, the
//!   kernel ABI.
//! - [`numerics`] and [`detmath`]: the Rust twins of the bit-level helpers
//!   (one NaN, finiteness, f16 casts) and the transcendentals that every kernel
//!   shares (`kernels/common/`).
//! - [`digest`]: the one hex spelling of a sha256.
//! - [`rng`]: the address of a draw (Philox key and counter), the explicit
//!   Philox state and named streams.
//! - [`status`]: the per-step status block every kernel reports into and the
//!   host reads once per step.
//! - [`seq`]: packed sequences (sorted by length, no padding) and the index
//!   arrays kernels read.
//! - [`ops`]: kernel families, each a CUDA kernel file plus its CPU twin.
//! - [`tensor`]: [`Tensor`], dims, dtype and storage on a device.
//! - [`amp`]: [`Precision`](amp::Precision) and the public, serialisable loss scaler.
//! - [`autograd`]: the tape ([`Graph`](autograd::Graph)) and every op's backward.
//! - [`nn`]: layers with parameters and the AWD-LSTM text classifier.
//! - [`optim`]: Adam(W) and SGD by parameter group, gradient clipping.
//! - [`data`]: the embedded `fortunes8` corpus, CSV and aclImdb loaders,
//!   the tokenizer and vocabulary, and the deterministic batcher.
//! - [`step`]: one training step with one device read.
//! - [`checkpoint`]: model, optimizer moments, RNG, scaler and data cursor,
//!   written atomically and checksummed.
//! - [`run`]: a run directory: manifest, per-step log with fingerprints,
//!   metrics, plot, and `diff` of two runs.
//! - [`train`]: the training loop of `shoestring train`, with exact resume.
//!
//! `docs/autograd.md` walks through training a model with the public API.

#![warn(missing_docs)]

pub mod amp;
pub mod autograd;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod detmath;
pub mod device;
pub mod digest;
pub mod error;
pub mod fault;
pub mod nn;
pub mod numerics;
pub mod ops;
pub mod optim;
pub mod rng;
pub mod run;
pub mod seq;
pub mod status;
pub mod step;
pub mod tensor;
pub mod train;
pub mod verify;

pub use device::{Device, DeviceBuffer};
pub use error::{Error, Result};
pub use tensor::Tensor;
