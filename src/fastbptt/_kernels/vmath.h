/* Vectorisable tanh and sigmoid over arrays: the element-wise pass of a recurrent cell.
 *
 * Why: libm's scalar tanhf costs about 7 ns an element, more than the per-step GEMM at
 * B = 32, H = 256; these loops are branch-free (both branches computed, one selected) so
 * that gcc -O3 vectorises them, and they are cloned for AVX-512 and AVX2 with the
 * baseline as fallback, the clone picked once at load time (GCC/Clang target_clones on
 * ELF; elsewhere the baseline build only).
 *
 * Accuracy (tests/test_activations.py measures it against float64/long double references):
 * within 3 ulp over the whole range (measured: float32 2.4 ulp, float64 2.9 ulp), NaN in
 * gives NaN out, +-inf gives +-1 (tanh); sigmoid(+inf) = 1, and sigmoid(x) for x below
 * -87 (float) or -708 (double) gives the value at that bound, under 2e-38 (4e-308).
 *
 * The math:
 *   exp(y):  n = round(y / ln 2), r = y - n ln 2 (ln 2 split in two, Cody-Waite), |r| <= ln2/2,
 *            exp(y) = 2^n e^r, e^r by its Taylor polynomial (degree 7 for float, truncation
 *            error 0.347^8/8! = 5e-9; degree 13 for double, 4e-18), 2^n from the exponent bits.
 *   tanh(x): |x| < s:  the odd Taylor series x + c3 x^3 + ... (through x^17 for float with
 *            s = 0.5, next term 1e-8 relative; through x^21 for double with s = 0.25, next
 *            term 3e-19), because 1 - e below loses bits to cancellation;
 *            |x| >= s: (1 - e) / (1 + e) with e = exp(-2|x|), sign restored;
 *            |x| clamped to 10 (float) or 20 (double), where tanh rounds to 1.
 *   sigmoid(x) = 1 / (1 + exp(-x)), -x clamped to [-87, 87] (float) or [-708, 708] (double):
 *            beyond, the result is below 2e-38 (1e-307), zero to every purpose.
 */
#ifndef FASTBPTT_VMATH_H
#define FASTBPTT_VMATH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(__ELF__) \
    && !defined(FASTBPTT_NO_CLONES)
#define FB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FB_CLONES
#endif

/* For a loop body written once and called with a constant that selects its variant (the
 * cell headers): inlined, the constant removes the test from the loop before gcc
 * vectorises it. */
#if defined(__GNUC__)
#define FB_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define FB_ALWAYS_INLINE static inline
#endif

/* Taylor coefficients of tanh: x + sum_k T[k] x^(2k+1), k >= 1 (2^2n (2^2n - 1) B_2n / (2n)!). */
#define FB_T3 (-1.0 / 3.0)
#define FB_T5 (2.0 / 15.0)
#define FB_T7 (-17.0 / 315.0)
#define FB_T9 (62.0 / 2835.0)
#define FB_T11 (-1382.0 / 155925.0)
#define FB_T13 (21844.0 / 6081075.0)
#define FB_T15 (-929569.0 / 638512875.0)
#define FB_T17 (6404582.0 / 10854718875.0)
#define FB_T19 (-443861162.0 / 1856156927625.0)
#define FB_T21 (18888466084.0 / 194896477400625.0)

/* exp(y) for y in [-87, 87] (float): 2^n e^r. */
static inline float fb_expf_bounded(float y)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;          /* 8 significant bits: n * ln2_hi is exact */
    const float ln2_lo = -2.12194440e-4f;       /* ln 2 - ln2_hi */
    float nf = y * log2e;
    nf = (nf + 12582912.0f) - 12582912.0f;      /* round to nearest integer (1.5 * 2^23) */
    float r = (y - nf * ln2_hi) - nf * ln2_lo;
    float p = 1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
              + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t n = (int32_t) (nf == nf ? nf : 0.0f);   /* NaN stays in p, not in the exponent */
    int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* exp(y) for y in [-708, 708] (double): 2^n e^r. */
