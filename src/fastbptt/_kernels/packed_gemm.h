/* The per-step product against a weight matrix packed once per call.
 *
 * Why: every step of a time loop multiplies a few rows (B = 5-64) by the same W_hh.
 * OpenBLAS's GEMM repacks its operands on every call; here op(W_hh) is packed once per
 * forward or backward call into panels of FB_PANEL_BYTES columns, and every step runs a
 * register-blocked micro-kernel straight over the panels (bench/RESULTS.md, "The
 * per-step product at B 5-64", says what it bought against OpenBLAS, BLIS and MKL).
 *
 *   fb_packed_size_*(K, N)          elements of the packed form of a K x N operand
 *   fb_pack_*(src, K, N, sk, sn, dst)
 *       dst = the K x N operand whose element (k, n) is src[k sk + n sn], in panels:
 *       panel p (columns p NR .. p NR + NR - 1) is K rows of NR contiguous elements,
 *       zero past column N. The forward's op(B) = W_hh^T (H x GH): sk = 1, sn = H;
 *       the backward's op(B) = W_hh (GH x H): sk = H, sn = 1.
 *   fb_packed_gemm_*(M, N, K, A, lda, Bp, beta, C, ldc)
 *       C (M x N) = beta C + A (M x K) op(B) (K x N), beta 0 or 1, row-major.
 *
 * Instruction sets: an AVX-512 instance (12 rows x 2 zmm accumulators), an AVX2+FMA one
 * (3 rows x 4 ymm) and a portable one (GCC vector extensions at the baseline, or plain C
 * where those are missing), chosen once at first use from the CPU (fb_packed_level).
 * The three differ only in how many rows share a pass over a panel (and, in the AVX-512
 * one, for 1-5 rows, how many panels), and in rounding (FMA or not): each sum runs over k
 * in the same order.
 */
#ifndef FASTBPTT_PACKED_GEMM_H
#define FASTBPTT_PACKED_GEMM_H

#include <stddef.h>
#include <string.h>
#include "vmath.h"   /* FB_ALWAYS_INLINE */

#define FB_PANEL_BYTES 128
#define FB_NR_F32 ((int) (FB_PANEL_BYTES / sizeof(float)))
#define FB_NR_F64 ((int) (FB_PANEL_BYTES / sizeof(double)))
/* Software prefetch of the panels: the micro-kernel asks for the panel row FB_PG_PREFETCH
 * rows (4 KiB) ahead of the one it loads, one cache line (FB_PG_LINE_BYTES) at a time; a
 * prefetch never faults, past the end of the panels included. Settable at compile time
 * for bench/packed_kernel_ab.py's variants (0: no prefetch ahead). */
#ifndef FB_PG_PREFETCH
#define FB_PG_PREFETCH 32
#endif
#define FB_PG_LINE_BYTES 64
/* the few-rows path of the AVX-512 instance (packed_gemm_template.h, fb_pg_wide): up to
 * FB_WIDE_ROWS rows run over up to FB_WIDE_PANELS panels a pass */
#define FB_WIDE_ROWS 5
#define FB_WIDE_PANELS 4
#if defined(__GNUC__)
#define FB_PG_PREFETCH_READ(p) __builtin_prefetch((p), 0, 3)
#else
#define FB_PG_PREFETCH_READ(p) ((void) 0)
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) \
    && !defined(FASTBPTT_NO_CLONES)
#define FB_PG_X86 1
#else
#define FB_PG_X86 0
#endif

static size_t fb_packed_size_f32(int K, int N)
{
    return (size_t) ((N + FB_NR_F32 - 1) / FB_NR_F32) * FB_NR_F32 * (size_t) K;
}

static size_t fb_packed_size_f64(int K, int N)
{
    return (size_t) ((N + FB_NR_F64 - 1) / FB_NR_F64) * FB_NR_F64 * (size_t) K;
}

#define FB_PACK(name, T, NR)                                                             \
static void name(const T *src, int K, int N, ptrdiff_t sk, ptrdiff_t sn, T *dst)        \
{                                                                                        \
    int p, k, j;                                                                         \
    for (p = 0; p * NR < N; p++) {                                                       \
        int n = N - p * NR < NR ? N - p * NR : NR;                                       \
        T *d = dst + (ptrdiff_t) p * K * NR;                                             \
        const T *s = src + (ptrdiff_t) p * NR * sn;                                      \
        for (k = 0; k < K; k++) {                                                        \
            for (j = 0; j < n; j++) d[(ptrdiff_t) k * NR + j] = s[k * sk + j * sn];      \
            for (; j < NR; j++) d[(ptrdiff_t) k * NR + j] = 0;                           \
        }                                                                                \
    }                                                                                    \
}
FB_PACK(fb_pack_f32, float, FB_NR_F32)
FB_PACK(fb_pack_f64, double, FB_NR_F64)
#undef FB_PACK

/* ---- the instances */

#if defined(__GNUC__)
typedef float fb_pg_f32x4 __attribute__((vector_size(16)));
typedef double fb_pg_f64x2 __attribute__((vector_size(16)));
typedef float fb_pg_f32x4u __attribute__((vector_size(16), aligned(4), may_alias));
typedef double fb_pg_f64x2u __attribute__((vector_size(16), aligned(8), may_alias));
#define FB_PG_PORTABLE_VL_F32 4
#define FB_PG_PORTABLE_VL_F64 2
#else
typedef float fb_pg_f32x4;
typedef double fb_pg_f64x2;
typedef float fb_pg_f32x4u;
typedef double fb_pg_f64x2u;
#define FB_PG_PORTABLE_VL_F32 1
#define FB_PG_PORTABLE_VL_F64 1
#endif

