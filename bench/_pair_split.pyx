# The batch split's per-step product, shared two ways (bench/pair_split.h holds the loops
# and says the math), compiled at first use by bench/pair_split.py, which documents the
# probe.
# cython: language_level=3, boundscheck=False, wraparound=False

from cython cimport floating
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cdef extern from "pair_split.h" nogil:
    enum:
        PS_ALONE
        PS_SPLIT
        PS_PAIR
    ctypedef struct ps_side_f32:
        int rows
        float *Wp
        float *z
        float *h
        float *c
    ctypedef struct ps_side_f64:
        int rows
        double *Wp
        double *z
        double *h
        double *c
    ctypedef struct ps_job_f32:
        int form, T, H
        const float *bias
        ps_side_f32 side[2]
    ctypedef struct ps_job_f64:
        int form, T, H
        const double *bias
        ps_side_f64 side[2]
    double ps_run_f32(ps_job_f32 *job)
    double ps_run_f64(ps_job_f64 *job)
    size_t fb_packed_size_f32(int K, int N)
    size_t fb_packed_size_f64(int K, int N)
    void fb_pack_f32(const float *src, int K, int N, ptrdiff_t sk, ptrdiff_t sn, float *dst)
    void fb_pack_f64(const double *src, int K, int N, ptrdiff_t sk, ptrdiff_t sn,
                     double *dst)

FORMS = {"alone": PS_ALONE, "split": PS_SPLIT, "pair": PS_PAIR}


cdef floating *_side_copy(const floating *src, int T1, int B, int lo, int rows, int n):
    """Rows lo..lo+rows-1 of src (T1, B, n) as a new (T1, rows, n) buffer."""
    cdef floating *dst = <floating *> malloc(<size_t> T1 * rows * n * sizeof(floating))
    cdef int t
    if dst != NULL:
        for t in range(T1):
            memcpy(dst + <size_t> t * rows * n, src + (<size_t> t * B + lo) * n,
                   <size_t> rows * n * sizeof(floating))
    return dst


cdef void _side_back(const floating *src, floating *dst, int T1, int B, int lo, int rows,
                     int n):
    cdef int t
    for t in range(T1):
        memcpy(dst + (<size_t> t * B + lo) * n, src + <size_t> t * rows * n,
               <size_t> rows * n * sizeof(floating))


cdef bint _side_in(const floating *W, const floating *Z, const floating *h,
                   const floating *c, int T, int B, int H, int lo, int rows,
                   floating **Wp, floating **z, floating **hs, floating **cs):
    """One side's buffers: its packed W_hh^T and its rows lo..lo+rows-1 of Z, h and c.
    Whether every allocation succeeded (those that did are set, the others NULL)."""
    cdef int GH = 4 * H
    cdef size_t n = fb_packed_size_f32(H, GH) if floating is float else fb_packed_size_f64(H, GH)
    Wp[0] = <floating *> malloc(n * sizeof(floating))
    if Wp[0] != NULL:
        if floating is float:
            fb_pack_f32(W, H, GH, 1, H, Wp[0])
        else:
            fb_pack_f64(W, H, GH, 1, H, Wp[0])
    z[0] = _side_copy(Z, T, B, lo, rows, GH)
    hs[0] = _side_copy(h, T + 1, B, lo, rows, H)
    cs[0] = _side_copy(c, T + 1, B, lo, rows, H)
    return Wp[0] != NULL and z[0] != NULL and hs[0] != NULL and cs[0] != NULL


cdef void _side_out(floating *Wp, floating *z, floating *hs, floating *cs, floating *h,
                    floating *c, int T, int B, int H, int lo, int rows, bint copy):
    """Copy one side's h and c back into rows lo..lo+rows-1 (if copy), free its buffers."""
    if copy:
        _side_back(hs, h, T + 1, B, lo, rows, H)
        _side_back(cs, c, T + 1, B, lo, rows, H)
    free(Wp)
    free(z)
    free(hs)
    free(cs)


def run(str form, const floating[:, ::1] W, const floating[::1] bias,
        const floating[:, :, ::1] Z, floating[:, :, ::1] h, floating[:, :, ::1] c):
    """One forward loop of the form: Z (T, B, 4H) the input part of the pre-activations,
    h and c (T+1, B, H) with [0] the initial states; fills h[1:], c[1:] (the rows of side
    0 only for "alone"). Side 0 is the first B // 2 rows. Returns the loop's seconds."""
    cdef int T = Z.shape[0], B = Z.shape[1], GH = Z.shape[2], H = W.shape[1]
    cdef int k
    cdef bint ok = True
    cdef double seconds = -1
    cdef ps_job_f32 j32
    cdef ps_job_f64 j64
    if B < 2 or GH != 4 * H or W.shape[0] != GH or bias.shape[0] != GH:
        raise ValueError("shapes: W (4H, H), bias (4H,), Z (T, B >= 2, 4H)")
    if h.shape[0] != T + 1 or h.shape[1] != B or h.shape[2] != H:
        raise ValueError("h must be (T+1, B, H)")
    if c.shape[0] != T + 1 or c.shape[1] != B or c.shape[2] != H:
        raise ValueError("c must be (T+1, B, H)")
    cdef int lo[2]
    cdef int rows[2]
    lo[0], rows[0], lo[1], rows[1] = 0, B // 2, B // 2, B - B // 2
    if floating is float:
        j32.form, j32.T, j32.H, j32.bias = FORMS[form], T, H, &bias[0]
        for k in range(2):
            j32.side[k].rows = rows[k]
            ok &= _side_in(&W[0, 0], &Z[0, 0, 0], &h[0, 0, 0], &c[0, 0, 0], T, B, H, lo[k],
                           rows[k], &j32.side[k].Wp, &j32.side[k].z, &j32.side[k].h,
                           &j32.side[k].c)
        if ok:
            with nogil:
                seconds = ps_run_f32(&j32)
        for k in range(2):
            _side_out(j32.side[k].Wp, j32.side[k].z, j32.side[k].h, j32.side[k].c,
                      &h[0, 0, 0], &c[0, 0, 0], T, B, H, lo[k], rows[k], ok)
    else:
        j64.form, j64.T, j64.H, j64.bias = FORMS[form], T, H, &bias[0]
        for k in range(2):
            j64.side[k].rows = rows[k]
            ok &= _side_in(&W[0, 0], &Z[0, 0, 0], &h[0, 0, 0], &c[0, 0, 0], T, B, H, lo[k],
                           rows[k], &j64.side[k].Wp, &j64.side[k].z, &j64.side[k].h,
                           &j64.side[k].c)
        if ok:
            with nogil:
                seconds = ps_run_f64(&j64)
        for k in range(2):
            _side_out(j64.side[k].Wp, j64.side[k].z, j64.side[k].h, j64.side[k].c,
                      &h[0, 0, 0], &c[0, 0, 0], T, B, H, lo[k], rows[k], ok)
    if not ok:
        raise MemoryError("the probe's buffers")
    if seconds < 0:
        raise RuntimeError("could not start the second thread")
    return seconds
