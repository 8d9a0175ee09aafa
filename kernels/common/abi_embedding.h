/* Embedding family ABI (kernels/embedding.cu, src/ops/embedding/cuda.rs).
 * Letters: V weight rows (vocabulary), E columns (embedding width), N positions
 * (T*B, time-major), P = the smallest power of two >= N (the sort's length). */
#ifndef SHOESTRING_ABI_EMBEDDING_H
#define SHOESTRING_ABI_EMBEDDING_H

/* Keys the shared-memory sort pass keeps in one block: 2048 u64 = 16 KiB of
 * dynamic shared memory. Not part of the numerics (the keys are unique, so
 * every correct sort gives one order); only a speed constant. */
#define SS_EMBEDDING_SORT_TILE 2048u

/* embedding_check_ids_u32, embedding_fwd_f32, embedding_bwd_f32. */
typedef struct ss_embedding_params {
    uint64_t n; /* positions N (< 2^32) */
    uint64_t v; /* weight rows V */
    uint64_t e; /* columns E */
} ss_embedding_params;

/* embedding_sort_keys_init_u64, embedding_sort_keys_global_u64,
 * embedding_sort_keys_local_u64: one bitonic pass over keys[0..p). */
typedef struct ss_embedding_sort_params {
    uint64_t n;       /* positions N: keys[t] for t < n, padding above */
    uint64_t p;       /* padded length P, a power of two */
    uint64_t k;       /* bitonic stage: runs of length k are being merged */
    uint64_t j;       /* compare distance (global: the one step; local: the first step) */
    uint64_t k_end;   /* local: last stage this launch runs (k <= k_end <= tile) */
    uint64_t tile;    /* local: keys per shared-memory tile, min(P, SS_EMBEDDING_SORT_TILE) */
} ss_embedding_sort_params;

#endif /* SHOESTRING_ABI_EMBEDDING_H */
