/* The per-row passes of the fused output heads and losses (losses.pyx): one row y of V
 * logits, in place, turned into the row's loss (returned, float64, unweighted) and, over y,
 * dl/dy times g (g = the row's weight times the reduction's scale).
 *
 *   softmax cross-entropy, class t:  l = m + log(sum_v exp(y_v - m)) - y_t,  m = max_v y_v
 *                                    dl/dy = softmax(y) - e_t
 *   sigmoid BCE, targets t (V):      l = sum_v max(y,0) - y t + log1p(exp(-|y|))
 *                                    dl/dy = sigmoid(y) - t
 *   squared error, targets t (V):    l = sum_v (y - t)^2,   dl/dy = 2 (y - t)
 *
 * bias (V) is added to y first (NULL: no bias). Subtracting the maximum keeps every
 * exponent <= 0 (no overflow) and the largest term exp(0) = 1 (the sum never underflows),
 * so logits of 1e4 give finite results. The exponentials are vmath.h's fb_exp(f)_bounded,
 * clamped below at -87 (float) or -708 (double), where they are under 1e-37 (1e-307) of
 * the sum's largest term, 1; log1p of BCE is the series below. Sums are kept in double so
 * that V = 10^4 float terms lose no more than float's own rounding. The element-wise terms
 * are computed in the element type (as torch does). Cloned for AVX-512 and AVX2 like
 * vmath.h.
 */
#ifndef FASTBPTT_LOSS_ROWS_H
#define FASTBPTT_LOSS_ROWS_H

#include <math.h>   /* log, once a row */
#include <stddef.h>
#include "vmath.h"

/* log1p(e) for e in [0, 1]: log(1 + e) = 2 atanh(s) with s = e / (2 + e) in [0, 1/3], by
 * the odd series 2 (s + s^3/3 + s^5/5 + ...), whose terms fall by 9 at least: through s^15
 * for float (next term relative to s: 9^-8 / 17 = 1.4e-9) and s^33 for double
 * (9^-17 / 35 = 1.7e-18). No cancellation: every term is positive. */
static inline float fb_log1pf_unit(float e)
{
    float s = e / (2.0f + e), z = s * s;
    float p = 1.0f / 15;
    p = p * z + 1.0f / 13; p = p * z + 1.0f / 11; p = p * z + 1.0f / 9;
    p = p * z + 1.0f / 7;  p = p * z + 1.0f / 5;  p = p * z + 1.0f / 3;
    p = p * z + 1.0f;
    return 2.0f * s * p;
}

static inline double fb_log1p_unit(double e)
{
    double s = e / (2.0 + e), z = s * s;
    double p = 1.0 / 33;
    p = p * z + 1.0 / 31; p = p * z + 1.0 / 29; p = p * z + 1.0 / 27; p = p * z + 1.0 / 25;
    p = p * z + 1.0 / 23; p = p * z + 1.0 / 21; p = p * z + 1.0 / 19; p = p * z + 1.0 / 17;
    p = p * z + 1.0 / 15; p = p * z + 1.0 / 13; p = p * z + 1.0 / 11; p = p * z + 1.0 / 9;
    p = p * z + 1.0 / 7;  p = p * z + 1.0 / 5;  p = p * z + 1.0 / 3;  p = p * z + 1.0;
    return 2.0 * s * p;
}

/* The element-wise loops below are written so that gcc -O3 vectorises them (no branch, no
 * reduction: without -ffast-math it keeps a floating-point sum or maximum in order, one
 * element at a time). Sums and maxima run over FB_LANES independent partial results, and
 * the losses of BCE and MSE go through a chunk buffer on the stack, summed afterwards. */
#define FB_LANES 8
#define FB_CHUNK 256

/* sum of x[0..n) in double, over FB_LANES partial sums */
#define FB_SUM(name, T)                                                                \
static inline double name(const T *x, ptrdiff_t n)                                     \
{                                                                                      \
    double part[FB_LANES] = {0};                                                       \
    ptrdiff_t j = 0;                                                                   \
    for (; j + FB_LANES <= n; j += FB_LANES)                                           \
        for (int k = 0; k < FB_LANES; k++) part[k] += x[j + k];                        \
    double s = 0;                                                                      \
    for (; j < n; j++) s += x[j];                                                      \
    for (int k = 0; k < FB_LANES; k++) s += part[k];                                   \
    return s;                                                                          \
}
FB_SUM(fb_sum_f32, float)
FB_SUM(fb_sum_f64, double)
#undef FB_SUM

/* y[j] += bias[j] (bias may be NULL: nothing) */
#define FB_ADD_BIAS(name, T)                                                           \
static inline void name(T *y, const T *bias, ptrdiff_t V)                              \
{                                                                                      \
    if (bias != NULL)                                                                  \
        for (ptrdiff_t j = 0; j < V; j++) y[j] += bias[j];                             \
}
FB_ADD_BIAS(fb_add_bias_f32, float)
FB_ADD_BIAS(fb_add_bias_f64, double)
#undef FB_ADD_BIAS

