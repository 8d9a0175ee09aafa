//! What a launch asks for and the limits it is checked against: a leaf of
//! `device`, shared by the launcher (`launch.rs`) and the simulator's FFI
//! (`sim.rs`), so that neither depends on the other for them.

use crate::error::{Error, Result};

/// CUDA's limit on threads per block (every architecture since Fermi).
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;
/// Dynamic shared memory a kernel may use without opting in.
pub const MAX_DYNAMIC_SHARED_DEFAULT: u32 = 48 * 1024;
/// The simulator's per-block limit on dynamic shared memory once a launch opts
/// in (asks for more than [`MAX_DYNAMIC_SHARED_DEFAULT`]): 163 KiB, the opt-in
/// maximum of sm_80 (A100), the smallest among the data-center GPUs the default
/// `compute_80` PTX targets (sm_90 allows 227 KiB), so a launch that passes on
/// Sim also launches there. On Cuda the limit is the device's own
/// (`CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`,
/// [`CudaInfo::max_shared_per_block_optin`](super::CudaInfo)).
pub const MAX_DYNAMIC_SHARED_SIM: u32 = 163 * 1024;
const MAX_BLOCK_DIM: [u32; 3] = [1024, 1024, 64];
const MAX_GRID_DIM: [u32; 3] = [2_147_483_647, 65_535, 65_535];

// Buffers travel as 8-byte pointer values (CUdeviceptr on Cuda, a host
// pointer on Sim); both are the same size only on 64-bit hosts.
const _: () = assert!(std::mem::size_of::<usize>() == 8);

/// The default `(threads per block, most blocks)` of every 1-D kernel. Any
/// shape gives the same bits (DESIGN.md rule 7); tests vary it on purpose.
pub const DEFAULT_LINEAR_SHAPE: (u32, u32) = (256, 65_535);

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks per grid, x y z.
    pub grid: [u32; 3],
    /// Threads per block, x y z.
    pub block: [u32; 3],
    /// Dynamic shared memory per block, in bytes.
    pub dynamic_shared_bytes: u32,
}

impl LaunchConfig {
    /// A 1-D launch covering `n` items with `block` threads per block, the grid
    /// capped at `max_grid` blocks (kernels written with a grid-stride loop give
    /// the same bits for any cap). At least one block.
    pub fn linear(n: u64, block: u32, max_grid: u32) -> LaunchConfig {
        let blocks = n
            .div_ceil(u64::from(block.max(1)))
            .clamp(1, u64::from(max_grid.max(1)));
        LaunchConfig {
            grid: [blocks as u32, 1, 1],
            block: [block, 1, 1],
            dynamic_shared_bytes: 0,
        }
    }

    /// Refuses what a real GPU would refuse without an opt-in (at most
    /// [`MAX_DYNAMIC_SHARED_DEFAULT`] bytes of dynamic shared memory), with the
    /// same text on every device. [`Launch::run`](super::Launch::run) validates against the
    /// device's opt-in limit instead ([`validate_for`](Self::validate_for)).
    pub fn validate(&self, kernel: &str) -> Result<()> {
        self.validate_for(kernel, MAX_DYNAMIC_SHARED_DEFAULT)
    }

    /// As [`validate`](Self::validate), with `max_dynamic_shared_bytes` as the
    /// limit on dynamic shared memory: what [`Launch::run`](super::Launch::run) checks, with the
    /// device's opt-in maximum (Cuda) or [`MAX_DYNAMIC_SHARED_SIM`] (Sim). One
    /// text on every device.
    pub fn validate_for(&self, kernel: &str, max_dynamic_shared_bytes: u32) -> Result<()> {
        let [gx, gy, gz] = self.grid;
        let [bx, by, bz] = self.block;
        let refuse = |reason: String| {
            Err(Error::LaunchConfig {
                kernel: kernel.to_string(),
                reason,
            })
        };
        // Checked in the simulator's order (sim_runtime.cpp, check_limits), so a
        // launch with several faults reads the same on both.
        let threads = u64::from(bx) * u64::from(by) * u64::from(bz);
        if threads > u64::from(MAX_THREADS_PER_BLOCK) {
            return refuse(format!(
                "block of {bx}x{by}x{bz} = {threads} threads exceeds the limit of {MAX_THREADS_PER_BLOCK} threads per block"
            ));
        }
        if self.block.iter().zip(MAX_BLOCK_DIM).any(|(d, m)| *d > m) {
            return refuse(format!(
                "block dimension {bx}x{by}x{bz} exceeds the per-axis limit 1024x1024x64"
            ));
        }
        if self.grid.iter().zip(MAX_GRID_DIM).any(|(d, m)| *d > m) {
            return refuse(format!(
                "grid dimension {gx}x{gy}x{gz} exceeds the limit 2147483647x65535x65535"
            ));
        }
        if self.grid.contains(&0) || self.block.contains(&0) {
            return refuse(format!(
                "launch dimension {gx}x{gy}x{gz} blocks of {bx}x{by}x{bz} threads has a zero extent"
            ));
        }
        if self.dynamic_shared_bytes > max_dynamic_shared_bytes {
            return refuse(format!(
                "dynamic shared memory of {} bytes exceeds the limit of {max_dynamic_shared_bytes} bytes",
                self.dynamic_shared_bytes
            ));
        }
        Ok(())
    }
}
