//! Launchers for the development-only tensor-core kernels of
//! `dev/kernels/gemm_dev_tc.cu` (kernel family `gemm_dev_tc`): the fast-tier
//! GEMM's candidate tile shapes, its kernel without the overflow check, and the
//! `mma.sync` peak probe, kept only to be measured against the product
//! (`shoestring::ops::gemm::fast::gemm_fast`; DESIGN.md "Product and
//! experiments").
//!
//! Not part of the library: `benches/gemm_gpu.rs` and `tests/gemm_dev.rs`
//! include this file with `#[path = "../dev/gemm_tc.rs"] mod dev_gemm_tc;`, and
//! both need `--features dev-kernels` (without it build.rs embeds no
//! `gemm_dev_tc` family and every launch here fails with
//! `Error::UnknownKernel`). Written against the crate's public API only, the
//! way an outside crate would launch its own kernels.
//!
//! Every GEMM variant computes what the product does (the contract in
//! `kernels/gemm_tc.cu`'s header, the same accumulation bound), for f16
//! operands as stored (`Op::N`, `Op::N`) and f16 output only.
#![allow(dead_code)] // each including target uses a subset

use shoestring::device::abi::ss_gemm_params;
use shoestring::device::{Device, Launch, LaunchConfig, View, ViewMut};
use shoestring::ops::gemm::fast::TcShape;
use shoestring::ops::gemm::{Gemm, Op};
use shoestring::status::Status;
use shoestring::{Error, Result};

/// The kernel family: the stem of `dev/kernels/gemm_dev_tc.cu`.
pub const FAMILY: &str = "gemm_dev_tc";
/// The name errors from [`gemm_dev`] carry.
const OP: &str = "gemm_dev_tc";
/// cp.async, ldmatrix and mma.m16n8k16 need sm_80.
const MIN_COMPUTE_CAPABILITY: (i32, i32) = (8, 0);

/// One bench-only GEMM kernel of `dev/kernels/gemm_dev_tc.cu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The product's `TcMain` without the overflow check: the status block is
    /// never touched (what the check costs).
    NoFlag,
    /// `TcWide`: 128 x 256 tiles, 8 warps of 64 x 64.
    Wide,
    /// `TcNarrow`: 128 x 128 tiles, 8 warps of 64 x 32.
    Narrow,
    /// `TcPipe`: `TcMain`'s shape with double-buffered ldmatrix fragments.
    Pipe,
    /// `TcK64`: 128 x 128 tiles, 4 warps of 64 x 64, k tile 64, 3 stages,
    /// double-buffered fragments.
    K64,
    /// `TcBig`: 256 x 128 tiles, 8 warps of 64 x 64, 4 stages,
    /// double-buffered fragments.
    Big,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 6] = [
        Variant::NoFlag,
        Variant::Wide,
        Variant::Narrow,
        Variant::Pipe,
        Variant::K64,
        Variant::Big,
    ];
    /// The other tile shapes (every variant that checks for overflow).
    pub const SHAPES: [Variant; 5] = [
        Variant::Wide,
        Variant::Narrow,
        Variant::Pipe,
        Variant::K64,
        Variant::Big,
    ];

    /// The kernel's name in `dev/kernels/gemm_dev_tc.cu`.
    pub fn kernel(self) -> &'static str {
        match self {
            Variant::NoFlag => "gemm_tc_nn_f16_f16_noflag",
            Variant::Wide => "gemm_tc_wide_nn_f16_f16",
            Variant::Narrow => "gemm_tc_narrow_nn_f16_f16",
            Variant::Pipe => "gemm_tc_pipe_nn_f16_f16",
            Variant::K64 => "gemm_tc_k64_nn_f16_f16",
            Variant::Big => "gemm_tc_big_nn_f16_f16",
        }
    }

    /// Whether a non-finite stored value ORs the overflow bit into the status
    /// block (every variant but [`Variant::NoFlag`]).
    pub fn checks_overflow(self) -> bool {
        self != Variant::NoFlag
    }

    /// The launch configuration for `p`: one block per tile of C in a 1-D
    /// grid, the kernel's block size (its `__launch_bounds__`) and its dynamic
    /// shared memory (`TcShape::SMEM_BYTES`).
    pub fn config(self, p: &ss_gemm_params) -> Result<LaunchConfig> {
        self.shape().config(OP, p)
    }

    /// The kernel's `TcShape` (`kernels/common/gemm_tc.cuh`, the typedefs in
    /// `dev/kernels/gemm_dev_tc.cu`).
    fn shape(self) -> TcShape {
        match self {
            Variant::NoFlag | Variant::Pipe => TcShape::MAIN,
            Variant::Wide => WIDE,
            Variant::Narrow => NARROW,
            Variant::K64 => K64,
            Variant::Big => BIG,
        }
    }
}

