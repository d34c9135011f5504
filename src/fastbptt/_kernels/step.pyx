# One time step of a unidirectional stack of recurrent layers, for streaming inference
# (fastbptt.nn.stepper.Stepper): the forward kernels' loop body at T = 1, time-major, on
# buffers whose addresses are taken once, when the StackStep is made, instead of on every
# call (a forward kernel's call acquires eight memoryviews and parses eight keywords).
#
# Per layer k, with its input X_k (B x I_k) and its state at parity p (hbuf[k, p], and
# cbuf[k, p] for the LSTM) it writes the state at parity 1 - p, making the same helper
# calls as the cell's forward kernel at T = 1 (so the same numbers, to the bit):
#
#   rnn:  P = X W_ih^T + h W_hh^T (into h_new);  h_new = f(P + bias)
#   lstm: Z = X W_ih^T + h W_hh^T (B x 4H);  [i f g o] = act(Z + bias)
#         c_new = f c + i g,  h_new = o tanh(c_new)                     (lstm_cell.h)
#   gru:  P = X W_ih^T (B x 3H, rows 4H apart);  R = h W_hh^T (B x 3H)
#         h_new from P, R, bias (gru_cell.h)
#
# X_0 is the caller's input buffer; X_k for k > 0 is layer k-1's h_new, copied into
# xbuf[k] or multiplied there by the dropout mask of that layer (h * m, one rounding, as
# NumPy's multiply).
#
# One-hot inputs (advance(..., one_hot=True)): row b of X_0 is e_{index[b]}, and layer 0's
# input product X_0 W_ih^T is column index[b] of W_ih, read instead of multiplied: the
# same numbers, since each product x_j w_j of a one-hot row is exactly 0 or w_j and the
# GEMM's sum of them is exactly w_{index[b]} (for finite weights: 0 * inf would be NaN),
# without reading the other I - 1 columns.
#
# The wrapper validated every array (shapes, dtype, C order) and keeps a reference to
# each; nothing here allocates.

from cython cimport floating
from libc.string cimport memcpy
from cpython.mem cimport PyMem_Malloc, PyMem_Free

from fastbptt._kernels.blas cimport one_thread_begin, one_thread_end
from fastbptt._kernels.activations cimport activate
from fastbptt._kernels.recurrent_gemm cimport input_product, recurrent_product

cdef extern from "lstm_cell.h" nogil:
    void fb_lstm_forward_f32(float *gates, const float *bias, const float *c_prev,
                             float *c, float *h, Py_ssize_t H)
    void fb_lstm_forward_f64(double *gates, const double *bias, const double *c_prev,
                             double *c, double *h, Py_ssize_t H)

cdef extern from "gru_cell.h" nogil:
    void fb_gru_forward_f32(float *gates, const float *R, const float *bias,
                            const float *h_prev, float *h, Py_ssize_t H)
    void fb_gru_forward_f64(double *gates, const double *R, const double *bias,
                            const double *h_prev, double *h, Py_ssize_t H)

cdef enum:
    RNN = 0
    LSTM = 1
    GRU = 2

CELL_CODES = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


cdef struct Layer:
    char *X         # (B x I) the layer's input
    char *W_ih      # (G*H x I)
    char *W_hh      # (G*H x H)
    char *bias      # the kernels' bias rows (spec.bias_rows)
    char *h[2]      # (B x H) the hidden state at parity 0 and 1
    char *c[2]      # (B x H) the LSTM's cell state, else NULL
    char *gates     # (B x 4H) lstm and gru, else NULL
    char *R         # (B x 3H) gru, else NULL
    char *scratch   # (G*H*B) for the transposed product, else NULL
    int I


cdef char *_address(object array, bint single) except NULL:
    """The first element of a C-contiguous, non-empty float32 (single) or float64 array."""
    cdef float[::1] f
    cdef double[::1] d
    if not array.flags.c_contiguous:   # reshape would copy: the address of a temporary
        raise ValueError("StackStep needs C-contiguous arrays")
    if single:
        f = array.reshape(-1)
        return <char *> &f[0]
    d = array.reshape(-1)
    return <char *> &d[0]


