"""The per-step recurrent product at B 5-64, in every tried form, timed side by side.

Every step of a time loop multiplies B rows by the same W_hh (G*H x H):

    forward   P_t (B x GH) += h_{t-1} (B x H) W_hh^T        (recurrent_product)
    backward  carry (B x H) = dA_t (B x GH) W_hh (GH x H)    (recurrent_product_grad)

The forms (each a compiled loop of `steps` products, timed in C; bench/_step_options.pyx,
compiled here at first use into build/step_options/):

    openblas_plain       the kernels' plain form: scipy's OpenBLAS GEMM, as they call it
    openblas_transposed  the kernels' transposed form (GEMM of the transpose + tiled transpose)
    packed               W_hh packed once per call, fastbptt's micro-kernel (packed_gemm.h)
    blis                 BLIS's GEMM from the `blis` package (if installed)
    mkl                  MKL's cblas GEMM (if the `mkl` package is installed)
    mkl_packed           MKL's packed GEMM: cblas_?gemm_pack once per call, ?gemm_compute
                         per step
("packed" and "mkl_packed" are the kernels' packed form itself, recurrent_gemm.pxd with
fastbptt.runtime.packing's two packers.)

"now" is the form the kernels use today (fastbptt.cells.spec.step_form, G=1 as the RNN,
G=4 as the LSTM). All run on one thread (OpenBLAS through threadpoolctl, MKL through
MKL_Set_Num_Threads, BLIS single-threaded by default), interleaved: every round times
every form of every case once, the forms' order rotated from round to round; medians
over the rounds. The once-per-call packing is timed apart and charged per step at the
sequence length --T. The per-step ratio now / form above 1 means the form is faster.

    python bench/per_step_gemm_options.py --rounds 7 --out per_step_gemm.json
    python bench/per_step_gemm_options.py --B 20,32 --H 256,650 --G 4 --dtype float32

On a busy machine the ratios are provisional: re-run on a quiet one.
"""
import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np

import fastbptt
from fastbptt import bench
from fastbptt._kernels import step_packing
from fastbptt.cells.spec import SPECS, step_form
from fastbptt.runtime import packing

HERE = Path(__file__).resolve().parent
SLOTS = 8
_CELL_OF_GATES = {spec.gates: name for name, spec in SPECS.items()}


def _have_blis():
    try:
        import blis  # noqa: F401
    except ImportError:
        return False
    return True


def build_options():
    """Compile bench/_step_options.pyx (once per change) and import it."""
    from setuptools import Extension

    from _probe_build import build_probe

    kernels = Path(fastbptt.__file__).resolve().parent / "_kernels"
    ext = Extension("_step_options", [str(HERE / "_step_options.pyx")],
                    include_dirs=[np.get_include(), str(kernels)],
                    extra_compile_args=["-O3"], libraries=["dl"])
    return build_probe(ext, HERE.parent / "build" / "step_options",
                       compile_time_env={"HAVE_BLIS": _have_blis()},
                       include_path=[str(kernels.parents[1])])


def case_arrays(B, H, G, dtype, backward, rng):
    GH = G * H
    W = (rng.standard_normal((GH, H)) / math.sqrt(H)).astype(dtype)
    WT = np.ascontiguousarray(W.T)
    lhs = rng.standard_normal((SLOTS, B, GH if backward else H)).astype(dtype)
    out = np.zeros((SLOTS, B, H if backward else GH), dtype)
    scratch = np.zeros(GH * B, dtype)
    return W, WT, lhs, out, scratch


def now_option(G, B, H, dtype, T):
    """The option that is the kernels' form today for a T-step call at this shape (the
    packed form by the packer step_packing.packer_for picks there)."""
    form = step_form(_CELL_OF_GATES[G], B, H, dtype, packing.packer(), T)
    if form != "packed":
        return "openblas_" + form
    mkl = step_packing.packer_for(B, G * H, H, np.dtype(dtype).itemsize) == "mkl"
    return "mkl_packed" if mkl else "packed"


def run(mod, option, backward, steps, arrays):
    """(pack_ns, loop_ns) of `steps` products in form `option` ("packed" and
    "mkl_packed" each by its own packer, whatever the kernels would pick at the shape)."""
    return mod.run(option, backward, steps, *arrays)


