"""Which packer the per-step products of this process run on (fastbptt.cells.spec.step_form
reads it through the driver): "mkl" when the `mkl` package is installed (pip install
mkl, or the `mkl` extra) and its libmkl_rt loads, else "own", fastbptt's micro-kernel.
FASTBPTT_MKL=0 in the environment keeps MKL out. Looked up once, at the first compiled
call; MKL is loaded sequential (no OpenMP runtime, no threads of its own). With MKL the
packer, the own kernel still packs the shapes where it was measured faster
(fastbptt._kernels.step_packing.packer_for: batch 1-4, and 5-24 against weights of more
than 2 MiB up to 16 MiB).

bench/RESULTS.md, "The per-step product at B 5-64", has what each packer bought and what
the mkl wheel costs to install.
"""
import os
from importlib import metadata

_chosen = []   # [packer name] once looked up


def mkl_library():
    """The path of the installed `mkl` distribution's libmkl_rt (Linux) or mkl_rt DLL
    (Windows), or None."""
    try:
        files = metadata.files("mkl") or ()
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        name = f.name
        if name.startswith("libmkl_rt.so") or (name.startswith("mkl_rt") and
                                               name.endswith(".dll")):
            return str(f.locate())
    return None


def packer():
    """"mkl" or "own": the packer of the per-step products' packed form."""
    if not _chosen:
        from fastbptt._kernels import step_packing

        path = None if os.environ.get("FASTBPTT_MKL", "1") in ("", "0") else mkl_library()
        if path is not None:
            step_packing.load_mkl(path)
        _chosen.append(step_packing.packer())
    return _chosen[0]


def set_packer(name):
    """Make "own" or "mkl" (if loaded) the packer from now on; returns the one before.
    For the tests and the benchmark, which run both on one machine."""
    from fastbptt._kernels import step_packing

    before = packer()
    _chosen[0] = step_packing.set_packer(name)
    return before
