//! Kernel families. Each is `kernels/<family>.cu` + `ops/<family>/cuda.rs`
//! (launch wrappers shared by Cuda and Sim) + `ops/<family>/cpu.rs` (the twin),
//! with the public, device-dispatching functions in `ops/<family>/mod.rs`.

pub mod batchnorm;
pub mod detmath;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gemm;
pub mod lstm;
pub mod philox;
pub mod pool;
pub mod reduce;
pub mod softmax;

use crate::device::Device;
use crate::error::Result;
use crate::verify::Outcome;

/// A family's self-check against its CPU twin (see `shoestring verify`):
/// `(device, approximate number of output elements)`.
pub type VerifyFn = fn(&Device, usize) -> Result<Outcome>;

/// Every family's self-check, in the order `shoestring verify` prints them.
pub const VERIFY: &[(&str, VerifyFn)] = &[
    ("philox", philox::verify),
    ("detmath", detmath::verify),
    ("reduce", reduce::verify),
    ("elementwise", elementwise::verify),
    ("dropout", dropout::verify),
    ("embedding", embedding::verify),
    ("softmax", softmax::verify),
    ("lstm", lstm::verify),
    ("gemm", gemm::verify),
    ("pool", pool::verify),
    ("batchnorm", batchnorm::verify),
];
