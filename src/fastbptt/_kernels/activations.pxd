# Element-wise nonlinearities of the recurrent cells and their derivatives, inlined into
# the kernels that cimport them. Each runs over one contiguous row of n elements, so the
# per-step pass is a loop over B rows of H elements.

from cython cimport floating

cdef extern from "vmath.h" nogil:
    # Vectorised h[j] = f(a[j] + bias[j]) (see vmath.h for the math and its accuracy)
    void fb_tanh_bias_f32(const float *a, const float *bias, float *h, Py_ssize_t n)
    void fb_tanh_bias_f64(const double *a, const double *bias, double *h, Py_ssize_t n)
    void fb_sigmoid_bias_f32(const float *a, const float *bias, float *h, Py_ssize_t n)
    void fb_sigmoid_bias_f64(const double *a, const double *bias, double *h, Py_ssize_t n)
    # Vectorised da[j] = (g[j] + g2[j]) * f'(a[j]) through h = f(a); g2 may be NULL
    void fb_dtanh_f32(const float *h, const float *g, const float *g2, float *da, Py_ssize_t n)
    void fb_dtanh_f64(const double *h, const double *g, const double *g2, double *da,
                      Py_ssize_t n)
    void fb_dsigmoid_f32(const float *h, const float *g, const float *g2, float *da,
                         Py_ssize_t n)
    void fb_dsigmoid_f64(const double *h, const double *g, const double *g2, double *da,
                         Py_ssize_t n)
    void fb_accumulate_f32(float *y, const float *x, Py_ssize_t n)
    void fb_accumulate_f64(double *y, const double *x, Py_ssize_t n)

# Codes shared with the Python wrappers (fastbptt._nonlinearity).
cdef enum:
    TANH = 0
    RELU = 1
    SIGMOID = 2
    IDENTITY = 3


cdef inline void activate(int kind, const floating *a, const floating *bias,
                          floating *h, Py_ssize_t n) noexcept nogil:
    """h[j] = f(a[j] + bias[j]), j < n."""
    cdef Py_ssize_t j
    cdef floating v
    if kind == TANH:
        if floating is float:
            fb_tanh_bias_f32(a, bias, h, n)
        else:
            fb_tanh_bias_f64(a, bias, h, n)
    elif kind == RELU:
        for j in range(n):
            v = a[j] + bias[j]
            h[j] = 0 if v <= 0 else v     # NaN propagates, as np.maximum and torch do
    elif kind == SIGMOID:
        if floating is float:
            fb_sigmoid_bias_f32(a, bias, h, n)
        else:
            fb_sigmoid_bias_f64(a, bias, h, n)
    else:
        for j in range(n):
            h[j] = a[j] + bias[j]


cdef inline void activate_grad(int kind, const floating *h, const floating *g,
                               const floating *g_extra, floating *da,
                               Py_ssize_t n) noexcept nogil:
    """da[j] = (g[j] + g_extra[j]) * f'(a[j]), f' written through the output h = f(a).

    g_extra may be NULL (no gradient arrives from outside at this step). The derivatives:
    tanh 1 - h^2, sigmoid h (1 - h), relu [h > 0] (0 at the kink, as PyTorch), identity 1.
    """
    cdef Py_ssize_t j
    cdef floating s
    if kind == TANH:
        if floating is float:
            fb_dtanh_f32(h, g, g_extra, da, n)
        else:
            fb_dtanh_f64(h, g, g_extra, da, n)
    elif kind == SIGMOID:
        if floating is float:
            fb_dsigmoid_f32(h, g, g_extra, da, n)
        else:
            fb_dsigmoid_f64(h, g, g_extra, da, n)
    elif g_extra == NULL:
        if kind == RELU:
            for j in range(n):
                da[j] = g[j] if h[j] > 0 else 0
        else:
            for j in range(n):
                da[j] = g[j]
    else:
        if kind == RELU:
            for j in range(n):
                s = g[j] + g_extra[j]
                da[j] = s if h[j] > 0 else 0
        else:
            for j in range(n):
                da[j] = g[j] + g_extra[j]


cdef inline void accumulate(floating *y, const floating *x, Py_ssize_t n) noexcept nogil:
    """y[j] += x[j], j < n."""
    if floating is float:
        fb_accumulate_f32(y, x, n)
    else:
        fb_accumulate_f64(y, x, n)
