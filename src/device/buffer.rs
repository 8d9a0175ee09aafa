//! Device buffers and borrowed views into them.
//!
//! A [`DeviceBuffer`] is `len` elements on one [`Device`]: host memory on
//! `Cpu` and `Sim` (the simulator runs kernels on host pointers), device memory
//! on `Cuda`, always taken from the device's caching pool (`pool.rs`) and given
//! back on drop. A [`View`] (shared) or [`ViewMut`] (exclusive) is an
//! `offset, len` window into one, borrowed from it like a slice: every op and
//! every [`Launch`](super::Launch) takes views, so step `t` of a `[T, B, 4H]`
//! buffer is `buf.slice_mut(t * B * 4 * H..(t + 1) * B * 4 * H)`, no copy.
//! `&DeviceBuffer` and `&mut DeviceBuffer` convert into views, so whole
//! buffers pass where views are asked for.
//!
//! Transfers name their direction (`copy_htod`, `copy_dtoh`) and are counted
//! by the device ([`Device::counters`](super::Device::counters)).

use super::pool::Block;
use super::Device;
use crate::error::{Error, Result};
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use std::marker::PhantomData;
use std::ops::{Bound, Range, RangeBounds};

/// Element types a buffer may hold: plain bit patterns that may be copied to
/// and from a GPU.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid value (a
/// pooled block is reused with whatever bits it held), the alignment must be
/// at most 64 bytes, and the type must hold no pointers.
pub unsafe trait Element:
    DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static
{
}
// SAFETY: every bit pattern is an f32 (NaNs included); align 4.
unsafe impl Element for f32 {}
// SAFETY: plain integers: every bit pattern is valid; align <= 8.
unsafe impl Element for u32 {}
// SAFETY: as above.
unsafe impl Element for i32 {}
// SAFETY: as above (f16 values travel as their bits in u16).
unsafe impl Element for u16 {}
// SAFETY: as above.
unsafe impl Element for u64 {}

/// `len` elements of `T` on one [`Device`], from the device's pool.
pub struct DeviceBuffer<T: Element> {
    device: Device,
    /// `None` only while being dropped.
    block: Option<Block>,
    len: usize,
    _elem: PhantomData<T>,
}

/// A shared, borrowed window of a [`DeviceBuffer`]: `len` elements from some
/// offset. Cheap to copy, like `&[T]`.
#[derive(Clone, Copy)]
pub struct View<'a, T: Element> {
    device: &'a Device,
    mem: Mem<'a, T>,
}

#[derive(Clone, Copy)]
enum Mem<'a, T> {
    Host(&'a [T]),
    /// A device address and length; the lifetime ties it to the buffer.
    Cuda(u64, usize, PhantomData<&'a [T]>),
}

/// An exclusive, borrowed window of a [`DeviceBuffer`], like `&mut [T]`.
pub struct ViewMut<'a, T: Element> {
    device: &'a Device,
    mem: MemMut<'a, T>,
}

enum MemMut<'a, T> {
    Host(&'a mut [T]),
    Cuda(u64, usize, PhantomData<&'a mut [T]>),
}

fn bytes_of<T>(len: usize) -> Result<usize> {
    len.checked_mul(std::mem::size_of::<T>())
        .ok_or_else(|| Error::invalid("buffer", format!("{len} elements overflow usize")))
}

/// `bounds` resolved against `len`, or an error naming both.
fn resolve(bounds: impl RangeBounds<usize>, len: usize) -> Result<Range<usize>> {
    let start = match bounds.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match bounds.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => Some(len),
    };
    match (start, end) {
        (Some(s), Some(e)) if s <= e && e <= len => Ok(s..e),
        _ => Err(Error::invalid(
            "slice",
            format!(
                "range {:?}..{:?} is out of bounds for a view of {len} elements",
                bounds.start_bound(),
                bounds.end_bound()
            ),
        )),
    }
}

fn size_of<T>() -> u64 {
    std::mem::size_of::<T>() as u64
}

