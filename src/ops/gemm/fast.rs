//! The fast GEMM tier: `C = alpha * op(A) op(B) (+ bias)` on the tensor cores
//! (`mma.sync.m16n8k16`, f16 operands, f32 accumulators), kernels in
//! `kernels/gemm_tc.cu`. Cuda only (sm_80 or newer); opt-in, never the default
//! (DESIGN.md, "The fast tier").
//!
//! # Numerics
//! Same layouts, parameters and epilogue as the exact tier ([`super::gemm`]):
//!
//! ```text
//! acc = sum over kk of a[i,kk] * b[kk,j]        (tensor cores, f32 accumulators)
//! y   = bias.map_or(alpha * acc, |bias| fma(alpha, acc, bias[j]))
//! C[i,j] = round_to_nearest_even::<Out>(canonical_nan(y))
//! ```
//!
//! and a non-finite stored value ORs 1 into the [`Status`] block's overflow bit. Every f16 x f16
//! product is exact in f32, but the order and rounding of the additions inside
//! one `mma` are not specified by the PTX ISA, so the result is **not** bitwise
//! equal to the CPU: `tests/gemm_fast.rs` holds it within
//! `|fast - exact| <= |alpha| (k + 4) 2^-21 sum_kk |a b| + 2^-22 |y|` (+ one f16
//! ulp of the result for f16 output) of the exact tier. It is run-to-run
//! deterministic on one GPU model: k is walked in ascending tiles of 32 (two
//! k16 `mma` steps each), every output is owned by one thread for the whole k
//! loop, there is no split-K and no atomic on data, and the block/warp/lane of
//! each output depends on `(m, n, k)` only.
//!
//! Ragged shapes (any `m`, `n`, `k`) are zero-padded inside the kernel. An
//! operand whose contiguous dimension is a multiple of 8 (and whose buffer is
//! 16-byte aligned, as every allocation is) is loaded with 16-byte `cp.async`;
//! otherwise with predicated 2-byte loads (slower, same result).
//!
//! # Kernel
//! One block per 128 x 128 tile of C (a 1-D grid, tiles taken in groups of 8
//! tile rows for L2 reuse), 4 warps of 64 x 64 outputs (128 f32 accumulators a
//! thread), k in tiles of 32 through a 4-stage `cp.async` ring of 80 KiB of
//! dynamic shared memory (the launcher opts in above 48 KiB), `ldmatrix.x4`
//! (`.trans` for k-major operands) from padded rows, and an epilogue staged
//! through shared memory so that stores are row-contiguous. Two blocks fit an SM
//! on sm_80 and sm_90. `benches/gemm_gpu.rs` compares it with cuBLAS and with
//! other tile shapes, which are not part of the product: they live in
//! `dev/kernels/gemm_dev_tc.cu` (launched by `dev/gemm_tc.rs`, built with the
//! `dev-kernels` feature).

use super::{check, Gemm, GemmOut};
use crate::device::abi::ss_gemm_params;
use crate::device::{Device, Launch, LaunchConfig, View, ViewMut};
use crate::error::{Error, Result};
use crate::status::Status;

const FAMILY: &str = "gemm_tc";
const OP: &str = "gemm_fast";
/// The shared-memory row padding, in halves (TC_PAD).
const PAD: u32 = 8;

/// A tensor-core kernel's tile shape and launch geometry (`TcShape` in
/// `kernels/common/gemm_tc.cuh`). The product uses [`TcShape::MAIN`]; the
/// development-only variants of `dev/gemm_tc.rs` build theirs from this same
/// type, so shared memory and the grid are computed in one place.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcShape {
    /// Block tile rows.
    pub bm: u32,
    /// Block tile columns.
    pub bn: u32,
    /// `cp.async` ring stages.
    pub stages: u32,
    /// Threads per block: 32 per warp tile.
    pub threads: u32,
    /// The k tile (`TcShape::BK`).
    pub bk: u32,
}

impl TcShape {
    /// `TcMain`, the product: 128 x 128 block tile, 4 warps of 64 x 64, 4 stages.
    pub const MAIN: TcShape = TcShape {
        bm: 128,
        bn: 128,
        stages: 4,
        threads: 128,
        bk: 32,
    };

    /// Dynamic shared memory: `TcShape::SMEM_BYTES`, each operand's region per
    /// stage sized for the larger of its two layouts (padded rows).
    pub const fn smem_bytes(self) -> u32 {
        const fn max(a: u32, b: u32) -> u32 {
            if a > b {
                a
            } else {
                b
            }
        }
        let bk = self.bk;
        let a = max(self.bm * (bk + PAD), bk * (self.bm + PAD));
        let b = max(self.bn * (bk + PAD), bk * (self.bn + PAD));
        (a + b) * 2 * self.stages
    }

    /// A 1-D grid of one block per `bm x bn` tile of C (the kernel orders the
    /// tiles itself); refused, as an error of `op`, when that is more blocks
    /// than a grid holds.
    pub fn config(self, op: &'static str, p: &ss_gemm_params) -> Result<LaunchConfig> {
        let tiles = u64::from(p.m.div_ceil(self.bm)) * u64::from(p.n.div_ceil(self.bn));
        let blocks = u32::try_from(tiles)
            .ok()
            .filter(|&t| t <= i32::MAX as u32)
            .ok_or_else(|| {
                Error::invalid(op, format!("{tiles} output tiles exceed the grid limit"))
            })?;
        Ok(LaunchConfig {
            grid: [blocks.max(1), 1, 1],
            block: [self.threads, 1, 1],
            dynamic_shared_bytes: self.smem_bytes(),
        })
    }
}

