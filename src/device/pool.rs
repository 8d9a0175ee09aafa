//! The per-device caching allocator and the device's counters.
//!
//! Every [`DeviceBuffer`](super::DeviceBuffer) takes its memory from its
//! device's pool and gives it back when dropped. A request is rounded up to a
//! size class (at least 256 bytes, then four classes per power of two, so at
//! most 25% is wasted) and served from a cached block of that class when one
//! is free; only a miss allocates (`cuMemAllocAsync` on Cuda, a 64-byte
//! aligned host allocation on Cpu and Sim). A training step that repeats its
//! shapes therefore allocates nothing after its first run, and the counters
//! make that testable: real allocations, reuses, device-to-host and
//! host-to-device copies, and live and peak bytes held by buffers.
//!
//! On Cuda the pool is safe to reuse in stream order: every op of a device is
//! queued on its one stream, so a block given back while a kernel that reads
//! it is still queued is only handed to work queued after that kernel.
//!
//! The simulator's AddressSanitizer build (`SHOESTRING_SIM_ASAN=1`) turns
//! host caching off: blocks are exactly the size asked for and freed on drop,
//! so an out-of-bounds kernel access lands in ASan's redzone and a stale one
//! is a use-after-free.

use crate::error::{Error, Result};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Alignment of host blocks: a cache line, and more than any element needs.
pub(crate) const HOST_ALIGN: usize = 64;
/// The smallest size class.
const MIN_CLASS: usize = 256;

/// The size class of a request of `bytes`: at least 256, otherwise rounded up
/// to a multiple of a quarter of its power of two.
pub(crate) fn size_class(bytes: usize) -> usize {
    if bytes <= MIN_CLASS {
        return MIN_CLASS;
    }
    let step = 1usize << (usize::BITS - 1 - bytes.leading_zeros()).saturating_sub(2);
    bytes.div_ceil(step).saturating_mul(step)
}

/// A host allocation of `bytes`, 64-byte aligned, zeroed when first made.
pub(crate) struct HostBlock {
    ptr: NonNull<u8>,
    bytes: usize,
}

// SAFETY: a HostBlock owns its allocation exclusively (like a Box<[u8]>); the
// buffer holding it hands out references only through its own borrows.
unsafe impl Send for HostBlock {}
// SAFETY: as above; shared access is read-only through `&DeviceBuffer`.
unsafe impl Sync for HostBlock {}

impl HostBlock {
    fn new(bytes: usize) -> Result<HostBlock> {
        let layout =
            Layout::from_size_align(bytes.max(1), HOST_ALIGN).map_err(|_| Error::OutOfMemory {
                device: "host".into(),
                bytes,
            })?;
        // SAFETY: the layout has a nonzero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        NonNull::new(ptr)
            .map(|ptr| HostBlock { ptr, bytes })
            .ok_or_else(|| Error::OutOfMemory {
                device: "host".into(),
                bytes,
            })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for HostBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout (valid then).
        unsafe {
            std::alloc::dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.bytes.max(1), HOST_ALIGN),
            )
        }
    }
}

/// One allocation of a pool.
pub(crate) enum Block {
    Host(HostBlock),
    Cuda { slice: CudaSlice<u8>, ptr: u64 },
}

impl Block {
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Block::Host(h) => h.bytes,
            Block::Cuda { slice, .. } => slice.len(),
        }
    }
}

/// Where a pool gets new blocks.
pub(crate) enum Source {
    Host,
    Cuda(Arc<CudaStream>),
}

/// A snapshot of a device's counters ([`Device::counters`](super::Device::counters)).
/// Counts grow for the device's lifetime; subtract two snapshots
/// ([`since`](Self::since)) to measure a stretch of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Blocks allocated from the system (pool misses).
    pub allocations: u64,
    /// Bytes of those blocks.
    pub allocated_bytes: u64,
    /// Buffers served from a cached block (pool hits).
    pub reuses: u64,
    /// Copies from the device to the host: every read of device data.
    pub dtoh_copies: u64,
    /// Copies from the host to the device.
    pub htod_copies: u64,
    /// Bytes held by live buffers now (their size classes).
    pub live_bytes: u64,
    /// The most bytes live buffers held at once since the last
    /// [`Device::reset_peak`](super::Device::reset_peak).
    pub peak_live_bytes: u64,
}

impl DeviceCounters {
    /// The counts since `earlier` (a snapshot of the same device); the byte
    /// gauges (`live_bytes`, `peak_live_bytes`) are this snapshot's own.
    pub fn since(&self, earlier: &DeviceCounters) -> DeviceCounters {
        DeviceCounters {
            allocations: self.allocations - earlier.allocations,
            allocated_bytes: self.allocated_bytes - earlier.allocated_bytes,
            reuses: self.reuses - earlier.reuses,
            dtoh_copies: self.dtoh_copies - earlier.dtoh_copies,
            htod_copies: self.htod_copies - earlier.htod_copies,
            live_bytes: self.live_bytes,
            peak_live_bytes: self.peak_live_bytes,
        }
    }
}

#[derive(Default)]
struct Counters {
    allocations: AtomicU64,
    allocated_bytes: AtomicU64,
    reuses: AtomicU64,
    dtoh_copies: AtomicU64,
    htod_copies: AtomicU64,
    live_bytes: AtomicU64,
    peak_live_bytes: AtomicU64,
}