impl<T: Element> DeviceBuffer<T> {
    /// `len` elements on `device` with unspecified contents (zeros, or what a
    /// reused block held: valid values of `T`, never uninitialised memory).
    /// For outputs an op overwrites whole; [`zeros`](Self::zeros) otherwise.
    pub fn alloc(device: &Device, len: usize) -> Result<Self> {
        let block = device.pool().take(bytes_of::<T>(len)?)?;
        Ok(DeviceBuffer {
            device: device.clone(),
            block: Some(block),
            len,
            _elem: PhantomData,
        })
    }

    /// `len` zeros on `device`.
    pub fn zeros(device: &Device, len: usize) -> Result<Self> {
        let mut buf = Self::alloc(device, len)?;
        buf.view_mut().fill_zeros()?;
        Ok(buf)
    }

    /// A copy of `host` on `device`.
    pub fn copy_htod(device: &Device, host: &[T]) -> Result<Self> {
        let mut buf = Self::alloc(device, host.len())?;
        buf.view_mut().copy_htod(host)?;
        Ok(buf)
    }

    /// The contents, copied to the host (waits for queued work that writes
    /// them). Counts as one device-to-host copy.
    pub fn copy_dtoh(&self) -> Result<Vec<T>> {
        self.view().copy_dtoh()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device the buffer lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The whole buffer as a shared view.
    pub fn view(&self) -> View<'_, T> {
        let mem = match self.block.as_ref() {
            Some(Block::Host(h)) => {
                // SAFETY: the block holds at least `len * size_of::<T>()` bytes
                // (allocated for them), is 64-byte aligned (>= align_of T), and
                // every bit pattern is a valid T (`Element`); the shared borrow
                // of `self` keeps it alive and unaliased by writers.
                Mem::Host(unsafe { std::slice::from_raw_parts(h.as_ptr().cast::<T>(), self.len) })
            }
            Some(Block::Cuda { ptr, .. }) => Mem::Cuda(*ptr, self.len, PhantomData),
            None => unreachable!("a live buffer holds its block"),
        };
        View {
            device: &self.device,
            mem,
        }
    }

    /// The whole buffer as an exclusive view.
    pub fn view_mut(&mut self) -> ViewMut<'_, T> {
        let mem = match self.block.as_mut() {
            Some(Block::Host(h)) => {
                // SAFETY: as in `view`, and the exclusive borrow of `self`
                // makes this the only reference to the block.
                MemMut::Host(unsafe {
                    std::slice::from_raw_parts_mut(h.as_ptr().cast::<T>(), self.len)
                })
            }
            Some(Block::Cuda { ptr, .. }) => MemMut::Cuda(*ptr, self.len, PhantomData),
            None => unreachable!("a live buffer holds its block"),
        };
        ViewMut {
            device: &self.device,
            mem,
        }
    }

    /// Elements `range` as a shared view.
    ///
    /// # Panics
    /// When `range` is out of bounds, like slice indexing; [`try_slice`](Self::try_slice)
    /// returns an error instead.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> View<'_, T> {
        self.view().slice(range)
    }

    /// Elements `range` as a shared view, or an error when out of bounds.
    pub fn try_slice(&self, range: impl RangeBounds<usize>) -> Result<View<'_, T>> {
        self.view().try_slice(range)
    }

    /// Elements `range` as an exclusive view.
    ///
    /// # Panics
    /// When `range` is out of bounds; [`try_slice_mut`](Self::try_slice_mut)
    /// returns an error instead.
    pub fn slice_mut(&mut self, range: impl RangeBounds<usize>) -> ViewMut<'_, T> {
        self.view_mut().into_slice(range)
    }

    /// Elements `range` as an exclusive view, or an error when out of bounds.
    pub fn try_slice_mut(&mut self, range: impl RangeBounds<usize>) -> Result<ViewMut<'_, T>> {
        self.view_mut().try_into_slice(range)
    }

    /// Host view, for the CPU twins; `None` on Cuda.
    pub fn as_host_slice(&self) -> Option<&[T]> {
        self.view().into_host()
    }

    /// Mutable host view, for the CPU twins; `None` on Cuda.
    pub fn as_host_slice_mut(&mut self) -> Option<&mut [T]> {
        self.view_mut().into_host_mut()
    }

    /// Host view for a CPU twin; an error naming `op` when the buffer is on a GPU.
    pub fn host(&self, op: &'static str) -> Result<&[T]> {
        self.view().host(op)
    }

    /// Mutable host view for a CPU twin; an error naming `op` on a GPU buffer.
    pub fn host_mut(&mut self, op: &'static str) -> Result<&mut [T]> {
        self.view_mut().into_host_mut_for(op)
    }

    /// Copies `src` into this buffer on the device (a host copy on Cpu and Sim,
    /// a device-to-device copy queued on the stream on Cuda). Both must live on
    /// the same device and have the same length.
    pub fn copy_from<'s>(&mut self, src: impl Into<View<'s, T>>) -> Result<()> {
        self.view_mut().copy_from(src)
    }

    /// Errors unless this buffer lives on `device` and holds `expected` elements.
    pub fn check(
        &self,
        op: &'static str,
        name: &'static str,
        device: &Device,
        expected: usize,
    ) -> Result<()> {
        self.view().check(op, name, device, expected)
    }
}

