/* The lstm family's kernel parameters (pointwise LSTM cell, kernels/lstm.cu).
 * Included by abi.h; plain C, fixed-width types, no pointers, no padding. */
#ifndef SHOESTRING_ABI_LSTM_H
#define SHOESTRING_ABI_LSTM_H

/* Gate blocks per row of `gates`/`act`/`dgates`, in this order:
 * [i | f | g | o] = input, forget, cell candidate, output. */
#define SS_LSTM_GATES 4u

/* lstm_cell_fwd_f32 and lstm_cell_bwd_f32: B rows (batch) of H hidden units.
 * Row-major: gates[b, k*H + j] for gate k, c[b, j] at b*H + j. */
typedef struct ss_lstm_cell_params {
    uint64_t batch;  /* B */
    uint64_t hidden; /* H */
} ss_lstm_cell_params;

#endif /* SHOESTRING_ABI_LSTM_H */
