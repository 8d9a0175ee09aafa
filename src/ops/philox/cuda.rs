//! Launch wrapper for `kernels/philox.cu`, shared by Cuda and Sim.

use super::{PhiloxCounter, PhiloxKey};
use crate::device::abi::ss_philox_blocks_params;
use crate::device::{Device, Launch, LaunchConfig, ViewMut};
use crate::error::Result;

/// (threads per block, most blocks). Any shape gives the same bits: the kernel
/// is a grid-stride loop over block indices.
pub const DEFAULT_SHAPE: (u32, u32) = crate::device::DEFAULT_LINEAR_SHAPE;

/// TWIN: src/ops/philox/cpu.rs::philox_blocks_u32. `out` holds `4 * n_blocks`
/// words on `device` (checked by the caller in mod.rs).
pub(crate) fn philox_blocks_u32(
    device: &Device,
    key: PhiloxKey,
    base: PhiloxCounter,
    n_blocks: u64,
    out: ViewMut<'_, u32>,
    (block, max_grid): (u32, u32),
) -> Result<()> {
    let params = ss_philox_blocks_params {
        key,
        base,
        n_blocks,
    };
    let config = LaunchConfig::linear(n_blocks, block, max_grid);
    let launch = Launch::new(device, "philox", "philox_blocks_u32", config)
        .param(&params)
        .buffer_mut(out)?;
    // SAFETY: (params, out) as philox.cu declares them; the kernel writes
    // 4 * n_blocks words and mod.rs checked `out` holds exactly that many.
    unsafe { launch.run() }
}
