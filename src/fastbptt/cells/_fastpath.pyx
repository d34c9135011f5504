# The driver's compiled fast path: the common call of a cell's forward, backward and step
# validated, allocated for and dispatched in C (cells/driver.py's module docstring has the
# design). It only ever decides "this call is the common case and every check passes";
# anything else (a wrong argument included) returns None and the driver runs its general
# Python path, which raises with its own messages. So an argument is accepted here only
# where the general path would accept it unchanged, and what is built from it is what the
# general path builds: the same CellArgs, buffers, kernel calls and results, bit for bit
# (tests/test_fastpath.py holds the two together).
#
# The common case: x, the initial states, the weights and the biases (or none of each
# bias), dh and the final states' gradients are exact numpy.ndarrays, C-contiguous,
# aligned, in native byte order, all float32 or all float64, of the right dimensions and
# shapes; T, B, I, H >= 1 and within the 32-bit BLAS limits; no lengths, no checkpoint,
# check_finite False, batch_first a bool, the RNN's nonlinearity one of its names.

cimport numpy as cnp
from cython cimport floating
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.string cimport memcpy

from fastbptt._kernels.gru cimport gru_backward_loop, gru_forward_loop
from fastbptt._kernels.lstm cimport lstm_backward_loop, lstm_forward_loop
from fastbptt._kernels.rnn cimport rnn_backward_loop, rnn_forward_loop

import numpy as np

from fastbptt.cells.spec import GEMV_ROWS as _GEMV_ROWS
from fastbptt.cells.spec import PACKED_MIN_STEPS as _PACKED_MIN_STEPS
from fastbptt.cells.spec import PACKED_MIN_STEPS_ROWS as _PACKED_MIN_STEPS_ROWS
from fastbptt.cells.spec import PACKED_ROWS as _PACKED_ROWS
from fastbptt.cells.spec import GRU, LSTM, RNN

cnp.import_array()

# Set once by install() (called at the end of cells/driver.py, which imports this module:
# the names cannot be imported here without a cycle).
cdef object CompiledCache = None
cdef object CellArgs = None
cdef dict WORKSPACE = {}      # cells.workspace's globals: empty and MIN_BYTES, read per use
cdef dict CELLS = {}          # CellSpec -> its _Cell
cdef dict NONLINEARITY = {}   # the RNN's nonlinearity names -> kernel codes
cdef dict DRIVER = {}         # the driver's globals: its step_form may be replaced (tests)
cdef object POLICY = None     # spec.step_form, which step_form() below computes in C
cdef dict VALIDATION = {}     # runtime.validation's globals: the 32-bit limit, _BLAS_INT_MAX
cdef object tuple_new = tuple.__new__

# CellArgs' fields, in order (install() checks them against the class): the fast path
# builds a CellArgs as tuple.__new__ does in its generated __new__, and reads its fields by
# position, as C, instead of by name through a Python descriptor each: some twenty reads
# a call, a share of the fixed cost that issue 14 holds to 3 us (bench/RESULTS.md, "The
# fourth session")
ARGS_FIELDS = ("spec", "x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh", "has_bias",
               "batch_first", "lengths", "T", "B", "I", "H", "G", "nonlinearity", "code",
               "steps")
cdef enum ArgsField:
    A_SPEC = 0
    A_X = 1
    A_H0 = 2
    A_C0 = 3
    A_W_IH = 4
    A_W_HH = 5
    A_B_IH = 6
    A_B_HH = 7
    A_HAS_BIAS = 8
    A_BATCH_FIRST = 9
    A_LENGTHS = 10
    A_T = 11
    A_B = 12
    A_I = 13
    A_H = 14
    A_CODE = 17   # (15 G, 16 nonlinearity and 18 steps are not read here)


cdef inline object field(object args, ArgsField i):
    """Field i of a CellArgs (the caller knows args is one: exact type checked)."""
    return <object>PyTuple_GET_ITEM(args, i)


cdef inline Py_ssize_t size_field(object args, ArgsField i):
    """The int field i (T, B, I, H or code) of a CellArgs, as C."""
    return <Py_ssize_t>field(args, i)

