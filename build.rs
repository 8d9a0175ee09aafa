//! Kernel build pipeline (DESIGN.md "Building without a GPU").
//!
//! Three products, all from the same `kernels/*.cu` sources (and, with the
//! `dev-kernels` feature, `dev/kernels/*.cu`: see below):
//! 1. **CUDA code.** With nvcc found (`$NVCC`, `$CUDA_HOME/bin/nvcc`, `PATH`) every
//!    family is compiled to PTX with the contract flags and embedded; a kernel
//!    that does not compile fails the build with nvcc's message. Without nvcc the
//!    sources, with their `#include "..."` lines inlined, are embedded and the
//!    runtime compiles them with NVRTC using the same flags.
//! 2. **The simulator library** (`Device::Sim`): every family compiled as C++
//!    together with `kernels/common/sim_runtime.cpp`, plus a generated registry
//!    mapping kernel names to their entry trampolines. No C++ compiler: Sim is
//!    disabled with one warning, the build still succeeds.
//!    **GPU-only files:** a kernel file whose stem ends in `_tc` (`kernels/gemm_tc.cu`:
//!    tensor cores, inline PTX, `mma.sync`) is left out of the simulator library
//!    and its registry (and so is a `tests/kernels/*_tc.cu` or a
//!    `dev/kernels/*_tc.cu`), while products 1 (nvcc PTX or embedded NVRTC
//!    source) include it like any other family. On
//!    Sim, launching one of its kernels is `Error::UnknownKernel`; the ops that
//!    own them return a typed error before that (docs/simulator.md).
//! 3. **Test-only kernels** (`tests/kernels/*.cu`): compiled for Sim into a
//!    separate archive, with its own registry, linked into test targets only,
//!    never shipped. The library's registry falls back to it through a weak
//!    symbol, so a test launches its kernels by name like any other.
//!
//! **Development-only kernels** (`dev/kernels/*.cu`: variants kept only to be
//! measured against the product, DESIGN.md "Product and experiments"): with the
//! `dev-kernels` feature (`CARGO_FEATURE_DEV_KERNELS`) each file is one more
//! family, built exactly like a `kernels/*.cu` one (nvcc `-I kernels`, or its
//! source embedded with includes resolved against its folder, then `kernels/`;
//! the simulator too unless its stem ends in `_tc`), so `Device::cuda` loads it
//! and a bench launches its kernels by family name. Without the feature nothing
//! under `dev/` is compiled or embedded. A dev family may not share a stem with
//! a product family.
//!
//! `$OUT_DIR/kernels.rs` carries the embedded code and its sha256.

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The numerics contract's compiler flags (DESIGN.md rule 1). The runtime's
/// NVRTC path uses the same list (`src/device/kernels.rs`).
const CONTRACT_FLAGS: &[&str] = &[
    "--fmad=false",
    "-prec-div=true",
    "-prec-sqrt=true",
    "-ftz=false",
    "-std=c++17",
    "-lineinfo",
];
const DEFAULT_ARCH: &str = "compute_80";
/// Host C++ flags for Sim: no contraction, no fast math, IEEE everything.
const SIM_FLAGS: &[&str] = &[
    "-std=c++17",
    "-O2",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-pthread",
];

