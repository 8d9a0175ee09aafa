//! CPU twin of `kernels/gemm.cu` (exact tier).
//!
//! TEMPORARY plain version: one fma chain per output in ascending k, the
//! contract written directly. To be replaced by the packed, register-tiled,
//! feature-dispatched version with the same signature and the same bits.

use super::{epilogue, GemmIn, GemmOut};
use crate::device::abi::ss_gemm_params;

/// TWIN: kernels/gemm.cu::gemm_exact_<in>_<out>. Writes all of `c` (m x n)
/// and returns true if any stored value is not finite.
pub(crate) fn gemm<I: GemmIn, O: GemmOut>(
    p: &ss_gemm_params,
    a: &[I],
    b: &[I],
    bias: Option<&[f32]>,
    c: &mut [O],
) -> bool {
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    let at = |i: usize, kk: usize| {
        if p.trans_a == 0 {
            a[i * k + kk]
        } else {
            a[kk * m + i]
        }
        .to_f32()
    };
    let bt = |kk: usize, j: usize| {
        if p.trans_b == 0 {
            b[kk * n + j]
        } else {
            b[j * k + kk]
        }
        .to_f32()
    };
    let mut overflow = false;
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for kk in 0..k {
                acc = at(i, kk).mul_add(bt(kk, j), acc);
            }
            let v: O = epilogue(p.alpha, acc, bias.map(|b| b[j]));
            overflow |= !v.is_finite();
            c[i * n + j] = v;
        }
    }
    overflow
}
