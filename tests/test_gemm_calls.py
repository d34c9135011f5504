"""The GEMM roofline makes exactly the compiled kernels' BLAS calls, in every step form.

fastbptt.bench's roofline (fastbptt/_kernels/gemm_roofline.pyx) times the matrix products
of one forward+backward alone; its figures mean something only if they are the kernels'
products. The BLAS shim's call log records every gemm/gemv call (routine, transposes,
sizes, leading dimensions, beta) as the kernels make it; here the log of a compiled
forward+backward must equal the roofline's, call for call, for every cell and each of the
three step forms, with the shapes that exercise each form derived from the step-form
policy itself (fastbptt._step_form.step_form). Also: the step-form policy's exact rules,
the call log's own contract, and the kernels' refusal of a step form they cannot run.
"""
import numpy as np
import pytest

from fastbptt import bench
from fastbptt._kernels import blas, gemm_roofline
from fastbptt._kernels import gru as gru_kernel
from fastbptt._kernels import lstm as lstm_kernel
from fastbptt._kernels import rnn as rnn_kernel
from fastbptt._kernels.recurrent_gemm import STEP_FORMS, StepForm
from fastbptt._step_form import GEMV_ROWS, step_form

CELLS = ["rnn", "lstm", "gru"]
FORMS = ["gemv", "transposed", "plain"]
DTYPES = [np.float32, np.float64]
# (B, H) candidates, small enough to run in milliseconds; the first of them that the
# policy puts in a form is that form's shape (B = 9: the transposes' 8 x 8 tiles and an
# edge). B differs from H and G*H, so that a call's sizes tell its form.
CANDIDATES = [(1, 6), (3, 6), (9, 12), (9, 5)]
T, I = 3, 5


def _shape_for(cell, form, dtype):
    for B, H in CANDIDATES:
        if step_form(cell, B, H, dtype) == form:
            return B, H
    return None


CASES = [(cell, form, dtype) for cell in CELLS for dtype in DTYPES for form in FORMS
         if _shape_for(cell, form, dtype) is not None]


def test_cases_cover_every_form_of_every_cell():
    # float32: all three forms for every cell; float64: the LSTM has no transposed form.
    for cell in CELLS:
        assert {form for c, form, d in CASES if c == cell and d == np.float32} == set(FORMS)
        expected = {"gemv", "plain"} if cell == "lstm" else set(FORMS)
        assert {form for c, form, d in CASES if c == cell and d == np.float64} == expected


def _logged(run):
    blas.start_call_log()
    try:
        run()
    finally:
        calls = blas.stop_call_log()
    return calls


@pytest.mark.parametrize("cell,form,dtype", CASES,
                         ids=[f"{c}-{f}-{np.dtype(d).name}" for c, f, d in CASES])
def test_roofline_makes_the_kernels_calls(cell, form, dtype):
    B, H = _shape_for(cell, form, dtype)
    problem = bench.make_problem(cell, T, B, I, H, dtype)
    compiled = _logged(bench.runner(cell, "compiled", problem))
    roofline = _logged(bench.runner(cell, "roofline", problem))
    assert compiled == roofline
    # and the log shows the form: 2*T steps of B GEMVs, or of one GEMM each
    per_step = [call for call in compiled if call[0] == "gemv"]
    assert len(per_step) == (2 * T * B if form == "gemv" else 0)
    GH = problem.W_hh.shape[0]
    transposed_steps = [call for call in compiled
                        if call[:6] in (("gemm", "N", "T", GH, B, H), ("gemm", "N", "T", H, B, GH))]
    assert len(transposed_steps) == (2 * T if form == "transposed" else 0)