#define FB_SOFTMAX_XENT_ROW(name, T, EXP, LO, SUM, ADD_BIAS)                            \
FB_CLONES static double name(T *y, const T *bias, ptrdiff_t V, ptrdiff_t t, T g)       \
{                                                                                      \
    ADD_BIAS(y, bias, V);                                                              \
    T part[FB_LANES];                                                                  \
    for (int k = 0; k < FB_LANES; k++) part[k] = y[0];                                 \
    ptrdiff_t j = 0;                                                                   \
    for (; j + FB_LANES <= V; j += FB_LANES)                                           \
        for (int k = 0; k < FB_LANES; k++)                                             \
            part[k] = y[j + k] > part[k] ? y[j + k] : part[k];                         \
    T m = y[0];                                                                        \
    for (; j < V; j++) m = y[j] > m ? y[j] : m;                                        \
    for (int k = 0; k < FB_LANES; k++) m = part[k] > m ? part[k] : m;                  \
    const T picked = y[t];                                                             \
    const T lo = LO;                                                                   \
    for (ptrdiff_t i = 0; i < V; i++) {                                                \
        T d = y[i] - m;                                                                \
        y[i] = EXP(d < lo ? lo : d);                                                   \
    }                                                                                  \
    const double s = SUM(y, V);                                                        \
    /* dl/dy * g = g exp(y - m) / s - g e_t */                                         \
    const T k = (T) (g / s);                                                           \
    for (ptrdiff_t i = 0; i < V; i++) y[i] *= k;                                       \
    y[t] -= g;                                                                         \
    return ((double) m - (double) picked) + log(s);                                    \
}
FB_SOFTMAX_XENT_ROW(fb_softmax_xent_row_f32, float, fb_expf_bounded, -87.0f, fb_sum_f32,
                    fb_add_bias_f32)
FB_SOFTMAX_XENT_ROW(fb_softmax_xent_row_f64, double, fb_exp_bounded, -708.0, fb_sum_f64,
                    fb_add_bias_f64)
#undef FB_SOFTMAX_XENT_ROW

/* e = exp(-|y|) <= 1 (clamped at 87 or 708, beyond which e is 0 to the sum's precision);
 * sigmoid(y) = 1 / (1 + e) for y >= 0, e / (1 + e) below. */
#define FB_SIGMOID_BCE_ROW(name, T, EXP, LOG1P, HI, SUM, ADD_BIAS)                      \
FB_CLONES static double name(T *y, const T *bias, const T *target, ptrdiff_t V, T g)   \
{                                                                                      \
    T buf[FB_CHUNK];                                                                   \
    const T one = 1, zero = 0, hi = HI;                                                \
    double loss = 0;                                                                   \
    ADD_BIAS(y, bias, V);                                                              \
    for (ptrdiff_t j0 = 0; j0 < V; j0 += FB_CHUNK) {                                   \
        ptrdiff_t n = V - j0 < FB_CHUNK ? V - j0 : FB_CHUNK;                           \
        T *yc = y + j0;                                                                \
        const T *tc = target + j0;                                                     \
        for (ptrdiff_t j = 0; j < n; j++) {                                            \
            T v = yc[j];                                                               \
            T a = v < zero ? -v : v;                                                   \
            T e = EXP(-(a > hi ? hi : a));                                             \
            buf[j] = (v > zero ? v : zero) - v * tc[j] + LOG1P(e);                     \
            T sigmoid = (v >= zero ? one : e) / (one + e);                             \
            yc[j] = g * (sigmoid - tc[j]);                                             \
        }                                                                              \
        loss += SUM(buf, n);                                                           \
    }                                                                                  \
    return loss;                                                                       \
}
FB_SIGMOID_BCE_ROW(fb_sigmoid_bce_row_f32, float, fb_expf_bounded, fb_log1pf_unit, 87.0f,
                   fb_sum_f32, fb_add_bias_f32)
FB_SIGMOID_BCE_ROW(fb_sigmoid_bce_row_f64, double, fb_exp_bounded, fb_log1p_unit, 708.0,
                   fb_sum_f64, fb_add_bias_f64)
#undef FB_SIGMOID_BCE_ROW

#define FB_SQUARED_ERROR_ROW(name, T, SUM, ADD_BIAS)                                    \
FB_CLONES static double name(T *y, const T *bias, const T *target, ptrdiff_t V, T g)   \
{                                                                                      \
    T buf[FB_CHUNK];                                                                   \
    const T g2 = 2 * g;                                                                \
    double loss = 0;                                                                   \
    ADD_BIAS(y, bias, V);                                                              \
    for (ptrdiff_t j0 = 0; j0 < V; j0 += FB_CHUNK) {                                   \
        ptrdiff_t n = V - j0 < FB_CHUNK ? V - j0 : FB_CHUNK;                           \
        T *yc = y + j0;                                                                \
        const T *tc = target + j0;                                                     \
        for (ptrdiff_t j = 0; j < n; j++) {                                            \
            T d = yc[j] - tc[j];                                                       \
            buf[j] = d * d;                                                            \
            yc[j] = g2 * d;                                                            \
        }                                                                              \
        loss += SUM(buf, n);                                                           \
    }                                                                                  \
    return loss;                                                                       \
}
FB_SQUARED_ERROR_ROW(fb_squared_error_row_f32, float, fb_sum_f32, fb_add_bias_f32)
FB_SQUARED_ERROR_ROW(fb_squared_error_row_f64, double, fb_sum_f64, fb_add_bias_f64)
#undef FB_SQUARED_ERROR_ROW

#endif
