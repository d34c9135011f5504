/* The B = 1 gate-row split across two cores, as a probe (bench/gate_split.py documents it).
 *
 * A T-step chain of the per-step work at B = 1:
 *     z_t (GH) = W_hh (GH x H) h_{t-1} (H) + b (GH)        one GEMV
 *     RNN  (G = 1): h_t = tanh(z_t)
 *     LSTM (G = 4): i, f, g, o = s(z_i), s(z_f), tanh(z_g), s(z_o)   (s: the logistic)
 *                   c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)
 * h and c are kept as (T+1) x H histories (row 0 the initial state), as a forward kernel
 * keeps them for backward; so no step overwrites what another step reads, and writing a
 * row twice with the same inputs gives the same bits.
 *
 * A "block" of hidden units [u0, u0 + hu) owns the G*hu rows of W_hh that feed them: in the
 * split's row order (bench/gate_split.py's split_rows) the rows of thread j are
 * [i_j; f_j; g_j; o_j] for j's half of the units, contiguous, so each thread makes one GEMV
 * over its G*H/2 rows and its element-wise pass needs nothing from the other thread; the
 * only exchange is h_t, behind one barrier per step.  The whole form is the same block with
 * u0 = 0, hu = H on PyTorch's row order.
 */
#ifndef FASTBPTT_BENCH_GATE_SPLIT_H
#define FASTBPTT_BENCH_GATE_SPLIT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void gs_pause(void) { _mm_pause(); }
#else
static inline void gs_pause(void) { }
#endif

enum {
    GS_WHOLE = 0,      /* one thread, one GEMV over all GH rows a step */
    GS_HALVES = 1,     /* one thread, the split's two blocks one after the other */
    GS_SPLIT = 2,      /* two threads, a spinning barrier on an atomic counter a step */
    GS_FALLBACK = 3,   /* two threads, spin with a budget, then the rest on one thread */
    GS_BARRIER = 4,    /* two threads, the barrier alone (empty steps) */
    GS_STEAL = 5       /* the fallback without waiting on a step the worker has begun */
};

#define GS_ABANDONED (-1L)

static inline double gs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

/* Pin the calling thread to one CPU (cpu >= 0) or leave its mask alone (cpu < 0). */
static inline void gs_pin_self(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* A sense-reversing barrier for two threads: the last to arrive resets the counter and
 * flips the sense; the other spins (with a pause) until it sees the flip or, with futex
 * set, sleeps in the kernel on the sense word until the last one wakes it (the form
 * "split futex": what a thread costs that does not burn its core while it waits). */
typedef struct {
    atomic_int count;
    atomic_int sense;
    int futex;
} gs_barrier;

static inline void gs_barrier_wait(gs_barrier *b, int *local_sense)
{
    int s = !*local_sense;
    *local_sense = s;
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store_explicit(&b->sense, s, memory_order_release);
        if (b->futex)
            syscall(SYS_futex, (int *)&b->sense, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    } else if (b->futex) {
        /* sleeps only while the sense is still the old one, !s: no lost wake-up */
        while (atomic_load_explicit(&b->sense, memory_order_acquire) != s)
            syscall(SYS_futex, (int *)&b->sense, FUTEX_WAIT_PRIVATE, !s, NULL, NULL, 0);
    } else {
        while (atomic_load_explicit(&b->sense, memory_order_acquire) != s)
            gs_pause();
    }
}

/* The fallback form's shared words.  Each thread publishes the last step it completed;
 * the worker claims a step (claim: t-1 -> t) before it starts it, and the main thread,
 * when the worker is late by more than the budget, takes the claim instead
 * (claim: t-1 -> GS_ABANDONED): exactly one of the two compare-exchanges wins, so a step's
 * worker half is computed by one thread only, and once abandoned the main thread runs
 * both halves alone for the rest of the call, in the same order of operations as the
 * split (so the same bits, whenever the fallback happens).
 *
 * The steal form uses the same words differently, so that the main thread never waits
 * for a worker the scheduler has stopped in the middle of a step: the worker computes its
 * half of step t into a private slot (priv, by step parity) and then commits it
 * (claim: t-1 -> t); the main thread, after the budget, abandons (claim: t-1 ->
 * GS_ABANDONED) whether or not the worker has begun the step, and the worker's late
 * result is dropped when its commit fails.  A committed half is copied into the
 * histories by the main thread, which then publishes main_done = t; the worker starts
 * step t+1 only after that, so it never writes a slot the main thread is reading. */
typedef struct {
    atomic_long main_done;
    atomic_long worker_done;
    atomic_long claim;
} gs_handoff;

#define GS_T float
#define GS_NAME(name) name##_f
#define GS_EXP expf
#define GS_TANH tanhf
#include "gate_split_template.h"
#undef GS_T
#undef GS_NAME
#undef GS_EXP
#undef GS_TANH

#define GS_T double
#define GS_NAME(name) name##_d
#define GS_EXP exp
#define GS_TANH tanh
#include "gate_split_template.h"
#undef GS_T
#undef GS_NAME
#undef GS_EXP
#undef GS_TANH

#endif
