//! Deterministic transcendentals (`exp`, `log`, `log1p`, `tanh`, `sigmoid`)
//! applied elementwise on any device.
//!
//! The scalar functions live in `src/detmath.rs` (CPU) and
//! `kernels/common/detmath.cuh` (CUDA and Sim), where other families use them
//! directly; this family exposes them as a kernel so every device can be checked
//! against the CPU twin (`shoestring verify`, `tests/detmath.rs`).
//!
//! # Numerics
//! `out[i] = f(in[i])` with `f` the detmath function, the same float32
//! operations in the same order on every device (explicit fma on both sides,
//! no library transcendental), so the output is bit-identical on Cpu, Sim and
//! Cuda for every input, NaN included (every NaN result is `0x7fc00000`).
//! Accuracy against f64 (max ulp, measured over more than 10^7 inputs): exp 1,
//! log 1, log1p 2, tanh 1, sigmoid 2 (the same over all 2^32 inputs). Algorithms, constants and the specials
//! table: `docs/numerics/detmath.md`. Launch shape and thread count never
//! change the bits (each output depends on its own input only).

pub mod cpu;
pub mod cuda;

use crate::device::abi::{
    SS_DETMATH_OP_EXP, SS_DETMATH_OP_LOG, SS_DETMATH_OP_LOG1P, SS_DETMATH_OP_SIGMOID,
    SS_DETMATH_OP_TANH,
};
use crate::device::{Device, DeviceBuffer, View, ViewMut};
use crate::error::Result;
use crate::ops::philox::{self, PhiloxCounter, PhiloxKey};

/// Which detmath function to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetmathOp {
    /// `e^x`.
    Exp,
    /// The natural logarithm.
    Log,
    /// `log(1 + x)`.
    Log1p,
    /// The hyperbolic tangent.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
}

impl DetmathOp {
    /// Every op, in ABI-code order.
    pub const ALL: [DetmathOp; 5] = [
        DetmathOp::Exp,
        DetmathOp::Log,
        DetmathOp::Log1p,
        DetmathOp::Tanh,
        DetmathOp::Sigmoid,
    ];

    /// The `SS_DETMATH_OP_*` code the kernel switches on.
    pub fn abi_code(self) -> u32 {
        match self {
            DetmathOp::Exp => SS_DETMATH_OP_EXP,
            DetmathOp::Log => SS_DETMATH_OP_LOG,
            DetmathOp::Log1p => SS_DETMATH_OP_LOG1P,
            DetmathOp::Tanh => SS_DETMATH_OP_TANH,
            DetmathOp::Sigmoid => SS_DETMATH_OP_SIGMOID,
        }
    }

    /// The function's name, e.g. `log1p`.
    pub fn name(self) -> &'static str {
        match self {
            DetmathOp::Exp => "exp",
            DetmathOp::Log => "log",
            DetmathOp::Log1p => "log1p",
            DetmathOp::Tanh => "tanh",
            DetmathOp::Sigmoid => "sigmoid",
        }
    }

    /// The scalar function itself (`src/detmath.rs`).
    pub fn scalar(self) -> fn(f32) -> f32 {
        match self {
            DetmathOp::Exp => crate::detmath::exp,
            DetmathOp::Log => crate::detmath::log,
            DetmathOp::Log1p => crate::detmath::log1p,
            DetmathOp::Tanh => crate::detmath::tanh,
            DetmathOp::Sigmoid => crate::detmath::sigmoid,
        }
    }
}

/// `out[i] = op(input[i])` on `device` (both buffers there, equally long).
/// Overwrites `out`.
pub fn apply<'a>(
    device: &Device,
    op: DetmathOp,
    input: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    apply_with_shape(device, op, input, out, cuda::DEFAULT_SHAPE)
}

