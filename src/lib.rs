//! shoestring: bit-reproducible deep learning on hand-written CUDA kernels with
//! bit-identical CPU twins.
//!
//! Layers, each depending only on the ones above it in this list
//! (`../shared/DESIGN.md` has the whole map):
//! - [`device`]: `Device = Cpu | Cuda | Sim`, probing that never panics, the
//!   launcher shared by Cuda and Sim, device buffers, the kernel ABI.
//! - [`numerics`] and [`detmath`]: the Rust twins of the bit-level helpers
//!   (one NaN, finiteness, f16 casts) and the transcendentals that every kernel
//!   shares (`kernels/common/`).
//! - [`rng`]: the address of a draw (Philox key and counter), the explicit
//!   Philox state and named streams.
//! - [`status`]: the per-step status block every kernel reports into and the
//!   host reads once per step.
//! - [`seq`]: packed sequences (sorted by length, no padding) and the index
//!   arrays kernels read.
//! - [`ops`]: kernel families, each a CUDA kernel file plus its CPU twin.

pub mod detmath;
pub mod device;
pub mod error;
pub mod numerics;
pub mod ops;
pub mod rng;
pub mod seq;
pub mod status;
pub mod verify;

pub use device::{Device, DeviceBuffer};
pub use error::{Error, Result};