/// The kernel for this layout and output type (`O::NAME`).
fn kernel_name(p: &ss_gemm_params, out: &'static str) -> Result<&'static str> {
    let layout = (p.trans_a != 0, p.trans_b != 0);
    Ok(match (layout, out) {
        ((false, false), "f32") => "gemm_tc_nn_f16_f32",
        ((false, true), "f32") => "gemm_tc_nt_f16_f32",
        ((true, false), "f32") => "gemm_tc_tn_f16_f32",
        ((true, true), "f32") => "gemm_tc_tt_f16_f32",
        ((false, false), "f16") => "gemm_tc_nn_f16_f16",
        ((false, true), "f16") => "gemm_tc_nt_f16_f16",
        ((true, false), "f16") => "gemm_tc_tn_f16_f16",
        ((true, true), "f16") => "gemm_tc_tt_f16_f16",
        (_, out) => {
            return Err(Error::invalid(
                OP,
                format!("no fast-tier kernel for {out} output"),
            ))
        }
    })
}

/// The smallest compute capability the kernels need (cp.async, ldmatrix,
/// mma.m16n8k16 with f32 accumulators).
const MIN_COMPUTE_CAPABILITY: (i32, i32) = (8, 0);

/// Fast tier: `c = alpha * op(a) op(b) (+ bias)` on the tensor cores of a Cuda
/// device, f16 operands (as `u16` bits), f32 or f16 output. Within a tolerance
/// of [`super::gemm`], run-to-run deterministic (see the module's Numerics). A
/// non-finite output ORs the overflow bit into `status`; nothing is synchronised.
///
/// Shapes and buffers are checked as for the exact tier. On Cpu and Sim (the
/// simulator does not run tensor-core code) and on GPUs below sm_80 it returns
/// [`Error::Unsupported`]; it never panics.
pub fn gemm_fast<'a, O: GemmOut>(
    device: &Device,
    g: &Gemm,
    a: impl Into<View<'a, u16>>,
    b: impl Into<View<'a, u16>>,
    bias: Option<View<'a, f32>>,
    c: impl Into<ViewMut<'a, O>>,
    status: &mut Status,
) -> Result<()> {
    let (a, b, c) = (a.into(), b.into(), c.into());
    let p = check(OP, device, g, a, b, bias, c.as_view())?;
    status.check(OP, device)?;
    let d = match device {
        Device::Cuda(d) => d,
        Device::Cpu | Device::Sim(_) => {
            return Err(Error::Unsupported {
                op: OP,
                device: device.to_string(),
                reason: "the fast tier runs on tensor cores and needs a CUDA device \
                         (sm_80 or newer); use gemm::gemm, the exact tier, here"
                    .into(),
            })
        }
    };
    let cc = d.info().compute_capability;
    if cc < MIN_COMPUTE_CAPABILITY {
        return Err(Error::Unsupported {
            op: OP,
            device: device.to_string(),
            reason: format!(
                "compute capability {}.{} is below the 8.0 the tensor-core kernels need",
                cc.0, cc.1
            ),
        });
    }
    if p.beta != 0 {
        return Err(Error::Unsupported {
            op: OP,
            device: device.to_string(),
            reason: "the fast tier does not accumulate (beta = 1); use gemm::gemm".into(),
        });
    }
    let name = kernel_name(&p, O::NAME)?;
    if g.m == 0 || g.n == 0 {
        return Ok(());
    }
    // Kernel args: (params, a, b, bias (null unless has_bias), c, status), as
    // kernels/gemm_tc.cu declares them.
    let launch = Launch::new(device, FAMILY, name, TcShape::MAIN.config(OP, &p)?)
        .param(&p)
        .buffer(a)?
        .buffer(b)?;
    let launch = match bias {
        Some(bias) => launch.buffer(bias)?,
        None => launch.null_buffer(),
    };
    let launch = launch.buffer_mut(c)?.buffer_mut(status.words_mut())?;
    // SAFETY: (params, a, b, bias or null, c, status) as gemm_tc.cu declares
    // them, with `name`'s element types; shapes checked above as for the exact
    // tier; bias is read only when has_bias == 1, i.e. when it was passed.
    unsafe { launch.run() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{MAX_DYNAMIC_SHARED_DEFAULT, MAX_DYNAMIC_SHARED_SIM};

    #[test]
    fn shared_memory_matches_the_kernel_file_and_needs_the_opt_in() {
        // kernels/common/gemm_tc.cuh: TcMain is 4 stages of 20480 bytes.
        assert_eq!(TcShape::MAIN.smem_bytes(), 81_920);
        assert!(TcShape::MAIN.smem_bytes() > MAX_DYNAMIC_SHARED_DEFAULT);
        assert!(TcShape::MAIN.smem_bytes() <= MAX_DYNAMIC_SHARED_SIM);
    }

    #[test]
    fn one_block_per_tile_in_a_1d_grid() {
        let p = Gemm::new(257, 129, 5).params(OP, false).unwrap();
        let c = TcShape::MAIN.config(OP, &p).unwrap();
        assert_eq!(c.grid, [3 * 2, 1, 1]);
        assert_eq!(c.block, [128, 1, 1]);
        assert_eq!(c.dynamic_shared_bytes, 81_920);
    }

    #[test]
    fn every_layout_and_output_has_a_kernel() {
        use super::super::Op;
        for (oa, ob, ab) in [
            (Op::N, Op::N, "nn"),
            (Op::N, Op::T, "nt"),
            (Op::T, Op::N, "tn"),
            (Op::T, Op::T, "tt"),
        ] {
            let p = Gemm::new(8, 8, 8).ops(oa, ob).params(OP, false).unwrap();
            for out in ["f32", "f16"] {
                assert_eq!(
                    kernel_name(&p, out).unwrap(),
                    format!("gemm_tc_{ab}_f16_{out}")
                );
            }
        }
    }
}
