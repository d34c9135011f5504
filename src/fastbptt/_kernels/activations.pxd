# Element-wise nonlinearities of the recurrent cells and their derivatives, inlined into
# the kernels that cimport them. Each runs over one contiguous row of n elements, so the
# per-step pass is a loop over B rows of H elements.

from cython cimport floating
from libc.math cimport tanh, tanhf, exp, expf

# Codes shared with the Python wrappers (fastbptt._nonlinearity).
cdef enum:
    TANH = 0
    RELU = 1
    SIGMOID = 2
    IDENTITY = 3


cdef inline floating sigmoid(floating v) noexcept nogil:
    # 1 / (1 + e^-v): e^-v overflows to inf for v < -88 (float) and gives exactly 0, which
    # is the correctly rounded result, so no branch is needed.
    if floating is float:
        return 1.0 / (1.0 + expf(-v))
    else:
        return 1.0 / (1.0 + exp(-v))


cdef inline void activate(int kind, const floating *a, const floating *bias,
                          floating *h, Py_ssize_t n) noexcept nogil:
    """h[j] = f(a[j] + bias[j]), j < n."""
    cdef Py_ssize_t j
    cdef floating v
    if kind == TANH:
        for j in range(n):
            if floating is float:
                h[j] = tanhf(a[j] + bias[j])
            else:
                h[j] = tanh(a[j] + bias[j])
    elif kind == RELU:
        for j in range(n):
            v = a[j] + bias[j]
            h[j] = v if v > 0 else 0
    elif kind == SIGMOID:
        for j in range(n):
            h[j] = sigmoid(a[j] + bias[j])
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
    if g_extra == NULL:
        if kind == TANH:
            for j in range(n):
                da[j] = g[j] * (1 - h[j] * h[j])
        elif kind == RELU:
            for j in range(n):
                da[j] = g[j] if h[j] > 0 else 0
        elif kind == SIGMOID:
            for j in range(n):
                da[j] = g[j] * h[j] * (1 - h[j])
        else:
            for j in range(n):
                da[j] = g[j]
    else:
        if kind == TANH:
            for j in range(n):
                da[j] = (g[j] + g_extra[j]) * (1 - h[j] * h[j])
        elif kind == RELU:
            for j in range(n):
                s = g[j] + g_extra[j]
                da[j] = s if h[j] > 0 else 0
        elif kind == SIGMOID:
            for j in range(n):
                da[j] = (g[j] + g_extra[j]) * h[j] * (1 - h[j])
        else:
            for j in range(n):
                da[j] = g[j] + g_extra[j]
