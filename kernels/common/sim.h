// sim.h: the kernel-facing side of the SIMT simulator (Device::Sim).
//
// prelude.cuh includes this file when the kernels are compiled as plain C++ (g++),
// so that one kernel source runs on the GPU and on the CPU. It spells the CUDA
// built-ins (threadIdx, __syncthreads, __shfl_*_sync, atomics, ...) in terms of the
// runtime in sim_runtime.cpp, which runs every CUDA thread of a block as a fiber on
// one host thread. See docs/simulator.md for what the simulator can and cannot show.
//
// Kernels never include this file directly and never mention the simulator; the
// build generates, per kernel file, a wrapper that includes the .cu file and then
// lists SS_SIM_EXPORT(kernel) for each kernel.
#ifndef SHOESTRING_SIM_H
#define SHOESTRING_SIM_H

#if defined(__CUDACC__)
#error "sim.h is the host simulator; CUDA code includes kernels/common/prelude.cuh only"
#endif

#include <math.h>  // global fmaf, sqrtf, fabsf, fminf, fmaxf (glibc: correctly rounded)
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>  // device-side printf works in the simulator too
#include <string.h>

#include <type_traits>
#include <utility>

// In an ASan build every runtime symbol that kernels call gets another name, so a
// kernel library and a runtime built with different SHOESTRING_SIM_ASAN settings fail
// to link instead of racing on __shared__ variables (which are plain `static` there).
#ifdef SHOESTRING_SIM_ASAN
#define SS_SIM_ABI(name) name##_asan
#else
#define SS_SIM_ABI(name) name
#endif

// ---------------------------------------------------------------------------------
// Qualifiers
// ---------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __launch_bounds__(...)
#define __noinline__ __attribute__((noinline))
// always_inline, not only inline: two kernel files may define different
// `__device__ __forceinline__` helpers with the same name; the linker would keep one
// out-of-line copy (an ODR violation), but inlined calls keep each file's own body.
#define __forceinline__ inline __attribute__((always_inline))
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict
// Static shared memory. A worker thread runs one block at a time and every fiber of
// that block runs on it, so a thread_local is exactly "one copy per resident block".
// ASan cannot put redzones around thread_local storage, so the ASan build uses plain
// statics and the runtime then runs one block at a time in the whole process.
#ifdef SHOESTRING_SIM_ASAN
#define __shared__ static
#else
#define __shared__ static thread_local
#endif

#define SS_DEVICE static inline
#define SS_WARP_SIZE 32
#define SS_UNROLL
static constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------
// Thread and block indices
// ---------------------------------------------------------------------------------
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};

// What a running fiber sees. The scheduler points ss_sim_current_ at the fiber's own
// record before every switch into it. A fiber only ever runs on one host thread and
// its record never changes while it runs, so even a value the compiler keeps in a
// register across a barrier is still the right one.
struct ss_sim_kctx {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
    unsigned char* dyn_smem;  // this block's dynamic shared memory, 16-byte aligned
};

#define ss_sim_current_ SS_SIM_ABI(ss_sim_current_)
extern "C" __thread const ss_sim_kctx* ss_sim_current_;

#define threadIdx (ss_sim_current_->thread_idx)
#define blockIdx (ss_sim_current_->block_idx)
#define blockDim (ss_sim_current_->block_dim)
#define gridDim (ss_sim_current_->grid_dim)

#define SS_DYNAMIC_SHARED(type, name) \
    type* name = reinterpret_cast<type*>(ss_sim_current_->dyn_smem)

// ---------------------------------------------------------------------------------
// Barriers and warp operations (out of line: they switch fibers)
// ---------------------------------------------------------------------------------
enum ss_sim_warp_op {
    SS_SIM_SYNCWARP = 0,
    SS_SIM_SHFL_IDX,
    SS_SIM_SHFL_UP,
    SS_SIM_SHFL_DOWN,
    SS_SIM_SHFL_XOR,
    SS_SIM_BALLOT,
    SS_SIM_ANY,
    SS_SIM_ALL,
};