def test_gru_input_gradients_are_two_calls_each():
    # The GRU's dP is dA's columns [0, 2H) and [3H, 4H): dW_ih and dX take two calls each,
    # the second dX call adding (beta 1); the roofline makes the same four.
    B, H = 5, 4   # T*B = 15 is none of the per-step calls' sizes
    problem = bench.make_problem("gru", T, B, I, H, np.float64)
    calls = _logged(bench.runner("gru", "roofline", problem))
    batched = [call for call in calls if call[0] == "gemm" and T * B in call[3:6]]
    assert batched == [
        ("gemm", "N", "T", T * B, 3 * H, I, I, I, 4 * H, 0.0),   # input projection
        ("gemm", "T", "N", 2 * H, I, T * B, 4 * H, I, I, 0.0),   # dW_ih[:2H]
        ("gemm", "T", "N", H, I, T * B, 4 * H, I, I, 0.0),       # dW_ih[2H:]
        ("gemm", "N", "N", T * B, I, 2 * H, 4 * H, I, I, 0.0),   # dX  = dP_rz W_ih[:2H]
        ("gemm", "N", "N", T * B, I, H, 4 * H, I, I, 1.0),       # dX += dP_n W_ih[2H:]
        ("gemm", "T", "N", 3 * H, H, T * B, 4 * H, H, H, 0.0),   # dW_hh
    ]


# ------------------------------------------------------------------ the step-form policy

def _expected_form(cell, B, H, dtype):
    # the rules, written out independently of fastbptt._step_form
    if B <= 4:
        return "gemv"
    if 1 < B < H and (cell != "lstm" or np.dtype(dtype) == np.float32):
        return "transposed"
    return "plain"


@pytest.mark.parametrize("dtype", DTYPES + ["float32", "float64"], ids=str)
@pytest.mark.parametrize("cell", CELLS)
def test_step_form_rules(cell, dtype):
    assert GEMV_ROWS == 4
    for B in range(0, 12):
        for H in (1, 4, 5, 6, 9, 10, 11, 64):
            assert step_form(cell, B, H, dtype) == _expected_form(cell, B, H, dtype), (B, H)
    assert step_form(cell, np.int64(9), np.int32(64), np.dtype(dtype)) == \
        _expected_form(cell, 9, 64, dtype)


@pytest.mark.parametrize("args,match", [
    (("cnn", 2, 3, np.float32), "cell"),
    ((None, 2, 3, np.float32), "cell"),
    (("rnn", -1, 3, np.float32), "B"),
    (("rnn", 2.0, 3, np.float32), "B"),
    (("rnn", True, 3, np.float32), "B"),
    (("lstm", 2, -3, np.float32), "H"),
    (("lstm", 2, "3", np.float32), "H"),
    (("gru", 2, 3, np.float16), "dtype"),
    (("gru", 2, 3, np.int32), "dtype"),
    (("gru", 2, 3, "not a dtype"), "dtype"),
    (("gru", 2, 3, None), "dtype"),
])
def test_step_form_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        step_form(*args)


def test_step_form_codes():
    assert set(STEP_FORMS) == set(FORMS)
    assert sorted(STEP_FORMS.values()) == sorted(int(m) for m in StepForm)
    assert STEP_FORMS["gemv"] == StepForm.STEP_GEMV
    assert STEP_FORMS["transposed"] == StepForm.STEP_TRANSPOSED
    assert STEP_FORMS["plain"] == StepForm.STEP_PLAIN


# ------------------------------------------------------------------ the call log

def test_call_log_records_the_shims_calls():
    A = np.arange(6, dtype=np.float64).reshape(2, 3)
    C = np.zeros((2, 2))
    y = np.zeros(2)
    blas.gemm_py(False, True, 1.0, A, A, 0.0, C)      # not recorded: the log is off
    blas.start_call_log()
    blas.gemm_py(False, True, 1.0, A, A, 0.5, C)
    blas.gemv_py(False, 1.0, A, np.ones(3), 0.0, y)
    blas.gemm_py(True, False, 1.0, A, A[:, :2].copy(), 0.0, np.zeros((3, 2)))
    calls = blas.stop_call_log()
    assert calls == [("gemm", "N", "T", 2, 2, 3, 3, 3, 2, 0.5),
                     ("gemv", "N", 2, 3, 3, 0.0),
                     ("gemm", "T", "N", 3, 2, 2, 3, 2, 2, 0.0)]
    blas.gemm_py(False, True, 1.0, A, A, 0.0, C)      # off again
    blas.start_call_log()
    assert blas.stop_call_log() == []


