/* One body of bench/gate_split.h's forms, included there once per type: GS_T (float or
 * double), GS_NAME(x) (x_f or x_d), GS_EXP and GS_TANH (libm's, for that type). */

/* scipy.linalg.cython_blas's ?gemv (Fortran: every argument by pointer). */
typedef void (*GS_NAME(gs_gemv_t))(char *trans, int *m, int *n, GS_T *alpha, GS_T *a,
                                   int *lda, GS_T *x, int *incx, GS_T *beta, GS_T *y,
                                   int *incy);

typedef struct {
    int form, G, H, T;
    const GS_T *W;       /* (GH x H) W_hh in PyTorch's row order (whole form) */
    const GS_T *b;       /* (GH) */
    const GS_T *Ws;      /* (GH x H) the same rows in the split's order */
    const GS_T *bs;      /* (GH) */
    GS_T *h;             /* (T+1) x H, row 0 = h_0 */
    GS_T *c;             /* (T+1) x H, row 0 = c_0 (LSTM only) */
    GS_T *z;             /* 2 x GH: each thread's pre-activations */
    GS_T *priv;          /* 2 x H: the steal form's worker output, h and c halves by step
                          * parity (slot t % 2: h at [0, H/2), c at [H/2, H)) */
    GS_NAME(gs_gemv_t) gemv;
    int cpu[2];          /* the main thread's and the worker's CPU, -1 = not pinned */
    long budget_ns;      /* the fallback's spin budget per step */
    int futex;           /* the barrier sleeps in a futex instead of spinning */
    long abandoned_at;   /* out: the step the fallback went to one thread at, 0 = never */
    gs_barrier barrier;
    gs_handoff handoff;
} GS_NAME(gs_job);

/* Step t for the units [u0, u0 + hu), from their G*hu rows Wb (row-major, H columns) and
 * biases bb:  zb (G hu) = Wb (G hu x H) h_{t-1} (H) + bb, then the gates into ht[0, hu)
 * and ct[0, hu) (the block's units of h_t and c_t, in the histories or elsewhere). */
static void GS_NAME(gs_block_step_to)(const GS_NAME(gs_job) *job, long t, int u0, int hu,
                                      const GS_T *Wb, const GS_T *bb, GS_T *zb, GS_T *ht,
                                      GS_T *ct)
{
    int H = job->H, n = job->G * hu, one = 1;
    GS_T alpha = 1, beta = 1;
    GS_T *hp = job->h + (t - 1) * H;
    for (int k = 0; k < n; k++)
        zb[k] = bb[k];
    /* row-major Wb (n x H) is column-major (H x n) with lda H: Wb h is gemv('T') */
    job->gemv((char *)"T", &H, &n, &alpha, (GS_T *)Wb, &H, hp, &one, &beta, zb, &one);
    if (job->G == 1) {
        for (int k = 0; k < hu; k++)
            ht[k] = GS_TANH(zb[k]);
        return;
    }
    const GS_T *cp = job->c + (t - 1) * H + u0;
    for (int k = 0; k < hu; k++) {
        GS_T i = 1 / (1 + GS_EXP(-zb[k]));
        GS_T f = 1 / (1 + GS_EXP(-zb[hu + k]));
        GS_T g = GS_TANH(zb[2 * hu + k]);
        GS_T o = 1 / (1 + GS_EXP(-zb[3 * hu + k]));
        ct[k] = f * cp[k] + i * g;
        ht[k] = o * GS_TANH(ct[k]);
    }
}

static inline void GS_NAME(gs_block_step)(const GS_NAME(gs_job) *job, long t, int u0, int hu,
                                          const GS_T *Wb, const GS_T *bb, GS_T *zb)
{
    GS_NAME(gs_block_step_to)(job, t, u0, hu, Wb, bb, zb, job->h + t * job->H + u0,
                              job->c + t * job->H + u0);
}

/* Half j of step t in the split's row order, with scratch zb (G*H/2). */
static inline void GS_NAME(gs_half_step_z)(const GS_NAME(gs_job) *job, long t, int j,
                                           GS_T *zb)
{
    int hu = job->H / 2, rows = job->G * hu;
    GS_NAME(gs_block_step)(job, t, j * hu, hu, job->Ws + (long)j * rows * job->H,
                           job->bs + j * rows, zb);
}

/* Thread j's half of step t, in thread j's scratch. */
static inline void GS_NAME(gs_half_step)(const GS_NAME(gs_job) *job, long t, int j)
{
    GS_NAME(gs_half_step_z)(job, t, j, job->z + (long)j * job->G * job->H);
}

