//! CPU twin of `kernels/detmath.cu`: `src/detmath.rs` applied elementwise over
//! rayon chunks. Each output depends on its own input only, so the chunking and
//! the thread count cannot change the bits. Each task runs in the widest SIMD
//! build the CPU allows ([`crate::simd_dispatch`]; the same bits every way).

use super::DetmathOp;
use crate::detmath;
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

/// `out[i] = f(input[i])` over one task's elements.
#[inline(always)]
fn map(f: impl Fn(f32) -> f32, input: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(input) {
        *o = f(x);
    }
}

// One monomorphic loop per function, each in the widest build the CPU
// allows: the match is not in the hot loop and the function inlines.
#[inline(always)]
fn map_exp(input: &[f32], out: &mut [f32]) {
    map(detmath::exp, input, out)
}
#[inline(always)]
fn map_log(input: &[f32], out: &mut [f32]) {
    map(detmath::log, input, out)
}
#[inline(always)]
fn map_log1p(input: &[f32], out: &mut [f32]) {
    map(detmath::log1p, input, out)
}
#[inline(always)]
fn map_tanh(input: &[f32], out: &mut [f32]) {
    map(detmath::tanh, input, out)
}
#[inline(always)]
fn map_sigmoid(input: &[f32], out: &mut [f32]) {
    map(detmath::sigmoid, input, out)
}
crate::simd_dispatch! { fn exp_task(input: &[f32], out: &mut [f32]) => map_exp }
crate::simd_dispatch! { fn log_task(input: &[f32], out: &mut [f32]) => map_log }
crate::simd_dispatch! { fn log1p_task(input: &[f32], out: &mut [f32]) => map_log1p }
crate::simd_dispatch! { fn tanh_task(input: &[f32], out: &mut [f32]) => map_tanh }
crate::simd_dispatch! { fn sigmoid_task(input: &[f32], out: &mut [f32]) => map_sigmoid }

/// TWIN: kernels/detmath.cu::detmath_apply_f32. `out[i] = op(input[i])`;
/// the lengths are equal (checked by the caller in mod.rs).
pub fn detmath_apply_f32(op: DetmathOp, input: &[f32], out: &mut [f32]) {
    let task: fn(&[f32], &mut [f32]) = match op {
        DetmathOp::Exp => exp_task,
        DetmathOp::Log => log_task,
        DetmathOp::Log1p => log1p_task,
        DetmathOp::Tanh => tanh_task,
        DetmathOp::Sigmoid => sigmoid_task,
    };
    out.par_chunks_mut(ELEMS_PER_TASK)
        .zip(input.par_chunks(ELEMS_PER_TASK))
        .for_each(|(o, i)| task(i, o));
}