/// A device's caching allocator and counters.
pub(crate) struct Pool {
    source: Source,
    name: String,
    /// Round requests to size classes and keep freed blocks.
    caching: bool,
    free: Mutex<BTreeMap<usize, Vec<Block>>>,
    counters: Counters,
}

impl Pool {
    pub(crate) fn new(source: Source, name: impl Into<String>, caching: bool) -> Pool {
        Pool {
            source,
            name: name.into(),
            caching,
            free: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
        }
    }

    fn free_list(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Vec<Block>>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A block of at least `bytes`: a cached one of its class, or a new one.
    /// The contents are unspecified (zeros when new, old data when reused).
    pub(crate) fn take(&self, bytes: usize) -> Result<Block> {
        let class = if self.caching {
            size_class(bytes)
        } else {
            bytes
        };
        let cached = self.free_list().get_mut(&class).and_then(Vec::pop);
        let block = match cached {
            Some(b) => {
                self.counters.reuses.fetch_add(1, Ordering::Relaxed);
                b
            }
            None => {
                let b = match self.allocate(class) {
                    Ok(b) => b,
                    // Out of memory with blocks cached: give them back and retry once.
                    Err(Error::OutOfMemory { .. }) if self.release_cached() > 0 => {
                        self.allocate(class)?
                    }
                    Err(e) => return Err(e),
                };
                self.counters.allocations.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .allocated_bytes
                    .fetch_add(class as u64, Ordering::Relaxed);
                b
            }
        };
        let live = self
            .counters
            .live_bytes
            .fetch_add(class as u64, Ordering::Relaxed)
            + class as u64;
        self.counters
            .peak_live_bytes
            .fetch_max(live, Ordering::Relaxed);
        Ok(block)
    }

    fn allocate(&self, bytes: usize) -> Result<Block> {
        // The tests' small device (`fault::DEVICE_ENV`): out of memory past
        // a budget of live bytes, as a full GPU would be.
        if let Some(budget) = crate::fault::device_budget() {
            let live = self.counters.live_bytes.load(Ordering::Relaxed);
            if live.saturating_add(bytes as u64) > budget {
                return Err(Error::OutOfMemory {
                    device: self.name.clone(),
                    bytes,
                });
            }
        }
        match &self.source {
            Source::Host => Ok(Block::Host(HostBlock::new(bytes)?)),
            Source::Cuda(stream) => {
                // SAFETY: the contents are unspecified bytes; every element
                // type a buffer holds is valid for any bit pattern (`Element`).
                let slice = unsafe { stream.alloc::<u8>(bytes) }.map_err(|e| {
                    if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                        Error::OutOfMemory {
                            device: self.name.clone(),
                            bytes,
                        }
                    } else {
                        Error::Driver(e)
                    }
                })?;
                // One stream per device: the event guard has nothing to order.
                let ptr = slice.device_ptr(stream).0;
                Ok(Block::Cuda { slice, ptr })
            }
        }
    }

    /// Takes back a block a buffer held.
    pub(crate) fn give(&self, block: Block) {
        let bytes = block.bytes();
        self.counters
            .live_bytes
            .fetch_sub(bytes as u64, Ordering::Relaxed);
        if self.caching {
            self.free_list().entry(bytes).or_default().push(block);
        }
    }

    /// Frees every cached block; returns how many bytes were freed.
    pub(crate) fn release_cached(&self) -> usize {
        let blocks = std::mem::take(&mut *self.free_list());
        blocks.values().flatten().map(Block::bytes).sum()
    }

    pub(crate) fn count_dtoh(&self) {
        self.counters.dtoh_copies.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_htod(&self) {
        self.counters.htod_copies.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reset_peak(&self) {
        let live = self.counters.live_bytes.load(Ordering::Relaxed);
        self.counters.peak_live_bytes.store(live, Ordering::Relaxed);
    }

    pub(crate) fn counters(&self) -> DeviceCounters {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DeviceCounters {
            allocations: get(&c.allocations),
            allocated_bytes: get(&c.allocated_bytes),
            reuses: get(&c.reuses),
            dtoh_copies: get(&c.dtoh_copies),
            htod_copies: get(&c.htod_copies),
            live_bytes: get(&c.live_bytes),
            peak_live_bytes: get(&c.peak_live_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_waste_at_most_a_quarter() {
        assert_eq!(size_class(0), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 320);
        assert_eq!(size_class(1000), 1024);
        assert_eq!(size_class(1025), 1280);
        for bytes in (257..1 << 20).step_by(997) {
            let c = size_class(bytes);
            assert!(c >= bytes && (c - bytes) * 4 <= bytes, "{bytes} -> {c}");
        }
    }

    #[test]
    fn a_freed_block_is_reused_for_the_same_class() {
        let pool = Pool::new(Source::Host, "test", true);
        let a = pool.take(1000).unwrap();
        pool.give(a);
        let _b = pool.take(900).unwrap(); // class 1024 too
        let c = pool.counters();
        assert_eq!((c.allocations, c.reuses, c.live_bytes), (1, 1, 1024));
    }
}
