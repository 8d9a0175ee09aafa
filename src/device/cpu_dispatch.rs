//! Run-time SIMD dispatch for the CPU twins (DESIGN.md rule 1).
//!
//! On x86-64, `f32::mul_add` compiled without the `fma` target feature is a
//! correctly rounded but slow library call, and the crate is built for the
//! baseline target (never `target-cpu=native`). [`with_fma`] is the one place
//! where a hot loop gets the faster build: it runs its closure inside a
//! function compiled with `#[target_feature(enable = "avx2,fma")]` when the CPU
//! has both (detected once, at run time), and as plain code otherwise. The
//! closure is inlined into that function, so the loop body and everything it
//! inlines (`detmath`, the reduction lanes, the LSTM cell) is compiled for
//! AVX2 + FMA: `mul_add` becomes one `vfmadd` and loops vectorise 8 wide.
//!
//! Both builds perform the same IEEE-754 operations (fma is correctly rounded
//! either way, and no implicit contraction is ever enabled), so the bits do
//! not depend on the path. `SHOESTRING_CPU_PORTABLE=1` (read once, at the first
//! dispatch) forces the portable path; `tests/cpu_dispatch.rs` runs every
//! family under both and compares the bits.
//!
//! Use it per rayon task, around the whole loop (not per element), with an
//! `#[inline(always)]` closure whose callees are `#[inline]`/`#[inline(always)]`:
//! code that is not inlined into the wrapper keeps the portable build. (LLVM
//! does not inline a large closure on its own: it has a second call site, the
//! portable one. `objdump -d` shows whether each `run_avx2_fma` instance holds
//! the loop, with `vfmadd` and no calls, or only a `jmp` to the closure.)
//!
//! ```
//! use shoestring::device::with_fma;
//! let (a, b) = (vec![1.5f32; 1000], vec![2.0f32; 1000]);
//! let mut out = vec![0.0f32; 1000];
//! with_fma(#[inline(always)] || {
//!     for ((o, &x), &y) in out.iter_mut().zip(&a).zip(&b) {
//!         *o = x.mul_add(y, 1.0);
//!     }
//! });
//! assert_eq!(out[0], 4.0);
//! ```

use std::sync::OnceLock;

/// The environment variable that forces the portable path when set to `1`.
pub const CPU_PORTABLE_ENV: &str = "SHOESTRING_CPU_PORTABLE";

/// Whether [`with_fma`] takes the AVX2 + FMA build: detected once per process.
static FMA_PATH: OnceLock<bool> = OnceLock::new();

fn detect() -> bool {
    if std::env::var_os(CPU_PORTABLE_ENV).is_some_and(|v| v == "1") {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// True when [`with_fma`] runs its closure compiled for AVX2 + FMA: the CPU has
/// both and `SHOESTRING_CPU_PORTABLE=1` was not set when first asked.
#[inline]
pub fn fma_path() -> bool {
    *FMA_PATH.get_or_init(detect)
}

/// Runs `f`, compiled for `avx2,fma` where the CPU has both (see the module
/// docs), else as the portable build. The result bits are the same on both
/// paths for code that follows DESIGN.md rule 1 (explicit `mul_add`, no
/// contraction). Call it around a whole loop (one feature check per call),
/// with an `#[inline(always)]` closure so that the loop is compiled into the
/// AVX2 + FMA wrapper (see the module docs).
#[inline(always)]
pub fn with_fma<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if fma_path() {
        // SAFETY: `run_avx2_fma` only requires the avx2 and fma target
        // features, and `fma_path()` is true only when
        // `is_x86_feature_detected!` found both on this CPU at run time.
        return unsafe { run_avx2_fma(f) };
    }
    f()
}

/// `f()` with `f` (inlined here) compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU must support the `avx2` and `fma` target features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn run_avx2_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_compute_a_correctly_rounded_fma() {
        // 1 + 2^-23 squared minus (1 + 2^-22): the exact product's low bit
        // survives only in a fused multiply-add.
        let a = 1.0f32 + f32::EPSILON;
        let c = -(1.0f32 + 2.0 * f32::EPSILON);
        let fused = with_fma(
            #[inline(always)]
            || a.mul_add(a, c),
        );
        assert_eq!(fused, f32::EPSILON * f32::EPSILON);
        assert_eq!(a.mul_add(a, c), fused);
    }
}
