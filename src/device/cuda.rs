//! The CUDA device: a cudarc context, one stream, and every kernel family's
//! module loaded at open time (so a kernel that fails to load is an error from
//! [`Device::cuda`](super::Device::cuda), not from the first op).

use super::config::MAX_DYNAMIC_SHARED_DEFAULT;
use super::kernels;
use super::pool::{Pool, Source};
use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What `shoestring doctor` prints about a GPU.
#[derive(Debug, Clone)]
pub struct CudaInfo {
    /// The device's index.
    pub ordinal: usize,
    /// The driver's name for it (`NVIDIA H100 80GB HBM3`, ...).
    pub name: String,
    /// `(major, minor)`: 9.0 on Hopper.
    pub compute_capability: (i32, i32),
    /// Global memory in bytes.
    pub total_memory_bytes: usize,
    /// As `cuDriverGetVersion` reports it: 13000 is CUDA 13.0.
    pub driver_version: i32,
    /// The most shared memory one block may use after opting in
    /// (`CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`): 163 KiB on
    /// sm_80, 227 KiB on sm_90. The launcher's limit on dynamic shared memory.
    pub max_shared_per_block_optin: u32,
}

/// An open GPU. All work goes to one stream, so launches and copies are ordered.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: HashMap<&'static str, Arc<CudaModule>>,
    functions: Mutex<HashMap<&'static str, LoadedFunction>>,
    info: CudaInfo,
    pool: Pool,
}

/// A loaded kernel and the dynamic shared memory it has been opted in to
/// (`MAX_DYNAMIC_SHARED_DEFAULT` until [`CudaDevice::function_for_launch`]
/// raises it).
struct LoadedFunction {
    f: CudaFunction,
    dynamic_shared_opt_in: u32,
}

impl CudaDevice {
    pub(super) fn open(ordinal: usize) -> Result<CudaDevice> {
        // SAFETY: only dlopen's the driver library to see whether it exists;
        // cudarc panics on first use of the driver without it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::CudaUnavailable(
                "no NVIDIA driver: libcuda.so could not be loaded".into(),
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| Error::CudaUnavailable(format!("the driver did not initialise: {e}")))?;
        if count <= 0 {
            return Err(Error::CudaUnavailable(
                "the driver reports no CUDA device".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(Error::CudaUnavailable(format!(
                "no device {ordinal}: the driver reports {count}"
            )));
        }
        let ctx = CudaContext::new(ordinal)?;
        let stream = ctx.default_stream();
        let mut driver_version = 0i32;
        // SAFETY: the driver library is loaded and initialised (CudaContext::new
        // succeeded); the out-pointer is a live local.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver_version) }.result()?;
        let optin = ctx.attribute(
            cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
        )?;
        let info = CudaInfo {
            ordinal,
            name: ctx.name()?,
            compute_capability: ctx.compute_capability()?,
            total_memory_bytes: ctx.total_mem()?,
            driver_version,
            max_shared_per_block_optin: u32::try_from(optin).unwrap_or(0),
        };
        let mut modules = HashMap::new();
        for fam in kernels::FAMILIES {
            let ptx = kernels::ptx_for(fam).map_err(|msg| Error::KernelLoad {
                family: fam.name.into(),
                msg,
            })?;
            let module = ctx.load_module(ptx).map_err(|e| Error::KernelLoad {
                family: fam.name.into(),
                msg: e.to_string(),
            })?;
            modules.insert(fam.name, module);
        }
        let pool = Pool::new(
            Source::Cuda(stream.clone()),
            format!("cuda:{ordinal}"),
            true,
        );
        Ok(CudaDevice {
            ctx,
            stream,
            modules,
            functions: Mutex::new(HashMap::new()),
            info,
            pool,
        })
    }

    /// What the driver says about the device.
    pub fn info(&self) -> &CudaInfo {
        &self.info
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The cudarc stream every op of this device is queued on, for code that
    /// must order its own GPU work with ours: benches timing with CUDA events,
    /// cuBLAS as a reference. Not part of the supported API.
    #[doc(hidden)]
    pub fn cudarc_stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for all queued work on this device.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize()?)
    }

    /// The kernel `kernel` of `family`, loaded once and cached, ready for a
    /// launch with `dynamic_shared_bytes` of dynamic shared memory: above
    /// [`MAX_DYNAMIC_SHARED_DEFAULT`] the kernel is opted in first
    /// (`cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)`,
    /// once per kernel and larger size). The caller has bound the context and
    /// checked the request against [`CudaInfo::max_shared_per_block_optin`];
    /// what the driver still refuses (the kernel's static shared memory plus
    /// the request over the limit) is an [`Error::LaunchConfig`].
    pub(crate) fn function_for_launch(
        &self,
        family: &'static str,
        kernel: &'static str,
        dynamic_shared_bytes: u32,
    ) -> Result<CudaFunction> {
        let mut cache = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        let entry = match cache.entry(kernel) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let unknown = || Error::UnknownKernel {
                    family: family.into(),
                    kernel: kernel.into(),
                };
                let module = self.modules.get(family).ok_or_else(unknown)?;
                let f = module.load_function(kernel).map_err(|_| unknown())?;
                v.insert(LoadedFunction {
                    f,
                    dynamic_shared_opt_in: MAX_DYNAMIC_SHARED_DEFAULT,
                })
            }
        };
        if dynamic_shared_bytes > entry.dynamic_shared_opt_in {
            let attr = cudarc::driver::sys::CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            let value = i32::try_from(dynamic_shared_bytes).unwrap_or(i32::MAX);
            entry.f.set_attribute(attr, value).map_err(|e| {
                let static_bytes = entry
                    .f
                    .shared_size_bytes()
                    .map_or_else(|_| "unknown".to_string(), |b| b.to_string());
                Error::LaunchConfig {
                    kernel: kernel.to_string(),
                    reason: format!(
                        "the driver refused to opt in to {dynamic_shared_bytes} bytes of dynamic \
                         shared memory (the device allows {} per block, the kernel has {static_bytes} \
                         static bytes): {e}",
                        self.info.max_shared_per_block_optin
                    ),
                }
            })?;
            entry.dynamic_shared_opt_in = dynamic_shared_bytes;
        }
        Ok(entry.f.clone())
    }
}
