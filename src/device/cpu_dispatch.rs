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
//! [`cpu_level`] names the widest path the CPU allows (portable, AVX2 + FMA,
//! AVX-512F) for code that brings its own `#[target_feature]` kernels (the
//! GEMM microkernels); `SHOESTRING_CPU_LEVEL` caps it so that a test can run a
//! narrower path on a wider CPU (`tests/gemm_cpu.rs`).
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

/// The environment variable that caps [`cpu_level`]: `portable`, `avx2` or
/// `avx512` (any other value is ignored). It can only lower the level the CPU
/// has, so tests on an AVX-512 machine can run the AVX2 kernels too.
pub const CPU_LEVEL_ENV: &str = "SHOESTRING_CPU_LEVEL";

/// The instruction sets a CPU twin may use, lowest first. Every level gives
/// the same bits; a higher one is only faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CpuLevel {
    /// The baseline build: `f32::mul_add` may be a library call.
    Portable,
    /// AVX2 + FMA ([`with_fma`]'s fast path).
    Avx2Fma,
    /// AVX-512F on top of AVX2 + FMA (the GEMM microkernel's widest path).
    Avx512,
}

impl CpuLevel {
    /// `portable`, `avx2` or `avx512`: the names [`CPU_LEVEL_ENV`] takes.
    pub fn name(self) -> &'static str {
        match self {
            CpuLevel::Portable => "portable",
            CpuLevel::Avx2Fma => "avx2",
            CpuLevel::Avx512 => "avx512",
        }
    }
}

/// The level every dispatch of this process uses: detected once.
static LEVEL: OnceLock<CpuLevel> = OnceLock::new();

fn detected() -> CpuLevel {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma")) {
            CpuLevel::Portable
        } else if has!("avx512f") {
            CpuLevel::Avx512
        } else {
            CpuLevel::Avx2Fma
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        CpuLevel::Portable
    }
}

fn detect() -> CpuLevel {
    if std::env::var_os(CPU_PORTABLE_ENV).is_some_and(|v| v == "1") {
        return CpuLevel::Portable;
    }
    let cap = std::env::var(CPU_LEVEL_ENV).ok().and_then(|v| {
        [CpuLevel::Portable, CpuLevel::Avx2Fma, CpuLevel::Avx512]
            .into_iter()
            .find(|l| l.name() == v)
    });
    let level = detected();
    cap.map_or(level, |cap| level.min(cap))
}

/// The widest instruction set this process dispatches to: what the CPU has
/// (detected once, at the first call), lowered by `SHOESTRING_CPU_PORTABLE=1`
/// or [`CPU_LEVEL_ENV`] as they were set then.
#[inline]
pub fn cpu_level() -> CpuLevel {
    *LEVEL.get_or_init(detect)
}

/// True when [`with_fma`] runs its closure compiled for AVX2 + FMA: the CPU has
/// both and neither `SHOESTRING_CPU_PORTABLE=1` nor
/// `SHOESTRING_CPU_LEVEL=portable` was set when first asked (both turn the
/// fast path off for every family, not only the GEMM).
#[inline]
pub fn fma_path() -> bool {
    cpu_level() >= CpuLevel::Avx2Fma
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

/// Defines `fn $name(args)` that runs `$inner(args)` in the widest build the
/// CPU allows ([`cpu_level`]): compiled with AVX-512F (16 lanes, 32
/// registers), with AVX2 + FMA, or portable. Every build performs the same
/// IEEE-754 operations, so the bits do not depend on the level
/// (`tests/cpu_dispatch.rs`).
///
/// Why a function and not a [`with_fma`] closure: here the slices arrive as
/// arguments, which LLVM knows do not alias, so a loop that writes several
/// of them vectorises; captured by a closure they are pointers loaded from
/// its environment, and such a loop (the LSTM cell's, with eleven streams)
/// stays scalar. `$inner` must be `#[inline(always)]`.
#[macro_export]
macro_rules! simd_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $inner:path) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::device::{cpu_level, CpuLevel};
                if cpu_level() >= CpuLevel::Avx512 {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn avx512($($arg: $ty),*) {
                        $inner($($arg),*)
                    }
                    // SAFETY: cpu_level() detected AVX-512F, AVX2 and FMA.
                    return unsafe { avx512($($arg),*) };
                }
                if cpu_level() >= CpuLevel::Avx2Fma {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn avx2($($arg: $ty),*) {
                        $inner($($arg),*)
                    }
                    // SAFETY: cpu_level() detected AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $inner($($arg),*)
        }
    };
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
