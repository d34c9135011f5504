"""Compile a benchmark probe's Cython extension into build/<dir> and import it, and check
a per-step product it made before it is timed.

Several probes in bench/ time C code that is not part of the package (the per-step
product options, two builds of the packed micro-kernel side by side, the gate-row split);
each compiles its own .pyx on first use, the same way: cythonize into a build directory,
build_ext in place there, import from it. Cython skips what has not changed (unless
force).
"""
import importlib
import sys

import numpy as np


def build_probe(ext, out, force=False, **cythonize_options):
    """Compile the setuptools Extension `ext` into the directory `out` (a Path, created
    if missing) and return the imported module (named ext.name)."""
    from Cython.Build import cythonize
    from setuptools import Distribution

    out.mkdir(parents=True, exist_ok=True)
    modules = cythonize([ext], build_dir=str(out), quiet=True, force=force,
                        **cythonize_options)
    cmd = Distribution({"ext_modules": modules}).get_command_obj("build_ext")
    cmd.build_lib = str(out)
    cmd.build_temp = str(out / "tmp")
    cmd.ensure_finalized()
    cmd.run()
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module(ext.name)


def check_step_product(label, W, lhs, got, backward):
    """Hold one per-step product to NumPy in float64 (a form that is wrong is not timed):
    got (B x GH) = lhs (B x H) W^T forward, got (B x H) = lhs (B x GH) W backward, W
    (GH x H). AssertionError naming `label` when the relative error is past rounding."""
    a = lhs.astype(np.float64)
    want = a @ W.astype(np.float64) if backward else a @ W.T.astype(np.float64)
    tol = 1e-4 if W.dtype == np.float32 else 1e-11
    err = np.abs(got - want).max() / max(1e-30, np.abs(want).max())
    if not err < tol:
        raise AssertionError(f"{label}: relative error {err:.2e} on one step")