static inline double fb_exp_bounded(double y)
{
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01;   /* 32 significant bits */
    const double ln2_lo = 1.90821492927058770002e-10;
    double nf = y * log2e;
    nf = (nf + 6755399441055744.0) - 6755399441055744.0;   /* 1.5 * 2^52 */
    double r = (y - nf * ln2_hi) - nf * ln2_lo;
    double p = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120
               + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880
               + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600
               + r * (1.0 / 6227020800.0)))))))))))));
    int64_t n = (int64_t) (nf == nf ? nf : 0.0);
    int64_t bits = (n + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float fb_tanhf1(float x)
{
    float ax = x < 0 ? -x : x;
    ax = ax > 10.0f ? 10.0f : ax;                 /* NaN passes through */
    float z = x * x;
    float small = x + x * z * ((float) FB_T3 + z * ((float) FB_T5 + z * ((float) FB_T7
                  + z * ((float) FB_T9 + z * ((float) FB_T11 + z * ((float) FB_T13
                  + z * ((float) FB_T15 + z * (float) FB_T17)))))));
    float e = fb_expf_bounded(-2.0f * ax);
    float large = (1.0f - e) / (1.0f + e);
    large = x < 0 ? -large : large;
    return ax < 0.5f ? small : large;          /* the odd series keeps tanh(-0) = -0 */
}

static inline double fb_tanh1(double x)
{
    double ax = x < 0 ? -x : x;
    ax = ax > 20.0 ? 20.0 : ax;
    double z = x * x;
    double small = x + x * z * (FB_T3 + z * (FB_T5 + z * (FB_T7 + z * (FB_T9 + z * (FB_T11
                   + z * (FB_T13 + z * (FB_T15 + z * (FB_T17 + z * (FB_T19 + z * FB_T21)))))))));
    double e = fb_exp_bounded(-2.0 * ax);
    double large = (1.0 - e) / (1.0 + e);
    large = x < 0 ? -large : large;
    return ax < 0.25 ? small : large;
}

static inline float fb_sigmoidf1(float x)
{
    float y = -x;
    y = y > 87.0f ? 87.0f : (y < -87.0f ? -87.0f : y);
    return 1.0f / (1.0f + fb_expf_bounded(y));
}

static inline double fb_sigmoid1(double x)
{
    double y = -x;
    y = y > 708.0 ? 708.0 : (y < -708.0 ? -708.0 : y);
    return 1.0 / (1.0 + fb_exp_bounded(y));
}

/* h[j] = tanh(a[j] + bias[j]), j < n */
FB_CLONES static void fb_tanh_bias_f32(const float *a, const float *bias, float *h, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) h[j] = fb_tanhf1(a[j] + bias[j]);
}

FB_CLONES static void fb_tanh_bias_f64(const double *a, const double *bias, double *h, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) h[j] = fb_tanh1(a[j] + bias[j]);
}

/* h[j] = sigmoid(a[j] + bias[j]), j < n */
FB_CLONES static void fb_sigmoid_bias_f32(const float *a, const float *bias, float *h, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) h[j] = fb_sigmoidf1(a[j] + bias[j]);
}

FB_CLONES static void fb_sigmoid_bias_f64(const double *a, const double *bias, double *h, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) h[j] = fb_sigmoid1(a[j] + bias[j]);
}

/* The backward passes, f' written through the output h = f(a):
 * da[j] = (g[j] + g2[j]) * (1 - h[j]^2)   (tanh)
 * da[j] = (g[j] + g2[j]) * h[j] (1 - h[j])  (sigmoid)
 * g2 may be NULL (no gradient from outside at this step). In the element type throughout:
 * a literal 1.0 would promote float to double and halve the vector width. */
#define FB_DERIVATIVE(name, T, deriv)                                                  \
FB_CLONES static void name(const T *h, const T *g, const T *g2, T *da, ptrdiff_t n)    \
{                                                                                      \
    const T one = 1;                                                                   \
    if (g2 == NULL) {                                                                  \
        for (ptrdiff_t j = 0; j < n; j++) da[j] = g[j] * (deriv);                      \
    } else {                                                                           \
        for (ptrdiff_t j = 0; j < n; j++) da[j] = (g[j] + g2[j]) * (deriv);            \
    }                                                                                  \
}
FB_DERIVATIVE(fb_dtanh_f32, float, one - h[j] * h[j])
FB_DERIVATIVE(fb_dtanh_f64, double, one - h[j] * h[j])
FB_DERIVATIVE(fb_dsigmoid_f32, float, h[j] * (one - h[j]))
FB_DERIVATIVE(fb_dsigmoid_f64, double, h[j] * (one - h[j]))
#undef FB_DERIVATIVE

/* y[j] += x[j], j < n: the bias gradients, summed row by row while a step's dA is in L1. */
FB_CLONES static void fb_accumulate_f32(float *y, const float *x, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) y[j] += x[j];
}

FB_CLONES static void fb_accumulate_f64(double *y, const double *x, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) y[j] += x[j];
}

#endif