# which time loops, forward buffers and bias layout a cell takes (its adapter's
# run_forward_kernel, spec.bias_rows and spec.split_db, written here in C)
cdef enum CellKind:
    RNN_CELL = 0
    LSTM_CELL = 1
    GRU_CELL = 2

cdef dict KINDS = {RNN: RNN_CELL, LSTM: LSTM_CELL, GRU: GRU_CELL}
cdef Py_ssize_t GEMV_ROWS = _GEMV_ROWS   # spec.step_form's
cdef Py_ssize_t PACKED_ROWS = _PACKED_ROWS   # spec.step_form's
cdef Py_ssize_t PACKED_MIN_STEPS = _PACKED_MIN_STEPS   # spec.step_form's
cdef Py_ssize_t PACKED_MIN_STEPS_ROWS = _PACKED_MIN_STEPS_ROWS   # spec.step_form's


cdef class _Cell:
    """What the fast path reads of a CellSpec, as C fields."""
    cdef object spec
    cdef CellKind kind
    cdef int G, Gw, n_states
    cdef bint has_nonlinearity
    cdef bint transposed_f32, transposed_f64   # the dtypes of spec.transposed_dtypes
    cdef object grads


def install(*, specs, compiled_cache, cell_args,
            workspace_globals, nonlinearity_codes, driver_globals, policy,
            validation_globals):
    """Bind what the fast path builds and calls: specs (the CellSpecs; it runs those of
    KINDS), the driver's CompiledCache, CellArgs, the globals of cells.workspace, the
    RNN's nonlinearity codes, the driver's globals, spec.step_form (policy) and
    runtime.validation's globals. The globals are read at each use, as the general path
    reads them (tests change MIN_BYTES, the 32-bit limit and the driver's step_form)."""
    global CompiledCache, CellArgs, WORKSPACE, DRIVER, POLICY, VALIDATION
    if tuple(cell_args._fields) != ARGS_FIELDS:
        raise RuntimeError(f"_fastpath reads CellArgs by position: its fields are "
                           f"{cell_args._fields}, not ARGS_FIELDS {ARGS_FIELDS}")
    # the positions this module reads (ArgsField) are those of ARGS_FIELDS
    if [ARGS_FIELDS.index(name) for name in ("spec", "x", "h0", "c0", "W_ih", "W_hh", "b_ih",
                                             "b_hh", "has_bias", "batch_first", "lengths",
                                             "T", "B", "I", "H", "code")] \
            != [A_SPEC, A_X, A_H0, A_C0, A_W_IH, A_W_HH, A_B_IH, A_B_HH, A_HAS_BIAS,
                A_BATCH_FIRST, A_LENGTHS, A_T, A_B, A_I, A_H, A_CODE]:
        raise RuntimeError("_fastpath's ArgsField positions disagree with ARGS_FIELDS")
    DRIVER, POLICY, VALIDATION = driver_globals, policy, validation_globals
    CompiledCache, CellArgs = compiled_cache, cell_args
    WORKSPACE = workspace_globals
    NONLINEARITY.clear()
    NONLINEARITY.update(nonlinearity_codes)
    CELLS.clear()
    cdef _Cell cell
    for spec in specs:
        if spec not in KINDS:
            continue   # a cell the fast path does not know runs on the general path
        cell = _Cell()
        cell.spec = spec
        cell.kind = KINDS[spec]
        cell.G, cell.Gw, cell.n_states = spec.gates, spec.work_gates, len(spec.states)
        cell.has_nonlinearity = "nonlinearity" in spec.options
        cell.transposed_f32 = np.dtype(np.float32) in spec.transposed_dtypes
        cell.transposed_f64 = np.dtype(np.float64) in spec.transposed_dtypes
        cell.grads = spec.grads
        CELLS[spec] = cell


cdef inline bint plain(object a, int ndim, int typenum):
    """Whether a is an exact ndarray of ndim dimensions and type typenum (native byte
    order), C-contiguous and aligned: the arrays the general path passes on as they are
    (as_float_array's checks pass and np.ascontiguousarray returns a itself)."""
    if type(a) is not np.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_NDIM(arr) == ndim and cnp.PyArray_TYPE(arr) == typenum
            and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_CHKFLAGS(arr, cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED))