/// `TcWide`: 128 x 256, 8 warps of 64 x 64, 4 stages.
const WIDE: TcShape = TcShape {
    bm: 128,
    bn: 256,
    stages: 4,
    threads: 256,
    bk: 32,
};
/// `TcNarrow`: 128 x 128, 8 warps of 64 x 32, 4 stages.
const NARROW: TcShape = TcShape {
    bm: 128,
    bn: 128,
    stages: 4,
    threads: 256,
    bk: 32,
};
/// `TcK64`: 128 x 128, 4 warps of 64 x 64, k tile 64, 3 stages.
const K64: TcShape = TcShape {
    bm: 128,
    bn: 128,
    stages: 3,
    threads: 128,
    bk: 64,
};
/// `TcBig`: 256 x 128, 8 warps of 64 x 64, k tile 32, 4 stages.
const BIG: TcShape = TcShape {
    bm: 256,
    bn: 128,
    stages: 4,
    threads: 256,
    bk: 32,
};

fn invalid(msg: String) -> Error {
    Error::InvalidArgument { op: OP, msg }
}

/// Errors unless `device` is a Cuda device of compute capability 8.0 or newer.
fn require_tensor_cores(device: &Device, op: &'static str) -> Result<()> {
    let Device::Cuda(d) = device else {
        return Err(Error::Unsupported {
            op,
            device: device.to_string(),
            reason: "a tensor-core dev kernel: needs a CUDA device (sm_80 or newer)".into(),
        });
    };
    let cc = d.info().compute_capability;
    if cc < MIN_COMPUTE_CAPABILITY {
        return Err(Error::Unsupported {
            op,
            device: device.to_string(),
            reason: format!("compute capability {}.{} is below 8.0", cc.0, cc.1),
        });
    }
    Ok(())
}