impl<T: Element> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            self.device.pool().give(block);
        }
    }
}

impl<'a, T: Element> View<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.mem {
            Mem::Host(s) => s.len(),
            Mem::Cuda(_, len, _) => len,
        }
    }

    /// Whether the view holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device the viewed buffer lives on.
    pub fn device(&self) -> &'a Device {
        self.device
    }

    /// Elements `range` of this view.
    ///
    /// # Panics
    /// When `range` is out of bounds; see [`try_slice`](Self::try_slice).
    pub fn slice(self, range: impl RangeBounds<usize>) -> View<'a, T> {
        match self.try_slice(range) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// Elements `range` of this view, or an error when out of bounds.
    pub fn try_slice(self, range: impl RangeBounds<usize>) -> Result<View<'a, T>> {
        let r = resolve(range, self.len())?;
        let mem = match self.mem {
            Mem::Host(s) => Mem::Host(&s[r]),
            Mem::Cuda(ptr, _, _) => {
                Mem::Cuda(ptr + r.start as u64 * size_of::<T>(), r.len(), PhantomData)
            }
        };
        Ok(View {
            device: self.device,
            mem,
        })
    }

    /// The host slice (Cpu and Sim); `None` on Cuda.
    pub fn into_host(self) -> Option<&'a [T]> {
        match self.mem {
            Mem::Host(s) => Some(s),
            Mem::Cuda(..) => None,
        }
    }

    /// The host slice for a CPU twin; an error naming `op` on a GPU view.
    pub fn host(self, op: &'static str) -> Result<&'a [T]> {
        self.into_host()
            .ok_or_else(|| Error::invalid(op, "the CPU twin was given a GPU buffer"))
    }

    /// The device address (Cuda) or host address (Cpu, Sim) of element 0.
    pub(crate) fn address(&self) -> u64 {
        match self.mem {
            Mem::Host(s) => s.as_ptr() as u64,
            Mem::Cuda(ptr, _, _) => ptr,
        }
    }

    /// The contents, copied to the host (waits for the device's queued
    /// work). Counts as one device-to-host copy.
    pub fn copy_dtoh(&self) -> Result<Vec<T>> {
        let mut out = vec![T::default(); self.len()];
        self.copy_dtoh_into(&mut out)?;
        Ok(out)
    }

    /// Copies the contents into `dst` (of the same length). Counts as one
    /// device-to-host copy.
    pub fn copy_dtoh_into(&self, dst: &mut [T]) -> Result<()> {
        if dst.len() != self.len() {
            return Err(Error::Length {
                op: "copy_dtoh",
                name: "dst",
                got: dst.len(),
                expected: self.len(),
            });
        }
        self.device.pool().count_dtoh();
        match (self.mem, self.device) {
            (Mem::Host(s), _) => dst.copy_from_slice(s),
            (Mem::Cuda(ptr, _, _), Device::Cuda(d)) => {
                d.context().bind_to_thread()?;
                // SAFETY: `ptr` addresses `dst.len()` live elements of this
                // device (borrowed for 'a); `dst` is a host slice of that length.
                unsafe {
                    cudarc::driver::result::memcpy_dtoh_async(dst, ptr, d.stream().cu_stream())?
                };
                d.synchronize()?;
            }
            (Mem::Cuda(..), _) => unreachable!("a device address belongs to Device::Cuda"),
        }
        Ok(())
    }

    /// Errors unless this view is on `device` and holds `expected` elements.
    pub fn check(
        &self,
        op: &'static str,
        name: &'static str,
        device: &Device,
        expected: usize,
    ) -> Result<()> {
        check(op, name, self.device, self.len(), device, expected)
    }
}

