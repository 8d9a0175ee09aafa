//! GPU side of the benches, shared by every `benches/<family>.rs`
//! (`mod common;`). Each bench measures the CPU twin next to a host memcpy;
//! where `Device::cuda(0)` opens, it also measures the same op on GPU buffers
//! next to a device-to-device copy of the same bytes, with the device
//! synchronised inside the timed closure, under the same `Throughput`, so
//! criterion prints GB/s for both pairs. Without a GPU nothing of this runs and
//! the only trace is one `skipped:` line on stderr per bench binary.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId};
use shoestring::device::{Device, DeviceBuffer};
use std::sync::OnceLock;

/// GPU 0, opened once per bench binary; `None` (after one `skipped:` line on
/// stderr) when there is no driver or no device.
pub fn gpu() -> Option<Device> {
    static GPU: OnceLock<Option<Device>> = OnceLock::new();
    GPU.get_or_init(|| match Device::cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: GPU benches ({e})");
            None
        }
    })
    .clone()
}

/// The GPU reference: a device-to-device copy of `bytes` bytes (rounded up to
/// whole words), synchronised, in `g` next to the GPU op.
pub fn bench_gpu_memcpy<P: std::fmt::Display>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    dev: &Device,
    param: P,
    bytes: u64,
) {
    let words = bytes.div_ceil(4) as usize;
    let src = DeviceBuffer::<u32>::zeros(dev, words).unwrap();
    let mut dst = DeviceBuffer::<u32>::zeros(dev, words).unwrap();
    g.bench_function(
        BenchmarkId::new("gpu memcpy dtod (reference)", param),
        |b| {
            b.iter(|| {
                dst.copy_from(&src).unwrap();
                dev.synchronize().unwrap()
            })
        },
    );
}
