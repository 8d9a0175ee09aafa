//! CPU twin of `kernels/gemm.cu` (exact tier): blocked, packed, with a
//! register-tile microkernel per instruction set, and the bits of the plain
//! triple loop (DESIGN.md rule 4).
//!
//! Every output is one fma chain over k ascending from +0.0 (or, with `beta =
//! 1`, from `0.0 + C`: the old value, -0.0 made +0.0), whatever the
//! path: the microkernel holds an `MR x NR` tile of such chains in registers
//! and feeds them one k at a time. A k-block (`KC` long) that is not the last
//! ends by storing the chains, as f32, to a scratch tile, and the next block
//! loads them back and goes on: no restart from zero, no split-K. Packing
//! converts f16 exactly and pads m and n (never k) with zeros, so padded rows
//! and columns only feed outputs that are thrown away, and edge tiles keep the
//! same chains.
//!
//! Blocking (the constants are tuning, not contract): a task (a rectangle of
//! C) walks its k-blocks; per block it packs its B panels (`KC x NR`, B
//! transposed in 16 x 16 register blocks on AVX-512), then for each row
//! panel of `MR` rows (whose A stays in L1) runs the kernel along the row,
//! the B panels streaming from L2. f32 A is read in place (broadcasts need
//! no layout), and so is f32 B when not transposed and at most
//! `DIRECT_B_MAX_N` wide; only their short edge panels are packed.
//!
//! Paths ([`cpu_level`], detected at run time, never `target-cpu=native`):
//! AVX-512F (8 x 32 tile, 16 zmm chains, epilogue from the registers), AVX2 +
//! FMA (6 x 16, 12 ymm chains) and portable (scalar `mul_add`, a library call
//! without FMA hardware). FMA is correctly rounded on all three, and the
//! vector epilogue's f16 rounding (`vcvtps2ph`, nearest even) equals
//! `numerics::float_to_half_rn` on every non-NaN float (tests/gemm_cpu.rs: a
//! sweep in CI, all 2^32 with `--ignored`),
//! so they agree bit for bit. `SHOESTRING_CPU_PORTABLE=1` or
//! `SHOESTRING_CPU_LEVEL` selects a narrower one.
//!
//! Threads: C is cut into tasks that rayon runs in any order in one parallel
//! region per GEMM; each task owns its outputs' whole chains, so the bits do
//! not depend on the pool size. Products under `PARALLEL_MIN_FLOPS` stay on
//! the calling thread. Each thread keeps its packing and scratch buffers
//! (up to about 1.6 MiB) for the next call.

use super::{epilogue, GemmIn, GemmOut};
use crate::device::abi::ss_gemm_params;
use crate::device::{cpu_level, CpuLevel};
use rayon::prelude::*;
use std::any::TypeId;
use std::cell::Cell;

/// Below this many flops (2 m n k) a GEMM runs on the calling thread: waking
/// the pool costs more than the second core gives back.
pub(crate) const PARALLEL_MIN_FLOPS: usize = 4 << 20;

/// Most f32 chains a task keeps in scratch between k-blocks (1 MiB), which
/// bounds the rows of a task when k needs more than one block.
const SCRATCH_MAX: usize = 1 << 18;

/// Widest f32 B read in place: beyond 2 KiB a row, the k rows of a panel
/// fall on separate pages, where the hardware prefetchers stop, and packing
/// (a sequential copy) is cheaper than the misses.
const DIRECT_B_MAX_N: usize = 512;

/// Longest k-block for which f32 A^T (TN, TT) is read in place rather than
/// packed: a panel then spans `kc` cache lines of L1 for `kc * MR` floats.
const TN_IN_PLACE_MAX_KC: usize = 256;

/// A register-tile microkernel and the block sizes around it.
trait Micro {
    /// Rows of the register tile (one broadcast of A each per k).
    const MR: usize;
    /// Columns of the register tile (whole vectors of B).
    const NR: usize;
    /// The k-block: one A panel (`MR x KC`) stays in L1.
    const KC: usize;
    /// Most columns of one task: its packed B (`KC x NC`) stays in L2.
    const NC: usize;

    /// The chains of one tile over `kc` more k, into `acc` (row-major
    /// `MR x NR`), starting from zeros (`load == false`) or from `acc`.
    fn kernel(kc: usize, a: ASrc<'_>, b: BSrc<'_>, load: bool, acc: &mut [f32]);