cdef char *_address_or_null(object array, bint single) except? NULL:
    return NULL if array is None else _address(array, single)


cdef inline void _input(const floating *X, const floating *W_ih, floating *P, int ldp, int B,
                        int GH, int I, const Py_ssize_t *index) noexcept nogil:
    """P[:, :GH] = X W_ih^T: (B x GH) = (B x I)(GH x I)^T, P's rows ldp apart; with index
    (not NULL) X's rows are one-hot, row b = e_{index[b]}: P[b, g] = W_ih[g, index[b]]."""
    cdef Py_ssize_t b, g
    cdef const floating *w
    if index == NULL:
        input_product(X, W_ih, P, ldp, B, GH, I)
        return
    for b in range(B):
        w = W_ih + index[b]
        for g in range(GH):
            P[b * ldp + g] = w[g * I]


cdef void _advance(floating *dummy, Layer *layers, int L, int kind, int code, int B, int H,
                   int p, bint transposed, floating **masks,
                   const Py_ssize_t *index) noexcept nogil:
    """One step of every layer from parity p to 1 - p (dummy only picks the type); index:
    layer 0's inputs are the one-hot rows e_{index[b]}, or NULL: they are X_0."""
    cdef const Py_ssize_t *one_hot
    cdef int k, G = 1 if kind == RNN else (4 if kind == LSTM else 3)
    cdef int GH = G * H, q = 1 - p
    cdef Py_ssize_t b, j, n = <Py_ssize_t> B * H
    cdef Layer *ly
    cdef floating *X
    cdef floating *h_prev
    cdef floating *h_new
    cdef floating *gates
    cdef floating *x_next
    cdef const floating *m
    for k in range(L):
        ly = &layers[k]
        X = <floating *> ly.X
        h_prev = <floating *> ly.h[p]
        h_new = <floating *> ly.h[q]
        one_hot = index if k == 0 else NULL
        if kind == RNN:
            # P = X W_ih^T, then += h_prev W_hh^T, in h_new's rows (B x H); h_new = f(P + b)
            _input(X, <floating *> ly.W_ih, h_new, H, B, H, ly.I, one_hot)
            recurrent_product(<floating *> ly.W_hh, h_prev, 1, h_new, H, B, H, H,
                              transposed, <floating *> ly.scratch, NULL)
            for b in range(B):
                activate(code, h_new + b * H, <floating *> ly.bias, h_new + b * H, H)
        elif kind == LSTM:
            # Z = X W_ih^T + h_prev W_hh^T: (B x 4H); then the cell pass per row
            gates = <floating *> ly.gates
            _input(X, <floating *> ly.W_ih, gates, GH, B, GH, ly.I, one_hot)
            recurrent_product(<floating *> ly.W_hh, h_prev, 1, gates, GH, B, GH, H,
                              transposed, <floating *> ly.scratch, NULL)
            for b in range(B):
                if floating is float:
                    fb_lstm_forward_f32(gates + b * GH, <float *> ly.bias,
                                        <float *> ly.c[p] + b * H, <float *> ly.c[q] + b * H,
                                        h_new + b * H, H)
                else:
                    fb_lstm_forward_f64(gates + b * GH, <double *> ly.bias,
                                        <double *> ly.c[p] + b * H,
                                        <double *> ly.c[q] + b * H, h_new + b * H, H)
        else:
            # P = X W_ih^T: (B x 3H), rows 4H apart; R = h_prev W_hh^T (B x 3H), beta 0
            gates = <floating *> ly.gates
            _input(X, <floating *> ly.W_ih, gates, 4 * H, B, GH, ly.I, one_hot)
            recurrent_product(<floating *> ly.W_hh, h_prev, 0, <floating *> ly.R, GH, B, GH,
                              H, transposed, <floating *> ly.scratch, NULL)
            for b in range(B):
                if floating is float:
                    fb_gru_forward_f32(gates + b * 4 * H, <float *> ly.R + b * GH,
                                       <float *> ly.bias, h_prev + b * H, h_new + b * H, H)
                else:
                    fb_gru_forward_f64(gates + b * 4 * H, <double *> ly.R + b * GH,
                                       <double *> ly.bias, h_prev + b * H, h_new + b * H, H)
        if k + 1 < L:
            # layer k+1's input: h_new, or h_new * mask_k in training mode with dropout
            x_next = <floating *> layers[k + 1].X
            if masks == NULL:
                memcpy(x_next, h_new, n * sizeof(floating))
            else:
                m = masks[k]
                for j in range(n):
                    x_next[j] = h_new[j] * m[j]


