//! cuBLAS as the GPU GEMM reference (`shoestring bench`, `benches/gemm_gpu.rs`):
//! `cublasGemmEx` on the device's one stream, row-major operands, f32
//! compute (`CUBLAS_COMPUTE_32F`: no TF32 for f32 operands). Never used by
//! training: cuBLAS does not promise our k order, so only its time compares.

use crate::error::{Error, Result};
use crate::ops::gemm::{Gemm, Op};
use cudarc::cublas::{result as cublas_result, sys as cublas_sys, CudaBlas};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use std::ffi::c_void;
use std::sync::Arc;

/// An element type cuBLAS takes for A, B and C.
pub trait BlasElement: cudarc::driver::DeviceRepr {
    /// Its `cudaDataType_t`.
    const DATA_TYPE: cublas_sys::cudaDataType_t;
}

impl BlasElement for f32 {
    const DATA_TYPE: cublas_sys::cudaDataType_t = cublas_sys::cudaDataType_t::CUDA_R_32F;
}

/// f16 as its bits.
impl BlasElement for u16 {
    const DATA_TYPE: cublas_sys::cudaDataType_t = cublas_sys::cudaDataType_t::CUDA_R_16F;
}

/// A cuBLAS handle bound to one stream.
pub struct Blas {
    blas: CudaBlas,
    stream: Arc<CudaStream>,
}

impl Blas {
    /// cuBLAS on `stream`, or why not (no libcublas, no handle).
    pub fn open(stream: &Arc<CudaStream>) -> Result<Blas> {
        // SAFETY: only probes whether libcublas can be dlopen'ed; cudarc
        // panics on first use of cuBLAS without it.
        if !unsafe { cublas_sys::is_culib_present() } {
            return Err(Error::CudaUnavailable("libcublas not found".into()));
        }
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| Error::CudaUnavailable(format!("cuBLAS handle: {e}")))?;
        Ok(Blas {
            blas,
            stream: stream.clone(),
        })
    }

    /// Row-major `C (m x n) = alpha op(A) op(B)` with `g`'s shapes and
    /// transposes. In cuBLAS's column-major terms `C^T = op(B)^T op(A)^T`:
    /// `gemm(op_b, op_a, n, m, k, B, A)` with the row-major leading
    /// dimensions.
    pub fn gemm<T: BlasElement>(
        &self,
        g: &Gemm,
        a: &CudaSlice<T>,
        b: &CudaSlice<T>,
        c: &mut CudaSlice<T>,
    ) -> Result<()> {
        super::gemm::check_lengths("cublas gemm", g, (a.len(), b.len(), c.len()), false)?;
        let op = |o: Op| match o {
            Op::N => cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            Op::T => cublas_sys::cublasOperation_t::CUBLAS_OP_T,
        };
        let dim = |x: usize| {
            i32::try_from(x).map_err(|_| Error::invalid("cublas gemm", "a dimension over 2^31"))
        };
        let (m, n, k) = (dim(g.m)?, dim(g.n)?, dim(g.k)?);
        // Leading dimensions of the stored row-major matrices.
        let lda = if g.a == Op::N { k } else { m };
        let ldb = if g.b == Op::N { n } else { k };
        let (alpha, beta) = (g.alpha, 0.0f32);
        let (pa, _ra) = a.device_ptr(&self.stream);
        let (pb, _rb) = b.device_ptr(&self.stream);
        let (pc, _wc) = c.device_ptr_mut(&self.stream);
        // SAFETY: the handle is live and bound to `self.stream`, on which the
        // three buffers were allocated; their lengths cover op(A) m x k,
        // op(B) k x n and C m x n (checked above) with the leading dimensions
        // given; alpha and beta are f32 as CUBLAS_COMPUTE_32F requires and
        // outlive the call.
        unsafe {
            cublas_result::gemm_ex(
                *self.blas.handle(),
                op(g.b),
                op(g.a),
                n,
                m,
                k,
                (&alpha) as *const f32 as *const c_void,
                pb as *const c_void,
                T::DATA_TYPE,
                ldb,
                pa as *const c_void,
                T::DATA_TYPE,
                lda,
                (&beta) as *const f32 as *const c_void,
                pc as *mut c_void,
                T::DATA_TYPE,
                n,
                cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
            .map_err(|e| Error::invalid("cublas gemm", e.to_string()))?;
        }
        Ok(())
    }
}
