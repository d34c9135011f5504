"""CellSpec, the one record per cell, and the step-form policy: the fields agree with what
the rest of the package does, and the reference runs without the compiled extensions."""
import inspect
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbptt
from fastbptt.cells import spec as cellspec
from fastbptt.cells.spec import CELLS, SPECS, STEP_FORMS, get_spec, step_form

spec_param = pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))


@spec_param
def test_spec_agrees_with_the_public_functions(spec):
    forward = getattr(fastbptt, spec.forward_name)
    backward = getattr(fastbptt, spec.backward_name)
    params = list(inspect.signature(forward).parameters)
    # x, the initial states in spec order, the weights, then the options
    assert params[:1 + len(spec.states) + 4] == ["x", *spec.initial_states, "W_ih", "W_hh",
                                                 "b_ih", "b_hh"]
    for option, default in spec.options.items():
        assert inspect.signature(forward).parameters[option].default == default
    back = list(inspect.signature(backward).parameters)
    assert back[:2 + len(spec.states)] == ["dh", "cache", *spec.final_grads]
    assert spec.grads._fields == ("dx", *(f"d{s}" for s in spec.initial_states),
                                  "dW_ih", "dW_hh", "db_ih", "db_hh")
    assert getattr(fastbptt, spec.grads.__name__) is spec.grads


@spec_param
def test_spec_agrees_with_the_layers_and_the_kernels(spec):
    import importlib

    from fastbptt.nn import LAYERS
    layer = LAYERS[spec.name]
    assert layer.spec is spec and layer.__name__ == spec.torch_name
    kernel = importlib.import_module(spec.kernel)
    assert hasattr(kernel, spec.forward_name) and hasattr(kernel, spec.backward_name)
    adapter = importlib.import_module(spec.adapter)
    assert adapter.SPEC is spec
    assert len(spec.gate_names) == spec.gates


def test_gemv_rows_agree_with_the_kernels():
    from fastbptt._kernels import rnn
    assert rnn.GEMV_ROWS_PER_STEP == cellspec.GEMV_ROWS


def test_nonlinearity_codes_cover_the_kernels():
    from fastbptt._kernels.activations import activate_py
    x = np.linspace(-2, 2, 9)
    expected = {"tanh": np.tanh(x), "relu": np.maximum(x, 0),
                "sigmoid": 1 / (1 + np.exp(-x)), "identity": x}
    for name, code in cellspec.NONLINEARITY_CODES.items():
        h = activate_py(code, x, np.zeros_like(x), np.empty_like(x))
        np.testing.assert_allclose(h, expected[name], rtol=1e-12, atol=1e-15, err_msg=name)


def test_get_spec_names_the_cells():
    assert get_spec("lstm") is SPECS["lstm"] and get_spec(SPECS["gru"]) is SPECS["gru"]
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru"):
        get_spec("transformer")
    assert CELLS == ("rnn", "lstm", "gru")


@spec_param
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_form_policy(spec, dtype):
    """The three forms as the policy defines them, for every cell and dtype."""
    forms = {step_form(spec, B, H, dtype) for B in range(1, 70) for H in (1, 8, 64, 256)}
    assert step_form(spec, 1, 256, dtype) == step_form(spec, cellspec.GEMV_ROWS, 256,
                                                        dtype) == "gemv"
    assert step_form(spec, 64, 32, dtype) == "plain"   # B >= H
    transposed = np.dtype(dtype) in spec.transposed_dtypes
    assert step_form(spec, cellspec.GEMV_ROWS + 1, 256, dtype) == (
        "transposed" if transposed else "plain")
    unpacked = set(STEP_FORMS) - {"packed"}
    assert forms == (unpacked if transposed else {"gemv", "plain"})