cdef class StackStep:
    """The compiled step of a stack (fastbptt.nn.stepper builds it; see the top of this
    file). cell "rnn", "lstm" or "gru"; per layer k the arrays x[k] (B, I_k), W_ih[k],
    W_hh[k], bias[k], hbuf[k] (2, B, H), cbuf[k] (2, B, H) or None, gates[k], R[k] and
    scratch[k] or None, all C-contiguous of one dtype, as validated by the wrapper; index
    (B,) intp, the one-hot inputs' indices, read by advance(one_hot=True)."""
    cdef Layer *layers
    cdef Py_ssize_t *index   # (B) the one-hot inputs' indices (the wrapper's index array)
    cdef char **masks    # (L - 1) the dropout masks' addresses during advance()
    cdef int L, kind, code, B, H
    cdef bint single, transposed
    cdef object keep     # the arrays, kept alive while their addresses are in use

    def __cinit__(self, str cell, int code, bint transposed, list x, list W_ih, list W_hh,
                  list bias, list hbuf, list cbuf, list gates, list R, list scratch,
                  Py_ssize_t[::1] index):
        cdef int k
        cdef bint single = hbuf[0].dtype.itemsize == 4
        self.L = len(hbuf)
        self.kind = CELL_CODES[cell]
        self.code = code
        self.transposed = transposed
        self.single = single
        self.B = hbuf[0].shape[1]
        self.H = hbuf[0].shape[2]
        self.keep = (x, W_ih, W_hh, bias, hbuf, cbuf, gates, R, scratch, index)
        if index.shape[0] != self.B:
            raise ValueError(f"index must have B = {self.B} elements, got {index.shape[0]}")
        self.index = &index[0]
        self.layers = <Layer *> PyMem_Malloc(self.L * sizeof(Layer))
        self.masks = <char **> PyMem_Malloc(self.L * sizeof(char *))
        if self.layers == NULL or self.masks == NULL:
            raise MemoryError()
        for k in range(self.L):
            self.layers[k].X = _address(x[k], single)
            self.layers[k].I = x[k].shape[1]
            self.layers[k].W_ih = _address(W_ih[k], single)
            self.layers[k].W_hh = _address(W_hh[k], single)
            self.layers[k].bias = _address(bias[k], single)
            self.layers[k].h[0] = _address(hbuf[k][0], single)
            self.layers[k].h[1] = _address(hbuf[k][1], single)
            self.layers[k].c[0] = _address_or_null(None if cbuf[k] is None else cbuf[k][0],
                                                   single)
            self.layers[k].c[1] = _address_or_null(None if cbuf[k] is None else cbuf[k][1],
                                                   single)
            self.layers[k].gates = _address_or_null(gates[k], single)
            self.layers[k].R = _address_or_null(R[k], single)
            self.layers[k].scratch = _address_or_null(scratch[k], single)

    def __dealloc__(self):
        PyMem_Free(self.layers)
        PyMem_Free(self.masks)

    def advance(self, int parity, list masks=None, bint one_hot=False):
        """Every layer one step from the states at `parity` to those at 1 - parity.
        masks: None, or L - 1 C-contiguous arrays of B*H elements (the dropout masks of
        layers 0..L-2, validated by the wrapper). one_hot: layer 0's input rows are
        e_{index[b]} (the index array given at construction) instead of x[0]."""
        cdef int k
        cdef Py_ssize_t b, I = self.layers[0].I
        cdef float dummy_f = 0
        cdef double dummy_d = 0
        cdef char **mask_p = NULL if masks is None else self.masks
        cdef const Py_ssize_t *index = self.index if one_hot else NULL
        if parity != 0 and parity != 1:
            raise ValueError(f"parity must be 0 or 1, got {parity}")
        if one_hot:
            for b in range(self.B):   # the gather must stay inside W_ih
                if index[b] < 0 or index[b] >= I:
                    raise ValueError(f"index[{b}] must lie in [0, input_size) = [0, {I}), "
                                     f"got {index[b]}")
        if masks is not None:
            if len(masks) != self.L - 1:
                raise ValueError(f"masks must be {self.L - 1} arrays, got {len(masks)}")
            for k in range(self.L - 1):
                if masks[k].size != self.B * self.H:
                    raise ValueError(f"masks[{k}] must have B*H = {self.B * self.H} "
                                     f"elements, got {masks[k].size}")
                self.masks[k] = _address(masks[k], self.single)
        cdef int saved   # what one_thread_end needs (blas.pxd)
        with nogil:
            saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
            if self.single:
                _advance(&dummy_f, self.layers, self.L, self.kind, self.code, self.B,
                         self.H, parity, self.transposed, <float **> mask_p, index)
            else:
                _advance(&dummy_d, self.layers, self.L, self.kind, self.code, self.B,
                         self.H, parity, self.transposed, <double **> mask_p, index)
            one_thread_end(saved)