    /// The last k-block of one tile: the chains (from `acc` when `load`, or
    /// zeros), then the epilogue into C; `acc` (a whole tile) is free to be
    /// overwritten. Returns true if a stored value is not finite.
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
        Self::kernel(kc, a, b, load, acc);
        store(p, acc, Self::NR, at)
    }

    /// `dst = src` as f32 (exact).
    #[inline(always)]
    fn convert<I: GemmIn>(src: &[I], dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }

    /// One panel from a transposed source: `panel[kk * NR + c] = src[c * ld
    /// + kk]` (exactly converted) for `c < cols`, `kk < kc`, and zero for
    /// `cols <= c < NR`.
    #[inline(always)]
    fn pack_transposed<I: GemmIn>(src: &[I], ld: usize, cols: usize, kc: usize, panel: &mut [f32]) {
        pack_transposed_strips::<Self, I>(src, ld, cols, kc, panel)
    }

    /// Runs [`task`] compiled for this path's target features.
    fn task<I: GemmIn, O: GemmOut>(p: &Problem<'_, I, O>, t: &Task, bufs: &mut Buffers) -> bool;
}

/// One GEMM as the tasks see it.
struct Problem<'a, I, O> {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    /// Chains start from the old C (`0.0 + C[i, j]`) instead of +0.0.
    accumulate: bool,
    a: &'a [I],
    /// `a` itself when the operands are f32: read in place, not packed.
    a_f32: Option<&'a [f32]>,
    b: &'a [I],
    /// `b` itself when the operands are f32 and B is not transposed: read in
    /// place (the k rows of a panel at stride n), not packed.
    b_f32: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    c: OutPtr<O>,
}

/// C's base pointer, shared by the tasks; each writes only its own rectangle.
struct OutPtr<O>(*mut O);
// SAFETY: tasks write disjoint rectangles of C (see `Problem::row`), and the
// borrow of C outlives the parallel region that uses the pointer.
unsafe impl<O: Send> Send for OutPtr<O> {}
// SAFETY: as above; no two tasks touch the same element.
unsafe impl<O: Send> Sync for OutPtr<O> {}

impl<I, O> Problem<'_, I, O> {
    /// Row `i`, columns `j..j + len`, of C.
    ///
    /// # Safety
    /// `i < m` and `j + len <= n`, and no other live reference covers these
    /// elements: the caller is the one task that owns them.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    unsafe fn row(&self, i: usize, j: usize, len: usize) -> &mut [O] {
        std::slice::from_raw_parts_mut(self.out_ptr(i, j), len)
    }

    /// `&C[i, j]` as a raw pointer derived from all of C, so that a kernel
    /// may write several rows of its tile through it.
    ///
    /// # Safety
    /// `i < m` and `j < n`.
    #[inline(always)]
    unsafe fn out_ptr(&self, i: usize, j: usize) -> *mut O {
        debug_assert!(i < self.m && j < self.n);
        self.c.0.add(i * self.n + j)
    }
}

/// Where op(A) of one tile is read: `a[r * rs + kk * cs]` for row `r < MR` of
/// the tile and `kk < kc` of the block (packed panels have `rs = 1, cs = MR`).
#[derive(Clone, Copy)]
struct ASrc<'a> {
    a: &'a [f32],
    rs: usize,
    cs: usize,
}

impl ASrc<'_> {
    /// Panics unless every element a tile of `mr` rows reads over `kc` k is
    /// in `a`; the kernels rely on it.
    #[inline(always)]
    fn check(&self, mr: usize, kc: usize) {
        assert!(kc > 0 && (mr - 1) * self.rs + (kc - 1) * self.cs < self.a.len());
    }
}

/// Where op(B) of one tile is read: `b[kk * ld + c]` for column `c < NR` of
/// the tile and `kk < kc` (packed panels have `ld = NR`).
#[derive(Clone, Copy)]
struct BSrc<'a> {
    b: &'a [f32],
    ld: usize,
}

impl BSrc<'_> {
    /// Panics unless every element a tile of `nr` columns reads over `kc` k
    /// is in `b`; the kernels rely on it.
    #[inline(always)]
    fn check(&self, nr: usize, kc: usize) {
        assert!(kc > 0 && (kc - 1) * self.ld + nr <= self.b.len());
    }
}