def test_call_log_errors():
    with pytest.raises(RuntimeError, match="no call log"):
        blas.stop_call_log()
    with pytest.raises(ValueError, match="capacity"):
        blas.start_call_log(0)
    A = np.ones((2, 2))
    blas.start_call_log(2)
    for _ in range(3):
        blas.gemm_py(False, False, 1.0, A, A, 0.0, np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="1 calls past the capacity"):
        blas.stop_call_log()
    blas.start_call_log()   # a fresh log after an overflow
    blas.gemm_py(False, False, 1.0, A, A, 0.0, np.zeros((2, 2)))
    assert len(blas.stop_call_log()) == 1


# ------------------------------------------------------------------ the kernels' guards

def _rnn_kernel_args(step_form_code, scratch):
    T_, B, I_, H = 2, 3, 2, 4
    return dict(X=np.ones((T_ * B, I_)), W_ih=np.ones((H, I_)), W_hh=np.ones((H, H)),
                bias=np.zeros(H), A=np.empty((T_ * B, H)), hbuf=np.zeros((T_ + 1, B, H)),
                scratch=scratch, lengths=None, nonlinearity=0, batch_first=False,
                step_form=step_form_code)


@pytest.mark.parametrize("code", [-1, 3, 99])
def test_kernels_refuse_an_unknown_step_form(code):
    with pytest.raises(ValueError, match="step_form"):
        rnn_kernel.rnn_forward(**_rnn_kernel_args(code, np.empty(12)))


@pytest.mark.parametrize("scratch", [None, np.empty(11)], ids=["none", "short"])
def test_transposed_step_needs_its_scratch(scratch):
    with pytest.raises(ValueError, match="scratch"):
        rnn_kernel.rnn_forward(**_rnn_kernel_args(STEP_FORMS["transposed"], scratch))


def test_transposed_backward_needs_W_hhT():
    T_, B, I_, H = 2, 3, 2, 4
    args = dict(X=np.ones((T_ * B, I_)), W_ih=np.ones((4 * H, I_)), W_hh=np.ones((4 * H, H)),
                gates=np.ones((T_ * B, 4 * H)), hbuf=np.zeros((T_ + 1, B, H)),
                cbuf=np.zeros((T_ + 1, B, H)), dh=None, dA=np.empty((T_ * B, 4 * H)),
                carry_h=np.zeros((B, H)), carry_c=np.zeros((B, H)), dX=np.empty((T_ * B, I_)),
                dW_ih=np.empty((4 * H, I_)), dW_hh=np.empty((4 * H, H)), db=np.empty(4 * H),
                W_hhT=None, scratch=np.empty(H * B), lengths=None, hold=None,
                batch_first=False, step_form=STEP_FORMS["transposed"])
    with pytest.raises(ValueError, match="W_hhT"):
        lstm_kernel.lstm_backward(**args)
    args["W_hhT"] = np.empty((4 * H, H))     # W_hh's shape, not its transpose's
    with pytest.raises(ValueError, match="W_hhT"):
        lstm_kernel.lstm_backward(**args)


def test_kernels_take_buffers_by_keyword_only():
    with pytest.raises(TypeError):
        rnn_kernel.rnn_forward(*_rnn_kernel_args(STEP_FORMS["plain"], None).values())


@pytest.mark.parametrize("kernel,H,layout", [
    (rnn_kernel, 5, {"gate_columns": 5, "product_apart": False, "split": 5, "tail": 5}),
    (lstm_kernel, 5, {"gate_columns": 20, "product_apart": False, "split": 20, "tail": 20}),
    (gru_kernel, 5, {"gate_columns": 20, "product_apart": True, "split": 10, "tail": 15}),
])
def test_gemm_layouts(kernel, H, layout):
    assert kernel.gemm_layout(H) == layout


def test_roofline_refuses_a_layout_that_does_not_fit():
    B, H = 2, 3
    args = dict(X=np.ones((3 * B, 2)), W_ih=np.ones((3 * H, 2)), W_hh=np.ones((3 * H, H)),
                W_hhT=None, A=np.empty((3 * B, 2 * H)), R=None, hbuf=np.zeros((4, B, H)),
                scratch=None, carry_h=np.zeros((B, H)), dX=np.empty((3 * B, 2)),
                dW_ih=np.empty((3 * H, 2)), dW_hh=np.empty((3 * H, H)),
                step_form=STEP_FORMS["plain"], split=3 * H, tail=3 * H)
    with pytest.raises(ValueError, match="GH columns"):
        gemm_roofline.recurrent_gemms(**args)
