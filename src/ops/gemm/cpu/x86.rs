//! The x86-64 microkernels: AVX-512F (8 x 32) and AVX2 + FMA (6 x 16), each
//! a `#[target_feature]` function reached only after `cpu_level()` detected
//! its features, and the task wrappers that compile the blocking loops and
//! packing for the same features.

use super::{as_f32, task, ASrc, At, BSrc, Buffers, GemmIn, GemmOut, Micro, Problem, Task};
use crate::numerics::CANONICAL_NAN_BITS;
use std::any::TypeId;
use std::arch::x86_64::*;

/// 8 x 32: 16 zmm chains; per k, 2 vector loads of B and 8 broadcasts of A
/// for 16 fmas. The epilogue runs on the registers (masked at edges).
pub(super) struct Avx512;

impl Micro for Avx512 {
    const MR: usize = 8;
    const NR: usize = 32;
    const KC: usize = 512;
    const NC: usize = 256;

    #[inline(always)]
    fn kernel(kc: usize, a: ASrc<'_>, b: BSrc<'_>, load: bool, acc: &mut [f32]) {
        a.check(Self::MR, kc);
        b.check(Self::NR, kc);
        assert!(acc.len() >= Self::MR * Self::NR);
        // One mutable pointer, read and written through: a shared pointer
        // taken first would be invalidated by the mutable one.
        let acc_ptr = acc.as_mut_ptr();
        let load = if load {
            acc_ptr.cast_const()
        } else {
            std::ptr::null()
        };
        // SAFETY: `cpu_level()` returned Avx512 only after detecting avx512f,
        // avx2 and fma; `a`, `b` and `acc` hold every element the tile reads
        // or writes (checked above).
        unsafe {
            tile_avx512::<8, 2>(kc, a, b, load, Dst::Scratch(acc_ptr));
        }
    }

    #[inline(always)]
    fn finish<I, O: GemmOut>(
        p: &Problem<'_, I, O>,
        kc: usize,
        a: ASrc<'_>,
        b: BSrc<'_>,
        acc: &mut [f32],
        load: bool,
        at: At,
    ) -> bool {
        a.check(Self::MR, kc);
        b.check(Self::NR, kc);
        assert!(at.rows <= Self::MR && at.cols <= Self::NR);
        // The tile's rectangle of C lies inside C: what the stores below rely on.
        assert!(at.i + at.rows <= p.m && at.j + at.cols <= p.n);
        assert!(acc.len() >= Self::MR * Self::NR);
        let load_from = if load { acc.as_ptr() } else { std::ptr::null() };
        let bias = p
            .bias
            .map_or(std::ptr::null(), |bias| bias[at.j..at.j + at.cols].as_ptr());
        // SAFETY: `at` lies inside C (rows below m, columns below n).
        let c = unsafe { p.out_ptr(at.i, at.j) }.cast::<u8>();
        let epi = Epi {
            c,
            ldc: p.n,
            rows: at.rows,
            cols: at.cols,
            alpha: p.alpha,
            bias,
        };
        let dst = if TypeId::of::<O>() == TypeId::of::<f32>() {
            Dst::F32(epi)
        } else if TypeId::of::<O>() == TypeId::of::<u16>() {
            Dst::F16(epi)
        } else {
            // Some other output type: the chains through `acc`, the epilogue
            // in Rust.
            Self::kernel(kc, a, b, load, acc);
            return super::store(p, acc, Self::NR, at);
        };
        // SAFETY: avx512f, avx2 and fma were detected (see `kernel`); the
        // operands hold the tile (checked above), `acc` a whole tile; the
        // epilogue writes only the `at` rectangle of C, at stride n from `c`
        // (a pointer with all of C's provenance), which this task alone owns,
        // as f32 or f16 bits, which is what O is (by its TypeId); `bias` has
        // `at.cols` values.
        unsafe { tile_avx512::<8, 2>(kc, a, b, load_from, dst) }
    }