fn check(
    op: &'static str,
    name: &'static str,
    on: &Device,
    len: usize,
    device: &Device,
    expected: usize,
) -> Result<()> {
    if !on.same_as(device) {
        return Err(Error::DeviceMismatch {
            op,
            name,
            got: on.to_string(),
            expected: device.to_string(),
        });
    }
    if len != expected {
        return Err(Error::Length {
            op,
            name,
            got: len,
            expected,
        });
    }
    Ok(())
}

impl<'a, T: Element> ViewMut<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.mem {
            MemMut::Host(s) => s.len(),
            MemMut::Cuda(_, len, _) => *len,
        }
    }

    /// Whether the view holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device the viewed buffer lives on.
    pub fn device(&self) -> &'a Device {
        self.device
    }

    /// A shorter-lived exclusive view of the same elements (like `&mut *v`).
    pub fn reborrow(&mut self) -> ViewMut<'_, T> {
        let mem = match &mut self.mem {
            MemMut::Host(s) => MemMut::Host(s),
            MemMut::Cuda(ptr, len, _) => MemMut::Cuda(*ptr, *len, PhantomData),
        };
        ViewMut {
            device: self.device,
            mem,
        }
    }

    /// A shared view of the same elements.
    pub fn as_view(&self) -> View<'_, T> {
        let mem = match &self.mem {
            MemMut::Host(s) => Mem::Host(s),
            MemMut::Cuda(ptr, len, _) => Mem::Cuda(*ptr, *len, PhantomData),
        };
        View {
            device: self.device,
            mem,
        }
    }

    /// Elements `range`, borrowed from this view.
    ///
    /// # Panics
    /// When `range` is out of bounds.
    pub fn slice_mut(&mut self, range: impl RangeBounds<usize>) -> ViewMut<'_, T> {
        self.reborrow().into_slice(range)
    }

    /// Elements `range`, for the whole lifetime of this view.
    ///
    /// # Panics
    /// When `range` is out of bounds; see [`try_into_slice`](Self::try_into_slice).
    pub fn into_slice(self, range: impl RangeBounds<usize>) -> ViewMut<'a, T> {
        match self.try_into_slice(range) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// Elements `range`, or an error when out of bounds.
    pub fn try_into_slice(self, range: impl RangeBounds<usize>) -> Result<ViewMut<'a, T>> {
        let r = resolve(range, self.len())?;
        let mem = match self.mem {
            MemMut::Host(s) => MemMut::Host(&mut s[r]),
            MemMut::Cuda(ptr, _, _) => {
                MemMut::Cuda(ptr + r.start as u64 * size_of::<T>(), r.len(), PhantomData)
            }
        };
        Ok(ViewMut {
            device: self.device,
            mem,
        })
    }

    /// Two disjoint views: elements `..mid` and `mid..`.
    ///
    /// # Panics
    /// When `mid > len`.
    pub fn split_at_mut(self, mid: usize) -> (ViewMut<'a, T>, ViewMut<'a, T>) {
        assert!(
            mid <= self.len(),
            "split at {mid} of {} elements",
            self.len()
        );
        let device = self.device;
        match self.mem {
            MemMut::Host(s) => {
                let (a, b) = s.split_at_mut(mid);
                (
                    ViewMut {
                        device,
                        mem: MemMut::Host(a),
                    },
                    ViewMut {
                        device,
                        mem: MemMut::Host(b),
                    },
                )
            }
            MemMut::Cuda(ptr, len, _) => (
                ViewMut {
                    device,
                    mem: MemMut::Cuda(ptr, mid, PhantomData),
                },
                ViewMut {
                    device,
                    mem: MemMut::Cuda(ptr + mid as u64 * size_of::<T>(), len - mid, PhantomData),
                },
            ),
        }
    }

    /// The host slice (Cpu and Sim); `None` on Cuda.
    pub fn into_host_mut(self) -> Option<&'a mut [T]> {
        match self.mem {
            MemMut::Host(s) => Some(s),
            MemMut::Cuda(..) => None,
        }
    }

    /// The host slice for a CPU twin; an error naming `op` on a GPU view.
    pub fn into_host_mut_for(self, op: &'static str) -> Result<&'a mut [T]> {
        self.into_host_mut()
            .ok_or_else(|| Error::invalid(op, "the CPU twin was given a GPU buffer"))
    }

    /// The host slice for a CPU twin, borrowed; an error naming `op` on a GPU view.
    pub fn host_mut(&mut self, op: &'static str) -> Result<&mut [T]> {
        self.reborrow().into_host_mut_for(op)
    }

    /// The device address (Cuda) or host address (Cpu, Sim) of element 0.
    pub(crate) fn address(&mut self) -> u64 {
        match &mut self.mem {
            MemMut::Host(s) => s.as_mut_ptr() as u64,
            MemMut::Cuda(ptr, _, _) => *ptr,
        }
    }

    /// Sets every element to zero bits.
    pub fn fill_zeros(&mut self) -> Result<()> {
        let device = self.device;
        match (&mut self.mem, device) {
            (MemMut::Host(s), _) => s.fill(T::default()),
            (MemMut::Cuda(ptr, len, _), Device::Cuda(d)) => {
                d.context().bind_to_thread()?;
                // SAFETY: `ptr` addresses `len` live elements of this device,
                // exclusively borrowed; zero bytes are a valid T.
                unsafe {
                    cudarc::driver::result::memset_d8_async(
                        *ptr,
                        0,
                        *len * std::mem::size_of::<T>(),
                        d.stream().cu_stream(),
                    )?
                };
            }
            (MemMut::Cuda(..), _) => unreachable!("a device address belongs to Device::Cuda"),
        }
        Ok(())
    }

    /// Copies `host` (of the same length) into the view. Counts as one
    /// host-to-device copy.
    pub fn copy_htod(&mut self, host: &[T]) -> Result<()> {
        if host.len() != self.len() {
            return Err(Error::Length {
                op: "copy_htod",
                name: "host",
                got: host.len(),
                expected: self.len(),
            });
        }
        let device = self.device;
        device.pool().count_htod();
        match (&mut self.mem, device) {
            (MemMut::Host(s), _) => s.copy_from_slice(host),
            (MemMut::Cuda(ptr, _, _), Device::Cuda(d)) => {
                d.context().bind_to_thread()?;
                // SAFETY: `ptr` addresses `host.len()` live elements, exclusively
                // borrowed. The copy is synchronised before returning, so `host`
                // may be freed or changed afterwards.
                unsafe {
                    cudarc::driver::result::memcpy_htod_async(*ptr, host, d.stream().cu_stream())?
                };
                d.synchronize()?;
            }
            (MemMut::Cuda(..), _) => unreachable!("a device address belongs to Device::Cuda"),
        }
        Ok(())
    }

    /// Copies `src` (same device, same length) into this view: a host copy on
    /// Cpu and Sim, a device-to-device copy queued on the stream on Cuda.
    pub fn copy_from<'s>(&mut self, src: impl Into<View<'s, T>>) -> Result<()> {
        let src: View<'s, T> = src.into();
        src.check("copy_from", "src", self.device, self.len())?;
        let device = self.device;
        match (&mut self.mem, src.mem, device) {
            (MemMut::Host(d), Mem::Host(s), _) => d.copy_from_slice(s),
            (MemMut::Cuda(dst, len, _), Mem::Cuda(from, _, _), Device::Cuda(dev)) => {
                dev.context().bind_to_thread()?;
                // SAFETY: both address `len` live elements of this device, the
                // destination exclusively borrowed (so the two cannot overlap).
                unsafe {
                    cudarc::driver::result::memcpy_dtod_async(
                        *dst,
                        from,
                        *len * std::mem::size_of::<T>(),
                        dev.stream().cu_stream(),
                    )?
                };
            }
            _ => unreachable!("same device, so the same kind of memory"),
        }
        Ok(())
    }

    /// Errors unless this view is on `device` and holds `expected` elements.
    pub fn check(
        &self,
        op: &'static str,
        name: &'static str,
        device: &Device,
        expected: usize,
    ) -> Result<()> {
        check(op, name, self.device, self.len(), device, expected)
    }
}