cdef inline bint shaped(object a, Py_ssize_t n0, Py_ssize_t n1):
    """Whether the 2-D array a is (n0, n1)."""
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return cnp.PyArray_DIM(arr, 0) == n0 and cnp.PyArray_DIM(arr, 1) == n1


cdef inline cnp.ndarray new_array(int nd, cnp.npy_intp *dims, int typenum, bint zero):
    """An uninitialised (or, with zero, zero-filled) C-contiguous array: a view of the
    thread's recycled buffers from MIN_BYTES up (workspace.empty), as the general path's."""
    cdef Py_ssize_t i, n = cnp.PyArray_DescrFromType(typenum).itemsize
    for i in range(nd):
        n *= dims[i]
    if zero:
        return cnp.PyArray_ZEROS(nd, dims, typenum, 0)
    if n < <Py_ssize_t>WORKSPACE["MIN_BYTES"]:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    shape = tuple([dims[i] for i in range(nd)])
    return WORKSPACE["empty"](shape, cnp.PyArray_DescrFromType(typenum))


cdef inline cnp.ndarray empty2(Py_ssize_t n0, Py_ssize_t n1, int typenum):
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = n0, n1
    return new_array(2, dims, typenum, False)


cdef inline cnp.ndarray empty1(Py_ssize_t n0, int typenum):
    cdef cnp.npy_intp dims[1]
    dims[0] = n0
    return cnp.PyArray_EMPTY(1, dims, typenum, 0)   # np.empty, as the general path's


cdef inline cnp.ndarray zeros2(Py_ssize_t n0, Py_ssize_t n1, int typenum):
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = n0, n1
    return new_array(2, dims, typenum, True)


cdef inline bint sizes_fit(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H,
                           int G, int Gw):
    """args.check_sizes's common case: every size and product the kernels index fits a
    32-bit int (each factor is bounded first, so the products cannot overflow)."""
    cdef Py_ssize_t INT_MAX = VALIDATION["_BLAS_INT_MAX"]
    if T > INT_MAX or B > INT_MAX or I > INT_MAX or H > INT_MAX:
        return False
    if T * B > INT_MAX or Gw * H > INT_MAX or G * H > INT_MAX:
        return False
    return (T * B * max(I, Gw * H) <= INT_MAX and G * H * max(I, H) <= INT_MAX)


cdef object check_forward(_Cell cell, object x, object states, object W_ih, object W_hh,
                          object b_ih, object b_hh, object batch_first, object nonlinearity):
    """The CellArgs that args.check_forward_args returns for these arguments, when they
    are the common case (lengths None, check_finite False: the callers checked); else None."""
    cdef int typenum
    cdef Py_ssize_t T, B, I, H
    cdef cnp.npy_intp GH
    cdef int code = 0
    if batch_first is not False and batch_first is not True:
        return None
    if cell.has_nonlinearity:
        found = NONLINEARITY.get(nonlinearity) if type(nonlinearity) is str else None
        if found is None:
            return None
        code = found
    if type(x) is not np.ndarray or type(states) not in (tuple, list):
        return None
    if len(states) < cell.n_states:
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        return None
    if not plain(x, 3, typenum) or not plain(W_hh, 2, typenum) or not plain(W_ih, 2, typenum):
        return None
    if batch_first:
        B, T = cnp.PyArray_DIM(<cnp.ndarray>x, 0), cnp.PyArray_DIM(<cnp.ndarray>x, 1)
    else:
        T, B = cnp.PyArray_DIM(<cnp.ndarray>x, 0), cnp.PyArray_DIM(<cnp.ndarray>x, 1)
    I = cnp.PyArray_DIM(<cnp.ndarray>x, 2)
    H = cnp.PyArray_DIM(<cnp.ndarray>W_hh, 1)
    GH = cell.G * H
    # empty problems (T, B or H zero) and I = 0 take the general path
    if T == 0 or B == 0 or I == 0 or H == 0:
        return None
    if not shaped(W_hh, GH, H) or not shaped(W_ih, GH, I):
        return None
    if not sizes_fit(T, B, I, H, cell.G, cell.Gw):
        return None
    if b_ih is None and b_hh is None:
        has_bias = False
        b_ih = cnp.PyArray_ZEROS(1, &GH, typenum, 0)
        b_hh = cnp.PyArray_ZEROS(1, &GH, typenum, 0)
    elif (plain(b_ih, 1, typenum) and plain(b_hh, 1, typenum)
          and cnp.PyArray_DIM(<cnp.ndarray>b_ih, 0) == GH
          and cnp.PyArray_DIM(<cnp.ndarray>b_hh, 0) == GH):
        has_bias = True
    else:
        return None
    h0 = check_state(states[0], B, H, typenum)
    if h0 is None:
        return None
    c0 = None
    if cell.n_states == 2:
        c0 = check_state(states[1], B, H, typenum)
        if c0 is None:
            return None
    # CellArgs(...), without its generated __new__'s Python frame (steps: None)
    return tuple_new(CellArgs, (cell.spec, x, h0, c0, W_ih, W_hh, b_ih, b_hh, has_bias,
                                True if batch_first else False, None, T, B, I, H, cell.G,
                                nonlinearity, code, None))


