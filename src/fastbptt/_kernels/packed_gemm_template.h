/* One instance of the packed per-step product (packed_gemm.h includes this once per
 * element type and instruction set; no include guard). The includer defines:
 *   FB_T          the element type
 *   FB_V          a vector of FB_VL elements (GCC vector extension), or FB_T itself (FB_VL 1)
 *   FB_VU         the same vector aligned to one element and allowed to alias (the loads
 *                 and stores of C and the panels through it take no address of a
 *                 register: an accumulator whose address is taken lives in memory)
 *   FB_VL         elements per vector
 *   FB_NR         columns per packed panel (FB_PANEL_BYTES / sizeof(FB_T)), FB_VL divides it
 *   FB_MR         rows per register block: FB_MR x (FB_NR / FB_VL) accumulators must fit
 *                 the register file (AVX-512: 12 x 2 of 32 zmm; AVX2: 3 x 4 of 16 ymm)
 *   FB_WIDE       1 where the register file holds the few-rows blocks of fb_pg_wide
 *                 (FB_WIDE_ROWS rows x FB_WIDE_PANELS panels: AVX-512's 32 zmm), else 0
 *   FB_TARGET     the function attribute selecting the instruction set (or nothing)
 *   FB_PG(name)   name with this instance's suffix
 *
 * C (M x N, rows ldc apart) = beta C + A (M x K, rows lda apart) Bp, Bp = op(B) (K x N)
 * packed by fb_pack_* into panels of FB_NR columns: panel p, row k holds
 * op(B)[k, p NR : (p+1) NR] contiguous (zero past N). beta is 0 or 1. FB_PG_PREFETCH,
 * FB_PG_LINE_BYTES and FB_PG_PREFETCH_READ come from packed_gemm.h.
 */

/* One register block: C[0:m, 0:n] (+)= A[0:m, :] Bp_panel, m <= FB_MR, n <= FB_NR; m is
 * a constant at every call site (the switch below), so the loops over i unroll and the
 * accumulators stay in registers. acc[i][v] holds C[i, v VL : (v+1) VL]. */
FB_TARGET FB_ALWAYS_INLINE void FB_PG(fb_pg_block)(int m, int K, const FB_T *A, ptrdiff_t lda,
                                                   const FB_T *Bp, int n, int beta,
                                                   FB_T *C, ptrdiff_t ldc)
{
    enum { NV = FB_NR / FB_VL };
    FB_V acc[FB_MR][NV], bv[NV];
    const FB_V zero = {0};
    FB_T tail[FB_NR];
    int i, v, j, k;
    for (i = 0; i < m; i++)
        for (v = 0; v < NV; v++) acc[i][v] = zero;
    for (k = 0; k < K; k++) {
        /* a panel's first pass streams it from L3 or memory, faster than the hardware
         * prefetchers alone fetch it (they stop at every 4 KiB page): ask for row
         * k + FB_PG_PREFETCH (past the panel's end it is the next panel's start) */
        for (j = 0; j < FB_NR; j += (int) (FB_PG_LINE_BYTES / sizeof(FB_T)))
            FB_PG_PREFETCH_READ(Bp + (ptrdiff_t) (k + FB_PG_PREFETCH) * FB_NR + j);
        /* acc[i] += A[i, k] Bp[k, :]: one broadcast per row, NV vector FMAs */
        for (v = 0; v < NV; v++) bv[v] = *(const FB_VU *) (Bp + (ptrdiff_t) k * FB_NR + v * FB_VL);
        for (i = 0; i < m; i++) {
            FB_T a = A[i * lda + k];
            for (v = 0; v < NV; v++) acc[i][v] += bv[v] * a;
        }
    }
    for (i = 0; i < m; i++) {
        FB_T *c = C + i * ldc;
        if (n == FB_NR) {
            for (v = 0; v < NV; v++) {
                FB_VU *cv = (FB_VU *) (c + v * FB_VL);
                FB_V sum = acc[i][v];
                if (beta) sum += *cv;
                *cv = sum;
            }
        } else {
            /* the last panel: only its first n columns are C's */
            for (v = 0; v < NV; v++) *(FB_VU *) (tail + v * FB_VL) = acc[i][v];
            for (j = 0; j < n; j++) c[j] = beta ? c[j] + tail[j] : tail[j];
        }
    }
}

#if FB_WIDE
/* Few rows, several panels a pass: with m <= FB_WIDE_ROWS rows one panel gives only
 * m NV independent sums, too few to cover the FMA latency at two FMAs a cycle (8 chains
 * are needed); np full panels side by side (np a constant at every call site) give
 * m NV np. C[0:m, q NR : (q+1) NR] (+)= A[0:m, :] panel q for q < np, the panels ps
 * elements apart; acc[i][q NV + v] holds C[i, q NR + v VL : ...]. Each sum runs over k in
 * the same order as in fb_pg_block, so a row's result does not depend on the path. */