    #[inline(always)]
    fn convert<I: GemmIn>(src: &[I], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        if let Some(src) = as_f32(src) {
            dst[..n].copy_from_slice(&src[..n]);
        } else if TypeId::of::<I>() == TypeId::of::<u16>() {
            let mut i = 0;
            while i + 16 <= n {
                // SAFETY: I is u16 (TypeId), so `src` holds `n >= i + 16`
                // halves from `i`, and `dst` as many floats; avx512f was
                // detected before this path was chosen.
                unsafe { cvt16_f16(src.as_ptr().add(i).cast(), dst.as_mut_ptr().add(i)) };
                i += 16;
            }
            for (d, s) in dst[i..n].iter_mut().zip(&src[i..n]) {
                *d = s.to_f32();
            }
        } else {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s.to_f32();
            }
        }
    }

    #[inline(always)]
    fn pack_transposed<I: GemmIn>(src: &[I], ld: usize, cols: usize, kc: usize, panel: &mut [f32]) {
        assert!((1..=Self::NR).contains(&cols) && kc >= 1);
        assert!((cols - 1) * ld + kc <= src.len() && kc * Self::NR <= panel.len());
        let (src, f16) = if let Some(s) = as_f32(src) {
            (s.as_ptr().cast::<u8>(), false)
        } else if TypeId::of::<I>() == TypeId::of::<u16>() {
            (src.as_ptr().cast::<u8>(), true)
        } else {
            return super::pack_transposed_strips::<Self, I>(src, ld, cols, kc, panel);
        };
        // SAFETY: avx512f was detected before this path was chosen; rows
        // `c < cols` of `src` hold `kc` elements from `c * ld` (checked
        // above, in elements of the type `f16` names), and the panel holds
        // `kc` rows of `NR`.
        unsafe { transpose_panel(src, f16, ld, cols, kc, panel.as_mut_ptr()) }
    }

    fn task<I: GemmIn, O: GemmOut>(p: &Problem<'_, I, O>, t: &Task, bufs: &mut Buffers) -> bool {
        // SAFETY: this path is chosen only when the CPU has the features.
        unsafe { task_avx512(p, t, bufs) }
    }
}

/// # Safety
/// The CPU must support avx512f, avx2 and fma.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn task_avx512<I: GemmIn, O: GemmOut>(
    p: &Problem<'_, I, O>,
    t: &Task,
    bufs: &mut Buffers,
) -> bool {
    task::<Avx512, I, O>(p, t, bufs)
}

/// `panel[kk * 32 + c] = src[c * ld + kk]` for `c < cols`, `kk < kc`, zero
/// for `cols <= c < 32`, in 16 x 16 blocks transposed in registers. `src` is
/// f16 bits (converted exactly) when `f16`, else f32.
///
/// # Safety
/// avx512f present; rows `c < cols` of `src` hold `kc` elements from
/// `c * ld`; `panel` holds `32 kc` floats.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn transpose_panel(
    src: *const u8,
    f16: bool,
    ld: usize,
    cols: usize,
    kc: usize,
    panel: *mut f32,
) {
    // Row c, elements kk0.. (n of them, the rest zero) as 16 floats.
    let load = |c: usize, kk0: usize, n: usize| -> __m512 {
        if c >= cols {
            return _mm512_setzero_ps();
        }
        if f16 {
            let p = src.cast::<u16>().add(c * ld + kk0);
            if n == 16 {
                return _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            }
            // A masked 16-bit load needs AVX512BW: go through the stack.
            let mut t = [0u16; 16];
            std::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), n);
            _mm512_cvtph_ps(_mm256_loadu_si256(t.as_ptr().cast()))
        } else {
            _mm512_maskz_loadu_ps(mask(n), src.cast::<f32>().add(c * ld + kk0))
        }
    };
    for c0 in [0, 16] {
        for kk0 in (0..kc).step_by(16) {
            let n = (kc - kk0).min(16);
            let mut r = [_mm512_setzero_ps(); 16];
            for (c, x) in r.iter_mut().enumerate() {
                *x = load(c0 + c, kk0, n);
            }
            let t = transpose16(r);
            for (kk, x) in t.iter().enumerate().take(n) {
                _mm512_storeu_ps(panel.add((kk0 + kk) * 32 + c0), *x);
            }
        }
    }
}

