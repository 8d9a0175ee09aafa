//! Device buffers: host memory on `Cpu` and `Sim` (the simulator runs kernels
//! on host pointers), a `CudaSlice` on `Cuda`. Transfers name their direction.

use super::Device;
use crate::error::{Error, Result};
use cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};

/// Element types a buffer may hold: plain bit patterns that are valid as zeros
/// and may be copied to and from a GPU.
pub trait Element: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {}
impl Element for f32 {}
impl Element for u32 {}
impl Element for i32 {}
impl Element for u16 {}
impl Element for u64 {}

pub(crate) enum Storage<T> {
    Host(Vec<T>),
    Cuda(CudaSlice<T>),
}

/// `len` elements of `T` on one [`Device`].
pub struct DeviceBuffer<T: Element> {
    device: Device,
    storage: Storage<T>,
}

impl<T: Element> DeviceBuffer<T> {
    /// `len` zeros on `device`.
    pub fn zeros(device: &Device, len: usize) -> Result<Self> {
        let storage = match device {
            Device::Cpu | Device::Sim(_) => Storage::Host(vec![T::default(); len]),
            Device::Cuda(d) => Storage::Cuda(d.stream().alloc_zeros::<T>(len)?),
        };
        Ok(DeviceBuffer {
            device: device.clone(),
            storage,
        })
    }

    /// A copy of `host` on `device`.
    pub fn copy_htod(device: &Device, host: &[T]) -> Result<Self> {
        let storage = match device {
            Device::Cpu | Device::Sim(_) => Storage::Host(host.to_vec()),
            Device::Cuda(d) => Storage::Cuda(d.stream().clone_htod(host)?),
        };
        Ok(DeviceBuffer {
            device: device.clone(),
            storage,
        })
    }

    /// The contents, copied to the host (waits for queued work that writes them).
    pub fn copy_dtoh(&self) -> Result<Vec<T>> {
        match (&self.storage, &self.device) {
            (Storage::Host(v), _) => Ok(v.clone()),
            (Storage::Cuda(s), Device::Cuda(d)) => {
                let v = d.stream().clone_dtoh(s)?;
                d.synchronize()?;
                Ok(v)
            }
            (Storage::Cuda(_), _) => unreachable!("a CudaSlice is only created for Device::Cuda"),
        }
    }

    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Host(v) => v.len(),
            Storage::Cuda(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Host view, for the CPU twins; `None` on Cuda.
    pub fn as_host_slice(&self) -> Option<&[T]> {
        match &self.storage {
            Storage::Host(v) => Some(v),
            Storage::Cuda(_) => None,
        }
    }

    /// Mutable host view, for the CPU twins; `None` on Cuda.
    pub fn as_host_slice_mut(&mut self) -> Option<&mut [T]> {
        match &mut self.storage {
            Storage::Host(v) => Some(v),
            Storage::Cuda(_) => None,
        }
    }

    /// Host view for a CPU twin; an error naming `op` when the buffer is on a GPU.
    pub fn host(&self, op: &'static str) -> Result<&[T]> {
        self.as_host_slice()
            .ok_or_else(|| Error::invalid(op, "the CPU twin was given a GPU buffer"))
    }

    /// Mutable host view for a CPU twin; an error naming `op` on a GPU buffer.
    pub fn host_mut(&mut self, op: &'static str) -> Result<&mut [T]> {
        self.as_host_slice_mut()
            .ok_or_else(|| Error::invalid(op, "the CPU twin was given a GPU buffer"))
    }

    pub(crate) fn storage(&self) -> &Storage<T> {
        &self.storage
    }

    pub(crate) fn storage_mut(&mut self) -> &mut Storage<T> {
        &mut self.storage
    }

    /// Copies `src` into this buffer on the device (a host copy on Cpu and Sim,
    /// a device-to-device copy queued on the stream on Cuda). Both buffers must
    /// live on the same device and have the same length.
    pub fn copy_from(&mut self, src: &DeviceBuffer<T>) -> Result<()> {
        src.check("copy_from", "src", &self.device, self.len())?;
        match (&mut self.storage, &src.storage, &self.device) {
            (Storage::Host(d), Storage::Host(s), _) => d.copy_from_slice(s),
            (Storage::Cuda(d), Storage::Cuda(s), Device::Cuda(dev)) => {
                dev.stream().memcpy_dtod(s, d)?
            }
            _ => unreachable!("same device, so the same kind of storage"),
        }
        Ok(())
    }

    /// Errors unless this buffer lives on `device` and holds `expected` elements.
    pub fn check(
        &self,
        op: &'static str,
        name: &'static str,
        device: &Device,
        expected: usize,
    ) -> Result<()> {
        if !self.device.same_as(device) {
            return Err(Error::DeviceMismatch {
                op,
                name,
                got: self.device.to_string(),
                expected: device.to_string(),
            });
        }
        if self.len() != expected {
            return Err(Error::Length {
                op,
                name,
                got: self.len(),
                expected,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_from_copies_on_the_same_device_and_refuses_a_length_mismatch() {
        let cpu = Device::Cpu;
        let src = DeviceBuffer::copy_htod(&cpu, &[1u32, 2, 3]).unwrap();
        let mut dst = DeviceBuffer::<u32>::zeros(&cpu, 3).unwrap();
        dst.copy_from(&src).unwrap();
        assert_eq!(dst.copy_dtoh().unwrap(), [1, 2, 3]);
        let mut short = DeviceBuffer::<u32>::zeros(&cpu, 2).unwrap();
        assert!(matches!(
            short.copy_from(&src),
            Err(Error::Length {
                got: 3,
                expected: 2,
                ..
            })
        ));
        assert!(cpu.synchronize().is_ok());
    }
}
