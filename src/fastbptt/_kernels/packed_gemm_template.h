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
 *   FB_TARGET     the function attribute selecting the instruction set (or nothing)
 *   FB_PG(name)   name with this instance's suffix
 *
 * C (M x N, rows ldc apart) = beta C + A (M x K, rows lda apart) Bp, Bp = op(B) (K x N)
 * packed by fb_pack_* into panels of FB_NR columns: panel p, row k holds
 * op(B)[k, p NR : (p+1) NR] contiguous (zero past N). beta is 0 or 1. FB_KC (rows of
 * a K block), FB_PG_PREFETCH, FB_PG_LINE_BYTES and
 * FB_PG_PREFETCH_READ come from packed_gemm.h.
 */

/* One register block over one K block: C[0:m, 0:n] = (first ? beta C : C)[0:m, 0:n]
 * + A[0:m, 0:kc] Bp_panel[0:kc, :], m <= FB_MR, n <= FB_NR; m is a constant at every call
 * site (the switch below), so the loops over i unroll and the accumulators stay in
 * registers. acc[i][v] holds C[i, v VL : (v+1) VL]. The accumulators start from C (or 0)
 * and C holds the running sum between K blocks: storing and reloading an FB_T is exact,
 * so each element is the one chain c + a_0 b_0 + a_1 b_1 + ... over k in order, whatever
 * the K blocks and row blocks are. */
FB_TARGET FB_ALWAYS_INLINE void FB_PG(fb_pg_block)(int m, int kc, const FB_T *A, ptrdiff_t lda,
                                                   const FB_T *Bp, int n, int load_c,
                                                   FB_T *C, ptrdiff_t ldc)
{
    enum { NV = FB_NR / FB_VL };
    FB_V acc[FB_MR][NV], bv[NV];
    const FB_V zero = {0};
    FB_T tail[FB_NR];
    int i, v, j, k;
    for (i = 0; i < m; i++) {
        const FB_T *c = C + i * ldc;
        if (!load_c) {
            for (v = 0; v < NV; v++) acc[i][v] = zero;
        } else if (n == FB_NR) {
            for (v = 0; v < NV; v++) acc[i][v] = *(const FB_VU *) (c + v * FB_VL);
        } else {
            /* the last panel: only its first n columns are C's */
            for (j = 0; j < n; j++) tail[j] = c[j];
            for (; j < FB_NR; j++) tail[j] = 0;
            for (v = 0; v < NV; v++) acc[i][v] = *(const FB_VU *) (tail + v * FB_VL);
        }
    }
    for (k = 0; k < kc; k++) {
        /* the panel streams from L3 or memory on its first pass: ask for the rows
         * FB_PG_PREFETCH ahead (past the block it is the next block, or the next panel) */
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
            for (v = 0; v < NV; v++) *(FB_VU *) (c + v * FB_VL) = acc[i][v];
        } else {
            for (v = 0; v < NV; v++) *(FB_VU *) (tail + v * FB_VL) = acc[i][v];
            for (j = 0; j < n; j++) c[j] = tail[j];
        }
    }
}

FB_TARGET static void FB_PG(fb_packed_gemm)(int M, int N, int K, const FB_T *A, ptrdiff_t lda,
                                            const FB_T *Bp, int beta, FB_T *C, ptrdiff_t ldc)
{
    int p, k0, kc, i0, m, n;
    /* panel outer, then K blocks, rows inner: each panel (K x NR) is read from memory
     * once per call, and each K block of it (FB_KC x NR, FB_KC FB_PANEL_BYTES bytes) stays
     * in L1 while every row block uses it; A (M x K) is small and stays in L2. K = 0
     * still writes C = beta C (one empty block). */
    for (p = 0; p * FB_NR < N; p++) {
        const FB_T *bp = Bp + (ptrdiff_t) p * K * FB_NR;
        n = N - p * FB_NR < FB_NR ? N - p * FB_NR : FB_NR;
        for (k0 = 0; k0 == 0 || k0 < K; k0 += FB_KC) {
            kc = K - k0 < FB_KC ? K - k0 : FB_KC;
            for (i0 = 0; i0 < M; i0 += FB_MR) {
                const FB_T *a = A + i0 * lda + k0;
                FB_T *c = C + i0 * ldc + p * FB_NR;
                int load_c = k0 > 0 || beta;
                m = M - i0 < FB_MR ? M - i0 : FB_MR;
/* a case per row count, each with its count constant; counts above FB_MR never occur */
#define FB_PG_CASE(r) case r: if ((r) <= FB_MR) FB_PG(fb_pg_block)((r) <= FB_MR ? (r) : FB_MR, \
                                kc, a, lda, bp + (ptrdiff_t) k0 * FB_NR, n, load_c, c, ldc); \
                              break;
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
}
