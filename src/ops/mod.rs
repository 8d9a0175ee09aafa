//! Kernel families. Each is `kernels/<family>.cu` + `ops/<family>/cuda.rs`
//! (launch wrappers shared by Cuda and Sim) + `ops/<family>/cpu.rs` (the twin),
//! with the public, device-dispatching functions in `ops/<family>/mod.rs`.

pub mod philox;