def check(mod, option, arrays, backward):
    """One step of `option` against NumPy in float64: a form that is wrong is not timed."""
    from _probe_build import check_step_product

    W, WT, lhs, out, scratch = arrays
    out[0] = 0
    run(mod, option, backward, 1, arrays)
    check_step_product(option, W, lhs[0], out[0], backward)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--B", default="5,8,16,20,32,64")
    parser.add_argument("--H", default="128,256,650,1024")
    parser.add_argument("--G", default="1,4", help="gates: 1 (rnn), 3 (gru), 4 (lstm)")
    parser.add_argument("--dtype", default="float32,float64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--T", type=int, default=50,
                        help="sequence length the packing is charged over")
    parser.add_argument("--flops", type=float, default=4e7,
                        help="work per timed loop (its step count follows, 4 to 64)")
    parser.add_argument("--options", default=None, help="comma-separated subset")
    parser.add_argument("--out", default=None, help="write the medians as JSON here")
    opts = parser.parse_args(argv)

    mod = build_options()
    options = list(mod.OPTIONS)
    if not mod.have_blis():
        options.remove("blis")
    mkl = packing.mkl_library() if packing.packer() == "mkl" else None
    if mkl is None or not mod.load_mkl(str(mkl).encode()):
        options = [o for o in options if not o.startswith("mkl")]
    if opts.options:
        wanted = opts.options.split(",")
        options = [o for o in options if o in wanted]

    rng = np.random.default_rng(0)
    cases = []
    for dtype in opts.dtype.split(","):
        for G in map(int, opts.G.split(",")):
            for H in map(int, opts.H.split(",")):
                for B in map(int, opts.B.split(",")):
                    for backward in (False, True):
                        flops = 2.0 * B * G * H * H
                        steps = int(min(64, max(4, math.ceil(opts.flops / flops))))
                        arrays = case_arrays(B, H, G, np.dtype(dtype), backward, rng)
                        usable = list(options)
                        if not 1 < B < H:
                            usable.remove("openblas_transposed")
                        for option in usable:
                            check(mod, option, arrays, backward)
                        cases.append(dict(dtype=dtype, G=G, H=H, B=B, backward=backward,
                                          steps=steps, arrays=arrays, options=usable,
                                          now=now_option(G, B, H, dtype, opts.T),
                                          loop={}, pack={}))

    print("\n".join(bench.machine_lines()))
    print(f"fastbptt {fastbptt.__version__}, packed instance level {_level()}, "
          f"mkl {mkl}, blis {mod.have_blis()}, {opts.rounds} rounds, T={opts.T}")
    with bench.thread_limit(1):
        for r in range(opts.rounds):
            for case in cases:
                order = case["options"][r % len(case["options"]):] \
                    + case["options"][:r % len(case["options"])]
                for option in order:
                    pack_ns, loop_ns = run(mod, option, case["backward"], case["steps"],
                                           case["arrays"])
                    case["loop"].setdefault(option, []).append(loop_ns / case["steps"])
                    case["pack"].setdefault(option, []).append(pack_ns)
            print(f"round {r + 1}/{opts.rounds} done", file=sys.stderr)

    rows = []
    for case in cases:
        row = {k: case[k] for k in ("dtype", "G", "H", "B", "backward", "now", "steps")}
        for stat in ("median", "min"):
            f = getattr(statistics, stat) if stat == "median" else min
            row[f"per_step_ns_{stat}"] = {o: f(case["loop"][o]) + f(case["pack"][o]) / opts.T
                                          for o in case["options"]}
        row["pack_ns"] = {o: statistics.median(case["pack"][o]) for o in case["options"]}
        rows.append(row)
    for stat in ("median", "min"):
        print(f"\nnow / form, per step, {stat}s over the rounds (packing charged over T)")
        print_table(rows, options, f"per_step_ns_{stat}")
    if opts.out:
        Path(opts.out).write_text(json.dumps(rows, indent=1))


def _level():
    from fastbptt._kernels import packed_product
    return packed_product.level()


def print_table(rows, options, key):
    head = "| dtype | G | B | H | dir | now | now us/step | " + " | ".join(options) + " |"
    print(head)
    print("|" + "---|" * (7 + len(options)))
    for row in rows:
        now = row[key].get(row["now"])   # None when --options left today's form out
        cells = [f"{now / row[key][o]:.2f}" if o in row[key] and now else "-"
                 for o in options]
        print(f"| {row['dtype']} | {row['G']} | {row['B']} | {row['H']} | "
              f"{'bwd' if row['backward'] else 'fwd'} | {row['now']} | "
              + (f"{now / 1e3:.2f} | " if now else "- | ") + " | ".join(cells) + " |")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
