# Python entry points to the element-wise passes in activations.pxd, for the tests that
# measure their accuracy against NumPy. Not public: the kernels inline the .pxd versions.

from cython cimport floating


def activate_py(int kind, const floating[::1] a, const floating[::1] bias,
                floating[::1] h):
    """h = f(a + bias) in place (f by its code in activations.pxd); returns h."""
    if a.shape[0] != h.shape[0] or bias.shape[0] != h.shape[0]:
        raise ValueError("activate_py: a, bias and h must have one length")
    if h.shape[0]:
        with nogil:
            activate(kind, &a[0], &bias[0], &h[0], h.shape[0])
    return h.base


def activate_grad_py(int kind, const floating[::1] h, const floating[::1] g,
                     floating[::1] da):
    """da = g * f'(a) written through h = f(a), in place; returns da."""
    if h.shape[0] != da.shape[0] or g.shape[0] != da.shape[0]:
        raise ValueError("activate_grad_py: h, g and da must have one length")
    if da.shape[0]:
        with nogil:
            activate_grad(kind, &h[0], &g[0], NULL, &da[0], da.shape[0])
    return da.base