cdef inline object check_state(object value, Py_ssize_t B, Py_ssize_t H, int typenum):
    """An initial state as the general path makes it (zeros for None), or None."""
    if value is None:
        return zeros2(B, H, typenum)
    if plain(value, 2, typenum) and shaped(value, B, H):
        return value
    return None


cdef inline object step_form(_Cell cell, Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                             int typenum):
    """The driver's step_form: spec.step_form's "gemv", "packed", "transposed" or "plain"
    (the same interned strings), computed here but where it depends on the process's
    packer: in the packed form's range of rows, and at B <= GEMV_ROWS from
    spec.packed_min_steps(B) steps on (spec.step_form is asked there, as the driver's _run_kernel
    asks it, with the packer and T); a policy put in its place (as tests do) is called.
    tests/test_fastpath.py holds the two to the same forms."""
    policy = DRIVER["step_form"]
    if policy is not POLICY:
        return policy(cell.spec, B, H, cnp.PyArray_DescrFromType(typenum),
                      DRIVER["packer"](), T)
    if B <= GEMV_ROWS and T < (PACKED_MIN_STEPS if B == 1 else PACKED_MIN_STEPS_ROWS):
        return "gemv"
    if B <= PACKED_ROWS:
        return POLICY(cell.spec, B, H, cnp.PyArray_DescrFromType(typenum),
                      DRIVER["packer"](), T)
    if 1 < B < H and (cell.transposed_f32 if typenum == cnp.NPY_FLOAT else cell.transposed_f64):
        return "transposed"
    return "plain"


cdef cnp.ndarray bias_rows(_Cell cell, cnp.ndarray b_ih, cnp.ndarray b_hh, Py_ssize_t H,
                           int typenum):
    """spec.bias_rows: b_ih + b_hh (G*H,) for the RNN and the LSTM; the GRU's
    [b_ir + b_hr, b_iz + b_hz, b_in, b_hn] (4H,). One IEEE add per element, as numpy's."""
    cdef bint gru = cell.kind == GRU_CELL
    cdef Py_ssize_t GH = cell.G * H
    cdef cnp.ndarray out = empty1(GH + H if gru else GH, typenum)
    cdef void *o = cnp.PyArray_DATA(out)
    cdef const void *a = cnp.PyArray_DATA(b_ih)
    cdef const void *b = cnp.PyArray_DATA(b_hh)
    if typenum == cnp.NPY_FLOAT:
        add_rows(<float *>o, <const float *>a, <const float *>b, 2 * H if gru else GH, H, gru)
    else:
        add_rows(<double *>o, <const double *>a, <const double *>b, 2 * H if gru else GH, H,
                 gru)
    return out