impl<'a, T: Element> From<&'a DeviceBuffer<T>> for View<'a, T> {
    fn from(b: &'a DeviceBuffer<T>) -> Self {
        b.view()
    }
}

impl<'a, T: Element> From<&'a mut DeviceBuffer<T>> for View<'a, T> {
    fn from(b: &'a mut DeviceBuffer<T>) -> Self {
        b.view()
    }
}

impl<'a, T: Element> From<&'a mut DeviceBuffer<T>> for ViewMut<'a, T> {
    fn from(b: &'a mut DeviceBuffer<T>) -> Self {
        b.view_mut()
    }
}

impl<'a, 'b: 'a, T: Element> From<&'a ViewMut<'b, T>> for View<'a, T> {
    fn from(v: &'a ViewMut<'b, T>) -> Self {
        v.as_view()
    }
}

impl<'a, 'b: 'a, T: Element> From<&'a mut ViewMut<'b, T>> for ViewMut<'a, T> {
    fn from(v: &'a mut ViewMut<'b, T>) -> Self {
        v.reborrow()
    }
}

impl<'a, 'b: 'a, T: Element> From<&'a View<'b, T>> for View<'a, T> {
    fn from(v: &'a View<'b, T>) -> Self {
        *v
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

    #[test]
    fn views_address_their_window_and_refuse_out_of_range() {
        let cpu = Device::Cpu;
        let mut buf = DeviceBuffer::copy_htod(&cpu, &[0u32, 1, 2, 3, 4, 5]).unwrap();
        assert_eq!(buf.slice(2..5).copy_dtoh().unwrap(), [2, 3, 4]);
        assert_eq!(buf.slice(2..5).slice(1..).copy_dtoh().unwrap(), [3, 4]);
        let (mut a, mut b) = buf.view_mut().split_at_mut(3);
        a.copy_from(&b).unwrap();
        b.fill_zeros().unwrap();
        assert_eq!(buf.copy_dtoh().unwrap(), [3, 4, 5, 0, 0, 0]);
        assert!(buf.try_slice(4..7).is_err());
        assert!(buf.try_slice_mut(7..).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = buf.try_slice(3..2);
        assert!(reversed.is_err());
    }

    #[test]
    fn a_reused_block_comes_back_zeroed_from_zeros() {
        let cpu = Device::Cpu;
        let mut a = DeviceBuffer::<u32>::zeros(&cpu, 1000).unwrap();
        a.host_mut("t").unwrap().fill(7);
        drop(a);
        let b = DeviceBuffer::<u32>::zeros(&cpu, 1000).unwrap();
        assert!(b.copy_dtoh().unwrap().iter().all(|&x| x == 0));
    }
}