/// The transpose of 16 rows of 16 floats: `out[j][i] = r[i][j]`, in four
/// rounds of 16 shuffles (32-bit, 64-bit, then two of 128-bit lanes).
///
/// # Safety
/// Only inlined into a function with avx512f enabled (its intrinsics need it).
#[inline(always)]
unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + e], lane L: column 4L + e, rows 4i..4i + 4.
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        u[4 * i] = ps(_mm512_unpacklo_pd(pd(t[4 * i]), pd(t[4 * i + 2])));
        u[4 * i + 1] = ps(_mm512_unpackhi_pd(pd(t[4 * i]), pd(t[4 * i + 2])));
        u[4 * i + 2] = ps(_mm512_unpacklo_pd(pd(t[4 * i + 1]), pd(t[4 * i + 3])));
        u[4 * i + 3] = ps(_mm512_unpackhi_pd(pd(t[4 * i + 1]), pd(t[4 * i + 3])));
    }
    // out[4L + e] = lanes L of u[e], u[4 + e], u[8 + e], u[12 + e].
    let mut out = [_mm512_setzero_ps(); 16];
    for e in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x44>(u[e], u[4 + e]);
        let v1 = _mm512_shuffle_f32x4::<0xee>(u[e], u[4 + e]);
        let v2 = _mm512_shuffle_f32x4::<0x44>(u[8 + e], u[12 + e]);
        let v3 = _mm512_shuffle_f32x4::<0xee>(u[8 + e], u[12 + e]);
        out[e] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
        out[4 + e] = _mm512_shuffle_f32x4::<0xdd>(v0, v2);
        out[8 + e] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
        out[12 + e] = _mm512_shuffle_f32x4::<0xdd>(v1, v3);
    }
    out
}

/// 16 halves to 16 floats, exactly (`vcvtph2ps`).
///
/// # Safety
/// avx512f present; 16 readable `u16` at `src`, 16 writable floats at `dst`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn cvt16_f16(src: *const u16, dst: *mut f32) {
    let h = _mm256_loadu_si256(src.cast());
    _mm512_storeu_ps(dst, _mm512_cvtph_ps(h));
}

/// Where a tile's chains go.
enum Dst {
    /// More k-blocks follow: the chains, row-major `MR x 16 NV`.
    Scratch(*mut f32),
    /// The last block, epilogue into an f32 C.
    F32(Epi),
    /// The last block, epilogue into an f16 C (bits).
    F16(Epi),
}

/// The epilogue of one tile: `rows x cols` outputs at `c` (f32 or f16 bits),
/// row stride `ldc` elements; `bias` is null or has `cols` values.
struct Epi {
    c: *mut u8,
    ldc: usize,
    rows: usize,
    cols: usize,
    alpha: f32,
    bias: *const f32,
}