cdef inline void add_rows(floating *out, const floating *b_ih, const floating *b_hh,
                          Py_ssize_t summed, Py_ssize_t H, bint gru) noexcept nogil:
    """out[:summed] = b_ih[:summed] + b_hh[:summed]; for the GRU (summed = 2H) then
    out[2H:3H] = b_in, out[3H:4H] = b_hn."""
    cdef Py_ssize_t i
    for i in range(summed):
        out[i] = b_ih[i] + b_hh[i]
    if gru:
        memcpy(out + summed, b_ih + summed, H * sizeof(floating))
        memcpy(out + summed + H, b_hh + summed, H * sizeof(floating))


cdef tuple run_kernel(_Cell cell, object args):
    """driver._run_kernel on validated common-case arguments: (states, kept, form), the
    state buffers (T+1, B, H) each, [0] the initial states, and what backward needs."""
    cdef Py_ssize_t T = size_field(args, A_T), B = size_field(args, A_B)
    cdef Py_ssize_t H = size_field(args, A_H)
    cdef cnp.ndarray x = field(args, A_X)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(x)
    cdef cnp.npy_intp dims[3]
    cdef cnp.ndarray buf, initial
    dims[0], dims[1], dims[2] = T + 1, B, H
    states = []
    for initial in ((field(args, A_H0), field(args, A_C0)) if cell.n_states == 2
                    else (field(args, A_H0),)):   # args.states
        buf = new_array(3, dims, typenum, False)
        memcpy(cnp.PyArray_DATA(buf), cnp.PyArray_DATA(initial), B * H * itemsize)
        states.append(buf)
    form = step_form(cell, T, B, H, typenum)
    cdef bint transposed = form == "transposed"
    cdef bint packed = form == "packed"
    bias = bias_rows(cell, field(args, A_B_IH), field(args, A_B_HH), H, typenum)
    # the buffers of the adapters' run_forward_kernel, cell by cell
    work = None   # the RNN's P batch-first (time-major it is hbuf[1:]), the GRU's R
    if cell.kind == RNN_CELL:
        kept = None
        if field(args, A_BATCH_FIRST):
            work = empty2(T * B, H, typenum)
        scratch = empty1(H * B, typenum) if transposed else None
    elif cell.kind == LSTM_CELL:
        kept = empty2(T * B, 4 * H, typenum)
        scratch = empty1(4 * H * B, typenum) if transposed else None
    else:
        kept = empty2(T * B, 4 * H, typenum)
        dims[0], dims[1] = B, 3 * H
        work = cnp.PyArray_EMPTY(2, dims, typenum, 0)   # np.empty, as cells/gru.py's
        scratch = empty1(3 * H * B, typenum) if transposed else None
    if typenum == cnp.NPY_FLOAT:
        forward_loop(<float>0, cell, args, states, kept, bias, work, scratch, transposed,
                     packed)
    else:
        forward_loop(<double>0, cell, args, states, kept, bias, work, scratch, transposed,
                     packed)
    return states, kept, form


