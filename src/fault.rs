//! Fault injection for the reliability tests (docs/reliability.md): named
//! points in the code that writes a run (checkpoints, the final model) where
//! a test can make the process die, to prove that no moment of a write
//! leaves a run that cannot resume to the same bytes; a disk that fills
//! after a number of bytes; and a device with a memory budget.
//!
//! `SHOESTRING_FAULT_POINT=NAME:N` makes the `N`-th pass (from 1) through
//! point `NAME` abort the process on the spot: no destructor runs and no
//! buffer is flushed, as with SIGKILL; what the process had written is in
//! the OS's hands, as after a kill. Unset (always, outside tests), a point
//! costs one check of a value read once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a point.
pub const ENV: &str = "SHOESTRING_FAULT_POINT";

/// Every point, in the order a checkpoint write passes them.
pub const POINTS: [&str; 6] = [
    "checkpoint.model",
    "checkpoint.optimizer",
    "checkpoint.state",
    "checkpoint.checksums",
    "checkpoint.replace",
    "final.model",
];

/// The environment variable that makes the disk "full" after that many
/// bytes written by `nn::save::write_atomically` in this process.
pub const DISK_ENV: &str = "SHOESTRING_FAULT_DISK_BYTES";

/// The environment variable that gives every device pool a budget of live
/// bytes, past which an allocation is out of memory (a GPU's limit, on any
/// device).
pub const DEVICE_ENV: &str = "SHOESTRING_FAULT_DEVICE_BYTES";

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static DEVICE: OnceLock<Option<u64>> = OnceLock::new();
static DISK: OnceLock<Option<u64>> = OnceLock::new();
static WRITTEN: AtomicU64 = AtomicU64::new(0);
static PASSES: AtomicU64 = AtomicU64::new(0);

fn armed() -> &'static Option<(String, u64)> {
    ARMED.get_or_init(|| {
        let spec = std::env::var(ENV).ok()?;
        let (name, n) = spec.rsplit_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    })
}

/// A point named `name`: aborts the process at its armed pass.
pub fn point(name: &str) {
    if let Some((armed_name, n)) = armed() {
        if armed_name == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            std::process::abort();
        }
    }
}

/// How many of `len` bytes the (simulated) disk takes: all of them unless
/// [`DISK_ENV`] is set and this write would pass its budget, in which case
/// the bytes up to the budget.
pub fn disk_allows(len: usize) -> usize {
    match DISK.get_or_init(|| std::env::var(DISK_ENV).ok()?.parse().ok()) {
        None => len,
        Some(budget) => {
            let before = WRITTEN.fetch_add(len as u64, Ordering::SeqCst);
            budget.saturating_sub(before).min(len as u64) as usize
        }
    }
}

/// The live-byte budget of every device pool, if [`DEVICE_ENV`] sets one.
pub fn device_budget() -> Option<u64> {
    *DEVICE.get_or_init(|| std::env::var(DEVICE_ENV).ok()?.parse().ok())
}