cdef class InverseCDF:
    """The categorical draw of a softmax by inverse CDF, on the caller's buffers logits
    (V,) and bias (V,) float64, C-contiguous, V >= 1 (their addresses taken once; the
    reference twin is fastbptt.reference.sampling.InverseCDF, the NumPy calls it replaces):

        shift():  logits := logits + bias;  logits := logits - max(logits)
                  (np.add, np.maximum.reduce, np.subtract: exact operations; a NaN
                  anywhere makes the max NaN, as NumPy's does)
        draw(u):  cdf = cumsum(weights)  (sequential, as np.add.accumulate);  the first j
                  with cdf[j] > u * cdf[V-1] (np.searchsorted side="right", NaN last),
                  at most V - 1; weights = logits, which the caller has exponentiated

    so the same draws, bit for bit, as the NumPy calls.
    """
    cdef double *logits
    cdef const double *bias
    cdef double *cdf
    cdef Py_ssize_t V
    cdef object keep

    def __cinit__(self, double[::1] logits, const double[::1] bias):
        if logits.shape[0] < 1 or bias.shape[0] != logits.shape[0]:
            raise ValueError(f"logits and bias must have one length V >= 1, got "
                             f"{logits.shape[0]} and {bias.shape[0]}")
        self.V = logits.shape[0]
        self.logits = &logits[0]
        self.bias = &bias[0]
        self.cdf = <double *> PyMem_Malloc(self.V * sizeof(double))
        if self.cdf == NULL:
            raise MemoryError()
        self.keep = (logits.base, bias.base)

    def __dealloc__(self):
        PyMem_Free(self.cdf)

    def shift(self):
        """logits := logits + bias - max(logits + bias), in place."""
        cdef Py_ssize_t j, V = self.V
        cdef double *x = self.logits
        cdef double m
        for j in range(V):
            x[j] = x[j] + self.bias[j]
        m = x[0]
        for j in range(1, V):
            if m != m:
                break            # NaN: NumPy's maximum propagates it
            if x[j] > m or x[j] != x[j]:
                m = x[j]
        for j in range(V):
            x[j] = x[j] - m

    def draw(self, double u):
        """The index drawn by u in [0, 1) from the weights now in logits."""
        cdef Py_ssize_t j, V = self.V
        cdef double target
        cdef double *cdf = self.cdf
        cdf[0] = self.logits[0]
        for j in range(1, V):
            cdf[j] = cdf[j - 1] + self.logits[j]
        target = u * cdf[V - 1]
        if target != target:
            return V - 1         # NaN sorts last: searchsorted gives V
        for j in range(V):
            if not cdf[j] <= target:   # cdf[j] > target, or NaN (sorted last)
                return j if j < V - 1 else V - 1
        return V - 1