cdef inline void *data(object a):
    """The first element of the ndarray a, or NULL for None."""
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef void forward_loop(floating tag, _Cell cell, object args, list states, object kept,
                       object bias, object work, object scratch, bint transposed,
                       bint packed):
    """The cell's forward time loops (<cell>_forward_loop) on the buffers, for the dtype
    of tag: the adapters' kernel calls, without acquiring a memoryview per buffer."""
    cdef const floating *X = <const floating *>data(field(args, A_X))
    cdef const floating *W_ih = <const floating *>data(field(args, A_W_IH))
    cdef const floating *W_hh = <const floating *>data(field(args, A_W_HH))
    cdef const floating *bias_p = <const floating *>data(bias)
    cdef floating *hbuf = <floating *>data(states[0])
    cdef floating *cbuf = <floating *>data(states[1]) if cell.n_states == 2 else NULL
    cdef floating *kept_p = <floating *>data(kept)
    cdef floating *work_p = <floating *>data(work)
    cdef floating *scratch_p = <floating *>data(scratch)
    cdef int T = size_field(args, A_T), B = size_field(args, A_B)
    cdef int I = size_field(args, A_I), H = size_field(args, A_H)
    cdef int code = size_field(args, A_CODE)
    cdef bint batch_first = field(args, A_BATCH_FIRST)
    with nogil:
        if cell.kind == RNN_CELL:
            # time-major, the pre-activations are computed in place in hbuf[1:] (cells/rnn.py)
            rnn_forward_loop(X=X, bias=bias_p,
                             P=work_p if batch_first else hbuf + <Py_ssize_t>B * H,
                             hbuf=hbuf, scratch=scratch_p, W_ih=W_ih, W_hh=W_hh, lens=NULL,
                             nonlinearity=code, T=T, B=B, I=I, H=H, batch_first=batch_first,
                             transposed_step=transposed, packed=packed)
        elif cell.kind == LSTM_CELL:
            lstm_forward_loop(X=X, bias=bias_p, gates=kept_p, hbuf=hbuf, cbuf=cbuf,
                              scratch=scratch_p, W_ih=W_ih, W_hh=W_hh, lens=NULL, T=T, B=B,
                              I=I, H=H, batch_first=batch_first, transposed_step=transposed,
                              packed=packed)
        else:
            gru_forward_loop(X=X, bias=bias_p, gates=kept_p, hbuf=hbuf, R=work_p,
                             scratch=scratch_p, W_ih=W_ih, W_hh=W_hh, lens=NULL, T=T, B=B,
                             I=I, H=H, batch_first=batch_first, transposed_step=transposed,
                             packed=packed)


cdef cnp.ndarray outputs(cnp.ndarray hbuf, Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                         bint batch_first):
    """driver._outputs without lengths: h_1..h_T of hbuf (T+1, B, H) as a new array,
    (T, B, H), or (B, T, H) batch-first."""
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(hbuf)
    cdef Py_ssize_t row = H * itemsize, b, t
    cdef cnp.npy_intp dims[3]
    cdef char *src = <char *>cnp.PyArray_DATA(hbuf) + B * row
    cdef char *dst
    if batch_first:
        dims[0], dims[1], dims[2] = B, T, H
    else:
        dims[0], dims[1], dims[2] = T, B, H
    cdef cnp.ndarray out = new_array(3, dims, cnp.PyArray_TYPE(hbuf), False)
    dst = <char *>cnp.PyArray_DATA(out)
    if not batch_first:
        memcpy(dst, src, T * B * row)
    else:
        for b in range(B):
            for t in range(T):
                memcpy(dst + (b * T + t) * row, src + (t * B + b) * row, row)
    return out


def forward(spec, x, states, W_ih, W_hh, b_ih, b_hh, batch_first, lengths, check_finite,
            checkpoint, nonlinearity):
    """driver.forward's (h, cache) for the common case, else None (the general path runs)."""
    if lengths is not None or checkpoint is not None or check_finite is not False:
        return None
    cdef _Cell cell = CELLS.get(spec)
    if cell is None:
        return None
    args = check_forward(cell, x, states, W_ih, W_hh, b_ih, b_hh, batch_first, nonlinearity)
    if args is None:
        return None
    if size_field(args, A_B) >= 2:
        split = DRIVER["batch_split"]
        bounds = split.blocks(args)
        if bounds is not None:   # two cores for it (cells/batch_split.py), on these CellArgs
            return split.forward(args, bounds, DRIVER["run_forward"])
    states_, kept, form = run_kernel(cell, args)
    h = outputs(states_[0], size_field(args, A_T), size_field(args, A_B),
                size_field(args, A_H), field(args, A_BATCH_FIRST))
    return h, CompiledCache(args, states_, kept, form, False)


def step(spec, x, states, W_ih, W_hh, b_ih, b_hh, nonlinearity):
    """driver.step's list of new states for the common case (T = 1), else None."""
    cdef _Cell cell = CELLS.get(spec)
    if cell is None:
        return None
    args = check_forward(cell, x, states, W_ih, W_hh, b_ih, b_hh, False, nonlinearity)
    if args is None or size_field(args, A_T) != 1:
        return None
    buffers, _, _ = run_kernel(cell, args)
    return [buf[1] for buf in buffers]


