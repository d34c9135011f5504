/* The LSTM cell's fused element-wise passes, one batch row of H units per call.
 *
 * Why in C: each pass applies five sigmoids/tanhs per unit; written as one loop over
 * restrict pointers with vmath.h's branch-free scalar functions, gcc -O3 vectorises it
 * (the four gate blocks are four unit-stride streams), cloned for AVX-512 and AVX2
 * (FB_CLONES). Every constant has the element type: a double literal would promote the
 * float loop to double and halve its vector width.
 *
 * Gate blocks in PyTorch's order, a row of 4H: [i | f | g | o], block k at k*H.
 *
 * Forward, from the pre-activations z = x W_ih^T + h_{t-1} W_hh^T (4H) and the summed
 * bias b = b_ih + b_hh (4H):
 *   i = sigmoid(z_i + b_i), f = sigmoid(z_f + b_f), o = sigmoid(z_o + b_o),
 *   g = tanh(z_g + b_g)
 *   c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)                                        (H)
 * The activated gates overwrite z: they are what backward needs.
 *
 * Backward, with dh = dL/dh_t (from step t+1 plus, if given, from the loss at step t) and
 * dc = dL/dc_t from step t+1, tanh(c_t) recomputed rather than stored:
 *   dc   += dh o (1 - tanh(c_t)^2)                  (the total dL/dc_t)
 *   dz_i = dc g i (1 - i)        dz_f = dc c_{t-1} f (1 - f)
 *   dz_g = dc i (1 - g^2)        dz_o = dh tanh(c_t) o (1 - o)
 *   dc_{t-1} = dc f              (written over dc: the carry to step t-1)
 * and db += dz (4H): the bias gradient, summed while the row is in L1 (in a loop of its
 * own: with those four more streams in the main loop gcc gave up vectorising it).
 */
#ifndef FASTBPTT_LSTM_CELL_H
#define FASTBPTT_LSTM_CELL_H

#include <stddef.h>
#include "vmath.h"   /* fb_sigmoidf1, fb_tanhf1, fb_sigmoid1, fb_tanh1, FB_CLONES */

#define FB_LSTM_FORWARD(name, T, SIGMOID, TANH)                                          \
FB_CLONES static void name(T *restrict gates, const T *restrict bias,                    \
                           const T *restrict c_prev, T *restrict c, T *restrict h,       \
                           ptrdiff_t H)                                                  \
{                                                                                        \
    T *restrict gi = gates, *restrict gf = gates + H;                                    \
    T *restrict gg = gates + 2 * H, *restrict go = gates + 3 * H;                        \
    const T *restrict bi = bias, *restrict bf = bias + H;                                \
    const T *restrict bg = bias + 2 * H, *restrict bo = bias + 3 * H;                    \
    for (ptrdiff_t j = 0; j < H; j++) {                                                  \
        T i = SIGMOID(gi[j] + bi[j]);                                                    \
        T f = SIGMOID(gf[j] + bf[j]);                                                    \
        T g = TANH(gg[j] + bg[j]);                                                       \
        T o = SIGMOID(go[j] + bo[j]);                                                    \
        T ct = f * c_prev[j] + i * g;                                                    \
        gi[j] = i; gf[j] = f; gg[j] = g; go[j] = o;                                      \
        c[j] = ct;                                                                       \
        h[j] = o * TANH(ct);                                                             \
    }                                                                                    \
}
FB_LSTM_FORWARD(fb_lstm_forward_f32, float, fb_sigmoidf1, fb_tanhf1)
FB_LSTM_FORWARD(fb_lstm_forward_f64, double, fb_sigmoid1, fb_tanh1)
#undef FB_LSTM_FORWARD

/* One unit j of the backward pass, dht = dL/dh_t at that unit. */
#define FB_LSTM_BACKWARD_UNIT(T, TANH, dht)                                              \
    {                                                                                    \
        T i = gi[j], f = gf[j], g = gg[j], o = go[j];                                    \
        T tc = TANH(c[j]);                                                               \
        T dh_j = (dht);                                                                  \
        T dct = dc[j] + dh_j * o * (one - tc * tc);                                      \
        T di = dct * g * i * (one - i);                                                  \
        T df = dct * c_prev[j] * f * (one - f);                                          \
        T dg = dct * i * (one - g * g);                                                  \
        T d_o = dh_j * tc * o * (one - o);                                               \
        dzi[j] = di; dzf[j] = df; dzg[j] = dg; dzo[j] = d_o;                             \
        dc[j] = dct * f;                                                                 \
    }

/* dh_out (the loss's gradient at this step) may be NULL: two loops, because that test
 * inside the loop stops gcc vectorising it. */
#define FB_LSTM_BACKWARD(name, T, TANH)                                                  \
FB_CLONES static void name(const T *restrict gates, const T *restrict c_prev,            \
                           const T *restrict c, const T *restrict dh,                    \
                           const T *restrict dh_out, T *restrict dc, T *restrict dz,     \
                           T *restrict db, ptrdiff_t H)                                  \
{                                                                                        \
    const T one = 1;                                                                     \
    const T *restrict gi = gates, *restrict gf = gates + H;                              \
    const T *restrict gg = gates + 2 * H, *restrict go = gates + 3 * H;                  \
    T *restrict dzi = dz, *restrict dzf = dz + H;                                        \
    T *restrict dzg = dz + 2 * H, *restrict dzo = dz + 3 * H;                            \
    if (dh_out == NULL) {                                                                \
        for (ptrdiff_t j = 0; j < H; j++) FB_LSTM_BACKWARD_UNIT(T, TANH, dh[j])          \
    } else {                                                                             \
        for (ptrdiff_t j = 0; j < H; j++)                                                \
            FB_LSTM_BACKWARD_UNIT(T, TANH, dh[j] + dh_out[j])                            \
    }                                                                                    \
    for (ptrdiff_t k = 0; k < 4 * H; k++) db[k] += dz[k];                                \
}
FB_LSTM_BACKWARD(fb_lstm_backward_f32, float, fb_tanhf1)
FB_LSTM_BACKWARD(fb_lstm_backward_f64, double, fb_tanh1)
#undef FB_LSTM_BACKWARD
#undef FB_LSTM_BACKWARD_UNIT

#endif
