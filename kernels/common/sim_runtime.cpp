// sim_runtime.cpp: the SIMT simulator behind Device::Sim.
//
// A launch runs its blocks on `workers` host threads, assigned statically (worker w
// runs blocks w, w+W, ... in order). Within a block every CUDA thread is a fiber with
// its own pooled stack, all on the worker's thread, driven by a scheduler loop on the
// worker's own stack. The scheduler runs "rounds": each fiber that can run is resumed
// once, in increasing linear-id order or in a seeded permutation, and runs until it
// blocks at a barrier or warp operation or returns. Fibers released during a round
// run in the next one. When a round finds nothing to run and some fibers have not
// returned, the block is deadlocked. Everything about a block happens on one host
// thread, so its results depend only on (kernel, inputs, seed), never on timing.
//
// Build: g++ -std=c++17 -O2 -ffp-contract=off -fno-fast-math -fPIC -pthread; for ASan
// add -fsanitize=address -DSHOESTRING_SIM_ASAN to this file and to every kernel file.
#include "sim_api.h"
#include "sim.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

// Fiber switches are announced to ASan so that its stack traces and stack checks
// follow the fibers (a no-op in the normal build).
#if defined(SHOESTRING_SIM_ASAN) && defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
static inline void asan_start(void** fake, const void* bottom, size_t size) {
    __sanitizer_start_switch_fiber(fake, bottom, size);
}
static inline void asan_finish(void* fake, const void** bottom, size_t* size) {
    __sanitizer_finish_switch_fiber(fake, bottom, size);
}
static inline void asan_unpoison(void* p, size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
#else
static inline void asan_start(void**, const void*, size_t) {}
static inline void asan_finish(void*, const void**, size_t*) {}
static inline void asan_unpoison(void*, size_t) {}
#endif

#if !defined(__x86_64__) || defined(SS_SIM_FORCE_UCONTEXT)
#include <ucontext.h>
#endif

extern "C" {
__thread const ss_sim_kctx* ss_sim_current_ = nullptr;
}

namespace {

// ---- Context switch ------------------------------------------------------------------
#if defined(__x86_64__) && !defined(SS_SIM_FORCE_UCONTEXT)
// Saves the callee-saved registers plus MXCSR and the x87 control word on the
// current stack, stores the stack pointer in *save_sp and resumes the context whose
// stack pointer is load_sp. glibc's swapcontext also saves the signal mask with a
// system call, which made it about 15x slower than this.
// Not compatible with CET shadow stacks (the first `ret` into a fiber lands on the
// trampoline); glibc does not enable them by default.
extern "C" void ss_sim_ctx_switch(void** save_sp, void* load_sp)
    __attribute__((visibility("hidden")));
extern "C" void ss_sim_fiber_trampoline(void) __attribute__((visibility("hidden")));
__asm__(R"(
    .pushsection .text
    .p2align 4
    .globl ss_sim_ctx_switch
    .hidden ss_sim_ctx_switch
    .type ss_sim_ctx_switch,@function
ss_sim_ctx_switch:
    pushq %rbp; pushq %rbx; pushq %r12; pushq %r13; pushq %r14; pushq %r15
    subq $16, %rsp; stmxcsr 8(%rsp); fnstcw (%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    fldcw (%rsp); ldmxcsr 8(%rsp); addq $16, %rsp
    popq %r15; popq %r14; popq %r13; popq %r12; popq %rbx; popq %rbp
    ret
    .size ss_sim_ctx_switch,.-ss_sim_ctx_switch

    .p2align 4
    .globl ss_sim_fiber_trampoline
    .hidden ss_sim_fiber_trampoline
    .type ss_sim_fiber_trampoline,@function
ss_sim_fiber_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size ss_sim_fiber_trampoline,.-ss_sim_fiber_trampoline
    .popsection
)");

struct Ctx {
    void* sp = nullptr;
};
inline void ctx_switch(Ctx& from, Ctx& to) { ss_sim_ctx_switch(&from.sp, to.sp); }

// Lays out a frame that ss_sim_ctx_switch "returns" into: the trampoline then calls
// fn(arg) on a 16-byte aligned stack. FP state starts at the IEEE defaults (round to
// nearest, no flush-to-zero, all exceptions masked) whatever the host thread uses:
// the kernels' contract is -ftz=false.
void ctx_init(Ctx& c, unsigned char* /*base*/, unsigned char* top, void (*fn)(void*), void* arg) {
    uintptr_t a = (reinterpret_cast<uintptr_t>(top) & ~uintptr_t(15)) - 16;
    uint64_t* sp = reinterpret_cast<uint64_t*>(a);
    *--sp = reinterpret_cast<uint64_t>(&ss_sim_fiber_trampoline);
    *--sp = 0;                                     // rbp
    *--sp = 0;                                     // rbx
    *--sp = reinterpret_cast<uint64_t>(arg);       // r12
    *--sp = reinterpret_cast<uint64_t>(fn);        // r13
    *--sp = 0;                                     // r14
    *--sp = 0;                                     // r15
    *--sp = 0x1f80;                                // MXCSR
    *--sp = 0x037f;                                // x87 control word
    c.sp = sp;
}
#else
// Portable fallback: correct, much slower.
struct Ctx {
    ucontext_t uc;
};
inline void ctx_switch(Ctx& from, Ctx& to) { swapcontext(&from.uc, &to.uc); }
thread_local void (*tl_start_fn)(void*);
thread_local void* tl_start_arg;
void uc_start() { tl_start_fn(tl_start_arg); }
// makecontext only passes ints, so the argument goes through thread-locals, set
// right before the first switch into the fiber (see Worker::resume).
void ctx_init(Ctx& c, unsigned char* base, unsigned char* top, void (*fn)(void*), void* arg);
#endif

// ---------------------------------------------------------------------------------
// Stack pool: a guarded stack costs two memory mappings, so stacks are made once and
// reused by every block and launch in the process.
// ---------------------------------------------------------------------------------
#ifdef SHOESTRING_SIM_ASAN
constexpr size_t kStackSize = 256 * 1024;  // ASan frames carry redzones
#else
constexpr size_t kStackSize = 64 * 1024;
#endif
constexpr size_t kStackTopDirty = 16 * 1024;  // see Worker::run_block

struct StackPool {
    std::mutex mu;
    std::vector<unsigned char*> free;  // lowest usable address of each stack
    size_t guard = 0;

    bool acquire(size_t n, std::vector<unsigned char*>& out) {
        {
            std::lock_guard<std::mutex> lock(mu);
            if (guard == 0) guard = (size_t)sysconf(_SC_PAGESIZE);
            while (out.size() < n && !free.empty()) {
                out.push_back(free.back());
                free.pop_back();
            }
        }
        while (out.size() < n) {
            void* p = mmap(nullptr, guard + kStackSize, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
            if (p == MAP_FAILED) return false;
            if (mprotect(p, guard, PROT_NONE) != 0) {
                munmap(p, guard + kStackSize);
                return false;
            }
            out.push_back(static_cast<unsigned char*>(p) + guard);
        }
        return true;
    }
    void release(std::vector<unsigned char*>& stacks) {
        std::lock_guard<std::mutex> lock(mu);
        free.insert(free.end(), stacks.begin(), stacks.end());
        stacks.clear();
    }
};
StackPool& stack_pool() {
    static StackPool* pool = new StackPool;  // never destroyed: launches may outlive exit
    return *pool;
}

#ifdef SHOESTRING_SIM_ASAN
// __shared__ variables are plain statics in this build, shared by the whole process.
std::mutex g_asan_launch_mu;
#endif

// ---- Launch, worker, fiber -----------------------------------------------------------
uint64_t splitmix64(uint64_t& s) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct Launch {
    shoestring_sim_entry_fn entry;
    void** args;
    const char* name;
    shoestring_sim_dim3 grid, block;
    uint64_t nblocks;
    uint32_t nthreads;
    uint64_t seed;
    uint32_t dyn_bytes;
    uint32_t nworkers;
    // Blocks at or above the lowest failed block are skipped; blocks below it still
    // run, so the reported error is the lowest failing block's whatever the timing.
    std::atomic<uint64_t> first_err_block{UINT64_MAX};
    std::mutex err_mu;
    std::string err;
    int code = 0;

    void report(uint64_t block, int c, const std::string& msg) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (block < first_err_block.load(std::memory_order_relaxed) || code == 0) {
            first_err_block.store(block, std::memory_order_relaxed);
            err = msg;
            code = c;
        }
    }
};

enum FiberState : uint8_t { kRunnable, kAtBarrier, kAtWarp, kDone };

struct Worker;

struct Fiber {
    Ctx ctx;
    ss_sim_kctx k;
    Worker* worker;
    unsigned char* stack;  // lowest usable address
    uint32_t lin;
    FiberState state;
    // The warp operation this fiber waits in.
    int op;
    uint32_t mask, value, result;
    int arg, width;
    void* fake_stack;  // ASan's fake stack of this fiber
};

struct WarpGroup {  // lanes of one warp meeting at one warp operation
    uint32_t mask, arrived;
    int op;
};
struct WarpState {
    uint32_t exited;
    uint32_t ngroups;
    WarpGroup groups[32];  // masks of concurrent groups are disjoint: at most 32
};

const char* op_name(int op) {  // indexed by ss_sim_warp_op
    static const char* const names[] = {"__syncwarp",      "__shfl_sync",     "__shfl_up_sync",
                                        "__shfl_down_sync", "__shfl_xor_sync", "__ballot_sync",
                                        "__any_sync",       "__all_sync"};
    return op >= 0 && op <= SS_SIM_ALL ? names[op] : "warp operation";
}

thread_local Worker* tl_worker = nullptr;

void fiber_main(void* arg);

struct Worker {
    Launch* L = nullptr;
    uint32_t id = 0;
    Ctx sched;
    std::vector<Fiber> fibers;
    std::vector<unsigned char*> stacks;
    std::vector<WarpState> warps;
    std::vector<uint32_t> runnable, next;
    unsigned char* dyn_smem = nullptr;
    Fiber* cur = nullptr;
    uint64_t block = 0, round = 0;
    uint32_t n = 0, bar_arrived = 0, done = 0;
    bool failed = false, stacks_dirty = true;
    std::string err;
    void* sched_fake_stack = nullptr;  // ASan bookkeeping of the scheduler's stack
    const void* sched_stack_bottom = nullptr;
    size_t sched_stack_size = 0;

    // --- called on the scheduler's stack -------------------------------------
    void resume(Fiber& f) {
        cur = &f;
        ss_sim_current_ = &f.k;
        asan_start(&sched_fake_stack, f.stack, kStackSize);
#if !defined(__x86_64__) || defined(SS_SIM_FORCE_UCONTEXT)
        tl_start_fn = fiber_main;
        tl_start_arg = &f;
#endif
        ctx_switch(sched, f.ctx);
        asan_finish(sched_fake_stack, nullptr, nullptr);
    }

    // --- called on a fiber's stack --------------------------------------------
    void yield(Fiber& f) {
        asan_start(&f.fake_stack, sched_stack_bottom, sched_stack_size);
        ctx_switch(f.ctx, sched);
        asan_finish(f.fake_stack, nullptr, nullptr);
    }

    std::string where(const Fiber& f) const {
        char buf[200];
        snprintf(buf, sizeof buf, "kernel %s: block (%u,%u,%u), thread (%u,%u,%u) [warp %u lane %u]",
                 L->name, f.k.block_idx.x, f.k.block_idx.y, f.k.block_idx.z, f.k.thread_idx.x,
                 f.k.thread_idx.y, f.k.thread_idx.z, f.lin / 32, f.lin % 32);
        return buf;
    }

    // Records a kernel fault and leaves the fiber for good: the scheduler abandons the
    // block, and the fibers' stacks are simply reused (kernels are C-like code with
    // nothing to destroy). No heap-owning local may be alive here, it would leak.
    [[noreturn, gnu::format(printf, 3, 4)]] void fail(Fiber& f, const char* fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        failed = true;
        err = where(f);
        err += ": ";
        err += buf;
        yield(f);
        abort();  // never resumed
    }

    void release_barrier() {
        for (uint32_t i = 0; i < n; ++i)
            if (fibers[i].state == kAtBarrier) fibers[i].state = kRunnable, next.push_back(i);
        bar_arrived = 0;
    }

    void syncthreads(Fiber& f) {
        f.state = kAtBarrier;
        if (++bar_arrived + done == n) release_barrier();
        yield(f);
    }

    uint32_t lanes_valid(uint32_t warp) const {
        uint32_t lanes = std::min<uint32_t>(32, n - warp * 32);
        return lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    }

    uint32_t warp_op(Fiber& f, uint32_t mask, int op, uint32_t value, int arg, int width) {
        const uint32_t warp = f.lin / 32, lane = f.lin % 32, bit = 1u << lane;
        WarpState& ws = warps[warp];
        const char* name = op_name(op);
        if (!(mask & bit))
            fail(f, "%s(mask 0x%08x) called by lane %u, which is not in the mask", name, mask, lane);
        if (mask & ~lanes_valid(warp))
            fail(f, "%s(mask 0x%08x) names lanes 0x%08x that do not exist in warp %u of a "
                    "%u-thread block", name, mask, mask & ~lanes_valid(warp), warp, n);
        if (mask & ws.exited)
            fail(f, "%s(mask 0x%08x) names lanes 0x%08x of warp %u that have already exited",
                 name, mask, mask & ws.exited, warp);
        if (op >= SS_SIM_SHFL_IDX && op <= SS_SIM_SHFL_XOR &&
            (width < 1 || width > 32 || (width & (width - 1)) != 0))
            fail(f, "%s width %d is not a power of two in 1..32", name, width);
        WarpGroup* g = nullptr;
        for (uint32_t i = 0; i < ws.ngroups; ++i) {
            WarpGroup& h = ws.groups[i];
            if (!(h.mask & mask)) continue;
            if (h.mask != mask || h.op != op)
                fail(f, "%s(mask 0x%08x) meets lanes 0x%08x of warp %u waiting in %s(mask 0x%08x)",
                     name, mask, h.arrived, warp, op_name(h.op), h.mask);
            g = &h;
        }
        if (!g) {
            g = &ws.groups[ws.ngroups++];
            *g = WarpGroup{mask, 0, op};
        }
        f.state = kAtWarp;
        f.op = op, f.mask = mask, f.value = value, f.arg = arg, f.width = width;
        g->arrived |= bit;
        if (g->arrived == mask) {
            complete(warp, *g);
            *g = ws.groups[--ws.ngroups];
        }
        yield(f);
        return f.result;
    }

    // Every lane of the group has deposited its value; compute all results now, so no
    // later warp operation can overwrite a value before its readers have it.
    void complete(uint32_t warp, const WarpGroup& g) {
        Fiber* lanes = &fibers[warp * 32];
        uint32_t ballot = 0;
        for (uint32_t m = g.mask; m; m &= m - 1) {
            uint32_t j = (uint32_t)__builtin_ctz(m);
            if (lanes[j].value) ballot |= 1u << j;
        }
        for (uint32_t m = g.mask; m; m &= m - 1) {
            uint32_t j = (uint32_t)__builtin_ctz(m);
            Fiber& f = lanes[j];
            switch (g.op) {
                case SS_SIM_SYNCWARP: f.result = 0; break;
                case SS_SIM_BALLOT: f.result = ballot; break;
                case SS_SIM_ANY: f.result = ballot != 0; break;
                case SS_SIM_ALL: f.result = ballot == g.mask; break;
                default: f.result = shuffle(lanes, g, j); break;
            }
            f.state = kRunnable;
            next.push_back(f.lin);
        }
    }

    // PTX shfl.sync semantics with c = ((32 - width) << 8) | (up ? 0 : 31).
    uint32_t shuffle(const Fiber* lanes, const WarpGroup& g, uint32_t lane) {
        const Fiber& f = lanes[lane];
        const int seg = 32 - f.width, b = f.arg & 31;
        const int minl = (int)lane & seg;
        const int maxl = f.op == SS_SIM_SHFL_UP ? minl : (minl | (31 & ~seg));
        int j = (int)lane;
        bool ok = true;
        switch (f.op) {
            case SS_SIM_SHFL_UP: j = (int)lane - b; ok = j >= maxl; break;
            case SS_SIM_SHFL_DOWN: j = (int)lane + b; ok = j <= maxl; break;
            case SS_SIM_SHFL_XOR: j = (int)lane ^ b; ok = j <= maxl; break;
            default: j = minl | (b & ~seg); ok = j <= maxl; break;
        }
        if (!ok) return f.value;
        if (g.mask & (1u << j)) return lanes[j].value;
        // The source lane is not in the mask: undefined on the GPU. In-order runs keep
        // the lane's own value; shuffled runs return seeded garbage so that a kernel
        // that uses it differs between seeds.
        if (L->seed == 0) return f.value;
        uint64_t s = L->seed ^ (block * 0x9e3779b97f4a7c15ull) ^ (round << 20) ^ f.lin;
        return (uint32_t)splitmix64(s);
    }

    void exit_fiber(Fiber& f) {
        const uint32_t warp = f.lin / 32, bit = 1u << (f.lin % 32);
        WarpState& ws = warps[warp];
        for (uint32_t i = 0; i < ws.ngroups; ++i) {
            if (ws.groups[i].mask & bit)
                fail(f, "returned while lanes 0x%08x of warp %u wait for it in %s(mask 0x%08x)",
                     ws.groups[i].arrived, warp, op_name(ws.groups[i].op), ws.groups[i].mask);
        }
        f.state = kDone, ws.exited |= bit, ++done;
        if (bar_arrived && bar_arrived + done == n) release_barrier();
        asan_start(nullptr, sched_stack_bottom, sched_stack_size);  // frees its fake stack
        ctx_switch(f.ctx, sched);
        abort();  // a finished fiber is never resumed
    }

    // --- the scheduler --------------------------------------------------------
    void shuffle_order() {
        uint64_t s = L->seed;
        s = splitmix64(s) ^ block;
        s = splitmix64(s) ^ round;
        splitmix64(s);
        for (size_t i = runnable.size(); i > 1; --i) {
            size_t k = (size_t)(((unsigned __int128)splitmix64(s) * i) >> 64);
            std::swap(runnable[i - 1], runnable[k]);
        }
    }

    bool run_block(uint64_t b) {
        const Launch& l = *L;
        block = b, round = 0, bar_arrived = done = 0, failed = false;
        uint3 bi;
        bi.x = (uint32_t)(b % l.grid.x);
        bi.y = (uint32_t)((b / l.grid.x) % l.grid.y);
        bi.z = (uint32_t)(b / ((uint64_t)l.grid.x * l.grid.y));
        for (WarpState& ws : warps) ws.exited = ws.ngroups = 0;
        runnable.clear();
        for (uint32_t i = 0; i < n; ++i) {
            Fiber& f = fibers[i];
            f.k.thread_idx.x = i % l.block.x;
            f.k.thread_idx.y = (i / l.block.x) % l.block.y;
            f.k.thread_idx.z = i / (l.block.x * l.block.y);
            f.k.block_idx = bi;
            f.k.block_dim = dim3(l.block.x, l.block.y, l.block.z);
            f.k.grid_dim = dim3(l.grid.x, l.grid.y, l.grid.z);
            f.k.dyn_smem = dyn_smem;
            f.state = kRunnable;
            // Frames left mid-call keep their ASan poison: after a normal exit only the
            // top ones (fiber_main never returns); after a fault or in a stack from the
            // pool, anything.
            if (stacks_dirty) asan_unpoison(f.stack, kStackSize);
            else asan_unpoison(f.stack + kStackSize - kStackTopDirty, kStackTopDirty);
            f.fake_stack = nullptr;
            // Stagger the stack tops by cache lines: stacks are a multiple of the page
            // size apart, and equal page offsets would all fall in the same L1 sets.
            ctx_init(f.ctx, f.stack, f.stack + kStackSize - (i % 64) * 64, fiber_main, &f);
            runnable.push_back(i);
        }
        stacks_dirty = false;
        while (!runnable.empty()) {
            if (l.seed != 0) shuffle_order();
            next.clear();
            for (uint32_t i : runnable) {
                resume(fibers[i]);
                if (failed) return !(stacks_dirty = true);
            }
            ++round;
            std::sort(next.begin(), next.end());
            runnable.swap(next);
        }
        if (done != n) {
            deadlock_message();
            return !(stacks_dirty = true);
        }
        return true;
    }

    void deadlock_message() {
        char buf[256];
        snprintf(buf, sizeof buf,
                 "kernel %s: block (%u,%u,%u): deadlock, no thread can proceed (%u of %u "
                 "threads exited)",
                 L->name, fibers[0].k.block_idx.x, fibers[0].k.block_idx.y,
                 fibers[0].k.block_idx.z, done, n);
        err = buf;
        // Linear ids waiting at __syncthreads, as ranges.
        std::string ranges;
        uint32_t count = 0, shown = 0;
        for (uint32_t i = 0, j; i < n; i = j + 1) {
            for (j = i; j < n && fibers[j].state != kAtBarrier; ++j) {}
            if (j == n) break;
            for (i = j; j + 1 < n && fibers[j + 1].state == kAtBarrier; ++j) {}
            count += j - i + 1;
            if (shown++ == 8) ranges += ",...";
            if (shown > 8) continue;
            snprintf(buf, sizeof buf, j > i ? "%s%u-%u" : "%s%u", ranges.empty() ? "" : ",", i, j);
            ranges += buf;
        }
        if (count) {
            snprintf(buf, sizeof buf, "; %u threads wait at __syncthreads() (linear ids %s)", count,
                     ranges.c_str());
            err += buf;
        }
        uint32_t groups = 0;
        for (uint32_t w = 0; w < warps.size(); ++w) {
            for (uint32_t i = 0; i < warps[w].ngroups; ++i) {
                const WarpGroup& g = warps[w].groups[i];
                if (groups++ >= 8) continue;
                snprintf(buf, sizeof buf,
                         "; warp %u lanes 0x%08x wait in %s(mask 0x%08x) for lanes 0x%08x", w,
                         g.arrived, op_name(g.op), g.mask, g.mask & ~g.arrived);
                err += buf;
            }
        }
        if (groups > 8) err += "; ...";
    }

    // Runs this worker's share of the grid.
    void run() {
        Launch& l = *L;
        n = l.nthreads;
        fibers.assign(n, Fiber{});
        warps.assign((n + 31) / 32, WarpState{});
        if (!stack_pool().acquire(n, stacks)) {
            l.report(0, 3, "simulator: cannot map fiber stacks (mmap failed)");
            stack_pool().release(stacks);
            return;
        }
        for (uint32_t i = 0; i < n; ++i) fibers[i].worker = this, fibers[i].stack = stacks[i], fibers[i].lin = i;
        // Exactly the requested size, so ASan sees overflows of dynamic shared memory.
        dyn_smem = static_cast<unsigned char*>(
            ::operator new(std::max<size_t>(l.dyn_bytes, 1), std::align_val_t(16)));
        tl_worker = this;
        for (uint64_t b = id; b < l.nblocks; b += l.nworkers) {
            if (b >= l.first_err_block.load(std::memory_order_relaxed)) break;
            if (!run_block(b)) {
                l.report(b, 2, err);
                break;
            }
        }
        tl_worker = nullptr, ss_sim_current_ = nullptr;
        ::operator delete(dyn_smem, std::align_val_t(16));
        stack_pool().release(stacks);
    }
};

void fiber_main(void* arg) {
    Fiber& f = *static_cast<Fiber*>(arg);
    Worker& w = *f.worker;
    asan_finish(nullptr, &w.sched_stack_bottom, &w.sched_stack_size);
    bool threw = false;
    try {
        w.L->entry(w.L->args);
    } catch (...) {
        threw = true;  // fail outside the handler: an abandoned handler never ends the catch
    }
    if (threw) w.fail(f, "an exception escaped the kernel");
    w.exit_fiber(f);
}

#if !defined(__x86_64__) || defined(SS_SIM_FORCE_UCONTEXT)
void ctx_init(Ctx& c, unsigned char* base, unsigned char* top, void (*)(void*), void*) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = base;
    c.uc.uc_stack.ss_size = (size_t)(top - base);
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, uc_start, 0);
}
#endif

void set_err(char* err, size_t err_len, const std::string& msg) {
    if (!err || err_len == 0) return;
    size_t k = std::min(msg.size(), err_len - 1);
    memcpy(err, msg.data(), k);
    err[k] = '\0';
}

// The same texts as the Rust launcher's checks; keep them identical.
void check_limits(shoestring_sim_dim3 g, shoestring_sim_dim3 b, uint32_t dyn, uint32_t max_dyn,
                  std::string& msg) {
    char buf[256];
    uint64_t threads = (uint64_t)b.x * b.y * b.z;
    if (threads > 1024) {
        snprintf(buf, sizeof buf,
                 "block of %ux%ux%u = %llu threads exceeds the limit of 1024 threads per block",
                 b.x, b.y, b.z, (unsigned long long)threads);
    } else if (b.x > 1024 || b.y > 1024 || b.z > 64) {
        snprintf(buf, sizeof buf, "block dimension %ux%ux%u exceeds the per-axis limit 1024x1024x64",
                 b.x, b.y, b.z);
    } else if (g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
        snprintf(buf, sizeof buf,
                 "grid dimension %ux%ux%u exceeds the limit 2147483647x65535x65535", g.x, g.y, g.z);
    } else if (g.x == 0 || g.y == 0 || g.z == 0 || b.x == 0 || b.y == 0 || b.z == 0) {
        snprintf(buf, sizeof buf,
                 "launch dimension %ux%ux%u blocks of %ux%ux%u threads has a zero extent", g.x, g.y,
                 g.z, b.x, b.y, b.z);
    } else if (dyn > max_dyn) {
        snprintf(buf, sizeof buf, "dynamic shared memory of %u bytes exceeds the limit of %u bytes",
                 dyn, max_dyn);
    } else {
        return;
    }
    msg = buf;
}

uint32_t default_workers() {
    if (const char* env = getenv("SHOESTRING_SIM_WORKERS")) {
        long v = strtol(env, nullptr, 10);
        if (v > 0) return (uint32_t)std::min<long>(v, 1024);
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1u : hw;
}

}  // namespace

// ---- Kernel-facing entry points (declared in sim.h) ----------------------------------
extern "C" void ss_sim_syncthreads(void) {
    Worker* w = tl_worker;
    w->syncthreads(*w->cur);
}

extern "C" uint32_t ss_sim_warp(unsigned int mask, int op, uint32_t value, int arg, int width) {
    Worker* w = tl_worker;
    return w->warp_op(*w->cur, mask, op, value, arg, width);
}

// ---- C API ---------------------------------------------------------------------------
#ifdef SHOESTRING_SIM_ASAN
extern "C" int shoestring_sim_asan(void) { return 1; }
#else
extern "C" int shoestring_sim_asan(void) { return 0; }
#endif

extern "C" int shoestring_sim_launch(shoestring_sim_entry_fn entry, const char* kernel_name,
                                     shoestring_sim_dim3 grid, shoestring_sim_dim3 block,
                                     void** args, const shoestring_sim_launch_opts* opts,
                                     char* err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    shoestring_sim_launch_opts o{0, 0, 0, 49152};
    if (opts) o = *opts;
    if (o.max_dynamic_shared_bytes == 0) o.max_dynamic_shared_bytes = 49152;
    std::string msg;
    check_limits(grid, block, o.dynamic_shared_bytes, o.max_dynamic_shared_bytes, msg);
    if (!entry) msg = "simulator: null kernel entry point";
    if (tl_worker) msg = "simulator: a kernel cannot launch another kernel";
    if (!msg.empty()) {
        set_err(err, err_len, msg);
        return 1;
    }

    Launch l;
    l.entry = entry, l.args = args, l.name = kernel_name ? kernel_name : "?";
    l.grid = grid, l.block = block, l.seed = o.shuffle_seed, l.dyn_bytes = o.dynamic_shared_bytes;
    l.nblocks = (uint64_t)grid.x * grid.y * grid.z;
    l.nthreads = block.x * block.y * block.z;
    uint32_t w = o.workers ? o.workers : default_workers();
#ifdef SHOESTRING_SIM_ASAN
    w = 1;
    std::lock_guard<std::mutex> asan_lock(g_asan_launch_mu);
#endif
    l.nworkers = (uint32_t)std::min<uint64_t>(w, l.nblocks);

    std::vector<Worker> workers(l.nworkers);
    for (uint32_t i = 0; i < l.nworkers; ++i) workers[i].L = &l, workers[i].id = i;
    // The calling thread is worker 0: a one-worker launch starts no thread at all.
    std::vector<std::thread> threads;
    try {
        for (uint32_t i = 1; i < l.nworkers; ++i) threads.emplace_back([&workers, i] { workers[i].run(); });
    } catch (const std::exception&) {
        l.report(0, 3, "simulator: cannot start worker threads");
    }
    if (threads.size() + 1 == l.nworkers) workers[0].run();
    for (std::thread& t : threads) t.join();
    if (l.code != 0) set_err(err, err_len, l.err);
    return l.code;
}