@spec_param
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_form_policy_with_a_packer(spec, dtype):
    """The packed form takes the rows and calls its packer was measured to win at, and
    only those; every other shape keeps the form it has without packing."""
    packed_rows = range(cellspec.GEMV_ROWS + 1, cellspec.PACKED_ROWS + 1)
    few_rows = range(1, cellspec.GEMV_ROWS + 1)
    min_steps = cellspec.PACKED_MIN_STEPS
    for packer in ("mkl", "own"):
        rows_min = cellspec.PACKED_MIN_STEPS_ROWS
        for steps in (None, 1, 2, rows_min - 1, rows_min, min_steps - 1, min_steps, 1000):
            for B in range(1, 70):
                for H in (1, 8, 64, 256, 649, 650, 1024):
                    form = step_form(spec, B, H, dtype, packer, steps)
                    long_call = steps is None or steps >= (min_steps if B == 1 else rows_min)
                    packs = steps != 1 and (
                        B in packed_rows
                        or (B in few_rows and long_call))
                    assert (form == "packed") == packs, (packer, steps, B, H)
                    if not packs:
                        assert form == step_form(spec, B, H, dtype), (packer, steps, B, H)
    # one step never packs; one row packs from PACKED_MIN_STEPS steps on
    assert step_form(spec, 5, 8, dtype, "own", 1) == step_form(spec, 5, 8, dtype)
    assert step_form(spec, 1, 8, dtype, "own", min_steps - 1) == "gemv"
    assert step_form(spec, 1, 8, dtype, "own", min_steps) == "packed"
    # with either packer: at B <= GEMV_ROWS the own kernel packs (step_packing.pyx)
    assert step_form(spec, 1, 8, dtype, "mkl", min_steps) == "packed"
    # two to GEMV_ROWS rows pack from PACKED_MIN_STEPS_ROWS steps on
    for B in range(2, cellspec.GEMV_ROWS + 1):
        assert cellspec.packed_min_steps(B) == cellspec.PACKED_MIN_STEPS_ROWS < min_steps
        assert step_form(spec, B, 8, dtype, "own", cellspec.PACKED_MIN_STEPS_ROWS) == "packed"
        assert step_form(spec, B, 8, dtype, "own",
                         cellspec.PACKED_MIN_STEPS_ROWS - 1) == "gemv"
    assert step_form(spec, 5, 8, dtype, "own") == "packed"
    assert step_form(spec, 64, 8, dtype, "mkl") == "packed"
    assert step_form(spec, 65, 8, dtype, "mkl") == "plain"
    # the own kernel packs float64 weights of every measured size, to the LSTM at H = 1024
    assert step_form("lstm", 20, 1024, dtype, "own") == "packed"
    assert step_form("lstm", 20, 650, dtype, "own") == "packed"
    assert step_form("lstm", 20, 650, dtype, "mkl") == "packed"
    assert step_form("rnn", 20, 650, dtype, "own") == "packed"


def _run_without_kernels(code):
    """Run `code` in a fresh interpreter where importing fastbptt._kernels (any of the
    compiled extensions) fails, as it would where the build failed."""
    prelude = textwrap.dedent("""
        import importlib.abc, sys
        class NoKernels(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "fastbptt._kernels" or name.startswith("fastbptt._kernels."):
                    raise ImportError("blocked for the test: " + name, name=name)
        sys.meta_path.insert(0, NoKernels())
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_reference_runs_without_the_compiled_extensions():
    result = _run_without_kernels("""
        import numpy as np
        import fastbptt.reference as R
        rng = np.random.default_rng(0)
        T, B, I, H = 5, 3, 2, 4
        x = rng.standard_normal((T, B, I))
        from fastbptt.cells.spec import SPECS   # pure Python: the reference reads it too
        for spec in SPECS.values():
            G = spec.gates
            W_ih, W_hh = rng.standard_normal((G * H, I)), rng.standard_normal((G * H, H))
            b = rng.standard_normal(G * H)
            forward = getattr(R, spec.forward_name)
            backward = getattr(R, spec.backward_name)
            init = (None,) * len(spec.states)
            for checkpoint in (None, 2):
                h, cache = forward(x, *init, W_ih, W_hh, b, b, checkpoint=checkpoint)
                grads = backward(np.ones_like(h), cache)
                assert grads.dW_hh.shape == W_hh.shape and np.isfinite(h).all()
        loss, g = R.softmax_cross_entropy(rng.standard_normal((T, B, H)),
                                          rng.standard_normal((7, H)), None,
                                          rng.integers(0, 7, (T, B)))
        assert not [m for m in sys.modules if m.startswith("fastbptt._kernels")]
        import fastbptt
        try:
            fastbptt.rnn_forward
        except ImportError as exc:
            assert "fastbptt.reference" in str(exc), exc
        else:
            raise AssertionError("the compiled rnn_forward loaded without its kernels")
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
