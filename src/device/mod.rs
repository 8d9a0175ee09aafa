//! Devices: `Cpu` (the Rust twins), `Cuda` (the product) and `Sim` (the same CUDA
//! sources compiled as C++ and run under the SIMT simulator).
//!
//! Probing never panics: cudarc loads the driver at run time, and
//! [`Device::cuda`] checks that `libcuda.so` is present before cudarc touches it.
//! A missing driver, a missing device or a kernel that fails to load is an
//! [`Error::CudaUnavailable`] or [`Error::KernelLoad`].

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    missing_docs,
    clippy::all
)]
#[rustfmt::skip] // bindgen output (prettyplease), checked by tests/abi_is_current.rs
pub mod abi;
mod buffer;
mod config;
mod cpu_dispatch;
mod cuda;
pub mod kernels;
mod launch;
mod pool;
mod sim;

pub use buffer::{DeviceBuffer, Element, View, ViewMut};
pub use config::{
    LaunchConfig, DEFAULT_LINEAR_SHAPE, MAX_DYNAMIC_SHARED_DEFAULT, MAX_DYNAMIC_SHARED_SIM,
    MAX_THREADS_PER_BLOCK,
};
pub use cpu_dispatch::{cpu_level, fma_path, with_fma, CpuLevel, CPU_LEVEL_ENV, CPU_PORTABLE_ENV};
pub use cuda::{CudaDevice, CudaInfo};
pub use launch::{KernelParam, Launch};
pub use pool::DeviceCounters;
pub use sim::{sim_asan, sim_available, SimDevice, SimOptions};

use crate::error::{Error, Result};
use pool::{Pool, Source};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Where an op runs. Cheap to clone.
#[derive(Clone)]
pub enum Device {
    /// The CPU twins (`src/ops/*/cpu.rs`), multi-threaded with rayon.
    Cpu,
    /// An NVIDIA GPU through the CUDA driver (cudarc).
    Cuda(Arc<CudaDevice>),
    /// The SIMT simulator: the CUDA kernels as host C++ (see `docs/simulator.md`).
    Sim(SimDevice),
}

impl Device {
    /// GPU `ordinal` with every kernel family loaded. Returns an error, never
    /// panics, when there is no driver, no such device, or a kernel fails to load.
    pub fn cuda(ordinal: usize) -> Result<Device> {
        Ok(Device::Cuda(Arc::new(CudaDevice::open(ordinal)?)))
    }

    /// The simulator with options from the environment (`SHOESTRING_SIM_WORKERS`,
    /// `SHOESTRING_SIM_SHUFFLE`); see [`SimOptions::from_env`].
    pub fn sim() -> Result<Device> {
        Self::sim_with(SimOptions::from_env()?)
    }

    /// The simulator with explicit options.
    pub fn sim_with(options: SimOptions) -> Result<Device> {
        Ok(Device::Sim(SimDevice::open(options)?))
    }

    /// Parses `cpu`, `cuda`, `cuda:N` or `sim` (the CLI's `--device`).
    pub fn parse(spec: &str) -> Result<Device> {
        match spec {
            "cpu" => Ok(Device::Cpu),
            "sim" => Device::sim(),
            "cuda" | "gpu" => Device::cuda(0),
            s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Device::cuda(n),
                _ => Err(Error::invalid(
                    "device",
                    format!("unknown device `{s}`: expected cpu, sim, cuda or cuda:N"),
                )),
            },
        }
    }

    /// Waits until all work queued on this device has finished: the GPU's
    /// stream on Cuda; a no-op on Cpu and Sim, whose ops return when done.
    /// Benches time GPU work with it.
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu | Device::Sim(_) => Ok(()),
            Device::Cuda(d) => d.synchronize(),
        }
    }

    /// True for the devices that run the CUDA kernel sources (Cuda and Sim).
    pub fn runs_kernels(&self) -> bool {
        !matches!(self, Device::Cpu)
    }

    /// This device's counters: real allocations, pool reuses, host<->device
    /// copies, live and peak bytes. On Cuda and Sim they are the device's own
    /// (each `Device::sim*` call opens a new simulator with fresh counters);
    /// every `Device::Cpu` shares one process-wide pool and counters.
    pub fn counters(&self) -> DeviceCounters {
        self.pool().counters()
    }

    /// Starts a new peak: `peak_live_bytes` becomes the bytes live now.
    pub fn reset_peak(&self) {
        self.pool().reset_peak()
    }

    /// Frees every block the pool caches (buffers alive keep theirs);
    /// returns the bytes freed.
    pub fn release_cached(&self) -> usize {
        self.pool().release_cached()
    }

    pub(crate) fn pool(&self) -> &Pool {
        match self {
            Device::Cpu => {
                static CPU_POOL: OnceLock<Pool> = OnceLock::new();
                CPU_POOL.get_or_init(|| Pool::new(Source::Host, "cpu", !sim_asan()))
            }
            Device::Cuda(d) => d.pool(),
            Device::Sim(s) => s.pool(),
        }
    }

    pub(crate) fn same_as(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) | (Device::Sim(_), Device::Sim(_)) => true,
            (Device::Cuda(a), Device::Cuda(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(d) => write!(f, "cuda:{} ({})", d.info().ordinal, d.info().name),
            Device::Sim(s) => write!(
                f,
                "sim (shuffle seed {}, workers {})",
                s.options().shuffle_seed,
                s.options().workers
            ),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