#define ss_sim_syncthreads SS_SIM_ABI(ss_sim_syncthreads)
#define ss_sim_warp SS_SIM_ABI(ss_sim_warp)
extern "C" void ss_sim_syncthreads(void);
// One warp-level rendezvous: op is an ss_sim_warp_op; value is the lane's 32-bit
// payload (shuffle value or vote predicate); arg is srcLane/delta/laneMask.
extern "C" uint32_t ss_sim_warp(unsigned int mask, int op, uint32_t value, int arg, int width);

// The "memory" clobbers stop g++ from keeping shared or global memory in registers
// across a barrier even where it can prove the opaque call cannot reach the variable
// (a function-local __shared__ array whose address never escapes).
#define SS_SIM_FENCE() __asm__ __volatile__("" ::: "memory")

static inline void __syncthreads() {
    SS_SIM_FENCE();
    ss_sim_syncthreads();
    SS_SIM_FENCE();
}
static inline void __syncwarp(unsigned int mask = 0xffffffffu) {
    SS_SIM_FENCE();
    ss_sim_warp(mask, SS_SIM_SYNCWARP, 0, 0, 32);
    SS_SIM_FENCE();
}
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

static inline uint32_t ss_sim_warp32_(unsigned int mask, int op, uint32_t v, int arg, int width) {
    SS_SIM_FENCE();
    uint32_t r = ss_sim_warp(mask, op, v, arg, width);
    SS_SIM_FENCE();
    return r;
}

// Shuffles of any 4- or 8-byte type; 8-byte values take two rendezvous, as on the GPU.
template <class T>
static inline T ss_sim_shfl_(unsigned int mask, T v, int op, int arg, int width) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "shuffle of a 4- or 8-byte type");
    if constexpr (sizeof(T) == 4) {
        uint32_t u;
        memcpy(&u, &v, 4);
        u = ss_sim_warp32_(mask, op, u, arg, width);
        T r;
        memcpy(&r, &u, 4);
        return r;
    } else {
        uint64_t u;
        memcpy(&u, &v, 8);
        uint64_t lo = ss_sim_warp32_(mask, op, (uint32_t)u, arg, width);
        uint64_t hi = ss_sim_warp32_(mask, op, (uint32_t)(u >> 32), arg, width);
        u = lo | (hi << 32);
        T r;
        memcpy(&r, &u, 8);
        return r;
    }
}

// Plain overloads (not a template) so argument conversions resolve as under nvcc.
#define SS_SIM_SHFL_OVERLOADS(T)                                                              \
    static inline T __shfl_sync(unsigned int m, T v, int src, int w = 32) {                   \
        return ss_sim_shfl_<T>(m, v, SS_SIM_SHFL_IDX, src, w);                                \
    }                                                                                         \
    static inline T __shfl_up_sync(unsigned int m, T v, unsigned int d, int w = 32) {         \
        return ss_sim_shfl_<T>(m, v, SS_SIM_SHFL_UP, (int)d, w);                              \
    }                                                                                         \
    static inline T __shfl_down_sync(unsigned int m, T v, unsigned int d, int w = 32) {       \
        return ss_sim_shfl_<T>(m, v, SS_SIM_SHFL_DOWN, (int)d, w);                            \
    }                                                                                         \
    static inline T __shfl_xor_sync(unsigned int m, T v, int lm, int w = 32) {                \
        return ss_sim_shfl_<T>(m, v, SS_SIM_SHFL_XOR, lm, w);                                 \
    }
SS_SIM_SHFL_OVERLOADS(int)
SS_SIM_SHFL_OVERLOADS(unsigned int)
SS_SIM_SHFL_OVERLOADS(long)
SS_SIM_SHFL_OVERLOADS(unsigned long)
SS_SIM_SHFL_OVERLOADS(long long)
SS_SIM_SHFL_OVERLOADS(unsigned long long)
SS_SIM_SHFL_OVERLOADS(float)
SS_SIM_SHFL_OVERLOADS(double)
#undef SS_SIM_SHFL_OVERLOADS

