//! Tensors: dimensions, an element type and storage on a [`Device`].
//!
//! A [`Tensor`] is a row-major, contiguous window (`offset`, `dims`) of a
//! device buffer shared through an `Arc`, so cloning, [`reshape`](Tensor::reshape)
//! and [`narrow`](Tensor::narrow) copy nothing. Values are immutable once
//! shared; [`Tensor::f32_mut`] hands out a mutable view only while the tensor
//! is the storage's one owner (an optimizer updating a parameter after the
//! graph that read it is gone), and says so in a typed error otherwise.
//!
//! Moving between devices is explicit ([`Tensor::to`]); every op checks that
//! its tensors share one device, one dtype and fitting dims, and reports a
//! mismatch as [`Error::DeviceMismatch`], [`Error::DType`] or [`Error::Dims`],
//! never a panic. Ops on tensors live in [`crate::autograd`], which records
//! them for the backward pass and runs them through the kernel twins
//! ([`crate::ops`]).

use crate::device::{Device, DeviceBuffer, View, ViewMut};
use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

/// Element types. f16 values are stored as their IEEE bits (`u16`); `U32`
/// holds token ids and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16, as bits.
    F16,
    /// Unsigned 32-bit integers (ids, labels).
    U32,
}

impl DType {
    /// `f32`, `f16` or `u32`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F16 => 2,
            DType::F32 | DType::U32 => 4,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's storage: one device buffer of its dtype.
pub(crate) enum Storage {
    F32(DeviceBuffer<f32>),
    F16(DeviceBuffer<u16>),
    U32(DeviceBuffer<u32>),
}

impl Storage {
    fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F16(_) => DType::F16,
            Storage::U32(_) => DType::U32,
        }
    }

    fn device(&self) -> &Device {
        match self {
            Storage::F32(b) => b.device(),
            Storage::F16(b) => b.device(),
            Storage::U32(b) => b.device(),
        }
    }
}

/// A row-major tensor on one device. Cheap to clone (the storage is shared).
#[derive(Clone)]
pub struct Tensor {
    dims: Vec<usize>,
    offset: usize,
    storage: Arc<Storage>,
}

fn elements(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(op, format!("dims {dims:?} overflow usize")))
}

impl Tensor {
    fn from_storage(dims: &[usize], storage: Storage) -> Tensor {
        Tensor {
            dims: dims.to_vec(),
            offset: 0,
            storage: Arc::new(storage),
        }
    }

    /// Zeros of `dtype` with `dims` on `device`.
    pub fn zeros(device: &Device, dims: &[usize], dtype: DType) -> Result<Tensor> {
        let n = elements("Tensor::zeros", dims)?;
        let storage = match dtype {
            DType::F32 => Storage::F32(DeviceBuffer::zeros(device, n)?),
            DType::F16 => Storage::F16(DeviceBuffer::zeros(device, n)?),
            DType::U32 => Storage::U32(DeviceBuffer::zeros(device, n)?),
        };
        Ok(Self::from_storage(dims, storage))
    }

    /// A tensor whose every element an op is about to overwrite: its
    /// contents are unspecified (valid values, from the device's pool).
    pub(crate) fn alloc(device: &Device, dims: &[usize], dtype: DType) -> Result<Tensor> {
        let n = elements("Tensor::alloc", dims)?;
        let storage = match dtype {
            DType::F32 => Storage::F32(DeviceBuffer::alloc(device, n)?),
            DType::F16 => Storage::F16(DeviceBuffer::alloc(device, n)?),
            DType::U32 => Storage::U32(DeviceBuffer::alloc(device, n)?),
        };
        Ok(Self::from_storage(dims, storage))
    }

    fn check_len(op: &'static str, dims: &[usize], len: usize) -> Result<()> {
        let n = elements(op, dims)?;
        if n == len {
            Ok(())
        } else {
            Err(Error::Dims {
                op,
                name: "data",
                got: vec![len],
                expected: format!("{n} elements for dims {dims:?}"),
            })
        }
    }

    /// An f32 tensor on `device` holding `data` (row-major, `dims`).
    pub fn from_f32(device: &Device, dims: &[usize], data: &[f32]) -> Result<Tensor> {
        Self::check_len("Tensor::from_f32", dims, data.len())?;
        Ok(Self::from_storage(
            dims,
            Storage::F32(DeviceBuffer::copy_htod(device, data)?),
        ))
    }

    /// A u32 tensor (ids, labels) on `device` holding `data`.
    pub fn from_u32(device: &Device, dims: &[usize], data: &[u32]) -> Result<Tensor> {
        Self::check_len("Tensor::from_u32", dims, data.len())?;
        Ok(Self::from_storage(
            dims,
            Storage::U32(DeviceBuffer::copy_htod(device, data)?),
        ))
    }