static void *GS_NAME(gs_worker)(void *arg)
{
    GS_NAME(gs_job) *job = arg;
    gs_handoff *ho = &job->handoff;
    int sense = 0;
    gs_pin_self(job->cpu[1]);
    gs_barrier_wait(&job->barrier, &sense);   /* both threads running before the clock */
    for (long t = 1; t <= job->T; t++) {
        if (job->form == GS_SPLIT) {
            GS_NAME(gs_half_step)(job, t, 1);
            gs_barrier_wait(&job->barrier, &sense);
        } else if (job->form == GS_BARRIER) {
            gs_barrier_wait(&job->barrier, &sense);
        } else if (job->form == GS_STEAL) {
            int hu = job->H / 2, rows = job->G * hu;
            GS_T *slot = job->priv + (t % 2) * job->H;
            while (atomic_load_explicit(&ho->main_done, memory_order_acquire) < t - 1) {
                if (atomic_load_explicit(&ho->claim, memory_order_relaxed) == GS_ABANDONED)
                    return NULL;
                gs_pause();
            }
            GS_NAME(gs_block_step_to)(job, t, hu, hu, job->Ws + (long)rows * job->H,
                                      job->bs + rows, job->z + (long)job->G * job->H,
                                      slot, slot + hu);
            long expected = t - 1;
            if (!atomic_compare_exchange_strong_explicit(&ho->claim, &expected, t,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                return NULL;   /* abandoned while computing: the result is dropped */
        } else {   /* GS_FALLBACK */
            while (atomic_load_explicit(&ho->main_done, memory_order_acquire) < t - 1) {
                if (atomic_load_explicit(&ho->claim, memory_order_relaxed) == GS_ABANDONED)
                    return NULL;
                gs_pause();
            }
            long expected = t - 1;
            if (!atomic_compare_exchange_strong_explicit(&ho->claim, &expected, t,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                return NULL;   /* the main thread took the rest of the call */
            GS_NAME(gs_half_step)(job, t, 1);
            atomic_store_explicit(&ho->worker_done, t, memory_order_release);
        }
    }
    return NULL;
}

/* The fallback's wait for the worker's step t (word: worker_done, or the steal form's
 * claim): 1 if it came within the budget. */
static int GS_NAME(gs_wait_worker)(GS_NAME(gs_job) *job, atomic_long *word, long t)
{
    double start = 0;
    for (unsigned spins = 0;; spins++) {
        if (atomic_load_explicit(word, memory_order_acquire) >= t)
            return 1;
        if ((spins & 63) == 0) {   /* the clock read costs more than a pause */
            double now = gs_now_ns();
            if (spins == 0)
                start = now;
            else if (now - start > (double)job->budget_ns)
                return 0;
        }
        gs_pause();
    }
}

/* Run the job's form over T steps; the time of the loop in ns (thread start-up, the
 * first barrier and the join are outside it), or -1 if the worker could not start. */
static double GS_NAME(gs_run)(GS_NAME(gs_job) *job)
{
    int two = job->form >= GS_SPLIT, sense = 0;
    pthread_t worker;
    cpu_set_t saved;
    pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
    gs_pin_self(job->cpu[0]);
    atomic_init(&job->barrier.count, 0);
    atomic_init(&job->barrier.sense, 0);
    job->barrier.futex = job->futex;
    atomic_init(&job->handoff.main_done, 0);
    atomic_init(&job->handoff.worker_done, 0);
    atomic_init(&job->handoff.claim, 0);
    job->abandoned_at = 0;
    if (two && pthread_create(&worker, NULL, GS_NAME(gs_worker), job) != 0) {
        pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
        return -1;
    }
    if (two)
        gs_barrier_wait(&job->barrier, &sense);
    double t0 = gs_now_ns();
    int alone = 0;
    for (long t = 1; t <= job->T; t++) {
        switch (job->form) {
        case GS_WHOLE:
            GS_NAME(gs_block_step)(job, t, 0, job->H, job->W, job->b, job->z);
            break;
        case GS_HALVES:
            GS_NAME(gs_half_step)(job, t, 0);
            GS_NAME(gs_half_step)(job, t, 1);
            break;
        case GS_SPLIT:
            GS_NAME(gs_half_step)(job, t, 0);
            gs_barrier_wait(&job->barrier, &sense);
            break;
        case GS_BARRIER:
            gs_barrier_wait(&job->barrier, &sense);
            break;
        case GS_STEAL: {
            gs_handoff *ho = &job->handoff;
            int hu = job->H / 2;
            GS_NAME(gs_half_step)(job, t, 0);
            /* the worker's half in the main thread's scratch: an abandoned worker may
             * still be writing its own */
            if (alone) {
                GS_NAME(gs_half_step_z)(job, t, 1, job->z);
                break;
            }
            if (!GS_NAME(gs_wait_worker)(job, &ho->claim, t)) {
                long expected = t - 1;
                if (atomic_compare_exchange_strong_explicit(&ho->claim, &expected,
                                                            GS_ABANDONED,
                                                            memory_order_acq_rel,
                                                            memory_order_acquire)) {
                    alone = 1;
                    job->abandoned_at = t;
                    GS_NAME(gs_half_step_z)(job, t, 1, job->z);
                    break;
                }
            }
            /* committed: the worker's half of h_t and c_t into the histories */
            const GS_T *slot = job->priv + (t % 2) * job->H;
            memcpy(job->h + t * job->H + hu, slot, hu * sizeof(GS_T));
            memcpy(job->c + t * job->H + hu, slot + hu, hu * sizeof(GS_T));
            atomic_store_explicit(&ho->main_done, t, memory_order_release);
            break;
        }
        default: {   /* GS_FALLBACK */
            gs_handoff *ho = &job->handoff;
            GS_NAME(gs_half_step)(job, t, 0);
            if (alone) {
                GS_NAME(gs_half_step)(job, t, 1);
                break;
            }
            atomic_store_explicit(&ho->main_done, t, memory_order_release);
            if (GS_NAME(gs_wait_worker)(job, &ho->worker_done, t))
                break;
            long expected = t - 1;
            if (atomic_compare_exchange_strong_explicit(&ho->claim, &expected, GS_ABANDONED,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                alone = 1;
                job->abandoned_at = t;
                GS_NAME(gs_half_step)(job, t, 1);
                break;
            }
            /* the worker claimed step t before the budget ran out: it finishes it */
            while (atomic_load_explicit(&ho->worker_done, memory_order_acquire) < t)
                gs_pause();
        }
        }
    }
    double t1 = gs_now_ns();
    if (two)
        pthread_join(worker, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
    return t1 - t0;
}