def backward(spec, dh, cache, object finals, check_finite):
    """driver.backward's Grads record for the common case (a CompiledCache of this spec
    without lengths or I = 0), else None."""
    if check_finite is not False or type(cache) is not CompiledCache:
        return None
    cdef _Cell cell = CELLS.get(spec)
    if cell is None:
        return None
    args = cache.args
    # a CellArgs of this spec (the type checked: its fields are read by position)
    if (type(args) is not CellArgs or field(args, A_SPEC) is not spec
            or field(args, A_LENGTHS) is not None or cache.no_input):
        return None
    cdef cnp.ndarray x = field(args, A_X)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t T = size_field(args, A_T), B = size_field(args, A_B)
    cdef Py_ssize_t I = size_field(args, A_I), H = size_field(args, A_H)
    cdef Py_ssize_t GH = cell.G * H, GwH = cell.Gw * H
    cdef bint batch_first = field(args, A_BATCH_FIRST)
    cdef bint given = dh is not None
    if given:
        if not plain(dh, 3, typenum):
            return None
        if (cnp.PyArray_DIM(<cnp.ndarray>dh, 0) != (B if batch_first else T)
                or cnp.PyArray_DIM(<cnp.ndarray>dh, 1) != (T if batch_first else B)
                or cnp.PyArray_DIM(<cnp.ndarray>dh, 2) != H):
            return None
    carries = []
    for f in finals:
        if f is None:
            carries.append(zeros2(B, H, typenum))
        elif plain(f, 2, typenum) and shaped(f, B, H):
            given = True
            carries.append(cnp.PyArray_NewCopy(<cnp.ndarray>f, cnp.NPY_CORDER))
        else:
            return None
    if not given:   # nothing to backpropagate: the general path raises
        return None
    form = cache.form
    cdef bint transposed = form == "transposed"
    cdef bint packed = form == "packed"
    # the driver's BackwardBuffers, as arrays (no struct to build: the loop takes pointers)
    dA = empty2(T * B, GwH, typenum)
    dX = empty2(T * B, I, typenum)
    dW_ih = empty2(GH, I, typenum)
    dW_hh = empty2(GH, H, typenum)
    db = empty1(GwH, typenum)
    W_hhT = empty2(H, GH, typenum) if transposed else None
    scratch = empty1(H * B, typenum) if transposed else None
    if typenum == cnp.NPY_FLOAT:
        backward_loop(<float>0, cell, args, cache.states, cache.kept, dh, carries, dA, dX,
                      dW_ih, dW_hh, db, W_hhT, scratch, transposed, packed)
    else:
        backward_loop(<double>0, cell, args, cache.states, cache.kept, dh, carries, dA, dX,
                      dW_ih, dW_hh, db, W_hhT, scratch, transposed, packed)
    cdef cnp.PyArray_Dims x_shape
    x_shape.ptr, x_shape.len = cnp.PyArray_DIMS(x), 3
    dx = cnp.PyArray_Newshape(<cnp.ndarray>dX, &x_shape, cnp.NPY_CORDER)
    db_ih = db_hh = None
    if field(args, A_HAS_BIAS):
        db_ih, db_hh = split_db(cell, db, H, typenum)
    if cell.n_states == 2:
        # cell.grads(...), a NamedTuple, without its generated __new__'s Python frame
        return tuple_new(cell.grads, (dx, carries[0], carries[1], dW_ih, dW_hh, db_ih,
                                      db_hh))
    return tuple_new(cell.grads, (dx, carries[0], dW_ih, dW_hh, db_ih, db_hh))


