/* The LSTM forward time loop of a batch split across two threads, in the two ways its
 * per-step product can be shared (bench/pair_split.py documents the probe and its use).
 *
 * The batch split (src/fastbptt/cells/batch_split.py) gives each thread side k = 0, 1
 * its own B_k rows, each with its own buffers and its own copy of W_hh^T packed by
 * packed_gemm.h (K = H, N = 4H panels of FB_NR columns). Per step t, for the rows of
 * side k:
 *   z_t (B_k x 4H) += h_{t-1} (B_k x H) W_hh^T       (the packed per-step product)
 *   gates, c_t, h_t from z_t                          (lstm_cell.h, one call per row)
 *
 *   PS_ALONE  side 0 only, its B_0 rows, on one thread: one core's share of the split
 *             with the other core idle.
 *   PS_SPLIT  the batch split as it runs: each thread its side's rows against the whole
 *             packed W_hh^T, no synchronisation inside the loop. Each core streams all
 *             of W_hh^T a step for B_k rows.
 *   PS_PAIR   the lead of issue 14's item 4 at B >= 2: thread k computes the panels
 *             [P k / 2, P (k+1) / 2) of the product for the rows of both sides (panel
 *             outer, the two sides' rows inner, so a panel is read once a step for
 *             B_0 + B_1 rows), then a spinning barrier, its own side's cell pass, a
 *             second barrier. Each core streams half of W_hh^T a step for all B rows.
 *
 * Every form gives the same bits: each element of z_t is one sum over k in the same
 * order whichever rows share its pass (packed_gemm_template.h), and the cell pass is the
 * same call. The threads are started before the clock and meet at a barrier; the time
 * is the later thread's, from that barrier to the end of its loop.
 */
#ifndef FASTBPTT_BENCH_PAIR_SPLIT_H
#define FASTBPTT_BENCH_PAIR_SPLIT_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PS_PAUSE() _mm_pause()
#else
#define PS_PAUSE() ((void) 0)
#endif

#include "lstm_cell.h"
#include "packed_gemm.h"

enum { PS_ALONE = 0, PS_SPLIT = 1, PS_PAIR = 2 };

static double ps_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec + 1e-9 * (double) t.tv_nsec;
}

/* A sense-reversing barrier of two threads: each keeps its own sense, flipped on entry;
 * the second to arrive resets the count and publishes the new sense. */
typedef struct { int count, sense; } ps_barrier;

static void ps_wait(ps_barrier *bar, int *sense)
{
    *sense = !*sense;
    if (__atomic_add_fetch(&bar->count, 1, __ATOMIC_ACQ_REL) == 2) {
        __atomic_store_n(&bar->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&bar->sense, *sense, __ATOMIC_RELEASE);
    } else {
        while (__atomic_load_n(&bar->sense, __ATOMIC_ACQUIRE) != *sense) PS_PAUSE();
    }
}

/* One instance per element type: PS_T the type, PS_S its suffix (f32, f64). */
#define PS_DEFINE(PS_T, PS_S, NR)                                                          \
typedef struct {                                                                           \
    int rows;                 /* B_k */                                                    \
    PS_T *Wp;                 /* this side's packed W_hh^T */                              \
    PS_T *z;                  /* (T, B_k, 4H): the input part on entry, the gates after */  \
    PS_T *h, *c;              /* (T+1, B_k, H), [0] the initial state */                   \
} ps_side_##PS_S;                                                                          \
                                                                                           \
typedef struct {                                                                           \
    int form, T, H;                                                                        \
    const PS_T *bias;         /* (4H,) */                                                  \
    ps_side_##PS_S side[2];                                                                \
    ps_barrier bar;                                                                        \
    double seconds[2];                                                                     \
} ps_job_##PS_S;                                                                           \
                                                                                           \
typedef struct { ps_job_##PS_S *job; int k; } ps_arg_##PS_S;                               \
                                                                                           \
static void *ps_thread_##PS_S(void *p)                                                     \
{                                                                                          \
    ps_job_##PS_S *job = ((ps_arg_##PS_S *) p)->job;                                       \
    int k = ((ps_arg_##PS_S *) p)->k, T = job->T, H = job->H, GH = 4 * H;                  \
    int panels = (GH + NR - 1) / NR, p0 = panels * k / 2, p1 = panels * (k + 1) / 2;       \
    int sense = __atomic_load_n(&job->bar.sense, __ATOMIC_ACQUIRE);                        \
    ps_side_##PS_S *own = &job->side[k];                                                   \
    int t, b, j, q;                                                                        \
    double t0;                                                                             \
    ps_wait(&job->bar, &sense);                                                            \
    t0 = ps_now();                                                                         \
    if (!(job->form == PS_ALONE && k == 1)) {                                              \
        for (t = 0; t < T; t++) {                                                          \
            ptrdiff_t zs = (ptrdiff_t) t * own->rows * GH;                                 \
            if (job->form == PS_PAIR) {                                                    \
                for (q = p0; q < p1; q++) {                                                \
                    int n = GH - q * NR < NR ? GH - q * NR : NR;                           \
                    for (j = 0; j < 2; j++) {                                              \
                        ps_side_##PS_S *s = &job->side[j];                                 \
                        fb_packed_gemm_##PS_S(s->rows, n, H,                               \
                                              s->h + (ptrdiff_t) t * s->rows * H, H,       \
                                              own->Wp + (ptrdiff_t) q * H * NR, 1,         \
                                              s->z + (ptrdiff_t) t * s->rows * GH          \
                                              + q * NR, GH);                               \
                    }                                                                      \
                }                                                                          \
                ps_wait(&job->bar, &sense);                                                \
            } else {                                                                       \
                fb_packed_gemm_##PS_S(own->rows, GH, H, own->h + (ptrdiff_t) t * own->rows \
                                      * H, H, own->Wp, 1, own->z + zs, GH);                \
            }                                                                              \
            for (b = 0; b < own->rows; b++) {                                              \
                ptrdiff_t r = (ptrdiff_t) t * own->rows * H + (ptrdiff_t) b * H;           \
                fb_lstm_forward_##PS_S(own->z + zs + (ptrdiff_t) b * GH, job->bias,        \
                                       own->c + r, own->c + r + (ptrdiff_t) own->rows * H, \
                                       own->h + r + (ptrdiff_t) own->rows * H, H);         \
            }                                                                              \
            if (job->form == PS_PAIR) ps_wait(&job->bar, &sense);                          \
        }                                                                                  \
    }                                                                                      \
    job->seconds[k] = ps_now() - t0;                                                       \
    return NULL;                                                                           \
}                                                                                          \
                                                                                           \
/* Runs the form on both sides (side 1 idles in PS_ALONE); returns the later thread's    \
 * seconds, or -1 if a thread could not start. */                                          \
static double ps_run_##PS_S(ps_job_##PS_S *job)                                            \
{                                                                                          \
    pthread_t th;                                                                          \
    ps_arg_##PS_S args[2] = {{job, 0}, {job, 1}};                                          \
    job->bar.count = 0;                                                                    \
    job->seconds[0] = job->seconds[1] = 0;                                                 \
    if (pthread_create(&th, NULL, ps_thread_##PS_S, &args[1]) != 0) return -1;             \
    ps_thread_##PS_S(&args[0]);                                                            \
    pthread_join(th, NULL);                                                                \
    return job->seconds[0] > job->seconds[1] ? job->seconds[0] : job->seconds[1];          \
}

PS_DEFINE(float, f32, FB_NR_F32)
PS_DEFINE(double, f64, FB_NR_F64)

#endif
