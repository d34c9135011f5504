"""CellSpec: one record per recurrent cell, and the only place that knows which cells exist.

Everything that differs between the vanilla RNN, the LSTM and the GRU outside their
equations is a field here: the number of gates G (W_ih is (G*H, I), W_hh (G*H, H)), the
states a sequence carries ("h", and "c" for the LSTM), the Grads record backward returns,
the torch.nn class whose parameters and results the cell matches, the extra keyword
options of the forward function (the RNN's nonlinearity), the module of the compiled time
loops and the module that calls them (the per-cell adapter), how the two biases reach the
kernels and how the kernels' bias gradient splits back into db_ih and db_hh, and for
which dtypes the transposed form of the per-step product pays (step_form). The layers,
the reference, the benchmark, the applications and the tests read these fields instead of
testing a cell's name.

This module is pure Python and NumPy: fastbptt.reference reads it too.
"""
import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from fastbptt.cells.grads import GRUGrads, LSTMGrads, LSTMPGrads, RNNGrads

# Unpacked, the per-step product h_{t-1} W_hh^T runs as one GEMV per row up to this many
# rows: a GEMM call's fixed cost is not paid back by so few rows (bench/RESULTS.md, "GEMV
# rows"); step_form says when they pack instead.
# The kernels must agree (recurrent_gemm.pxd's GEMV_ROWS; tests/test_spec.py checks it).
GEMV_ROWS = 4

# At B <= GEMV_ROWS the packed form (step_form) pays only from this many steps of a call
# on: packing W_hh once per forward and per backward call costs a pass over it that short
# sequences do not win back (bench/RESULTS.md, "The packed product at B = 1-4").
# PACKED_MIN_STEPS for one row; PACKED_MIN_STEPS_ROWS for 2 to GEMV_ROWS rows, whose every
# step makes that many row products against the packed W_hh, so the packing is paid back
# sooner (the quiet re-run in "Quiet re-runs after the third session's merges").
PACKED_MIN_STEPS = 32
PACKED_MIN_STEPS_ROWS = 8


def packed_min_steps(B):
    """The fewest steps from which a call of B <= GEMV_ROWS rows packs W_hh."""
    return PACKED_MIN_STEPS if B == 1 else PACKED_MIN_STEPS_ROWS