/// Bits of the one NaN and of the exponent fields that mark inf and NaN in f32
/// and f16.
const NAN_F32: i32 = CANONICAL_NAN_BITS as i32;
const EXP_F32: i32 = 0x7f80_0000;
const EXP_F16: i32 = 0x7c00;
/// `vcvtps2ph` rounding: to nearest even, no exceptions.
const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// `MR x 16 NV` chains over `kc` k, from `load` (or +0.0), into `dst`.
/// Returns true if the epilogue stored a value that is not finite.
///
/// # Safety
/// avx512f, avx2 and fma present; `a` as checked by `ASrc::check(MR, kc)`;
/// `b` as checked by `BSrc::check(16 NV, kc)`; `load` null or `MR * 16 NV` floats; `dst` a
/// scratch tile of `MR * 16 NV` floats, or an epilogue whose `rows <= MR`,
/// `cols <= 16 NV` outputs (and bias values) are valid.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_avx512<const MR: usize, const NV: usize>(
    kc: usize,
    a: ASrc<'_>,
    b: BSrc<'_>,
    load: *const f32,
    dst: Dst,
) -> bool {
    let mut c = [[_mm512_setzero_ps(); NV]; MR];
    if !load.is_null() {
        for (r, row) in c.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(load.add((r * NV + v) * 16));
            }
        }
    }
    let (mut ap, rs, cs) = (a.a.as_ptr(), a.rs, a.cs);
    let (mut bp, ld) = (b.b.as_ptr(), b.ld);
    for _ in 0..kc {
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(bp.add(v * 16));
        }
        for (r, row) in c.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*ap.add(r * rs));
            for (s, &y) in row.iter_mut().zip(&bv) {
                *s = _mm512_fmadd_ps(x, y, *s);
            }
        }
        ap = ap.add(cs);
        bp = bp.add(ld);
    }
    let (e, f16) = match dst {
        Dst::Scratch(acc) => {
            for (r, row) in c.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    _mm512_storeu_ps(acc.add((r * NV + v) * 16), x);
                }
            }
            return false;
        }
        Dst::F32(e) => (e, false),
        Dst::F16(e) => (e, true),
    };
    // 1 * x is x (NaN aside, which becomes the one NaN either way): the
    // multiply is skipped, as is a common case (alpha = 1, no bias).
    let alpha = (e.alpha != 1.0 || !e.bias.is_null()).then(|| _mm512_set1_ps(e.alpha));
    let mut bad: __mmask16 = 0;
    if e.rows == MR && e.cols == 16 * NV {
        // A whole tile: the epilogue straight from the registers, every
        // index a constant (a run-time index into `c` would keep the chains
        // in memory through the k loop).
        let mut bias = [None; NV];
        if !e.bias.is_null() {
            for (v, x) in bias.iter_mut().enumerate() {
                *x = Some(_mm512_loadu_ps(e.bias.add(v * 16)));
            }
        }
        for (r, row) in c.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                let out = e.c.add((r * e.ldc + v * 16) * if f16 { 2 } else { 4 });
                bad |= out16(x, alpha, bias[v], out, 16, f16);
            }
        }
        return bad != 0;
    }
    // An edge tile: through memory, within the run-time bounds.
    let mut tile = super::Tile([0.0; super::TILE_MAX]);
    for (r, row) in c.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            _mm512_storeu_ps(tile.0.as_mut_ptr().add((r * NV + v) * 16), x);
        }
    }
    for v in 0..NV {
        let lo = v * 16;
        if lo >= e.cols {
            break;
        }
        let n = (e.cols - lo).min(16);
        let bias = (!e.bias.is_null()).then(|| _mm512_maskz_loadu_ps(mask(n), e.bias.add(lo)));
        for (r, row) in tile.0.chunks_exact(16 * NV).take(e.rows).enumerate() {
            let x = _mm512_loadu_ps(row[lo..lo + 16].as_ptr());
            let out = e.c.add((r * e.ldc + lo) * if f16 { 2 } else { 4 });
            bad |= out16(x, alpha, bias, out, n, f16);
        }
    }
    bad != 0
}

/// The low `n` of 16 lanes.
#[inline(always)]
fn mask(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

/// The epilogue of 16 chains `x`, of which the first `n` are stored at
/// `out` (f16 bits when `f16`, else f32): `alpha * x` or `fma(alpha, x,
/// bias)` (`alpha` None: 1 without bias), NaN made canonical, rounded. Returns the lanes whose stored value
/// is not finite.
///
/// # Safety
/// Only inlined into a function with avx512f enabled; `n` elements writable
/// at `out`.
#[inline(always)]
unsafe fn out16(
    x: __m512,
    alpha: Option<__m512>,
    bias: Option<__m512>,
    out: *mut u8,
    n: usize,
    f16: bool,
) -> __mmask16 {
    let y = match (alpha, bias) {
        (Some(a), Some(b)) => _mm512_fmadd_ps(a, x, b),
        (Some(a), None) => _mm512_mul_ps(a, x),
        (None, None) => x,
        // alpha = 1: fma(1, x, b) is x + b rounded once, the same bits.
        (None, Some(b)) => _mm512_add_ps(x, b),
    };
    let nan = _mm512_castsi512_ps(_mm512_set1_epi32(NAN_F32));
    let y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(y, y), y, nan);
    let m = mask(n);
    if f16 {
        let h = _mm512_cvtps_ph::<RNE>(y);
        if n == 16 {
            _mm256_storeu_si256(out.cast(), h);
        } else {
            let mut t = [0u16; 16];
            _mm256_storeu_si256(t.as_mut_ptr().cast(), h);
            std::ptr::copy_nonoverlapping(t.as_ptr(), out.cast::<u16>(), n);
        }
        let e = _mm512_and_si512(_mm512_cvtepu16_epi32(h), _mm512_set1_epi32(EXP_F16));
        _mm512_mask_cmpeq_epi32_mask(m, e, _mm512_set1_epi32(EXP_F16))
    } else {
        _mm512_mask_storeu_ps(out.cast(), m, y);
        let e = _mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(EXP_F32));
        _mm512_mask_cmpeq_epi32_mask(m, e, _mm512_set1_epi32(EXP_F32))
    }
}