fn main() {
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernels_dir = root.join("kernels");
    let dev_kernels = env::var_os("CARGO_FEATURE_DEV_KERNELS").is_some();

    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=tests/kernels");
    if dev_kernels {
        println!("cargo:rerun-if-changed={DEV_KERNELS}");
    }
    for var in [
        "NVCC",
        "CUDA_HOME",
        "PATH",
        "SHOESTRING_CUDA_ARCH",
        "SHOESTRING_SIM_ASAN",
        "CXX",
        "CARGO_FEATURE_DEV_KERNELS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rustc-check-cfg=cfg(shoestring_sim)");

    let mut families = families_in(&root, "kernels");
    if dev_kernels {
        for dev in families_in(&root, DEV_KERNELS) {
            if let Some(product) = families.iter().find(|f| f.name == dev.name) {
                panic!(
                    "{} and {} would both be kernel family `{}`: rename the dev file",
                    dev.rel, product.rel, dev.name
                );
            }
            families.push(dev);
        }
        families.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let arch = env::var("SHOESTRING_CUDA_ARCH").unwrap_or_else(|_| DEFAULT_ARCH.to_string());

    // The self-contained sources are always embedded: they are what NVRTC
    // compiles when there was no nvcc, and what tests/nvrtc.rs checks compiles.
    let sources = embed_sources(&kernels_dir, &families, &out);
    let embedded = match find_nvcc() {
        Some(nvcc) => compile_ptx(&nvcc, &arch, &kernels_dir, &families, &out),
        None => {
            println!(
                "cargo:warning=nvcc not found ($NVCC, $CUDA_HOME/bin/nvcc, PATH): embedding kernel \
                 sources for NVRTC at run time (scripts/install-cuda-toolchain.sh installs a pinned nvcc)"
            );
            sources.clone()
        }
    };
    write_kernels_rs(&out, &arch, &embedded, &sources);

    build_sim(&root, &kernels_dir, &families, &out);
}

/// Where the development-only kernels live (the `dev-kernels` feature).
const DEV_KERNELS: &str = "dev/kernels";

/// One kernel family: a `.cu` file compiled (or embedded) as one module.
struct Family {
    /// The file stem: the family name kernels are launched under.
    name: String,
    /// The source file.
    path: PathBuf,
    /// The path relative to the crate root, for messages.
    rel: String,
}

/// The families of `root/dir/*.cu`, sorted by name.
fn families_in(root: &Path, dir: &str) -> Vec<Family> {
    list_cu(&root.join(dir))
        .into_iter()
        .map(|name| Family {
            path: root.join(dir).join(format!("{name}.cu")),
            rel: format!("{dir}/{name}.cu"),
            name,
        })
        .collect()
}

/// The stem suffix of GPU-only kernel files (see the header, product 2).
const GPU_ONLY_SUFFIX: &str = "_tc";

/// Whether the kernel file with this stem is GPU-only: compiled to PTX / NVRTC,
/// never into the simulator.
fn gpu_only(stem: &str) -> bool {
    stem.ends_with(GPU_ONLY_SUFFIX)
}

/// Kernel families: the stems of `dir/*.cu`, sorted.
fn list_cu(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cu"))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn find_nvcc() -> Option<PathBuf> {
    if let Some(p) = env::var_os("NVCC") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
        println!(
            "cargo:warning=NVCC={} is not a file; looking elsewhere",
            p.display()
        );
    }
    if let Some(home) = env::var_os("CUDA_HOME") {
        let p = PathBuf::from(home).join("bin").join("nvcc");
        if p.is_file() {
            return Some(p);
        }
    }
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|d| d.join("nvcc"))
            .find(|p| p.is_file())
    })
}

/// What ends up embedded: per family, PTX text or self-contained source.
#[derive(Clone)]
struct Embedded {
    origin: String,
    is_ptx: bool,
    files: Vec<(String, PathBuf)>,
}

