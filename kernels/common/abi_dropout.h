/* Dropout (DESIGN.md rule 5): the mask parameters shared by every dropout
 * kernel, and one params struct per variant. Included by abi.h.
 *
 * Mask rule: mask entry m keeps iff word (m % 4) of
 *   philox4x32_10(counter = (m / 4 as 64-bit block index, stream, step), key)
 * is >= threshold (compared as 64-bit integers). The block index starts at 0 for
 * every mask: the stream id (rng.rs Stream) is what separates call sites, and the
 * step separates optimizer steps. Kept values are multiplied by `scale`;
 * dropped ones are +0.0f. Which mask entry an element uses is per variant:
 *   elementwise (and DropConnect):  m = element index e
 *   variational x[T][B][F]:         m = b*F + f (shared along t)
 *   embedding   W[V][E]:            m = v (a whole row) */
#ifndef SHOESTRING_ABI_DROPOUT_H
#define SHOESTRING_ABI_DROPOUT_H

typedef struct ss_dropout_mask_params {
    ss_philox_key key; /* the run's seed halves */
    uint32_t stream;   /* counter word 2: the call site's stream id */
    uint32_t step;     /* counter word 3: the optimizer step */
    /* round(p * 2^32): 0 keeps everything, 2^32 (p = 1) drops everything. */
    uint64_t threshold;
    float scale;  /* 1.0f / (1.0f - p) rounded to f32 once on the host; 0 for p = 1 */
    uint32_t pad; /* zero; keeps the struct free of implicit padding */
} ss_dropout_mask_params;

/* dropout_fwd_f32 / dropout_bwd_f32: n elements, mask entry = element index. */
typedef struct ss_dropout_params {
    ss_dropout_mask_params mask;
    uint64_t n;
} ss_dropout_params;

/* dropout_variational_{fwd,bwd}_f32: x[t][b][f] (time-major, f fastest),
 * mask entry b*F + f, the same for every t. */
typedef struct ss_dropout_variational_params {
    ss_dropout_mask_params mask;
    uint64_t t; /* T: time steps */
    uint64_t b; /* B: batch */
    uint64_t f; /* F: features */
} ss_dropout_variational_params;

/* dropout_embedding_{fwd,bwd}_f32: W[v][e], V rows of width E, mask entry v. */
typedef struct ss_dropout_embedding_params {
    ss_dropout_mask_params mask;
    uint64_t v; /* V: rows (vocabulary) */
    uint64_t e; /* E: row width (embedding size) */
} ss_dropout_embedding_params;

#endif /* SHOESTRING_ABI_DROPOUT_H */
