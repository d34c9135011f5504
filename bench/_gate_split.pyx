# The B = 1 gate-row split's forms (bench/gate_split.h, which holds the loops and says
# the math), compiled at first use by bench/gate_split.py, which documents the probe.
# The GEMV is scipy's OpenBLAS (scipy.linalg.cython_blas), on one BLAS thread per caller.
# cython: language_level=3, boundscheck=False, wraparound=False

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemv, sgemv

cdef extern from "gate_split.h" nogil:
    enum:
        GS_WHOLE
        GS_HALVES
        GS_SPLIT
        GS_FALLBACK
        GS_BARRIER
        GS_STEAL
    ctypedef void (*gs_gemv_t_f)(char *, int *, int *, float *, float *, int *, float *,
                                 int *, float *, float *, int *)
    ctypedef void (*gs_gemv_t_d)(char *, int *, int *, double *, double *, int *, double *,
                                 int *, double *, double *, int *)
    ctypedef struct gs_job_f:
        int form, G, H, T
        const float *W
        const float *b
        const float *Ws
        const float *bs
        float *h
        float *c
        float *z
        float *priv
        gs_gemv_t_f gemv
        int cpu[2]
        long budget_ns
        int futex
        long abandoned_at
    ctypedef struct gs_job_d:
        int form, G, H, T
        const double *W
        const double *b
        const double *Ws
        const double *bs
        double *h
        double *c
        double *z
        double *priv
        gs_gemv_t_d gemv
        int cpu[2]
        long budget_ns
        int futex
        long abandoned_at
    double gs_run_f(gs_job_f *job)
    double gs_run_d(gs_job_d *job)

FORMS = {"whole": GS_WHOLE, "halves": GS_HALVES, "split": GS_SPLIT,
         "fallback": GS_FALLBACK, "barrier": GS_BARRIER, "steal": GS_STEAL}


def run(str form, int G, floating[:, ::1] W, floating[::1] b, floating[:, ::1] Ws,
        floating[::1] bs, floating[:, ::1] h, floating[:, ::1] c, floating[::1] z,
        floating[::1] priv, int cpu0, int cpu1, long budget_ns, bint futex=False):
    """Run `form` over the h.shape[0] - 1 steps; (loop ns, step the fallback went to one
    thread at or 0). Shapes are the caller's (gate_split.py's Case) to get right."""
    cdef gs_job_f jf
    cdef gs_job_d jd
    cdef double ns
    cdef int code = FORMS[form]
    if floating is float:
        jf.form = code
        jf.G = G
        jf.H = h.shape[1]
        jf.T = h.shape[0] - 1
        jf.W = &W[0, 0]
        jf.b = &b[0]
        jf.Ws = &Ws[0, 0]
        jf.bs = &bs[0]
        jf.h = &h[0, 0]
        jf.c = &c[0, 0]
        jf.z = &z[0]
        jf.priv = &priv[0]
        jf.gemv = <gs_gemv_t_f>sgemv
        jf.cpu[0] = cpu0
        jf.cpu[1] = cpu1
        jf.budget_ns = budget_ns
        jf.futex = futex
        with nogil:
            ns = gs_run_f(&jf)
        return ns, jf.abandoned_at
    else:
        jd.form = code
        jd.G = G
        jd.H = h.shape[1]
        jd.T = h.shape[0] - 1
        jd.W = &W[0, 0]
        jd.b = &b[0]
        jd.Ws = &Ws[0, 0]
        jd.bs = &bs[0]
        jd.h = &h[0, 0]
        jd.c = &c[0, 0]
        jd.z = &z[0]
        jd.priv = &priv[0]
        jd.gemv = <gs_gemv_t_d>dgemv
        jd.cpu[0] = cpu0
        jd.cpu[1] = cpu1
        jd.budget_ns = budget_ns
        jd.futex = futex
        with nogil:
            ns = gs_run_d(&jd)
        return ns, jd.abandoned_at
