/* The plain-C face of the SIMT simulator (Device::Sim): what the Rust side calls.
 *
 * A kernel file compiled as C++ with sim.h exports one entry point per kernel
 * (SS_SIM_EXPORT in sim.h); shoestring_sim_launch runs a whole grid of it on the
 * CPU, each CUDA thread a fiber. See docs/simulator.md.
 *
 * Return codes of shoestring_sim_launch (any nonzero code also fills err):
 *   0  success
 *   1  invalid launch configuration (the same texts as the Rust launcher's checks)
 *   2  the kernel faulted: deadlock, bad warp mask, exception escaping the kernel
 *   3  the host ran out of a resource (stack memory, threads)
 */
#ifndef SHOESTRING_SIM_API_H
#define SHOESTRING_SIM_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One per kernel, see SS_SIM_EXPORT. args[i] points at the i-th kernel argument's
 * value, exactly like cuLaunchKernel's kernelParams. */
typedef void (*shoestring_sim_entry_fn)(void** args);

typedef struct {
    uint32_t x, y, z;
} shoestring_sim_dim3;

typedef struct {
    uint64_t shuffle_seed;             /* 0 = in-order; else seeded reproducible shuffle */
    uint32_t workers;                  /* 0 = default (see docs/simulator.md) */
    uint32_t dynamic_shared_bytes;     /* bytes of dynamic shared memory per block */
    uint32_t max_dynamic_shared_bytes; /* limit to enforce (49152 unless the caller opted in) */
} shoestring_sim_launch_opts;

/* Runs the whole grid synchronously. Returns 0 on success; otherwise nonzero and a
 * NUL-terminated message (truncated to err_len) in err. Safe to call concurrently
 * from several threads. opts may be NULL (all defaults, limit 49152). */
int shoestring_sim_launch(shoestring_sim_entry_fn entry, const char* kernel_name,
                          shoestring_sim_dim3 grid, shoestring_sim_dim3 block, void** args,
                          const shoestring_sim_launch_opts* opts, char* err, size_t err_len);

/* 1 when the runtime was built with SHOESTRING_SIM_ASAN, else 0. */
int shoestring_sim_asan(void);

#ifdef __cplusplus
}
#endif

#endif /* SHOESTRING_SIM_API_H */