/// 6 x 16: 12 ymm chains; per k, 2 vector loads of B and 6 broadcasts of A
/// for 12 fmas. The epilogue is `super::store`, compiled for AVX2 + FMA.
pub(super) struct Avx2;

impl Micro for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    const KC: usize = 256;
    const NC: usize = 512;

    #[inline(always)]
    fn kernel(kc: usize, a: ASrc<'_>, b: BSrc<'_>, load: bool, acc: &mut [f32]) {
        a.check(Self::MR, kc);
        b.check(Self::NR, kc);
        assert!(acc.len() >= Self::MR * Self::NR);
        // SAFETY: `cpu_level()` returned Avx2Fma or higher only after
        // detecting avx2 and fma; the operands hold the tile (checked above).
        unsafe { kernel_avx2::<6, 2>(kc, a, b, load, acc.as_mut_ptr()) }
    }

    fn task<I: GemmIn, O: GemmOut>(p: &Problem<'_, I, O>, t: &Task, bufs: &mut Buffers) -> bool {
        // SAFETY: this path is chosen only when the CPU has the features.
        unsafe { task_avx2(p, t, bufs) }
    }
}

/// # Safety
/// The CPU must support avx2 and fma.
#[target_feature(enable = "avx2,fma")]
unsafe fn task_avx2<I: GemmIn, O: GemmOut>(
    p: &Problem<'_, I, O>,
    t: &Task,
    bufs: &mut Buffers,
) -> bool {
    task::<Avx2, I, O>(p, t, bufs)
}

/// `MR x 8 NV` chains over `kc` k, from `acc` (`load`) or +0.0, into `acc`.
///
/// # Safety
/// avx2 and fma present; `a` and `b` as checked by `ASrc::check(MR, kc)` and
/// `BSrc::check(8 NV, kc)`; `MR * 8 NV` floats at `acc`.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2<const MR: usize, const NV: usize>(
    kc: usize,
    a: ASrc<'_>,
    b: BSrc<'_>,
    load: bool,
    acc: *mut f32,
) {
    let mut c = [[_mm256_setzero_ps(); NV]; MR];
    if load {
        for (r, row) in c.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(acc.add((r * NV + v) * 8));
            }
        }
    }
    let (mut ap, rs, cs) = (a.a.as_ptr(), a.rs, a.cs);
    let (mut bp, ld) = (b.b.as_ptr(), b.ld);
    for _ in 0..kc {
        let mut bv = [_mm256_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm256_loadu_ps(bp.add(v * 8));
        }
        for (r, row) in c.iter_mut().enumerate() {
            let x = _mm256_set1_ps(*ap.add(r * rs));
            for (s, &y) in row.iter_mut().zip(&bv) {
                *s = _mm256_fmadd_ps(x, y, *s);
            }
        }
        ap = ap.add(cs);
        bp = bp.add(ld);
    }
    for (r, row) in c.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            _mm256_storeu_ps(acc.add((r * NV + v) * 8), x);
        }
    }
}
