//! The launcher shared by `Cuda` and `Sim`: one launch configuration, one
//! validation (so a refused launch reads the same on both), one argument list
//! in cuLaunchKernel's `void**` form that both backends consume.

use super::buffer::{DeviceBuffer, Element, Storage};
use super::sim::SimEntry;
use super::Device;
use crate::error::{Error, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut};
use std::ffi::c_void;
use std::marker::PhantomData;

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
    pub grid: [u32; 3],
    pub block: [u32; 3],
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
    /// same text on every device. [`Launch::run`] validates against the
    /// device's opt-in limit instead ([`validate_for`](Self::validate_for)).
    pub fn validate(&self, kernel: &str) -> Result<()> {
        self.validate_for(kernel, MAX_DYNAMIC_SHARED_DEFAULT)
    }

    /// As [`validate`](Self::validate), with `max_dynamic_shared_bytes` as the
    /// limit on dynamic shared memory: what [`Launch::run`] checks, with the
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

/// Plain-old-data values a kernel takes by value: the ABI structs of
/// `kernels/common/abi.h` and scalars.
///
/// # Safety
/// The type must be `#[repr(C)]` (or a primitive) with exactly the layout of
/// the kernel parameter it is passed as, and contain no pointers.
pub unsafe trait KernelParam: Copy {}
// SAFETY: primitives have the same size and alignment as their C counterparts.
unsafe impl KernelParam for u32 {}
// SAFETY: as above.
unsafe impl KernelParam for i32 {}
// SAFETY: as above.
unsafe impl KernelParam for u64 {}
// SAFETY: as above.
unsafe impl KernelParam for f32 {}
// SAFETY: generated by bindgen from kernels/common/abi.h, the header the
// kernels include; bindgen's layout assertions pin size, alignment and offsets.
unsafe impl KernelParam for super::abi::ss_philox_blocks_params {}

enum Arg {
    /// Points at a value borrowed for the launch's lifetime.
    Value(*const c_void),
    /// A buffer's address (device or host pointer), stored by value.
    Pointer(u64),
}

/// One kernel launch being assembled: `Launch::new(..).param(&p).buffer(&x).run()`.
/// Arguments are pushed in the kernel's parameter order.
pub struct Launch<'a> {
    device: &'a Device,
    family: &'static str,
    kernel: &'static str,
    config: LaunchConfig,
    args: Vec<Arg>,
    sim_entry: Option<SimEntry>,
    // Holds cudarc's per-buffer event guards until the launch is queued.
    _guards: Vec<cudarc::driver::SyncOnDrop<'a>>,
    _borrows: PhantomData<&'a mut ()>,
}

impl<'a> Launch<'a> {
    /// Starts a launch of `family`'s kernel `kernel` on `device` (Cuda or Sim).
    pub fn new(
        device: &'a Device,
        family: &'static str,
        kernel: &'static str,
        config: LaunchConfig,
    ) -> Self {
        Launch {
            device,
            family,
            kernel,
            config,
            args: Vec::new(),
            sim_entry: None,
            _guards: Vec::new(),
            _borrows: PhantomData,
        }
    }

    /// Runs a kernel that is not in the shipped registry (test-only kernels
    /// under `tests/kernels/`), through its simulator entry. Sim only.
    #[doc(hidden)]
    pub fn with_sim_entry(mut self, entry: SimEntry) -> Self {
        self.sim_entry = Some(entry);
        self
    }

    /// A by-value argument.
    pub fn param<P: KernelParam>(mut self, value: &'a P) -> Self {
        self.args
            .push(Arg::Value(value as *const P as *const c_void));
        self
    }

    /// A buffer the kernel only reads.
    pub fn buffer<T: Element>(mut self, buf: &'a DeviceBuffer<T>) -> Result<Self> {
        self.check_device(buf)?;
        let ptr = match (buf.storage(), self.device) {
            (Storage::Host(v), _) => v.as_ptr() as u64,
            (Storage::Cuda(s), Device::Cuda(d)) => {
                let (p, guard) = s.device_ptr(d.stream());
                self._guards.push(guard);
                p
            }
            (Storage::Cuda(_), _) => unreachable!("check_device matched devices"),
        };
        self.args.push(Arg::Pointer(ptr));
        Ok(self)
    }