static inline unsigned int __ballot_sync(unsigned int mask, int pred) {
    return ss_sim_warp32_(mask, SS_SIM_BALLOT, pred != 0, 0, 32);
}
static inline int __any_sync(unsigned int mask, int pred) {
    return (int)ss_sim_warp32_(mask, SS_SIM_ANY, pred != 0, 0, 32);
}
static inline int __all_sync(unsigned int mask, int pred) {
    return (int)ss_sim_warp32_(mask, SS_SIM_ALL, pred != 0, 0, 32);
}

// ---------------------------------------------------------------------------------
// Bit casts, float intrinsics, integer intrinsics
// ---------------------------------------------------------------------------------
static inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned int u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline int __float_as_int(float f) {
    int i;
    memcpy(&i, &f, 4);
    return i;
}
static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}

// Explicitly rounded operations: never contracted on either side.
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }

static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
static inline int __clzll(long long x) {
    return x == 0 ? 64 : __builtin_clzll((unsigned long long)x);
}
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned int __brev(unsigned int x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}

// CUDA's integer min/max overloads (device code has them without any include).
#define SS_SIM_MINMAX(T)                                        \
    static inline T min(T a, T b) { return b < a ? b : a; }     \
    static inline T max(T a, T b) { return a < b ? b : a; }
SS_SIM_MINMAX(int)
SS_SIM_MINMAX(unsigned int)
SS_SIM_MINMAX(long)
SS_SIM_MINMAX(unsigned long)
SS_SIM_MINMAX(long long)
SS_SIM_MINMAX(unsigned long long)
#undef SS_SIM_MINMAX
// Mixed signedness compares as unsigned, like CUDA's overloads.
static inline unsigned int min(int a, unsigned int b) { return min((unsigned int)a, b); }
static inline unsigned int min(unsigned int a, int b) { return min(a, (unsigned int)b); }
static inline unsigned int max(int a, unsigned int b) { return max((unsigned int)a, b); }
static inline unsigned int max(unsigned int a, int b) { return max(a, (unsigned int)b); }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

template <class T>
static inline T __ldg(const T* p) {
    return *p;
}

// ---------------------------------------------------------------------------------
// Integer atomics. Global memory really is shared between the worker threads, so
// these are real atomics. Relaxed, like CUDA's. No float atomics: the project forbids
// them (their order, and so their bits, depends on scheduling).
// ---------------------------------------------------------------------------------
#define SS_SIM_ATOMIC_RMW(T)                                                                  \
    static inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }   \
    static inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicCAS(T* p, T expected, T desired) {                                  \
        __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED,           \
                                    __ATOMIC_RELAXED);                                        \
        return expected;                                                                      \
    }                                                                                         \
    static inline T atomicMax(T* p, T v) {                                                    \
        T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                         \
        while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED,    \
                                                       __ATOMIC_RELAXED)) {                   \
        }                                                                                     \
        return old;                                                                           \
    }                                                                                         \
    static inline T atomicMin(T* p, T v) {                                                    \
        T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                         \
        while (v < old && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED,    \
                                                       __ATOMIC_RELAXED)) {                   \
        }                                                                                     \
        return old;                                                                           \
    }
SS_SIM_ATOMIC_RMW(unsigned int)
SS_SIM_ATOMIC_RMW(int)
SS_SIM_ATOMIC_RMW(unsigned long long)
#undef SS_SIM_ATOMIC_RMW

// ---------------------------------------------------------------------------------
// Kernel export
// ---------------------------------------------------------------------------------
namespace shoestring_sim {
// Parameter types come from the kernel's own function type, so a wrapper never
// restates a signature. Top-level const/__restrict are not part of that type.
template <class... P, size_t... I>
inline void invoke(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
    (void)args;
    kernel(*static_cast<std::remove_reference_t<P>*>(args[I])...);
}
template <class... P>
inline void invoke(void (*kernel)(P...), void** args) {
    invoke(kernel, args, std::index_sequence_for<P...>{});
}
}  // namespace shoestring_sim

// Place after the kernel's definition, in the same translation unit.
#define SS_SIM_EXPORT(name)                                          \
    extern "C" void shoestring_sim_entry_##name(void** args);        \
    extern "C" void shoestring_sim_entry_##name(void** args) {       \
        ::shoestring_sim::invoke(&name, args);                       \
    }

#endif  // SHOESTRING_SIM_H