/* portable: 8 (or 32 scalar) accumulators for one row */
#define FB_TARGET
#define FB_MR 1
#define FB_WIDE 0
#define FB_T float
#define FB_V fb_pg_f32x4
#define FB_VU fb_pg_f32x4u
#define FB_VL FB_PG_PORTABLE_VL_F32
#define FB_NR FB_NR_F32
#define FB_PG(name) name##_f32_base
#include "packed_gemm_template.h"
#undef FB_T
#undef FB_V
#undef FB_VU
#undef FB_VL
#undef FB_NR
#undef FB_PG
#define FB_T double
#define FB_V fb_pg_f64x2
#define FB_VU fb_pg_f64x2u
#define FB_VL FB_PG_PORTABLE_VL_F64
#define FB_NR FB_NR_F64
#define FB_PG(name) name##_f64_base
#include "packed_gemm_template.h"
#undef FB_T
#undef FB_V
#undef FB_VU
#undef FB_VL
#undef FB_NR
#undef FB_PG
#undef FB_MR
#undef FB_WIDE
#undef FB_TARGET

#if FB_PG_X86
typedef float fb_pg_f32x8 __attribute__((vector_size(32)));
typedef double fb_pg_f64x4 __attribute__((vector_size(32)));
typedef float fb_pg_f32x16 __attribute__((vector_size(64)));
typedef double fb_pg_f64x8 __attribute__((vector_size(64)));
typedef float fb_pg_f32x8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef double fb_pg_f64x4u __attribute__((vector_size(32), aligned(8), may_alias));
typedef float fb_pg_f32x16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef double fb_pg_f64x8u __attribute__((vector_size(64), aligned(8), may_alias));

#define FB_TARGET __attribute__((target("avx2,fma")))
#define FB_MR 3
#define FB_WIDE 0
#define FB_T float
#define FB_V fb_pg_f32x8
#define FB_VU fb_pg_f32x8u
#define FB_VL 8
#define FB_NR FB_NR_F32
#define FB_PG(name) name##_f32_avx2
#include "packed_gemm_template.h"
#undef FB_T
#undef FB_V
#undef FB_VU
#undef FB_VL
#undef FB_NR
#undef FB_PG
#define FB_T double
#define FB_V fb_pg_f64x4
#define FB_VU fb_pg_f64x4u
#define FB_VL 4
#define FB_NR FB_NR_F64
#define FB_PG(name) name##_f64_avx2
#include "packed_gemm_template.h"
#undef FB_T
#undef FB_V
#undef FB_VU
#undef FB_VL
#undef FB_NR
#undef FB_PG
#undef FB_MR
#undef FB_WIDE
#undef FB_TARGET

#define FB_TARGET __attribute__((target("avx2,fma,avx512f")))
#define FB_MR 12
#define FB_WIDE 1
#define FB_T float
#define FB_V fb_pg_f32x16
#define FB_VU fb_pg_f32x16u
#define FB_VL 16
#define FB_NR FB_NR_F32
#define FB_PG(name) name##_f32_avx512
#include "packed_gemm_template.h"
#undef FB_T
#undef FB_V
#undef FB_VU
#undef FB_VL
#undef FB_NR
#undef FB_PG
#define FB_T double
#define FB_V fb_pg_f64x8
#define FB_VU fb_pg_f64x8u
#define FB_VL 8
#define FB_NR FB_NR_F64
#define FB_PG(name) name##_f64_avx512
#include "packed_gemm_template.h"
#undef FB_T
#undef FB_V
#undef FB_VU
#undef FB_VL
#undef FB_NR
#undef FB_PG
#undef FB_MR
#undef FB_WIDE
#undef FB_TARGET
#endif

/* ---- dispatch: 0 portable, 1 AVX2+FMA, 2 AVX-512 */

static int fb_packed_cpu_level(void)
{
#if FB_PG_X86
    __builtin_cpu_init();   /* libgcc's checks include the OS's saving of the registers */
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

/* The level in use in this extension module: the CPU's, unless the tests lowered it
 * (fb_packed_set_level) to run the other instances on the same machine. */
static int fb_packed_level_ = -1;

static int fb_packed_level(void)
{
    if (fb_packed_level_ < 0) fb_packed_level_ = fb_packed_cpu_level();
    return fb_packed_level_;
}

/* Sets the level (clamped to what the CPU has) and returns the one now in use. */
static int fb_packed_set_level(int level)
{
    int cpu = fb_packed_cpu_level();
    fb_packed_level_ = level < 0 ? 0 : (level > cpu ? cpu : level);
    return fb_packed_level_;
}

static void fb_packed_gemm_f32(int M, int N, int K, const float *A, ptrdiff_t lda,
                               const float *Bp, int beta, float *C, ptrdiff_t ldc)
{
#if FB_PG_X86
    switch (fb_packed_level()) {
    case 2: fb_packed_gemm_f32_avx512(M, N, K, A, lda, Bp, beta, C, ldc); return;
    case 1: fb_packed_gemm_f32_avx2(M, N, K, A, lda, Bp, beta, C, ldc); return;
    default: break;
    }
#endif
    fb_packed_gemm_f32_base(M, N, K, A, lda, Bp, beta, C, ldc);
}

static void fb_packed_gemm_f64(int M, int N, int K, const double *A, ptrdiff_t lda,
                               const double *Bp, int beta, double *C, ptrdiff_t ldc)
{
#if FB_PG_X86
    switch (fb_packed_level()) {
    case 2: fb_packed_gemm_f64_avx512(M, N, K, A, lda, Bp, beta, C, ldc); return;
    case 1: fb_packed_gemm_f64_avx2(M, N, K, A, lda, Bp, beta, C, ldc); return;
    default: break;
    }
#endif
    fb_packed_gemm_f64_base(M, N, K, A, lda, Bp, beta, C, ldc);
}

#endif
