//! The NVRTC path (a build without nvcc compiles the embedded sources at run
//! time): every family's self-contained source compiles with NVRTC and the
//! contract's options. Runs wherever libnvrtc.so loads (CI installs the pinned
//! wheel), else prints `skipped: ...`.

mod support;

use shoestring::device::kernels;
use support::skip;

#[test]
fn every_embedded_kernel_source_compiles_with_nvrtc() {
    // SAFETY: only probes whether libnvrtc.so can be loaded.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        skip(
            "nvrtc",
            "libnvrtc.so is not installed",
            Some("SHOESTRING_REQUIRE_NVRTC"),
        );
        return;
    }
    assert!(!kernels::SOURCES.is_empty());
    for (family, source) in kernels::SOURCES {
        assert!(
            !source.contains("#include \"common/"),
            "{family}: an include was not inlined"
        );
        let ptx = kernels::compile_with_nvrtc(source).unwrap_or_else(|e| panic!("{family}: {e}"));
        let text = ptx.to_src();
        assert!(
            text.contains(".entry"),
            "{family}: NVRTC produced no kernel entry"
        );
        // The contract forbids contraction: with --fmad=false no fma appears
        // unless the source wrote one (philox has no floating point at all).
        if *family == "philox" {
            assert!(!text.contains("fma.rn.f32"), "philox PTX contains an fma");
        }
    }
}