    /// A null pointer in a buffer's place, for an optional input the kernel
    /// is told (by a parameter) not to read.
    pub fn null_buffer(mut self) -> Self {
        self.args.push(Arg::Pointer(0));
        self
    }

    /// A buffer the kernel writes.
    pub fn buffer_mut<T: Element>(mut self, buf: &'a mut DeviceBuffer<T>) -> Result<Self> {
        self.check_device(buf)?;
        let device = self.device;
        let ptr = match buf.storage_mut() {
            Storage::Host(v) => v.as_mut_ptr() as u64,
            Storage::Cuda(s) => match device {
                Device::Cuda(d) => {
                    let (p, guard) = s.device_ptr_mut(d.stream());
                    self._guards.push(guard);
                    p
                }
                _ => unreachable!("check_device matched devices"),
            },
        };
        self.args.push(Arg::Pointer(ptr));
        Ok(self)
    }

    fn check_device<T: Element>(&self, buf: &DeviceBuffer<T>) -> Result<()> {
        if buf.device().same_as(self.device) {
            Ok(())
        } else {
            Err(Error::DeviceMismatch {
                op: self.kernel,
                name: "kernel argument",
                got: buf.device().to_string(),
                expected: self.device.to_string(),
            })
        }
    }

    /// Validates the configuration and queues the launch (Cuda: asynchronous on
    /// the device's stream; Sim: runs to completion before returning).
    ///
    /// Dynamic shared memory above [`MAX_DYNAMIC_SHARED_DEFAULT`] is opted in
    /// here: the limit checked is the device's opt-in maximum (Cuda) or
    /// [`MAX_DYNAMIC_SHARED_SIM`] (Sim), and on Cuda the kernel's
    /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` is raised to the
    /// request (once per kernel and size) before the launch; a refusal is an
    /// [`Error::LaunchConfig`] naming the kernel, never a failed launch.
    pub fn run(self) -> Result<()> {
        let limit = match self.device {
            Device::Cuda(d) => d.info().max_shared_per_block_optin,
            Device::Cpu | Device::Sim(_) => MAX_DYNAMIC_SHARED_SIM,
        };
        self.config.validate_for(self.kernel, limit)?;
        let mut slots: Vec<u64> = self
            .args
            .iter()
            .map(|a| match a {
                Arg::Pointer(p) => *p,
                Arg::Value(_) => 0,
            })
            .collect();
        let mut params: Vec<*mut c_void> = self
            .args
            .iter()
            .zip(slots.iter_mut())
            .map(|(a, slot)| match a {
                Arg::Value(p) => *p as *mut c_void,
                Arg::Pointer(_) => slot as *mut u64 as *mut c_void,
            })
            .collect();
        let c = &self.config;
        match self.device {
            Device::Cpu => Err(Error::invalid(
                "launch",
                format!(
                    "kernel `{}` launched on the CPU device; CPU ops call their twin",
                    self.kernel
                ),
            )),
            Device::Cuda(d) => {
                if self.sim_entry.is_some() {
                    return Err(Error::invalid(
                        "launch",
                        "test-only simulator kernels cannot run on Cuda",
                    ));
                }
                d.context().bind_to_thread()?;
                let f = d.function_for_launch(self.family, self.kernel, c.dynamic_shared_bytes)?;
                // SAFETY: `params` holds one pointer per kernel parameter, in the
                // kernel's order (the op's cuda.rs pushes them as kernels/<family>.cu
                // declares them); each points at a live value: borrowed values
                // (lifetime 'a) or `slots`, which outlives this call. Buffer
                // lengths were checked by the op before the launch. The
                // configuration was validated above.
                unsafe {
                    cudarc::driver::result::launch_kernel(
                        f.cu_function(),
                        (c.grid[0], c.grid[1], c.grid[2]),
                        (c.block[0], c.block[1], c.block[2]),
                        c.dynamic_shared_bytes,
                        d.stream().cu_stream(),
                        &mut params,
                    )?;
                }
                Ok(())
            }
            Device::Sim(s) => {
                let entry = match self.sim_entry {
                    Some(e) => e,
                    None => super::sim::find(self.family, self.kernel)?,
                };
                // SAFETY: as for Cuda: one live pointer per parameter in kernel
                // order; buffer pointers are host memory borrowed for 'a, with
                // lengths checked by the op.
                unsafe { super::sim::launch(s, entry, self.kernel, c, &mut params) }
            }
        }
    }
}
