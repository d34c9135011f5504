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


def run(str form, const floating[:, ::1] W, const floating[::1] bias,
        const floating[:, :, ::1] Z, floating[:, :, ::1] h, floating[:, :, ::1] c):
    """One forward loop of the form: Z (T, B, 4H) the input part of the pre-activations,
    h and c (T+1, B, H) with [0] the initial states; fills h[1:], c[1:] (the rows of side
    0 only for "alone"). Side 0 is the first B // 2 rows. Returns the loop's seconds."""
    cdef int T = Z.shape[0], B = Z.shape[1], GH = Z.shape[2], H = W.shape[1]
    cdef int k, lo, rows
    cdef double seconds
    cdef size_t np_
    cdef ps_job_f32 j32
    cdef ps_job_f64 j64
    if B < 2 or GH != 4 * H or W.shape[0] != GH or bias.shape[0] != GH:
        raise ValueError("shapes: W (4H, H), bias (4H,), Z (T, B >= 2, 4H)")
    if h.shape[0] != T + 1 or h.shape[1] != B or h.shape[2] != H:
        raise ValueError("h must be (T+1, B, H)")
    if c.shape[0] != T + 1 or c.shape[1] != B or c.shape[2] != H:
        raise ValueError("c must be (T+1, B, H)")
    sides = [(0, B // 2), (B // 2, B - B // 2)]
    if floating is float:
        j32.form, j32.T, j32.H, j32.bias = FORMS[form], T, H, &bias[0]
        np_ = fb_packed_size_f32(H, GH)
        for k, (lo, rows) in enumerate(sides):
            j32.side[k].rows = rows
            j32.side[k].Wp = <float *> malloc(np_ * sizeof(float))
            fb_pack_f32(&W[0, 0], H, GH, 1, H, j32.side[k].Wp)
            j32.side[k].z = _side_copy(&Z[0, 0, 0], T, B, lo, rows, GH)
            j32.side[k].h = _side_copy(&h[0, 0, 0], T + 1, B, lo, rows, H)
            j32.side[k].c = _side_copy(&c[0, 0, 0], T + 1, B, lo, rows, H)
            if (j32.side[k].Wp == NULL or j32.side[k].z == NULL
                    or j32.side[k].h == NULL or j32.side[k].c == NULL):
                raise MemoryError("the probe's buffers")
        with nogil:
            seconds = ps_run_f32(&j32)
        for k, (lo, rows) in enumerate(sides):
            _side_back(j32.side[k].h, &h[0, 0, 0], T + 1, B, lo, rows, H)
            _side_back(j32.side[k].c, &c[0, 0, 0], T + 1, B, lo, rows, H)
            free(j32.side[k].Wp)
            free(j32.side[k].z)
            free(j32.side[k].h)
            free(j32.side[k].c)
    else:
        j64.form, j64.T, j64.H, j64.bias = FORMS[form], T, H, &bias[0]
        np_ = fb_packed_size_f64(H, GH)
        for k, (lo, rows) in enumerate(sides):
            j64.side[k].rows = rows
            j64.side[k].Wp = <double *> malloc(np_ * sizeof(double))
            fb_pack_f64(&W[0, 0], H, GH, 1, H, j64.side[k].Wp)
            j64.side[k].z = _side_copy(&Z[0, 0, 0], T, B, lo, rows, GH)
            j64.side[k].h = _side_copy(&h[0, 0, 0], T + 1, B, lo, rows, H)
            j64.side[k].c = _side_copy(&c[0, 0, 0], T + 1, B, lo, rows, H)
            if (j64.side[k].Wp == NULL or j64.side[k].z == NULL
                    or j64.side[k].h == NULL or j64.side[k].c == NULL):
                raise MemoryError("the probe's buffers")
        with nogil:
            seconds = ps_run_f64(&j64)
        for k, (lo, rows) in enumerate(sides):
            _side_back(j64.side[k].h, &h[0, 0, 0], T + 1, B, lo, rows, H)
            _side_back(j64.side[k].c, &c[0, 0, 0], T + 1, B, lo, rows, H)
            free(j64.side[k].Wp)
            free(j64.side[k].z)
            free(j64.side[k].h)
            free(j64.side[k].c)
    if seconds < 0:
        raise RuntimeError("could not start the second thread")
    return seconds
