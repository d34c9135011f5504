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
 * so logits of 1e4 give finite results. The exponentials are vmath.h's (within 2 ulp),
 * clamped below at -87 (float) or -708 (double), where they are under 1e-37 (1e-307) of
 * the sum's largest term, 1. Sums are kept in double so that V = 10^4 float terms lose no
 * more than float's own rounding. Cloned for AVX-512 and AVX2 like vmath.h.
 */
#ifndef FASTBPTT_LOSS_ROWS_H
#define FASTBPTT_LOSS_ROWS_H

#include <math.h>
#include <stddef.h>
#include "vmath.h"

#define FB_SOFTMAX_XENT_ROW(name, T, EXP, LO)                                           \
FB_CLONES static double name(T *y, const T *bias, ptrdiff_t V, ptrdiff_t t, T g)       \
{                                                                                      \
    if (bias != NULL)                                                                  \
        for (ptrdiff_t j = 0; j < V; j++) y[j] += bias[j];                             \
    T m = y[0];                                                                        \
    for (ptrdiff_t j = 1; j < V; j++) m = y[j] > m ? y[j] : m;                         \
    const T picked = y[t];                                                             \
    const T lo = LO;                                                                   \
    for (ptrdiff_t j = 0; j < V; j++) {                                                \
        T d = y[j] - m;                                                                \
        y[j] = EXP(d < lo ? lo : d);                                                   \
    }                                                                                  \
    /* four partial sums: shorter dependency chains, same double accuracy */           \
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                             \
    ptrdiff_t j = 0;                                                                   \
    for (; j + 4 <= V; j += 4) {                                                       \
        s0 += y[j]; s1 += y[j + 1]; s2 += y[j + 2]; s3 += y[j + 3];                    \
    }                                                                                  \
    for (; j < V; j++) s0 += y[j];                                                     \
    const double s = (s0 + s1) + (s2 + s3);                                            \
    /* dl/dy * g = g exp(y - m) / s - g e_t */                                         \
    const T k = (T) (g / s);                                                           \
    for (ptrdiff_t i = 0; i < V; i++) y[i] *= k;                                       \
    y[t] -= g;                                                                         \
    return ((double) m - (double) picked) + log(s);                                    \
}
FB_SOFTMAX_XENT_ROW(fb_softmax_xent_row_f32, float, fb_expf_bounded, -87.0f)
FB_SOFTMAX_XENT_ROW(fb_softmax_xent_row_f64, double, fb_exp_bounded, -708.0)
#undef FB_SOFTMAX_XENT_ROW

/* e = exp(-|y|) <= 1; log1p(e) from libm in double (one call an element: the BCE heads
 * this serves have small V); sigmoid(y) = 1 / (1 + e) for y >= 0, e / (1 + e) below. */
#define FB_SIGMOID_BCE_ROW(name, T, EXP, HI)                                            \
FB_CLONES static double name(T *y, const T *bias, const T *target, ptrdiff_t V, T g)   \
{                                                                                      \
    double loss = 0;                                                                   \
    const T one = 1, zero = 0, hi = HI;                                                \
    for (ptrdiff_t j = 0; j < V; j++) {                                                \
        T v = bias != NULL ? y[j] + bias[j] : y[j];                                    \
        T a = v < 0 ? -v : v;                                                          \
        T e = EXP(-(a > hi ? hi : a));                                                 \
        loss += (double) (v > zero ? v : zero) - (double) v * (double) target[j]       \
                + log1p((double) e);                                                   \
        T sigmoid = (v >= zero ? one : e) / (one + e);                                 \
        y[j] = g * (sigmoid - target[j]);                                              \
    }                                                                                  \
    return loss;                                                                       \
}
FB_SIGMOID_BCE_ROW(fb_sigmoid_bce_row_f32, float, fb_expf_bounded, 87.0f)
FB_SIGMOID_BCE_ROW(fb_sigmoid_bce_row_f64, double, fb_exp_bounded, 708.0)
#undef FB_SIGMOID_BCE_ROW

#define FB_SQUARED_ERROR_ROW(name, T)                                                   \
FB_CLONES static double name(T *y, const T *bias, const T *target, ptrdiff_t V, T g)   \
{                                                                                      \
    double loss = 0;                                                                   \
    const T g2 = 2 * g;                                                                \
    for (ptrdiff_t j = 0; j < V; j++) {                                                \
        T d = (bias != NULL ? y[j] + bias[j] : y[j]) - target[j];                      \
        loss += (double) d * (double) d;                                               \
        y[j] = g2 * d;                                                                 \
    }                                                                                  \
    return loss;                                                                       \
}
FB_SQUARED_ERROR_ROW(fb_squared_error_row_f32, float)
FB_SQUARED_ERROR_ROW(fb_squared_error_row_f64, double)
#undef FB_SQUARED_ERROR_ROW

#endif