/// Where a tile lands in C: rows `i..i + rows`, columns `j..j + cols`.
#[derive(Clone, Copy)]
struct At {
    i: usize,
    rows: usize,
    j: usize,
    cols: usize,
}

/// A rectangle of C: rows `i0..i1`, columns `j0..j1`.
#[derive(Debug, Clone, Copy)]
struct Task {
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
}

/// Per-thread packing and scratch space, reused across calls.
#[derive(Default)]
struct Buffers {
    a: Vec<f32>,
    b: Vec<f32>,
    acc: Vec<f32>,
}

thread_local! {
    static BUFFERS: Cell<Buffers> = Cell::new(Buffers::default());
}

/// Runs `f` with this thread's buffers (taken out, so a nested call would
/// only allocate fresh ones).
fn with_buffers<R>(f: impl FnOnce(&mut Buffers) -> R) -> R {
    let mut b = BUFFERS.take();
    let r = f(&mut b);
    BUFFERS.set(b);
    r
}

/// `len` floats of `v` starting on a 64-byte boundary, so that vector loads
/// of packed rows never straddle cache lines.
fn aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len + 16 {
        v.resize(len + 16, 0.0);
    }
    let off = ((64 - v.as_ptr() as usize % 64) % 64) / 4;
    &mut v[off..off + len]
}

/// `s` as `&[f32]` when `T` is f32.
fn as_f32<T: 'static>(s: &[T]) -> Option<&[f32]> {
    (TypeId::of::<T>() == TypeId::of::<f32>()).then(|| {
        // SAFETY: T is f32 (same TypeId), so this is the same slice.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) }
    })
}

/// TWIN: kernels/gemm.cu::gemm_exact_<in>_<out>. Writes all of `c` (m x n),
/// reading it first when `p.beta == 1`, and returns true if any stored value
/// is not finite.
pub(crate) fn gemm<I: GemmIn, O: GemmOut>(
    p: &ss_gemm_params,
    a: &[I],
    b: &[I],
    bias: Option<&[f32]>,
    c: &mut [O],
) -> bool {
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    assert!(bias.is_none_or(|b| b.len() >= n));
    if m == 0 || n == 0 {
        return false;
    }
    let accumulate = p.beta != 0;
    if k == 0 {
        // No fma at all: every output is the epilogue of the chain's start.
        let mut bad = false;
        for row in c[..m * n].chunks_exact_mut(n) {
            for (j, out) in row.iter_mut().enumerate() {
                let start = if accumulate { chain_start(*out) } else { 0.0 };
                *out = epilogue(p.alpha, start, bias.map(|b| b[j]));
                bad |= !out.is_finite();
            }
        }
        return bad;
    }
    let problem = Problem {
        m,
        n,
        k,
        trans_a: p.trans_a != 0,
        trans_b: p.trans_b != 0,
        alpha: p.alpha,
        accumulate,
        a,
        a_f32: as_f32(a),
        b,
        b_f32: if p.trans_b != 0 || n > DIRECT_B_MAX_N {
            None
        } else {
            as_f32(b)
        },
        bias,
        c: OutPtr(c.as_mut_ptr()),
    };
    match cpu_level() {
        #[cfg(target_arch = "x86_64")]
        CpuLevel::Avx512 => run::<x86::Avx512, I, O>(&problem),
        #[cfg(target_arch = "x86_64")]
        CpuLevel::Avx2Fma => run::<x86::Avx2, I, O>(&problem),
        _ => run::<Portable, I, O>(&problem),
    }
}

/// Cuts C into tasks and runs them, in one parallel region when the product
/// is large enough.
fn run<M: Micro, I: GemmIn, O: GemmOut>(p: &Problem<'_, I, O>) -> bool {
    let flops = [p.n, p.k].iter().fold(2 * p.m, |f, &d| f.saturating_mul(d));
    let threads = if flops < PARALLEL_MIN_FLOPS {
        1
    } else {
        rayon::current_num_threads()
    };
    let tasks = tasks::<M>(p.m, p.n, p.k, p.b_f32.is_none(), threads);
    if tasks.len() == 1 {
        with_buffers(|bufs| M::task(p, &tasks[0], bufs))
    } else if threads == 1 {
        with_buffers(|bufs| tasks.iter().fold(false, |bad, t| bad | M::task(p, t, bufs)))
    } else {
        // `reduce`, not `any`: every task must run, whatever another found.
        tasks
            .par_iter()
            .map(|t| with_buffers(|bufs| M::task(p, t, bufs)))
            .reduce(|| false, |x, y| x | y)
    }
}