fn compile_ptx(nvcc: &Path, arch: &str, kdir: &Path, families: &[Family], out: &Path) -> Embedded {
    let version = Command::new(nvcc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.contains("release"))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown version".into());
    let mut files = Vec::new();
    for fam in families {
        let ptx = out.join(format!("{}.ptx", fam.name));
        let output = Command::new(nvcc)
            .arg("-ptx")
            .arg(format!("-arch={arch}"))
            .args(CONTRACT_FLAGS)
            .arg("-I")
            .arg(kdir)
            .arg("-o")
            .arg(&ptx)
            .arg(&fam.path)
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", nvcc.display()));
        if !output.status.success() {
            panic!(
                "nvcc failed on {}:\n{}{}",
                fam.rel,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        files.push((fam.name.clone(), ptx));
    }
    Embedded {
        origin: format!("nvcc PTX ({version}, {})", nvcc.display()),
        is_ptx: true,
        files,
    }
}

fn embed_sources(kdir: &Path, families: &[Family], out: &Path) -> Embedded {
    let mut files = Vec::new();
    for fam in families {
        let mut seen = BTreeSet::new();
        let text = inline_includes(&fam.path, kdir, &mut seen);
        let path = out.join(format!("{}.nvrtc.cu", fam.name));
        fs::write(&path, text).expect("write inlined kernel source");
        files.push((fam.name.clone(), path));
    }
    Embedded {
        origin: "NVRTC at run time (embedded sources)".into(),
        is_ptx: false,
        files,
    }
}

/// NVRTC gets one self-contained string: `#include "x"` lines (resolved against
/// the including file's folder, then `kernels/`) are replaced by the file's text,
/// once per file, which is what `#pragma once` would do.
fn inline_includes(file: &Path, kdir: &Path, seen: &mut BTreeSet<PathBuf>) -> String {
    let canon = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    if !seen.insert(canon) {
        return String::new();
    }
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#pragma once") {
            continue;
        }
        if let Some(rest) = t.strip_prefix("#include \"") {
            if let Some(name) = rest.split('"').next() {
                let local = file.parent().map(|p| p.join(name));
                let target = match local {
                    Some(p) if p.is_file() => p,
                    _ => kdir.join(name),
                };
                if target.is_file() {
                    let _ = writeln!(out, "// ---- begin {name}");
                    out.push_str(&inline_includes(&target, kdir, seen));
                    let _ = writeln!(out, "// ---- end {name}");
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn write_kernels_rs(out: &Path, arch: &str, emb: &Embedded, sources: &Embedded) {
    let mut all = Sha256::new();
    let mut rs = String::new();
    rs.push_str("// Generated by build.rs. Do not edit.\n");
    let _ = writeln!(rs, "pub const ORIGIN: &str = {:?};", emb.origin);
    let _ = writeln!(rs, "pub const IS_PTX: bool = {};", emb.is_ptx);
    let _ = writeln!(rs, "pub const ARCH: &str = {arch:?};");
    rs.push_str("pub const FAMILIES: &[EmbeddedFamily] = &[\n");
    for (fam, path) in &emb.files {
        let bytes = fs::read(path).expect("read embedded kernel");
        let digest = hex(&Sha256::digest(&bytes));
        all.update(fam.as_bytes());
        all.update(&bytes);
        let _ = writeln!(
            rs,
            "    EmbeddedFamily {{ name: {fam:?}, code: include_str!({:?}), sha256: {digest:?} }},",
            path.display().to_string()
        );
    }
    rs.push_str("];\n");
    let _ = writeln!(rs, "pub const SHA256: &str = {:?};", hex(&all.finalize()));
    rs.push_str("pub const SOURCES: &[(&str, &str)] = &[\n");
    for (fam, path) in &sources.files {
        let _ = writeln!(
            rs,
            "    ({fam:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    rs.push_str("];\n");
    fs::write(out.join("kernels.rs"), rs).expect("write kernels.rs");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Names of `extern "C" __global__ void NAME(` kernels in a source file.
fn kernel_names(src: &str) -> Vec<String> {
    let mut names = Vec::new();
    let flat = src.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut rest = flat.as_str();
    while let Some(at) = rest.find("__global__ void ") {
        rest = &rest[at + "__global__ void ".len()..];
        // `__global__ void __launch_bounds__(N) name(`: skip the attribute.
        if let Some(after) = rest.strip_prefix("__launch_bounds__") {
            rest = after.split_once(')').map_or("", |(_, r)| r).trim_start();
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && rest[name.len()..].trim_start().starts_with('(') {
            names.push(name);
        }
    }
    names
}

fn build_sim(root: &Path, kdir: &Path, families: &[Family], out: &Path) {
    let probe = cc::Build::new().cpp(true).get_compiler();
    let usable = Command::new(probe.path())
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !usable {
        println!(
            "cargo:warning=no C++ compiler ({}): Device::Sim is disabled; set CXX to enable it",
            probe.path().display()
        );
        return;
    }
    let asan = env::var("SHOESTRING_SIM_ASAN").is_ok_and(|v| v == "1");
    let sim_dir = out.join("sim");
    fs::create_dir_all(&sim_dir).expect("create sim dir");

    let mut lib = sim_build(kdir, asan);
    lib.file(kdir.join("common").join("sim_runtime.cpp"));
    let mut registry = String::from("#include \"common/sim_api.h\"\n#include <string.h>\n");
    let mut table = String::new();
    for fam in families.iter().filter(|f| !gpu_only(&f.name)) {
        let wrapper = sim_dir.join(format!("{}.cpp", fam.name));
        let names = wrap_family(&fam.path, &wrapper, &mut lib);
        for n in names {
            let _ = writeln!(
                registry,
                "extern \"C\" void shoestring_sim_entry_{n}(void**);"
            );
            let _ = writeln!(table, "    {{\"{n}\", shoestring_sim_entry_{n}}},");
        }
    }
    // Test binaries link a second registry (the test kernels); the library
    // asks it only when the name is not a shipped kernel, and only if it is
    // linked in (a weak symbol: null in every other binary).
    let _ = write!(
        registry,
        "extern \"C\" shoestring_sim_entry_fn shoestring_sim_test_find(const char* name) __attribute__((weak));\n{}\
         extern \"C\" shoestring_sim_entry_fn shoestring_sim_find(const char* name) {{\n\
         \x20   if (shoestring_sim_entry_fn f = find_in(kEntries, name)) return f;\n\
         \x20   return shoestring_sim_test_find ? shoestring_sim_test_find(name) : nullptr;\n}}\n",
        entry_table(&table)
    );
    let reg_path = sim_dir.join("registry.cpp");
    fs::write(&reg_path, registry).expect("write sim registry");
    lib.file(&reg_path);
    if asan {
        // rustc links with -nodefaultlibs, so -fsanitize=address at link time
        // does not bring the runtime; naming it before libstdc++ puts it first
        // in the binary's NEEDED list, where ASan requires it to be.
        println!("cargo:rustc-link-lib=dylib=asan");
    }
    lib.compile("shoestring_sim");
    println!("cargo:rustc-cfg=shoestring_sim");

    // Test-only kernels: their own archive, linked into test targets only.
    let test_dir = root.join("tests").join("kernels");
    let tests: Vec<String> = list_cu(&test_dir)
        .into_iter()
        .filter(|t| !gpu_only(t))
        .collect();
    if !tests.is_empty() {
        let mut tl = sim_build(kdir, asan);
        tl.cargo_metadata(false);
        let mut test_registry =
            String::from("#include \"common/sim_api.h\"\n#include <string.h>\n");
        let mut test_table = String::new();
        for t in &tests {
            let names = wrap_family(
                &test_dir.join(format!("{t}.cu")),
                &sim_dir.join(format!("test_{t}.cpp")),
                &mut tl,
            );
            for n in names {
                let _ = writeln!(
                    test_registry,
                    "extern \"C\" void shoestring_sim_entry_{n}(void**);"
                );
                let _ = writeln!(test_table, "    {{\"{n}\", shoestring_sim_entry_{n}}},");
            }
        }
        let _ = write!(
            test_registry,
            "{}extern \"C\" shoestring_sim_entry_fn shoestring_sim_test_find(const char* name) {{\n\
             \x20   return find_in(kEntries, name);\n}}\n",
            entry_table(&test_table)
        );
        let test_reg_path = sim_dir.join("test_registry.cpp");
        fs::write(&test_reg_path, test_registry).expect("write sim test registry");
        tl.file(&test_reg_path);
        tl.compile("shoestring_sim_test_kernels");
        // Whole archive: nothing names the test registry, so the linker would
        // otherwise leave it (and the weak symbol null) out.
        println!(
            "cargo:rustc-link-arg-tests=-Wl,--whole-archive,{},--no-whole-archive",
            out.join("libshoestring_sim_test_kernels.a").display()
        );
    }
}

/// A registry table `kEntries` from `table` (one `{"name", entry},` line per
/// kernel) and the lookup `find_in` over it, as C++ source.
fn entry_table(table: &str) -> String {
    format!(
        "struct Entry {{ const char* name; shoestring_sim_entry_fn fn; }};\n\
         static const Entry kEntries[] = {{\n{table}    {{nullptr, nullptr}}\n}};\n\
         static shoestring_sim_entry_fn find_in(const Entry* e, const char* name) {{\n\
         \x20   for (; e->name; ++e) if (strcmp(e->name, name) == 0) return e->fn;\n\
         \x20   return nullptr;\n}}\n"
    )
}

fn sim_build(kdir: &Path, asan: bool) -> cc::Build {
    let mut b = cc::Build::new();
    b.cpp(true)
        .include(kdir)
        .warnings(true)
        .extra_warnings(true);
    for f in SIM_FLAGS {
        b.flag(f);
    }
    if asan {
        b.define("SHOESTRING_SIM_ASAN", "1")
            .flag("-fsanitize=address")
            .flag("-fno-omit-frame-pointer")
            .flag("-g");
    }
    b
}

/// Writes the C++ wrapper TU for one kernel file (the `.cu` included verbatim,
/// then one `SS_SIM_EXPORT` per kernel) and adds it to the build.
fn wrap_family(src_path: &Path, wrapper: &Path, build: &mut cc::Build) -> Vec<String> {
    let src =
        fs::read_to_string(src_path).unwrap_or_else(|e| panic!("read {}: {e}", src_path.display()));
    let names = kernel_names(&src);
    let mut w = format!("#include \"{}\"\n", src_path.display());
    for n in &names {
        let _ = writeln!(w, "SS_SIM_EXPORT({n})");
    }
    fs::write(wrapper, w).expect("write sim wrapper");
    build.file(wrapper);
    names
}
