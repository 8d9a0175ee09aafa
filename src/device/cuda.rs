//! The CUDA device: a cudarc context, one stream, and every kernel family's
//! module loaded at open time (so a kernel that fails to load is an error from
//! [`Device::cuda`](super::Device::cuda), not from the first op).

use super::kernels;
use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What `shoestring doctor` prints about a GPU.
#[derive(Debug, Clone)]
pub struct CudaInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_memory_bytes: usize,
    /// As `cuDriverGetVersion` reports it: 13000 is CUDA 13.0.
    pub driver_version: i32,
}

/// An open GPU. All work goes to one stream, so launches and copies are ordered.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: HashMap<&'static str, Arc<CudaModule>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    info: CudaInfo,
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
        let info = CudaInfo {
            ordinal,
            name: ctx.name()?,
            compute_capability: ctx.compute_capability()?,
            total_memory_bytes: ctx.total_mem()?,
            driver_version,
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
        Ok(CudaDevice {
            ctx,
            stream,
            modules,
            functions: Mutex::new(HashMap::new()),
            info,
        })
    }

    pub fn info(&self) -> &CudaInfo {
        &self.info
    }

    pub(crate) fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for all queued work on this device.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize()?)
    }

    /// The kernel `kernel` of `family`, loaded once and cached.
    pub(crate) fn function(
        &self,
        family: &'static str,
        kernel: &'static str,
    ) -> Result<CudaFunction> {
        let mut cache = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = cache.get(kernel) {
            return Ok(f.clone());
        }
        let unknown = || Error::UnknownKernel {
            family: family.into(),
            kernel: kernel.into(),
        };
        let module = self.modules.get(family).ok_or_else(unknown)?;
        let f = module.load_function(kernel).map_err(|_| unknown())?;
        cache.insert(kernel, f.clone());
        Ok(f)
    }
}