/// Splits `m x n` into bands of whole tiles: at most `NC` columns, and as many
/// rows as the scratch allows; with several threads, into at least one task
/// per thread (a multiple of the thread count, or many). When B is packed,
/// columns are split first (every row band packs its own B, while f32 A is
/// read in place); otherwise rows, so that each task writes whole rows of C.
/// The split decides who computes which outputs, never in which order.
fn tasks<M: Micro>(m: usize, n: usize, k: usize, b_packed: bool, threads: usize) -> Vec<Task> {
    let (mtiles, ntiles) = (m.div_ceil(M::MR), n.div_ceil(M::NR));
    // Bands actually made when `t` are asked for (each a whole number of tiles).
    let bands = |t: usize, tiles: usize| tiles.div_ceil(tiles.div_ceil(t));
    let mut tn = n.div_ceil(M::NC);
    let mut tm = if k > M::KC {
        let band = ntiles.div_ceil(tn) * M::NR;
        m.div_ceil((SCRATCH_MAX / band).max(M::MR))
    } else {
        1
    };
    loop {
        let count = bands(tm, mtiles) * bands(tn, ntiles);
        if threads < 2 || (count >= threads && (count % threads == 0 || count >= 8 * threads)) {
            break;
        }
        let (more_rows, more_cols) = (tm < mtiles, tn < ntiles);
        if more_cols && (b_packed || !more_rows) {
            tn += 1;
        } else if more_rows {
            tm += 1;
        } else {
            break;
        }
    }
    let rows = mtiles.div_ceil(tm) * M::MR;
    let cols = ntiles.div_ceil(tn) * M::NR;
    let mut out = Vec::with_capacity(tm * tn);
    for i0 in (0..m).step_by(rows) {
        for j0 in (0..n).step_by(cols) {
            out.push(Task {
                i0,
                i1: (i0 + rows).min(m),
                j0,
                j1: (j0 + cols).min(n),
            });
        }
    }
    out
}

/// One task: for each k-block, pack its B columns, then for each row panel
/// (its A in L1; packed only when f16 or short) run the microkernel along
/// the row, B streaming from L2. Inlined into each path's
/// `#[target_feature]` wrapper.
#[inline(always)]
fn task<M: Micro, I: GemmIn, O: GemmOut>(
    p: &Problem<'_, I, O>,
    t: &Task,
    bufs: &mut Buffers,
) -> bool {
    let (mr, nr) = (M::MR, M::NR);
    let (mc, nc) = (t.i1 - t.i0, t.j1 - t.j0);
    let (mtiles, ntiles) = (mc.div_ceil(mr), nc.div_ceil(nr));
    let blocks = p.k.div_ceil(M::KC);
    let kc_max = p.k.min(M::KC);
    let apack = aligned(&mut bufs.a, mr * kc_max);
    let bpack = aligned(&mut bufs.b, ntiles * nr * kc_max);
    let scratch = if blocks > 1 {
        aligned(&mut bufs.acc, mtiles * ntiles * mr * nr)
    } else {
        &mut [][..]
    };
    // The chains of a tile when k fits in one block (set up once per task).
    let mut tile = Tile([0.0; TILE_MAX]);
    let mut bad = false;
    for blk in 0..blocks {
        let pc = blk * M::KC;
        let kc = M::KC.min(p.k - pc);
        // f32 B as stored: only a short edge panel needs packing (padding).
        let edge = ntiles - 1;
        match p.b_f32 {
            None => pack_b::<M, I>(p, pc, kc, t.j0, nc, nr, bpack),
            Some(_) if nc % nr != 0 => {
                pack_b::<M, I>(p, pc, kc, t.j0 + edge * nr, nc - edge * nr, nr, bpack)
            }
            Some(_) => {}
        }
        for it in 0..mtiles {
            let i = t.i0 + it * mr;
            let rows = (t.i1 - i).min(mr);
            // A^T read in place touches a cache line per k for `MR` floats:
            // fine for a short block, wasteful of L1 for a long one.
            let in_place = !p.trans_a || kc <= TN_IN_PLACE_MAX_KC;
            let a = match p.a_f32 {
                Some(a) if rows == mr && in_place => {
                    let (base, rs, cs) = if p.trans_a {
                        (pc * p.m + i, 1, p.m)
                    } else {
                        (i * p.k + pc, p.k, 1)
                    };
                    ASrc {
                        a: &a[base..],
                        rs,
                        cs,
                    }
                }
                _ => {
                    pack_a::<M, I>(p, pc, kc, i, rows, mr, apack);
                    ASrc {
                        a: &apack[..kc * mr],
                        rs: 1,
                        cs: mr,
                    }
                }
            };
            for jt in 0..ntiles {
                let j = t.j0 + jt * nr;
                let cols = (t.j1 - j).min(nr);
                let b = match p.b_f32 {
                    Some(b) if cols == nr => BSrc {
                        b: &b[pc * p.n + j..],
                        ld: p.n,
                    },
                    Some(_) => BSrc {
                        b: &bpack[..kc * nr],
                        ld: nr,
                    },
                    None => BSrc {
                        b: &bpack[jt * kc * nr..][..kc * nr],
                        ld: nr,
                    },
                };
                let acc = if blocks > 1 {
                    &mut scratch[(it * ntiles + jt) * mr * nr..][..mr * nr]
                } else {
                    &mut tile.0[..mr * nr]
                };
                let at = At { i, rows, j, cols };
                // Accumulating: the first block's chains start from C.
                let load = blk > 0 || p.accumulate;
                if blk == 0 && p.accumulate {
                    load_chains(p, acc, nr, at);
                }
                if blk + 1 < blocks {
                    M::kernel(kc, a, b, load, acc);
                } else {
                    bad |= M::finish(p, kc, a, b, acc, load, at);
                }
            }
        }
    }
    bad
}

