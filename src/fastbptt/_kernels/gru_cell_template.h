/* The body of gru_cell.h (the row layouts are there), written once for an element type:
 * the includer defines FB_T (float or double), FB_NAME(name) (the name with its type
 * suffix), FB_SIGMOID and FB_TANH (vmath.h's scalar functions of that type), then
 * includes this file. No include guard: it is included once per type. */

/* Forward, one row, on the gate blocks (every pointer restrict: distinct blocks of one
 * row, or distinct arrays):
 *   r = sigmoid(P_r + R_r + b_ir + b_hr),  z = sigmoid(P_z + R_z + b_iz + b_hz)
 *   R_n += b_hn,  n = tanh(P_n + b_in + r R_n),  h = (1 - z) n + z h_prev = n + z (h_prev - n)
 * r, z, n are written over P_r, P_z, P_n (each element read before it is written). */
static inline void FB_NAME(fb_gru_forward_blocks)(
    FB_T *restrict gr, FB_T *restrict gz, FB_T *restrict gn, FB_T *restrict g_rn,
    const FB_T *restrict R_r, const FB_T *restrict R_z, const FB_T *restrict R_n,
    const FB_T *restrict b_r, const FB_T *restrict b_z, const FB_T *restrict b_in,
    const FB_T *restrict b_hn, const FB_T *restrict h_prev, FB_T *restrict h, ptrdiff_t H)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        FB_T r = FB_SIGMOID(gr[j] + R_r[j] + b_r[j]);
        FB_T z = FB_SIGMOID(gz[j] + R_z[j] + b_z[j]);
        FB_T rn = R_n[j] + b_hn[j];
        FB_T n = FB_TANH(gn[j] + b_in[j] + r * rn);
        h[j] = n + z * (h_prev[j] - n);
        gr[j] = r;
        gz[j] = z;
        gn[j] = n;
        g_rn[j] = rn;
    }
}

/* Forward, one row: gates (4H) [P_r P_z P_n .] -> [r z n R_n], h (H). */
FB_CLONES static void FB_NAME(fb_gru_forward)(FB_T *gates, const FB_T *R, const FB_T *bias,
                                              const FB_T *h_prev, FB_T *h, ptrdiff_t H)
{
    FB_NAME(fb_gru_forward_blocks)(gates, gates + H, gates + 2 * H, gates + 3 * H, R, R + H,
                                   R + 2 * H, bias, bias + H, bias + 2 * H, bias + 3 * H,
                                   h_prev, h, H);
}

/* Backward, one row, on the blocks, with g = carry + dh (dh_given a constant at each call,
 * always inlined, so that no test stays inside the loop):
 *   da_n = g (1 - z) (1 - n^2),  da_r = da_n R_n r (1 - r),  da_z = g (h_prev - n) z (1 - z)
 *   dA = [da_r, da_z, da_n r, da_n],  db += dA (column sums over rows and steps, while
 *   the row is in L1),  carry = g z: the direct part of dL/dh_{t-1}, to which the caller
 *   adds dR W_hh (a GEMM with beta = 1). */
FB_ALWAYS_INLINE void FB_NAME(fb_gru_backward_blocks)(
    const FB_T *restrict r_, const FB_T *restrict z_, const FB_T *restrict n_,
    const FB_T *restrict rn_, const FB_T *restrict h_prev, const FB_T *restrict dh,
    int dh_given, FB_T *restrict carry, FB_T *restrict d_r, FB_T *restrict d_z,
    FB_T *restrict d_nr, FB_T *restrict d_n, FB_T *restrict db_r, FB_T *restrict db_z,
    FB_T *restrict db_nr, FB_T *restrict db_n, ptrdiff_t H)
{
    const FB_T one = 1;
    for (ptrdiff_t j = 0; j < H; j++) {
        FB_T g = dh_given ? carry[j] + dh[j] : carry[j];
        FB_T r = r_[j], z = z_[j], n = n_[j];
        FB_T da_n = g * (one - z) * (one - n * n);
        FB_T da_r = da_n * rn_[j] * r * (one - r);
        FB_T da_z = g * (h_prev[j] - n) * z * (one - z);
        FB_T da_nr = da_n * r;
        d_r[j] = da_r;
        d_z[j] = da_z;
        d_nr[j] = da_nr;
        d_n[j] = da_n;
        db_r[j] += da_r;
        db_z[j] += da_z;
        db_nr[j] += da_nr;
        db_n[j] += da_n;
        carry[j] = g * z;
    }
}

/* Backward, one row: dA (4H), db (4H) +=, carry (H) := g z; dh may be NULL. */
FB_CLONES static void FB_NAME(fb_gru_backward)(const FB_T *gates, const FB_T *h_prev,
                                               const FB_T *dh, FB_T *carry, FB_T *dA,
                                               FB_T *db, ptrdiff_t H)
{
    const FB_T *r = gates, *z = gates + H, *n = gates + 2 * H, *rn = gates + 3 * H;
    if (dh == NULL)
        FB_NAME(fb_gru_backward_blocks)(r, z, n, rn, h_prev, NULL, 0, carry, dA, dA + H,
                                        dA + 2 * H, dA + 3 * H, db, db + H, db + 2 * H,
                                        db + 3 * H, H);
    else
        FB_NAME(fb_gru_backward_blocks)(r, z, n, rn, h_prev, dh, 1, carry, dA, dA + H,
                                        dA + 2 * H, dA + 3 * H, db, db + H, db + 2 * H,
                                        db + 3 * H, H);
}