    /// An f16 tensor on `device` from the bits of its values.
    pub fn from_f16_bits(device: &Device, dims: &[usize], bits: &[u16]) -> Result<Tensor> {
        Self::check_len("Tensor::from_f16_bits", dims, bits.len())?;
        Ok(Self::from_storage(
            dims,
            Storage::F16(DeviceBuffer::copy_htod(device, bits)?),
        ))
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    /// The device the storage lives on.
    pub fn device(&self) -> &Device {
        self.storage.device()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the tensor holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the tensor's elements (not of the whole shared storage).
    pub fn bytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// Errors unless the tensor is `dtype`, naming `op` and `name`.
    pub fn check_dtype(&self, op: &'static str, name: &'static str, dtype: DType) -> Result<()> {
        if self.dtype() == dtype {
            Ok(())
        } else {
            Err(Error::DType {
                op,
                name,
                got: self.dtype().name(),
                expected: dtype.name(),
            })
        }
    }

    /// Errors unless the dims are `dims`.
    pub fn check_dims(&self, op: &'static str, name: &'static str, dims: &[usize]) -> Result<()> {
        if self.dims == dims {
            Ok(())
        } else {
            Err(Error::Dims {
                op,
                name,
                got: self.dims.clone(),
                expected: format!("{dims:?}"),
            })
        }
    }

    /// Errors unless the tensor lives on `device`.
    pub fn check_device(
        &self,
        op: &'static str,
        name: &'static str,
        device: &Device,
    ) -> Result<()> {
        if self.device().same_as(device) {
            Ok(())
        } else {
            Err(Error::DeviceMismatch {
                op,
                name,
                got: self.device().to_string(),
                expected: device.to_string(),
            })
        }
    }

    /// `(rows, cols)` of a rank-2 tensor, or a typed error naming `op`.
    pub fn matrix(&self, op: &'static str, name: &'static str) -> Result<(usize, usize)> {
        match self.dims[..] {
            [r, c] => Ok((r, c)),
            _ => Err(Error::Dims {
                op,
                name,
                got: self.dims.clone(),
                expected: "a matrix (two dims)".into(),
            }),
        }
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }

    /// The elements as an f32 view; a typed error for another dtype.
    pub fn f32(&self, op: &'static str) -> Result<View<'_, f32>> {
        match &*self.storage {
            Storage::F32(b) => b.try_slice(self.range()),
            _ => Err(self.wrong_dtype(op, DType::F32)),
        }
    }

    /// The elements as f16 bits; a typed error for another dtype.
    pub fn f16(&self, op: &'static str) -> Result<View<'_, u16>> {
        match &*self.storage {
            Storage::F16(b) => b.try_slice(self.range()),
            _ => Err(self.wrong_dtype(op, DType::F16)),
        }
    }

    /// The elements as a u32 view; a typed error for another dtype.
    pub fn u32(&self, op: &'static str) -> Result<View<'_, u32>> {
        match &*self.storage {
            Storage::U32(b) => b.try_slice(self.range()),
            _ => Err(self.wrong_dtype(op, DType::U32)),
        }
    }

    fn wrong_dtype(&self, op: &'static str, want: DType) -> Error {
        Error::DType {
            op,
            name: "tensor",
            got: self.dtype().name(),
            expected: want.name(),
        }
    }

    fn unique(&mut self, op: &'static str) -> Result<&mut Storage> {
        Arc::get_mut(&mut self.storage).ok_or_else(|| {
            Error::invalid(
                op,
                "the tensor's storage is shared (a clone, a view or a live graph holds it); \
                 drop the other holders before writing",
            )
        })
    }

    /// The elements as a mutable f32 view, while this tensor is its storage's
    /// only owner; a typed error otherwise, or for another dtype.
    pub fn f32_mut(&mut self, op: &'static str) -> Result<ViewMut<'_, f32>> {
        let range = self.range();
        let dtype = self.dtype();
        match self.unique(op)? {
            Storage::F32(b) => b.try_slice_mut(range),
            _ => Err(Error::DType {
                op,
                name: "tensor",
                got: dtype.name(),
                expected: "f32",
            }),
        }
    }

    /// The elements as mutable f16 bits, while this tensor is its storage's
    /// only owner.
    pub fn f16_mut(&mut self, op: &'static str) -> Result<ViewMut<'_, u16>> {
        let range = self.range();
        let dtype = self.dtype();
        match self.unique(op)? {
            Storage::F16(b) => b.try_slice_mut(range),
            _ => Err(Error::DType {
                op,
                name: "tensor",
                got: dtype.name(),
                expected: "f16",
            }),
        }
    }

    /// The elements as a mutable u32 view, while this tensor is its storage's
    /// only owner.
    pub fn u32_mut(&mut self, op: &'static str) -> Result<ViewMut<'_, u32>> {
        let range = self.range();
        let dtype = self.dtype();
        match self.unique(op)? {
            Storage::U32(b) => b.try_slice_mut(range),
            _ => Err(Error::DType {
                op,
                name: "tensor",
                got: dtype.name(),
                expected: "u32",
            }),
        }
    }

    /// The f32 values, copied to the host (one device-to-host copy).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.f32("to_vec_f32")?.copy_dtoh()
    }

    /// The values of an f32 tensor, or of an f16 one widened to f32 (exact),
    /// copied to the host.
    pub fn to_host_f32(&self) -> Result<Vec<f32>> {
        match self.dtype() {
            DType::F16 => Ok(self
                .to_f16_bits()?
                .into_iter()
                .map(|b| half::f16::from_bits(b).to_f32())
                .collect()),
            _ => self.to_vec_f32(),
        }
    }

    /// The u32 values, copied to the host.
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        self.u32("to_vec_u32")?.copy_dtoh()
    }

    /// The f16 bits, copied to the host.
    pub fn to_f16_bits(&self) -> Result<Vec<u16>> {
        self.f16("to_f16_bits")?.copy_dtoh()
    }

    /// A copy on `device` (through the host: explicit, never implicit).
    pub fn to(&self, device: &Device) -> Result<Tensor> {
        match self.dtype() {
            DType::F32 => Tensor::from_f32(device, &self.dims, &self.to_vec_f32()?),
            DType::F16 => Tensor::from_f16_bits(device, &self.dims, &self.to_f16_bits()?),
            DType::U32 => Tensor::from_u32(device, &self.dims, &self.to_vec_u32()?),
        }
    }

    /// A copy with its own storage on the same device (device-to-device).
    pub fn deep_clone(&self) -> Result<Tensor> {
        let dev = self.device().clone();
        let mut out = Tensor::alloc(&dev, &self.dims, self.dtype())?;
        match self.dtype() {
            DType::F32 => out
                .f32_mut("deep_clone")?
                .copy_from(self.f32("deep_clone")?)?,
            DType::F16 => out
                .f16_mut("deep_clone")?
                .copy_from(self.f16("deep_clone")?)?,
            DType::U32 => out
                .u32_mut("deep_clone")?
                .copy_from(self.u32("deep_clone")?)?,
        }
        Ok(out)
    }

    /// The same elements with other dims (the same number of them).
    pub fn reshape(&self, dims: &[usize]) -> Result<Tensor> {
        let n = elements("reshape", dims)?;
        if n != self.len() {
            return Err(Error::Dims {
                op: "reshape",
                name: "tensor",
                got: self.dims.clone(),
                expected: format!("{n} elements for {dims:?}"),
            });
        }
        Ok(Tensor {
            dims: dims.to_vec(),
            offset: self.offset,
            storage: self.storage.clone(),
        })
    }

    /// Rows `start .. start + len` of the outermost dimension, as a view
    /// sharing the storage.
    pub fn narrow(&self, start: usize, len: usize) -> Result<Tensor> {
        let outer = self.dims.first().copied().unwrap_or(1);
        if start.checked_add(len).is_none_or(|e| e > outer) {
            return Err(Error::invalid(
                "narrow",
                format!("rows {start}..{} of {outer}", start.saturating_add(len)),
            ));
        }
        let inner: usize = self.dims.iter().skip(1).product();
        let mut dims = self.dims.clone();
        if let Some(d) = dims.first_mut() {
            *d = len;
        }
        Ok(Tensor {
            dims,
            offset: self.offset + start * inner,
            storage: self.storage.clone(),
        })
    }

    /// Whether two tensors share one storage (a clone, a reshape, a narrow).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// Whether this tensor is its storage's only holder, so that the `_mut`
    /// accessors will succeed.
    pub fn is_exclusive(&self) -> bool {
        Arc::strong_count(&self.storage) == 1 && Arc::weak_count(&self.storage) == 0
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({} {:?} on {})",
            self.dtype(),
            self.dims,
            self.device()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_reshapes_and_narrows_share_storage_and_check_everything() {
        let cpu = Device::Cpu;
        let t = Tensor::from_f32(&cpu, &[3, 2], &[1., 2., 3., 4., 5., 6.]).unwrap();
        let n = t.narrow(1, 2).unwrap();
        assert_eq!(n.dims(), [2, 2]);
        assert_eq!(n.to_vec_f32().unwrap(), [3., 4., 5., 6.]);
        assert!(n.shares_storage(&t));
        assert_eq!(t.reshape(&[6]).unwrap().dims(), [6]);
        assert!(matches!(t.reshape(&[5]), Err(Error::Dims { .. })));
        assert!(matches!(t.u32("x"), Err(Error::DType { .. })));
        assert!(t.narrow(2, 2).is_err());
        let mut shared = t.clone();
        assert!(shared.f32_mut("w").is_err(), "a clone is not unique");
        drop(n);
        drop(t);
        shared.f32_mut("w").unwrap().fill_zeros().unwrap();
        assert_eq!(shared.to_vec_f32().unwrap(), [0.0; 6]);
        assert!(Tensor::from_f32(&cpu, &[2, 2], &[1.0]).is_err());
    }
}