/// Where a chain starts when accumulating: the old output as f32 (exact),
/// plus +0.0, so that a -0.0 starts as +0.0 and the chain never holds -0.0.
/// TWIN: kernels/gemm.cu (`0.0f + gemm_in(C[..])`).
#[inline(always)]
fn chain_start<O: GemmOut>(old: O) -> f32 {
    0.0 + old.to_f32()
}

/// Fills `acc` (row stride `nr`) with the chain starts of the tile `at`
/// (`0.0 + C`), and +0.0 where the tile reaches past C.
#[inline(always)]
fn load_chains<O: GemmOut>(p: &Problem<'_, impl Sized, O>, acc: &mut [f32], nr: usize, at: At) {
    for (r, row) in acc.chunks_exact_mut(nr).enumerate() {
        if r < at.rows {
            // SAFETY: `at` lies in this task's rectangle of C, which no other
            // task writes; the slice dies before the tile is stored.
            let old = unsafe { p.row(at.i + r, at.j, at.cols) };
            for (x, &o) in row.iter_mut().zip(old.iter()) {
                *x = chain_start(o);
            }
            row[at.cols..].fill(0.0);
        } else {
            row.fill(0.0);
        }
    }
}

/// The largest `MR * NR` of any path.
const TILE_MAX: usize = 8 * 32;

/// A tile's chains on the stack.
#[repr(align(64))]
struct Tile([f32; TILE_MAX]);

/// Packs rows `i..i + rows` of op(A), k-block `pc..pc + kc`, as one panel:
/// `dst[kk * mr + r] = op(A)[i + r, pc + kk]`, zero for `rows <= r < mr`.
#[inline(always)]
fn pack_a<M: Micro, I: GemmIn>(
    p: &Problem<'_, I, impl Sized>,
    pc: usize,
    kc: usize,
    i: usize,
    rows: usize,
    mr: usize,
    dst: &mut [f32],
) {
    for (kk, d) in dst.chunks_exact_mut(mr).take(kc).enumerate() {
        if p.trans_a {
            // A is k x m: the panel's k-th column is contiguous in A (a
            // whole one is converted as such, for a fixed-size copy).
            let src = &p.a[(pc + kk) * p.m + i..];
            if rows == M::MR {
                M::convert(&src[..M::MR], &mut d[..M::MR]);
            } else {
                M::convert(&src[..rows], &mut d[..rows]);
            }
        } else {
            for (r, x) in d[..rows].iter_mut().enumerate() {
                *x = p.a[(i + r) * p.k + pc + kk].to_f32();
            }
        }
        d[rows..].fill(0.0);
    }
}

