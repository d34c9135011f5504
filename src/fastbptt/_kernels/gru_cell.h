/* The GRU's fused element-wise passes: one row (one sequence, one step) of H elements each.
 *
 * Why in C: each pass calls sigmoid twice and tanh once an element, and only loops gcc
 * can vectorise make those cheap (vmath.h: branch-free scalar functions, inlined here,
 * cloned for AVX-512 and AVX2 through FB_CLONES). Each public function splits its rows
 * into the gate blocks and hands them to an inner loop whose pointers are all `restrict`
 * (they never overlap: distinct blocks of one row, or distinct arrays), so that gcc
 * vectorises without runtime alias checks. Constants are in the element type: a literal
 * 1.0 would promote float to double and halve the vector width.
 *
 * Row layouts (H elements a block, gate order r, z, n as PyTorch's):
 *   gates (4H): [P_r | P_z | P_n | .  ] on entry to the forward pass, the input projection
 *                                        x_t W_ih^T without its bias;
 *               [ r  |  z  |  n  | R_n] on exit: what backward needs, R_n with b_hn.
 *   R     (3H): h_{t-1} W_hh^T without bias, [R_r | R_z | R_n].
 *   bias  (4H): [b_ir + b_hr | b_iz + b_hz | b_in | b_hn].
 *   dA    (4H): [da_r | da_z | da_n r | da_n], so that its first 3H columns are
 *               dR = dL/d(h_{t-1} W_hh^T + b_hh) (the per-step GEMM's operand) and
 *               columns [0, 2H) + [3H, 4H) are dP = dL/d(x_t W_ih^T + b_ih).
 */
#ifndef FASTBPTT_GRU_CELL_H
#define FASTBPTT_GRU_CELL_H

#include <stddef.h>
#include "vmath.h"   /* fb_sigmoidf1, fb_tanhf1, fb_sigmoid1, fb_tanh1, FB_CLONES */

/* Forward, one row:
 *   r = sigmoid(P_r + R_r + b_ir + b_hr),  z = sigmoid(P_z + R_z + b_iz + b_hz)
 *   R_n += b_hn,  n = tanh(P_n + b_in + r R_n),  h = (1 - z) n + z h_prev = n + z (h_prev - n)
 * r, z, n are written over P_r, P_z, P_n (each element read before it is written). */
#define FB_GRU_FORWARD(name, T, SIGMOID, TANH)                                              \
static inline void name##_blocks(T *restrict gr, T *restrict gz, T *restrict gn,             \
                                 T *restrict g_rn, const T *restrict R_r,                     \
                                 const T *restrict R_z, const T *restrict R_n,                \
                                 const T *restrict b_r, const T *restrict b_z,                \
                                 const T *restrict b_in, const T *restrict b_hn,              \
                                 const T *restrict h_prev, T *restrict h, ptrdiff_t H)        \
{                                                                                            \
    for (ptrdiff_t j = 0; j < H; j++) {                                                      \
        T r = SIGMOID(gr[j] + R_r[j] + b_r[j]);                                              \
        T z = SIGMOID(gz[j] + R_z[j] + b_z[j]);                                              \
        T rn = R_n[j] + b_hn[j];                                                             \
        T n = TANH(gn[j] + b_in[j] + r * rn);                                                \
        h[j] = n + z * (h_prev[j] - n);                                                      \
        gr[j] = r;                                                                           \
        gz[j] = z;                                                                           \
        gn[j] = n;                                                                           \
        g_rn[j] = rn;                                                                        \
    }                                                                                        \
}                                                                                            \
FB_CLONES static void name(T *gates, const T *R, const T *bias, const T *h_prev, T *h,       \
                           ptrdiff_t H)                                                      \
{                                                                                            \
    name##_blocks(gates, gates + H, gates + 2 * H, gates + 3 * H, R, R + H, R + 2 * H,       \
                  bias, bias + H, bias + 2 * H, bias + 3 * H, h_prev, h, H);                 \
}
FB_GRU_FORWARD(fb_gru_forward_f32, float, fb_sigmoidf1, fb_tanhf1)
FB_GRU_FORWARD(fb_gru_forward_f64, double, fb_sigmoid1, fb_tanh1)
#undef FB_GRU_FORWARD

/* Backward, one row, with g = carry + dh (dh may be NULL: no gradient from the loss here):
 *   da_n = g (1 - z) (1 - n^2),  da_r = da_n R_n r (1 - r),  da_z = g (h_prev - n) z (1 - z)
 *   dA = [da_r, da_z, da_n r, da_n],  db += dA (column sums over rows and steps, while
 *   the row is in L1),  carry = g z: the direct part of dL/dh_{t-1}, to which the caller
 *   adds dR W_hh (a GEMM with beta = 1). */
#define FB_GRU_BACKWARD_LOOP(T, G)                                                          \
    for (ptrdiff_t j = 0; j < H; j++) {                                                      \
        T g = (G);                                                                           \
        T r = r_[j], z = z_[j], n = n_[j];                                                   \
        T da_n = g * (one - z) * (one - n * n);                                              \
        T da_r = da_n * rn_[j] * r * (one - r);                                              \
        T da_z = g * (h_prev[j] - n) * z * (one - z);                                        \
        T da_nr = da_n * r;                                                                  \
        d_r[j] = da_r;                                                                       \
        d_z[j] = da_z;                                                                       \
        d_nr[j] = da_nr;                                                                     \
        d_n[j] = da_n;                                                                       \
        db_r[j] += da_r;                                                                     \
        db_z[j] += da_z;                                                                     \
        db_nr[j] += da_nr;                                                                   \
        db_n[j] += da_n;                                                                     \
        carry[j] = g * z;                                                                    \
    }

#define FB_GRU_BACKWARD(name, T)                                                            \
static inline void name##_blocks(const T *restrict r_, const T *restrict z_,                 \
                                 const T *restrict n_, const T *restrict rn_,                 \
                                 const T *restrict h_prev, const T *restrict dh,              \
                                 T *restrict carry, T *restrict d_r, T *restrict d_z,         \
                                 T *restrict d_nr, T *restrict d_n, T *restrict db_r,         \
                                 T *restrict db_z, T *restrict db_nr, T *restrict db_n,       \
                                 ptrdiff_t H)                                                \
{                                                                                            \
    const T one = 1;                                                                         \
    if (dh == NULL) {                                                                        \
        FB_GRU_BACKWARD_LOOP(T, carry[j])                                                    \
    } else {                                                                                 \
        FB_GRU_BACKWARD_LOOP(T, carry[j] + dh[j])                                            \
    }                                                                                        \
}                                                                                            \
FB_CLONES static void name(const T *gates, const T *h_prev, const T *dh, T *carry, T *dA,    \
                           T *db, ptrdiff_t H)                                               \
{                                                                                            \
    name##_blocks(gates, gates + H, gates + 2 * H, gates + 3 * H, h_prev, dh, carry,         \
                  dA, dA + H, dA + 2 * H, dA + 3 * H, db, db + H, db + 2 * H, db + 3 * H, H); \
}
FB_GRU_BACKWARD(fb_gru_backward_f32, float)
FB_GRU_BACKWARD(fb_gru_backward_f64, double)
#undef FB_GRU_BACKWARD
#undef FB_GRU_BACKWARD_LOOP

#endif
