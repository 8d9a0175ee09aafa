/* Canonical reductions (DESIGN.md rule 3; docs/numerics/reduce.md). Included
 * by abi.h. The two constants are part of the numerics contract, not tuning
 * knobs: changing either changes the bits of every reduction. */
#ifndef SHOESTRING_ABI_REDUCE_H
#define SHOESTRING_ABI_REDUCE_H

/* Lanes per chunk: lane l accumulates chunk elements l, l+256, ... in order;
 * the 256 lane values are combined by the pairwise tree s = 128, 64, ..., 1.
 * On the GPU one lane is one thread, so reduce kernels run 256-thread blocks. */
#define SS_REDUCE_LANES 256u
/* Elements per chunk (64 per lane). A reduction over more than this many
 * elements reduces each chunk, then reduces the chunk results recursively. */
#define SS_REDUCE_CHUNK 16384u

/* reduce_{sum,max,sumsq}_chunks_f32: one pass. The input is `rows` rows of
 * `width` floats (row-major, contiguous); out[r * chunks_per_row + k] is the
 * reduction of chunk k of row r (elements k*CHUNK .. min(width, (k+1)*CHUNK)).
 * chunks_per_row = max(1, ceil(width / CHUNK)). */
typedef struct ss_reduce_chunks_params {
    uint64_t rows;
    uint64_t width;
    uint64_t chunks_per_row;
} ss_reduce_chunks_params;

/* reduce_{sum,max,sumsq}_cols_f32: out[c] = the canonical reduction over
 * r < rows of x[r * cols + c], for c < cols (x row-major, contiguous):
 * one output per thread (kernels/common/reduce.cuh::ss_thread_reduce). */
typedef struct ss_reduce_cols_params {
    uint64_t rows;
    uint64_t cols;
} ss_reduce_cols_params;

#endif /* SHOESTRING_ABI_REDUCE_H */
