//! The crate's error type: one `thiserror` enum, sectioned by where things go wrong.
//!
//! Field names repeat across variants with one meaning each: `op` is the
//! operation that refused (a kernel family's op or a method), `name` the
//! argument at fault, `got` what it was and `expected` what the op needed.
#![allow(missing_docs)] // variant fields: see the naming convention above

use thiserror::Error;

/// Everything a shoestring call can fail with.
#[derive(Debug, Error)]
pub enum Error {
    // ---- Shape and arguments ----
    /// An argument is out of range or inconsistent with another.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    /// A buffer has the wrong number of elements.
    #[error("{op}: buffer `{name}` has {got} elements, expected {expected}")]
    Length {
        op: &'static str,
        name: &'static str,
        got: usize,
        expected: usize,
    },
    /// A tensor has the wrong dimensions for an op.
    #[error("{op}: `{name}` has dims {got:?}, expected {expected}")]
    Dims {
        op: &'static str,
        name: &'static str,
        got: Vec<usize>,
        expected: String,
    },
    /// A tensor has the wrong element type for an op.
    #[error("{op}: `{name}` is {got}, expected {expected}")]
    DType {
        op: &'static str,
        name: &'static str,
        got: &'static str,
        expected: &'static str,
    },
    /// Buffers passed to one call live on different devices.
    #[error("{op}: buffer `{name}` lives on {got}, the call runs on {expected}")]
    DeviceMismatch {
        op: &'static str,
        name: &'static str,
        got: String,
        expected: String,
    },

    // ---- Devices ----
    /// The op exists, but not on this device (the fast GEMM tier off Cuda, or
    /// on a GPU older than it needs); the message says what it needs.
    #[error("{op} is not available on {device}: {reason}")]
    Unsupported {
        op: &'static str,
        device: String,
        reason: String,
    },
    /// CUDA cannot be used here; the message says why (no driver, no device, ...).
    #[error("CUDA is not usable: {0}")]
    CudaUnavailable(String),
    /// The simulator was not built (no C++ compiler at build time).
    #[error("the SIMT simulator is not available: {0}")]
    SimUnavailable(String),
    /// A launch configuration a real GPU would refuse. The text is the same on
    /// Cuda and Sim, because both are checked by `device::launch` first.
    #[error("launch of `{kernel}` refused: {reason}")]
    LaunchConfig { kernel: String, reason: String },
    /// The simulator stopped a launch (deadlock, bad warp mask, ...).
    #[error("simulated launch of `{kernel}` failed: {msg}")]
    SimLaunch { kernel: String, msg: String },
    /// A kernel name that no loaded family provides.
    #[error("no kernel `{kernel}` in family `{family}`")]
    UnknownKernel { family: String, kernel: String },
    /// A kernel family that does not compile or load on this device.
    #[error("kernel family `{family}` failed to load: {msg}")]
    KernelLoad { family: String, msg: String },

    /// A device could not allocate a buffer, even after freeing its cached blocks.
    #[error(
        "out of memory on {device}: could not allocate {bytes} bytes (a smaller --batch-size \
         or --max-len, gradient checkpointing, or --precision mixed needs less)"
    )]
    OutOfMemory { device: String, bytes: usize },

    // ---- CUDA driver and compiler ----
    /// An error returned by the CUDA driver.
    #[error("CUDA driver: {0}")]
    Driver(#[from] cudarc::driver::DriverError),

    // ---- I/O and formats ----
    /// Reading or writing `path` failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A file or string that does not parse: `what` it is, and why.
    #[error("{what}: {msg}")]
    Format { what: String, msg: String },
    /// Training met an inf or a NaN it cannot step over: the step, where
    /// the first non-finite value appeared, and where to go from here.
    #[error("step {step}: {msg}")]
    NumericalFault { step: u64, msg: String },
    /// Bad input data at a place a person can open: `file`, `line` (from
    /// 1), and what was expected there.
    #[error("{file}:{line}: {msg}")]
    Data {
        file: String,
        line: u64,
        msg: String,
    },
    /// `shoestring bench` checks each op's output once before timing it;
    /// this one computed something else than its reference.
    #[error("bench {op}: output check failed: {msg}")]
    BenchCheck { op: String, msg: String },
}

/// `Result` with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }
}
