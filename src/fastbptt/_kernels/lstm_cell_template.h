/* The body of lstm_cell.h (the math is there), written once for an element type: the
 * includer defines FB_T (float or double), FB_NAME(name) (the name with its type
 * suffix), FB_SIGMOID and FB_TANH (vmath.h's scalar functions of that type), then
 * includes this file. No include guard: it is included once per type. */

/* Forward, one row: gates (4H) pre-activations in, activated gates out; c, h (H). */
FB_CLONES static void FB_NAME(fb_lstm_forward)(FB_T *restrict gates,
                                               const FB_T *restrict bias,
                                               const FB_T *restrict c_prev,
                                               FB_T *restrict c, FB_T *restrict h,
                                               ptrdiff_t H)
{
    FB_T *restrict gi = gates, *restrict gf = gates + H;
    FB_T *restrict gg = gates + 2 * H, *restrict go = gates + 3 * H;
    const FB_T *restrict bi = bias, *restrict bf = bias + H;
    const FB_T *restrict bg = bias + 2 * H, *restrict bo = bias + 3 * H;
    for (ptrdiff_t j = 0; j < H; j++) {
        FB_T i = FB_SIGMOID(gi[j] + bi[j]);
        FB_T f = FB_SIGMOID(gf[j] + bf[j]);
        FB_T g = FB_TANH(gg[j] + bg[j]);
        FB_T o = FB_SIGMOID(go[j] + bo[j]);
        FB_T ct = f * c_prev[j] + i * g;
        gi[j] = i; gf[j] = f; gg[j] = g; go[j] = o;
        c[j] = ct;
        h[j] = o * FB_TANH(ct);
    }
}

/* The backward loop over the H units of one row. with_out is a constant at each call
 * (always inlined), so each call is a loop without a test inside: with one, gcc stopped
 * vectorising. dL/dh_t = dh, plus dh_out when with_out. */
FB_ALWAYS_INLINE void FB_NAME(fb_lstm_backward_units)(
    const FB_T *restrict gates, const FB_T *restrict c_prev, const FB_T *restrict c,
    const FB_T *restrict dh, const FB_T *restrict dh_out, int with_out,
    FB_T *restrict dc, FB_T *restrict dz, ptrdiff_t H)
{
    const FB_T one = 1;
    const FB_T *restrict gi = gates, *restrict gf = gates + H;
    const FB_T *restrict gg = gates + 2 * H, *restrict go = gates + 3 * H;
    FB_T *restrict dzi = dz, *restrict dzf = dz + H;
    FB_T *restrict dzg = dz + 2 * H, *restrict dzo = dz + 3 * H;
    for (ptrdiff_t j = 0; j < H; j++) {
        FB_T i = gi[j], f = gf[j], g = gg[j], o = go[j];
        FB_T tc = FB_TANH(c[j]);
        FB_T dh_j = with_out ? dh[j] + dh_out[j] : dh[j];
        FB_T dct = dc[j] + dh_j * o * (one - tc * tc);
        FB_T di = dct * g * i * (one - i);
        FB_T df = dct * c_prev[j] * f * (one - f);
        FB_T dg = dct * i * (one - g * g);
        FB_T d_o = dh_j * tc * o * (one - o);
        dzi[j] = di; dzf[j] = df; dzg[j] = dg; dzo[j] = d_o;
        dc[j] = dct * f;
    }
}

/* Backward, one row: dz (4H) from the gates, the states and dh (+ dh_out, may be NULL);
 * dc (H) holds dL/dc_t on entry and dL/dc_{t-1} on exit; db (4H) += dz. */
FB_CLONES static void FB_NAME(fb_lstm_backward)(const FB_T *restrict gates,
                                                const FB_T *restrict c_prev,
                                                const FB_T *restrict c,
                                                const FB_T *restrict dh,
                                                const FB_T *restrict dh_out,
                                                FB_T *restrict dc, FB_T *restrict dz,
                                                FB_T *restrict db, ptrdiff_t H)
{
    if (dh_out == NULL)
        FB_NAME(fb_lstm_backward_units)(gates, c_prev, c, dh, NULL, 0, dc, dz, H);
    else
        FB_NAME(fb_lstm_backward_units)(gates, c_prev, c, dh, dh_out, 1, dc, dz, H);
    for (ptrdiff_t k = 0; k < 4 * H; k++) db[k] += dz[k];
}
