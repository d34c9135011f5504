"""The packed per-step product's micro-kernel, a base revision against this worktree, in
GFLOP/s and as a fraction of the one-thread GEMM ceiling, timed in one process.

The product is the one every step of a time loop makes against the W_hh packed once per
call (packed_gemm.h):

    forward   P_t (B x GH) += h_{t-1} (B x H) W_hh^T      K = H,  N = GH, beta 1
    backward  carry (B x H) = dA_t (B x GH) W_hh          K = GH, N = H,  beta 0

2 B GH H FLOP a product. bench/_packed_kernel_ab.pyx is compiled twice, once against the
base revision's packed_gemm*.h and vmath.h (git show) and once against the worktree's,
into build/packed_kernel_ab/; both modules run in this process, interleaved: every round
times every build on every case, their order rotated from round to round. The
ceiling is fastbptt.bench.gemm_ceiling_gflops (one CEILING_N-square GEMM in the kernels'
BLAS), measured once a round; efficiency = GFLOP/s / the highest ceiling of the rounds
(the least disturbed, as the products' minimum times are). One thread.

    python bench/packed_kernel_ab.py --base main --rounds 7
    python bench/packed_kernel_ab.py --B 20 --H 650 --G 4 --dtype float32 --rounds 9

On a busy machine the figures are provisional: re-run on a quiet one.
"""
import argparse
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

import fastbptt
from fastbptt import bench

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADERS = ("packed_gemm.h", "packed_gemm_template.h", "vmath.h")
SLOTS = 4


def build(tag, include_dir, defines=()):
    """Compile _packed_kernel_ab.pyx against the headers in include_dir (and the -D flags
    in defines) as module _pk_<tag> and import it."""
    from setuptools import Extension

    from _probe_build import build_probe

    out = ROOT / "build" / "packed_kernel_ab" / tag
    out.mkdir(parents=True, exist_ok=True)
    name = f"_pk_{tag}"
    src = out / f"{name}.pyx"
    src.write_text((HERE / "_packed_kernel_ab.pyx").read_text())
    ext = Extension(name, [str(src)], include_dirs=[str(include_dir)],
                    extra_compile_args=["-O3", *defines])
    return build_probe(ext, out, force=True)


def base_headers(rev):
    """The base revision's headers, written to build/packed_kernel_ab/<rev>-headers."""
    out = ROOT / "build" / "packed_kernel_ab" / "base-headers"
    out.mkdir(parents=True, exist_ok=True)
    for name in HEADERS:
        text = subprocess.run(["git", "show", f"{rev}:src/fastbptt/_kernels/{name}"],
                              cwd=ROOT, check=True, capture_output=True, text=True).stdout
        (out / name).write_text(text)
    return out


def case_arrays(B, H, G, dtype, backward, rng):
    GH = G * H
    W = (rng.standard_normal((GH, H)) / math.sqrt(H)).astype(dtype)
    A = rng.standard_normal((SLOTS, B, GH if backward else H)).astype(dtype)
    C = np.zeros((SLOTS, B, H if backward else GH), dtype)
    return W, A, C


def check(mod, W, A, C, backward):
    """One product against NumPy in float64: a build that is wrong is not timed."""
    from _probe_build import check_step_product

    C[0] = 0
    mod.run(W, not backward, A, C, 1, False)
    check_step_product(mod.__name__, W, A[0], C[0], backward)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="git revision of the base build")
    parser.add_argument("--B", default="1,4,20,32,64")
    parser.add_argument("--H", default="256,650,1024")
    parser.add_argument("--G", default="1,4")
    parser.add_argument("--dtype", default="float32,float64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flops", type=float, default=4e7,
                        help="work per timed loop (its step count follows, 4 to 64)")
    parser.add_argument("--huge", action="store_true",
                        help="add a build 'huge': the worktree's with the packed W on 2 MiB pages")
    parser.add_argument("--variants", default="",
                        help='more worktree builds: "name=-DX=1 -DY=2;name2=..."')
    opts = parser.parse_args(argv)

    kernels = Path(fastbptt.__file__).resolve().parent / "_kernels"
    mods = {"base": build("base", base_headers(opts.base)), "new": build("new", kernels)}
    for spec in filter(None, opts.variants.split(";")):
        name, _, flags = spec.partition("=")
        if not all(f.startswith("-D") for f in flags.split()):
            parser.error(f"--variants: {spec!r} is not name=-DX=.. -DY=..")
        mods[name] = build(name, kernels, flags.split())
    huge = {}
    if opts.huge:
        mods["huge"] = build("huge", kernels)
        huge = {"huge": True}
    rng = np.random.default_rng(0)
    cases = []
    dtypes = opts.dtype.split(",")
    for dtype in dtypes:
        for G in map(int, opts.G.split(",")):
            for H in map(int, opts.H.split(",")):
                for B in map(int, opts.B.split(",")):
                    for backward in (False, True):
                        flops = 2.0 * B * G * H * H
                        steps = int(min(64, max(4, math.ceil(opts.flops / flops))))
                        W, A, C = case_arrays(B, H, G, np.dtype(dtype), backward, rng)
                        for mod in mods.values():
                            check(mod, W, A, C, backward)
                        cases.append(dict(dtype=dtype, G=G, H=H, B=B, backward=backward,
                                          flops=flops, steps=steps, arrays=(W, A, C),
                                          ns={k: [] for k in mods}))

    print("\n".join(bench.machine_lines()))
    print(f"fastbptt {fastbptt.__version__}, base {opts.base}, levels "
          f"{ {k: m.level() for k, m in mods.items()} }, {opts.rounds} rounds, one thread")
    ceilings = {d: [] for d in dtypes}
    with bench.thread_limit(1):
        for r in range(opts.rounds):
            for d in dtypes:
                ceilings[d].append(bench.gemm_ceiling_gflops(d))
            for case in cases:
                W, A, C = case["arrays"]
                order = list(mods)[r % len(mods):] + list(mods)[:r % len(mods)]
                for key in order:
                    _, loop_ns = mods[key].run(W, not case["backward"], A, C,
                                               case["steps"], not case["backward"],
                                               key in huge)
                    case["ns"][key].append(loop_ns / case["steps"])
            print(f"round {r + 1}/{opts.rounds} done", file=sys.stderr)

    ceiling = {d: max(v) for d, v in ceilings.items()}
    print("\nceiling GFLOP/s (highest of the rounds): "
          + ", ".join(f"{d} {c:.1f}" for d, c in ceiling.items()))
    others = [k for k in mods if k != "base"]
    print("\nGFLOP/s from the minimum time over the rounds (efficiency = that / ceiling);"
          " base / build time ratios, minimum and median over the rounds (above 1: the"
          " build is faster)")
    print("| dtype | G | B | H | dir | base GFLOP/s (eff) | "
          + " | ".join(f"{k} GFLOP/s (eff) | {k} ratio min, median" for k in others) + " |")
    print("|---|---:|---:|---:|---|---:|" + "---:|---:|" * len(others))
    for case in cases:
        ns = case["ns"]
        c = ceiling[case["dtype"]]
        cells = []
        for key in ["base", *others]:
            g = case["flops"] / min(ns[key])
            cells.append(f"{g:.1f} ({g / c:.0%})")
            if key != "base":
                ratios = [b / n for b, n in zip(ns["base"], ns[key], strict=True)]
                cells.append(f"{min(ratios):.2f}, {statistics.median(ratios):.2f}")
        print(f"| {case['dtype']} | {case['G']} | {case['B']} | {case['H']} | "
              f"{'bwd' if case['backward'] else 'fwd'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