# The RNN's nonlinearities (PyTorch's tanh and relu, plus sigmoid and identity) and the
# codes the kernels know them by (the enum in _kernels/activations.pxd).
NONLINEARITY_CODES = MappingProxyType({"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3})


def nonlinearity_code(nonlinearity):
    """The kernel code of a nonlinearity name."""
    try:
        return NONLINEARITY_CODES[nonlinearity]
    except (KeyError, TypeError):
        raise ValueError(
            f"nonlinearity must be one of {sorted(NONLINEARITY_CODES)}, "
            f"got {nonlinearity!r}"
        ) from None


# ---- how the biases reach the kernels, and how their gradient comes back

def summed_bias(b_ih, b_hh, H):
    """b_ih + b_hh (G*H,): the RNN and the LSTM add both biases to the same pre-activation."""
    return b_ih + b_hh


def shared_db(db, H):
    """(db_ih, db_hh) from the kernels' db (G*H,): both biases get the same gradient."""
    return db, db.copy()


def gru_bias_rows(b_ih, b_hh, H):
    """[b_ir + b_hr, b_iz + b_hz, b_in, b_hn] (4H,): b_hn stays apart because the reset
    gate multiplies it (n = tanh(W_in x + b_in + r * (W_hn h + b_hn)))."""
    return np.concatenate([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:], b_hh[2 * H:]])


def gru_db(db, H):
    """(db_ih, db_hh) from the GRU kernels' db (4H,), the column sums of dA = [da_r, da_z,
    da_n r, da_n] (_kernels/gru_cell.h): db_hh is the first three blocks, db_ih blocks
    r, z and the last."""
    return np.concatenate([db[:2 * H], db[3 * H:]]), db[:3 * H].copy()


@dataclass(frozen=True, eq=False)
class CellSpec:
    """What a recurrent cell is, as data. See the module docstring."""
    name: str                        # "rnn", "lstm", "gru": also the functions' prefix
    gates: int                       # G
    gate_names: tuple                # PyTorch's gate blocks, in order
    states: tuple                    # ("h",) or ("h", "c")
    grads: type                      # the NamedTuple backward returns
    torch_name: str                  # torch.nn.RNN / LSTM / GRU
    options: Mapping                 # forward's extra keywords and their defaults
    kernel: str                      # the module of the compiled time loops
    adapter: str                     # the module that calls them (fastbptt.cells.<name>)
    work_gates: int                  # columns / H of the gate buffers the kernels keep
    bias_rows: Callable              # (b_ih, b_hh, H) -> the kernels' bias vector
    split_db: Callable               # (db, H) -> (db_ih, db_hh)
    transposed_dtypes: tuple         # dtypes whose per-step product may run transposed

    def __post_init__(self):
        # derived names, computed once: the checks read them on every call
        derived = {
            "initial_states": tuple(f"{s}0" for s in self.states),   # ("h0",) / ("h0", "c0")
            "final_grads": tuple(f"d{s}_n" for s in self.states),    # ("dh_n",) / (.., "dc_n")
            "forward_name": f"{self.name}_forward",
            "backward_name": f"{self.name}_backward",
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def __repr__(self):
        return f"CellSpec({self.name!r})"


RNN = CellSpec(
    name="rnn", gates=1, gate_names=("a",), states=("h",), grads=RNNGrads,
    torch_name="RNN", options=MappingProxyType({"nonlinearity": "tanh"}),
    kernel="fastbptt._kernels.rnn", adapter="fastbptt.cells.rnn", work_gates=1,
    bias_rows=summed_bias, split_db=shared_db,
    transposed_dtypes=(np.dtype(np.float32), np.dtype(np.float64)),
)
LSTM = CellSpec(
    name="lstm", gates=4, gate_names=("i", "f", "g", "o"), states=("h", "c"),
    grads=LSTMGrads, torch_name="LSTM", options=MappingProxyType({}),
    kernel="fastbptt._kernels.lstm", adapter="fastbptt.cells.lstm", work_gates=4,
    bias_rows=summed_bias, split_db=shared_db,
    # float64 gained nothing from the transposed form (bench/RESULTS.md, "step forms")
    transposed_dtypes=(np.dtype(np.float32),),
)
GRU = CellSpec(
    name="gru", gates=3, gate_names=("r", "z", "n"), states=("h",), grads=GRUGrads,
    torch_name="GRU", options=MappingProxyType({}),
    # the kernels keep [r z n R_n] per step: R_n = W_hn h + b_hn is needed in backward
    kernel="fastbptt._kernels.gru", adapter="fastbptt.cells.gru", work_gates=4,
    bias_rows=gru_bias_rows, split_db=gru_db,
    transposed_dtypes=(np.dtype(np.float32), np.dtype(np.float64)),
)

SPECS = MappingProxyType({s.name: s for s in (RNN, LSTM, GRU)})

# The LSTM with a projection (lstm_forward's W_hr, torch's proj_size): not a cell of its
# own, so not in SPECS (the layers, tables and suites see one LSTM), but its arguments,
# caches and Grads record carry this spec: h is (B, P) with W_hh (4H, P), and backward
# returns dW_hr too (fastbptt.cells.projection).
LSTMP = dataclasses.replace(LSTM, grads=LSTMPGrads, kernel="fastbptt._kernels.lstmp",
                            adapter="fastbptt.cells.lstmp")
CELLS = tuple(SPECS)


def get_spec(cell):
    """The CellSpec of a cell name ("rnn", "lstm", "gru"), or the spec itself."""
    if isinstance(cell, CellSpec):
        return cell
    try:
        return SPECS[cell]
    except (KeyError, TypeError):
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}") from None


STEP_FORMS = ("gemv", "packed", "transposed", "plain")

# The rows up to which the per-step product runs on W_hh packed once per call, with either
# packer (fastbptt.runtime.packing says which one this process has): MKL's packed GEMM and
# fastbptt's own micro-kernel both beat OpenBLAS's per-step GEMM at B 5-64 (bench/RESULTS.md,
# "The per-step product at B 5-64"), in float64 too at every size measured, to the LSTM at
# H = 1024 (the own kernel with its panel prefetch and the packed buffer on huge pages:
# "The own packed micro-kernel: prefetch, K blocking"). Past the measured rows the forms
# below stay as they were.
PACKED_ROWS = 64


def step_form(spec, B, H, dtype, packer=None, steps=None):
    """How the kernels make a step's recurrent product h_{t-1} W_hh^T (B x G*H):

    - "packed": W_hh packed once per call, every step a product on the packed form, by
      `packer` ("mkl" or "own", from fastbptt.runtime.packing.packer(); None: no packing)
      for B <= PACKED_ROWS (bench/RESULTS.md, "The per-step product at B 5-64"); at
      B <= GEMV_ROWS by the own kernel whatever `packer` says (the one measured there;
      _kernels/step_packing.pyx, which also keeps the own kernel beside MKL at B <= 24
      against weights that stream from L3: packer_for) and from packed_min_steps(B)
      steps on (bench/RESULTS.md, "The packed product at B = 1-4");
      never for one step (steps = 1: packing reads W_hh once more than the step's product
      does; driver.step and nn.Stepper run one step, unpacked);
    - "gemv": B <= GEMV_ROWS rows that do not pack, one GEMV per row (a GEMM's fixed
      cost is not paid back by so few rows);
    - "transposed": the product as its transpose W_hh h^T (G*H x B), then a tiled
      transpose of the result, for 1 < B < H: OpenBLAS tiles a GEMM's output by its
      micro-kernel's column width, so few rows against many columns ran faster
      transposed (bench/RESULTS.md, "step forms"); only for the spec's transposed_dtypes;
    - "plain": h W_hh^T as it stands.

    steps is the number of time steps of the call (T); None asks about the product alone,
    the packing counted as paid (as a per-product benchmark does).

    The one policy: the wrappers choose with it, the kernels obey, and the tests derive
    the shapes that cover each form from it.
    """
    packs = packer is not None and steps != 1 and B <= PACKED_ROWS
    if B <= GEMV_ROWS:
        few_rows_pack = packs and (steps is None or steps >= packed_min_steps(B))
        return "packed" if few_rows_pack else "gemv"
    if packs:
        return "packed"
    if 1 < B < H and np.dtype(dtype) in get_spec(spec).transposed_dtypes:
        return "transposed"
    return "plain"