/// `c = alpha * a b (+ bias)` with the bench-only kernel `variant`: f16
/// operands as stored (`g.a` and `g.b` must be `Op::N`), f16 output, no
/// accumulation (`g.beta == 0`). Lengths and devices are checked as
/// `gemm_fast` checks them; a non-finite output ORs the overflow bit into
/// `status` unless the variant is [`Variant::NoFlag`]. Cuda only, sm_80 or
/// newer; nothing is synchronised.
#[allow(clippy::too_many_arguments)]
pub fn gemm_dev<'a>(
    device: &Device,
    variant: Variant,
    g: &Gemm,
    a: impl Into<View<'a, u16>>,
    b: impl Into<View<'a, u16>>,
    bias: Option<View<'a, f32>>,
    c: impl Into<ViewMut<'a, u16>>,
    status: &mut Status,
) -> Result<()> {
    let (a, b, c) = (a.into(), b.into(), c.into());
    let p = g.params(OP, bias.is_some())?;
    if (g.a, g.b) != (Op::N, Op::N) {
        return Err(invalid(format!(
            "{variant:?} runs Op::N x Op::N only, got {:?} x {:?}",
            g.a, g.b
        )));
    }
    if p.beta != 0 {
        return Err(invalid(format!(
            "{variant:?} does not accumulate (beta = 1)"
        )));
    }
    a.check(OP, "a", device, g.m * g.k)?;
    b.check(OP, "b", device, g.k * g.n)?;
    if let Some(bias) = bias {
        bias.check(OP, "bias", device, g.n)?;
    }
    c.as_view().check(OP, "c", device, g.m * g.n)?;
    require_tensor_cores(device, OP)?;
    if g.m == 0 || g.n == 0 {
        return Ok(());
    }
    let launch = Launch::new(device, FAMILY, variant.kernel(), variant.config(&p)?)
        .param(&p)
        .buffer(a)?
        .buffer(b)?;
    let launch = match bias {
        Some(bias) => launch.buffer(bias)?,
        None => launch.null_buffer(),
    };
    // The status block's device is checked here (buffer_mut), its length is
    // SS_STATUS_WORDS by construction.
    let launch = launch.buffer_mut(c)?.buffer_mut(status.words_mut())?;
    // SAFETY: (params, a, b, bias or null, c, status) is the parameter list
    // every GEMM kernel of gemm_dev_tc.cu declares (const ss_gemm_params,
    // const unsigned short* a and b, const float* bias, unsigned short* c,
    // unsigned int* status), and the element types match (u16 f16 bits, f32,
    // u32). With trans_a = trans_b = 0 (checked above) the kernel reads m x k
    // of a, k x n of b and n of bias only when has_bias == 1, i.e. when it was
    // passed, and writes m x n of c: the lengths checked above. It ORs into
    // word 0 of the status block, which always has it. Block size and dynamic
    // shared memory are the kernel's TcShape (threads = its launch bounds,
    // smem_bytes = its SMEM_BYTES; tests/gemm_dev.rs checks the numbers
    // against the kernel file's).
    unsafe { launch.run() }
}

/// Threads per block of `gemm_tc_mma_peak` (its `__launch_bounds__(256, 3)`).
pub const MMA_PEAK_THREADS: u32 = 256;
/// Independent mma chains per warp per round (`TC_PEAK_CHAINS`).
const MMA_PEAK_CHAINS: f64 = 16.0;

/// `gemm_tc_mma_peak` (not a GEMM): `blocks` blocks of 256 threads, each warp
/// `iters` rounds of 16 independent `mma.sync.m16n8k16` (f16 in, f32
/// accumulators) on register operands; `out` receives one meaningless float
/// per thread (`blocks * 256`; with 0 blocks nothing is launched). Flop per
/// call: [`mma_peak_flops`]. Cuda only, sm_80 or newer; nothing is
/// synchronised.
pub fn mma_peak<'a>(
    device: &Device,
    blocks: u32,
    iters: u32,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    const OP_PEAK: &str = "gemm_tc_mma_peak";
    let out = out.into();
    let threads = u64::from(blocks) * u64::from(MMA_PEAK_THREADS);
    let threads = usize::try_from(threads)
        .map_err(|_| invalid(format!("{blocks} blocks of {MMA_PEAK_THREADS} threads")))?;
    out.as_view().check(OP_PEAK, "out", device, threads)?;
    require_tensor_cores(device, OP_PEAK)?;
    if blocks == 0 {
        return Ok(());
    }
    let config = LaunchConfig {
        grid: [blocks, 1, 1],
        block: [MMA_PEAK_THREADS, 1, 1],
        dynamic_shared_bytes: 0,
    };
    let launch = Launch::new(device, FAMILY, OP_PEAK, config)
        .param(&iters)
        .buffer_mut(out)?;
    // SAFETY: (iters, out) is what gemm_tc_mma_peak declares (const unsigned
    // int, float*); each of the blocks * 256 threads of this grid writes
    // out[its global index] and nothing else, and `out` holds blocks * 256
    // floats (checked above).
    unsafe { launch.run() }
}

/// The flop one [`mma_peak`] call performs: warps x iters x 16 mma x 4096.
pub fn mma_peak_flops(blocks: u32, iters: u32) -> f64 {
    f64::from(blocks)
        * f64::from(MMA_PEAK_THREADS / 32)
        * f64::from(iters)
        * MMA_PEAK_CHAINS
        * 4096.0
}
