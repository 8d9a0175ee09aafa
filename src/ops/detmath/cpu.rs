//! CPU twin of `kernels/detmath.cu`: `src/detmath.rs` applied elementwise over
//! rayon chunks. Each output depends on its own input only, so the chunking and
//! the thread count cannot change the bits. Each task runs under [`with_fma`]
//! (AVX2 + FMA where the CPU has them; the same bits either way).

use super::DetmathOp;
use crate::detmath;
use crate::device::with_fma;
use rayon::prelude::*;

/// Elements per rayon task: large enough to amortise scheduling. Not part of
/// the numerics (any value gives the same bits).
const ELEMS_PER_TASK: usize = 16 * 1024;

/// The function `op` names, applied to one value.
/// TWIN: kernels/detmath.cu::ss_detmath_apply.
#[inline]
pub fn apply_one(op: DetmathOp, x: f32) -> f32 {
    match op {
        DetmathOp::Exp => detmath::exp(x),
        DetmathOp::Log => detmath::log(x),
        DetmathOp::Log1p => detmath::log1p(x),
        DetmathOp::Tanh => detmath::tanh(x),
        DetmathOp::Sigmoid => detmath::sigmoid(x),
    }
}

/// TWIN: kernels/detmath.cu::detmath_apply_f32. `out[i] = op(input[i])`;
/// the lengths are equal (checked by the caller in mod.rs).
pub fn detmath_apply_f32(op: DetmathOp, input: &[f32], out: &mut [f32]) {
    // One monomorphic loop per function, so the match is not in the hot loop
    // and the function inlines into the AVX2 + FMA build of the loop.
    fn run(f: impl Fn(f32) -> f32 + Sync, input: &[f32], out: &mut [f32]) {
        out.par_chunks_mut(ELEMS_PER_TASK)
            .zip(input.par_chunks(ELEMS_PER_TASK))
            .for_each(|(o, i)| {
                with_fma(
                    #[inline(always)]
                    || {
                        for (o, &x) in o.iter_mut().zip(i) {
                            *o = f(x);
                        }
                    },
                )
            });
    }
    match op {
        DetmathOp::Exp => run(detmath::exp, input, out),
        DetmathOp::Log => run(detmath::log, input, out),
        DetmathOp::Log1p => run(detmath::log1p, input, out),
        DetmathOp::Tanh => run(detmath::tanh, input, out),
        DetmathOp::Sigmoid => run(detmath::sigmoid, input, out),
    }
}