FB_TARGET FB_ALWAYS_INLINE void FB_PG(fb_pg_wide)(int m, int np, int K, const FB_T *A,
                                                  ptrdiff_t lda, const FB_T *Bp, ptrdiff_t ps,
                                                  int beta, FB_T *C, ptrdiff_t ldc)
{
    enum { NV = FB_NR / FB_VL };
    FB_V acc[FB_WIDE_ROWS][FB_WIDE_PANELS * NV], bv[FB_WIDE_PANELS * NV];
    const FB_V zero = {0};
    int i, q, v, j, k;
    for (i = 0; i < m; i++)
        for (v = 0; v < np * NV; v++) acc[i][v] = zero;
    for (k = 0; k < K; k++) {
        for (q = 0; q < np; q++) {
            const FB_T *b = Bp + q * ps + (ptrdiff_t) k * FB_NR;
            for (j = 0; j < FB_NR; j += (int) (FB_PG_LINE_BYTES / sizeof(FB_T)))
                FB_PG_PREFETCH_READ(b + (ptrdiff_t) FB_PG_PREFETCH * FB_NR + j);
            for (v = 0; v < NV; v++) bv[q * NV + v] = *(const FB_VU *) (b + v * FB_VL);
        }
        for (i = 0; i < m; i++) {
            FB_T a = A[i * lda + k];
            for (v = 0; v < np * NV; v++) acc[i][v] += bv[v] * a;
        }
    }
    for (i = 0; i < m; i++) {
        for (q = 0; q < np; q++) {
            FB_T *c = C + i * ldc + q * FB_NR;
            for (v = 0; v < NV; v++) {
                FB_VU *cv = (FB_VU *) (c + v * FB_VL);
                FB_V sum = acc[i][q * NV + v];
                if (beta) sum += *cv;
                *cv = sum;
            }
        }
    }
}

/* M <= FB_WIDE_ROWS rows (one row block): the full panels FB_WIDE_PANELS or 2 at a time
 * (m NV np accumulators and np NV panel vectors must fit the 32 registers: 4 panels for
 * 1-2 rows, 2 for 3-5), the rest one at a time. */
FB_TARGET static void FB_PG(fb_pg_few_rows)(int M, int N, int K, const FB_T *A, ptrdiff_t lda,
                                            const FB_T *Bp, int beta, FB_T *C, ptrdiff_t ldc)
{
    int np = M <= 2 ? FB_WIDE_PANELS : 2;
    int full = N / FB_NR, p = 0, n;
    ptrdiff_t ps = (ptrdiff_t) K * FB_NR;
    for (; p + np <= full; p += np) {
        const FB_T *bp = Bp + p * ps;
        FB_T *c = C + p * FB_NR;
/* a case per row count, each with its counts constant */
#define FB_PG_WIDE_CASE(r, w) case r: FB_PG(fb_pg_wide)(r, w, K, A, lda, bp, ps, beta, c, ldc); \
                                      break;
        switch (M) {
            FB_PG_WIDE_CASE(1, FB_WIDE_PANELS) FB_PG_WIDE_CASE(2, FB_WIDE_PANELS)
            FB_PG_WIDE_CASE(3, 2) FB_PG_WIDE_CASE(4, 2) FB_PG_WIDE_CASE(5, 2)
            default: break;
        }
#undef FB_PG_WIDE_CASE
    }
    for (; p * FB_NR < N; p++) {
        const FB_T *bp = Bp + p * ps;
        FB_T *c = C + p * FB_NR;
        n = N - p * FB_NR < FB_NR ? N - p * FB_NR : FB_NR;
#define FB_PG_ONE_CASE(r) case r: FB_PG(fb_pg_block)(r, K, A, lda, bp, n, beta, c, ldc); break;
        switch (M) {
            FB_PG_ONE_CASE(1) FB_PG_ONE_CASE(2) FB_PG_ONE_CASE(3) FB_PG_ONE_CASE(4)
            FB_PG_ONE_CASE(5)
            default: break;
        }
#undef FB_PG_ONE_CASE
    }
}
#endif

FB_TARGET static void FB_PG(fb_packed_gemm)(int M, int N, int K, const FB_T *A, ptrdiff_t lda,
                                            const FB_T *Bp, int beta, FB_T *C, ptrdiff_t ldc)
{
    int p, i0, m, n;
#if FB_WIDE
    if (M <= FB_WIDE_ROWS) {
        FB_PG(fb_pg_few_rows)(M, N, K, A, lda, Bp, beta, C, ldc);
        return;
    }
#endif
    /* panel outer, rows inner: each panel (K x NR) is read from memory once per call and
     * reused from cache by every row block; A (M x K) is small and stays in cache */
    for (p = 0; p * FB_NR < N; p++) {
        const FB_T *bp = Bp + (ptrdiff_t) p * K * FB_NR;
        n = N - p * FB_NR < FB_NR ? N - p * FB_NR : FB_NR;
        for (i0 = 0; i0 < M; i0 += FB_MR) {
            const FB_T *a = A + i0 * lda;
            FB_T *c = C + i0 * ldc + p * FB_NR;
            m = M - i0 < FB_MR ? M - i0 : FB_MR;
/* a case per row count, each with its count constant; counts above FB_MR never occur */
#define FB_PG_CASE(r) case r: if ((r) <= FB_MR) FB_PG(fb_pg_block)((r) <= FB_MR ? (r) : FB_MR, \
                                        K, a, lda, bp, n, beta, c, ldc); break;
            switch (m) {
                FB_PG_CASE(1) FB_PG_CASE(2) FB_PG_CASE(3) FB_PG_CASE(4) FB_PG_CASE(5)
                FB_PG_CASE(6) FB_PG_CASE(7) FB_PG_CASE(8) FB_PG_CASE(9) FB_PG_CASE(10)
                FB_PG_CASE(11) FB_PG_CASE(12)
                default: break;
            }
#undef FB_PG_CASE
        }
    }
}