cdef void backward_loop(floating tag, _Cell cell, object args, object states, object kept,
                        object dh, list carries, object dA, object dX, object dW_ih,
                        object dW_hh, object db, object W_hhT, object scratch,
                        bint transposed, bint packed):
    """The cell's reverse time loops (<cell>_backward_loop) on the buffers, for the dtype
    of tag: driver.run_backward's kernel call, without acquiring a memoryview per buffer."""
    cdef const floating *X = <const floating *>data(field(args, A_X))
    cdef const floating *W_ih = <const floating *>data(field(args, A_W_IH))
    cdef const floating *W_hh = <const floating *>data(field(args, A_W_HH))
    cdef const floating *dh_p = <const floating *>data(dh)
    cdef const floating *hbuf = <const floating *>data(states[0])
    cdef const floating *cbuf = <const floating *>data(states[1]) if cell.n_states == 2 else NULL
    cdef const floating *kept_p = <const floating *>data(kept)
    cdef floating *carry_h = <floating *>data(carries[0])
    cdef floating *carry_c = <floating *>data(carries[1]) if cell.n_states == 2 else NULL
    cdef floating *dA_p = <floating *>data(dA)
    cdef floating *dX_p = <floating *>data(dX)
    cdef floating *dW_ih_p = <floating *>data(dW_ih)
    cdef floating *dW_hh_p = <floating *>data(dW_hh)
    cdef floating *db_p = <floating *>data(db)
    cdef floating *W_hhT_p = <floating *>data(W_hhT)
    cdef floating *scratch_p = <floating *>data(scratch)
    cdef int T = size_field(args, A_T), B = size_field(args, A_B)
    cdef int I = size_field(args, A_I), H = size_field(args, A_H)
    cdef int code = size_field(args, A_CODE)
    cdef bint batch_first = field(args, A_BATCH_FIRST)
    with nogil:
        if cell.kind == RNN_CELL:
            rnn_backward_loop(X=X, dh=dh_p, hbuf=hbuf, carry=carry_h, W_ih=W_ih, W_hh=W_hh,
                              lens=NULL, nonlinearity=code, dA=dA_p, dX=dX_p, dW_ih=dW_ih_p,
                              dW_hh=dW_hh_p, db=db_p, W_hhT=W_hhT_p, scratch=scratch_p,
                              hold=NULL, T=T, B=B, I=I, H=H, batch_first=batch_first,
                              transposed_step=transposed, packed=packed)
        elif cell.kind == LSTM_CELL:
            lstm_backward_loop(X=X, dh=dh_p, hbuf=hbuf, cbuf=cbuf, gates=kept_p,
                               carry_h=carry_h, carry_c=carry_c, W_ih=W_ih, W_hh=W_hh,
                               lens=NULL, dA=dA_p, dX=dX_p, dW_ih=dW_ih_p, dW_hh=dW_hh_p,
                               db=db_p, W_hhT=W_hhT_p, scratch=scratch_p, hold=NULL, T=T,
                               B=B, I=I, H=H, batch_first=batch_first,
                               transposed_step=transposed, packed=packed)
        else:
            gru_backward_loop(X=X, dh=dh_p, hbuf=hbuf, gates=kept_p, carry=carry_h,
                              W_ih=W_ih, W_hh=W_hh, lens=NULL, dA=dA_p, dX=dX_p,
                              dW_ih=dW_ih_p, dW_hh=dW_hh_p, db=db_p, W_hhT=W_hhT_p,
                              scratch=scratch_p, T=T, B=B, I=I, H=H,
                              batch_first=batch_first, transposed_step=transposed, packed=packed)


cdef tuple split_db(_Cell cell, cnp.ndarray db, Py_ssize_t H, int typenum):
    """spec.split_db: (db, a copy) for the RNN and the LSTM; the GRU's (db_ih, db_hh) =
    (blocks r, z and the last of db (4H,), its first three blocks)."""
    if cell.kind != GRU_CELL:
        return db, cnp.PyArray_NewCopy(db, cnp.NPY_CORDER)
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(db)
    cdef char *src = <char *>cnp.PyArray_DATA(db)
    cdef cnp.ndarray db_ih = empty1(3 * H, typenum), db_hh = empty1(3 * H, typenum)
    memcpy(cnp.PyArray_DATA(db_ih), src, 2 * H * itemsize)
    memcpy(<char *>cnp.PyArray_DATA(db_ih) + 2 * H * itemsize, src + 3 * H * itemsize,
           H * itemsize)
    memcpy(cnp.PyArray_DATA(db_hh), src, 3 * H * itemsize)
    return db_ih, db_hh