/// Packs columns `j0..j0 + nc` of op(B), k-block `pc..pc + kc`, as panels of
/// `nr` columns: `dst[(jt * kc + kk) * nr + c] = op(B)[pc + kk, j0 + jt * nr + c]`,
/// zero past column n.
#[inline(always)]
fn pack_b<M: Micro, I: GemmIn>(
    p: &Problem<'_, I, impl Sized>,
    pc: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    nr: usize,
    dst: &mut [f32],
) {
    for (jt, panel) in dst
        .chunks_exact_mut(kc * nr)
        .take(nc.div_ceil(nr))
        .enumerate()
    {
        let j = j0 + jt * nr;
        let cols = (nc - jt * nr).min(nr);
        if p.trans_b {
            // B is n x k: column j of op(B) is a contiguous row of B.
            M::pack_transposed(&p.b[j * p.k + pc..], p.k, cols, kc, panel);
        } else {
            for (kk, d) in panel.chunks_exact_mut(nr).enumerate() {
                M::convert(&p.b[(pc + kk) * p.n + j..][..cols], &mut d[..cols]);
                d[cols..].fill(0.0);
            }
        }
    }
}

/// [`Micro::pack_transposed`] in scalar code: convert a strip of each source
/// row, then scatter it down the panel.
#[inline(always)]
fn pack_transposed_strips<M: Micro + ?Sized, I: GemmIn>(
    src: &[I],
    ld: usize,
    cols: usize,
    kc: usize,
    panel: &mut [f32],
) {
    let nr = M::NR;
    let mut strip = [0.0f32; 64];
    for kk0 in (0..kc).step_by(64) {
        let len = (kc - kk0).min(64);
        for c in 0..cols {
            M::convert(&src[c * ld + kk0..][..len], &mut strip[..len]);
            for (kk, &x) in strip[..len].iter().enumerate() {
                panel[(kk0 + kk) * nr + c] = x;
            }
        }
    }
    if cols < nr {
        for d in panel.chunks_exact_mut(nr).take(kc) {
            d[cols..].fill(0.0);
        }
    }
}

/// The epilogue of one tile from `acc` (row stride `nr`) into C.
/// Returns true if a stored value is not finite.
#[inline(always)]
fn store<O: GemmOut>(p: &Problem<'_, impl Sized, O>, acc: &[f32], nr: usize, at: At) -> bool {
    let mut bad = false;
    for (r, chains) in acc.chunks_exact(nr).take(at.rows).enumerate() {
        // SAFETY: `at` lies in this task's rectangle of C (rows below m,
        // columns below n), which no other task writes; the slice dies here.
        let out = unsafe { p.row(at.i + r, at.j, at.cols) };
        let chains = &chains[..at.cols];
        match p.bias {
            Some(bias) => {
                for ((o, &x), &b) in out.iter_mut().zip(chains).zip(&bias[at.j..]) {
                    *o = epilogue(p.alpha, x, Some(b));
                    bad |= !o.is_finite();
                }
            }
            None => {
                for (o, &x) in out.iter_mut().zip(chains) {
                    *o = epilogue(p.alpha, x, None);
                    bad |= !o.is_finite();
                }
            }
        }
    }
    bad
}

/// Scalar tiles: the path without SIMD dispatch (and without FMA hardware,
/// where `mul_add` is a correctly rounded library call).
struct Portable;

impl Micro for Portable {
    const MR: usize = 4;
    const NR: usize = 8;
    const KC: usize = 256;
    const NC: usize = 512;

    fn kernel(kc: usize, a: ASrc<'_>, b: BSrc<'_>, load: bool, acc: &mut [f32]) {
        const MR: usize = Portable::MR;
        const NR: usize = Portable::NR;
        let mut c = [[0.0f32; NR]; MR];
        if load {
            for (row, src) in c.iter_mut().zip(acc.chunks_exact(NR)) {
                row.copy_from_slice(src);
            }
        }
        for kk in 0..kc {
            let bv = &b.b[kk * b.ld..][..NR];
            for (r, row) in c.iter_mut().enumerate() {
                let x = a.a[r * a.rs + kk * a.cs];
                for (s, &y) in row.iter_mut().zip(bv) {
                    *s = x.mul_add(y, *s);
                }
            }
        }
        for (row, dst) in c.iter().zip(acc.chunks_exact_mut(NR)) {
            dst.copy_from_slice(row);
        }
    }

    fn task<I: GemmIn, O: GemmOut>(p: &Problem<'_, I, O>, t: &Task, bufs: &mut Buffers) -> bool {
        task::<Portable, I, O>(p, t, bufs)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86;
