//! The kernel code embedded by `build.rs`: PTX compiled by nvcc with the
//! contract flags, or (without nvcc at build time) self-contained sources that
//! [`ptx_for`] compiles with NVRTC using the same flags.

/// One kernel family (`kernels/<name>.cu`) as embedded.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedFamily {
    /// The family name, the file stem of `kernels/<name>.cu`.
    pub name: &'static str,
    /// PTX text when [`IS_PTX`], else the source with its includes inlined.
    pub code: &'static str,
    /// sha256 of `code`.
    pub sha256: &'static str,
}

mod generated {
    use super::EmbeddedFamily;
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

/// Where the embedded kernels came from, e.g. `nvcc PTX (Cuda compilation tools, release 13.0, ...)`.
pub const ORIGIN: &str = generated::ORIGIN;
/// True when the embedded code is PTX; false when it is source for NVRTC.
pub const IS_PTX: bool = generated::IS_PTX;
/// The virtual architecture the PTX targets (`SHOESTRING_CUDA_ARCH` at build time).
pub const ARCH: &str = generated::ARCH;
/// Every family, sorted by name.
pub const FAMILIES: &[EmbeddedFamily] = generated::FAMILIES;
/// sha256 over every family's name and code: the identity of the kernels in a run manifest.
pub const SHA256: &str = generated::SHA256;
/// `(family, source)`: every family's source with its includes inlined, as
/// NVRTC compiles it. Embedded in every build so that the NVRTC path can be
/// checked even where nvcc produced the PTX.
pub const SOURCES: &[(&str, &str)] = generated::SOURCES;

/// The numerics contract's compiler options (DESIGN.md rule 1), as NVRTC takes
/// them; `build.rs` passes the same to nvcc.
pub fn nvrtc_options() -> cudarc::nvrtc::CompileOptions {
    cudarc::nvrtc::CompileOptions {
        fmad: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        ftz: Some(false),
        use_fast_math: Some(false),
        options: vec!["-std=c++17".into(), "-lineinfo".into()],
        arch: Some(ARCH),
        ..Default::default()
    }
}

/// The PTX of one family: the embedded PTX, or the embedded source compiled by
/// NVRTC now. Errors (not panics) when NVRTC is missing or the compile fails.
pub fn ptx_for(family: &EmbeddedFamily) -> Result<cudarc::nvrtc::Ptx, String> {
    if IS_PTX {
        return Ok(cudarc::nvrtc::Ptx::from_src(family.code));
    }
    // SAFETY: only probes whether the NVRTC shared library can be dlopen'ed;
    // cudarc panics on first use of NVRTC without it, so this must come first.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(
            "the kernels were built without nvcc and NVRTC (libnvrtc.so) is not installed".into(),
        );
    }
    compile_with_nvrtc(family.code)
}

/// Compiles one self-contained kernel source with NVRTC and the contract's
/// options. Errors (not panics) when NVRTC is not installed.
pub fn compile_with_nvrtc(source: &str) -> Result<cudarc::nvrtc::Ptx, String> {
    // SAFETY: only probes whether the NVRTC shared library can be dlopen'ed;
    // cudarc panics on first use of NVRTC without it, so this must come first.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("NVRTC (libnvrtc.so) is not installed".into());
    }
    cudarc::nvrtc::compile_ptx_with_opts(source, nvrtc_options()).map_err(|e| e.to_string())
}