/// [`apply`] with an explicit launch shape `(threads per block, most blocks)`
/// for Cuda and Sim (ignored on Cpu). Tests vary it to show that the shape
/// never changes the bits.
pub fn apply_with_shape<'a>(
    device: &Device,
    op: DetmathOp,
    input: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
    shape: (u32, u32),
) -> Result<()> {
    let input = input.into();
    let mut out = out.into();
    const OP: &str = "detmath_apply_f32";
    input.check(OP, "input", device, input.len())?;
    out.check(OP, "out", device, input.len())?;
    match device {
        Device::Cpu => {
            let input = input.host(OP)?;
            let out = out.host_mut(OP)?;
            cpu::detmath_apply_f32(op, input, out);
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => cuda::detmath_apply_f32(device, op, input, out, shape),
    }
}

/// Convenience: a new buffer holding `op(input[i])`.
pub fn applied<'a>(
    device: &Device,
    op: DetmathOp,
    input: impl Into<View<'a, f32>>,
) -> Result<DeviceBuffer<f32>> {
    let input = input.into();
    let mut out = DeviceBuffer::zeros(device, input.len())?;
    apply(device, op, input, &mut out)?;
    Ok(out)
}

/// Inputs for `verify`: Philox words read as float bit patterns (every sign,
/// exponent and payload, NaNs included), every third one narrowed into
/// `[-128, 128)` where the functions are not saturated, and the special values
/// at the front.
pub fn verify_inputs(elements: usize) -> Result<Vec<f32>> {
    let key = PhiloxKey::from_seed(0xde7_0a7b_5eed);
    let n_blocks = elements.div_ceil(4).max(1) as u64;
    let words = philox::philox_blocks(
        &Device::Cpu,
        key,
        PhiloxCounter::new(0, 0x0de7, 0),
        n_blocks,
    )?
    .copy_dtoh()?;
    let mut xs: Vec<f32> = words
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            if i % 3 == 0 {
                // 24 random bits as a fixed-point number in [-128, 128).
                (f64::from(w >> 8) / f64::from(1u32 << 16) - 128.0) as f32
            } else {
                f32::from_bits(w)
            }
        })
        .collect();
    xs.truncate(elements.max(1));
    for (slot, &bits) in xs.iter_mut().zip(SPECIAL_BITS.iter()) {
        *slot = f32::from_bits(bits);
    }
    Ok(xs)
}

/// Bit patterns every check includes: zeros, subnormal and normal extremes,
/// infinities, NaNs, and the thresholds of exp/log1p/tanh/sigmoid.
pub const SPECIAL_BITS: [u32; 28] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x8000_0001,
    0x007f_ffff,
    0x807f_ffff,
    0x0080_0000,
    0x8080_0000,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
    0xffc0_0000,
    0x7f80_0001,
    0xffff_ffff,
    0x3f80_0000,
    0xbf80_0000,
    0x42b1_7217,
    0x42b1_7218,
    0xc2ae_ac50,
    0xc2cf_f1b4,
    0xc2cf_f1b5,
    0xc2d0_0000,
    0x4118_0000,
    0x4110_0000,
    0x3f10_0000,
    0xbf7f_ffff,
];

/// `shoestring verify`: every op on `elements` inputs (see [`verify_inputs`])
/// on `device` against the CPU twin, bit for bit.
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    let xs = verify_inputs(elements)?;
    let on_cpu = DeviceBuffer::copy_htod(&Device::Cpu, &xs)?;
    let on_dev = DeviceBuffer::copy_htod(device, &xs)?;
    let mut outcome: Option<crate::verify::Outcome> = None;
    for op in DetmathOp::ALL {
        let want = applied(&Device::Cpu, op, &on_cpu)?.copy_dtoh()?;
        let got = applied(device, op, &on_dev)?.copy_dtoh()?;
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let kernel = format!("detmath_apply_f32<{}>", op.name());
        let o = crate::verify::compare_bits("detmath", &kernel, &bits(&want), &bits(&got));
        outcome = Some(match outcome {
            None => o,
            Some(acc) => acc.merge(o),
        });
    }
    Ok(outcome.expect("DetmathOp::ALL is not empty"))
}
