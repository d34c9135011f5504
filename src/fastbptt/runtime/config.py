"""fastbptt.show_config(): what the speed of this installation depends on.

The compiled kernels call the BLAS behind scipy.linalg.cython_blas (in wheels, the
OpenBLAS in scipy.libs/); the NumPy reference calls numpy's own (numpy.libs/). OpenBLAS
picks its kernels (threadpoolctl's "architecture") from the CPU it detects, or from the
environment variable OPENBLAS_CORETYPE when set before it loads: on CPUs it under-detects
(an AVX-512 CPU reported as Haswell) that alone changes large-GEMM speed almost twofold.
"""
import os
from pathlib import Path

import numpy as np
import scipy
from threadpoolctl import threadpool_info

from fastbptt.cells import workspace as _workspace

# The element types the compiled kernels are built for; any other dtype is rejected.
DTYPE_PATHS = {
    "float32": "compiled (sgemm/sgemv, single-precision element-wise passes)",
    "float64": "compiled (dgemm/dgemv, double-precision element-wise passes)",
}


def _blas_libraries():
    """threadpoolctl's entries for the BLAS libraries loaded in this process. scipy's
    cython_blas is imported first so that its library is loaded and listed."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads scipy's BLAS)
    libraries = []
    for info in sorted(threadpool_info(), key=lambda info: info["filepath"]):
        if info["user_api"] != "blas":
            continue
        path = Path(info["filepath"])
        if "scipy" in path.parent.name or "scipy" in str(path.parent):
            used_by = "scipy (fastbptt's compiled kernels)"
        elif "numpy" in path.parent.name or "numpy" in str(path.parent):
            used_by = "numpy (fastbptt.reference)"
        else:
            used_by = "shared"
        libraries.append({
            "used_by": used_by,
            "library": f"{path.parent.name}/{path.name}",
            "internal_api": info["internal_api"],
            "version": info.get("version"),
            "architecture": info.get("architecture"),
            "threading_layer": info.get("threading_layer"),
            "num_threads": info["num_threads"],
        })
    return libraries


def cpu_flags():
    """The SIMD flags that decide which kernels can run: {flag: bool} from /proc/cpuinfo
    (Linux); empty elsewhere."""
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl")
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return {flag: flag in present for flag in wanted}
    except OSError:
        pass
    return {}


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), else what platform reports."""
    import platform
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for entry in cpuinfo:
                if entry.startswith("model name"):
                    return entry.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def per_step_packing():
    """How the per-step products at batch 5-64 run on packed weights here: the packer
    ("mkl" or "own", fastbptt.runtime.packing), MKL's library when it is the packer, the
    own kernel's instruction-set instance, the rows and the weights' bytes (more than the
    first, up to the second) where the own kernel packs beside MKL
    (step_packing.packer_for), and the library of the kernels' other matrix products
    ("mkl" with MKL the packer, else "scipy"); None without the compiled kernels."""
    from fastbptt.runtime import packing
    try:
        from fastbptt._kernels import blas, packed_product, step_packing
    except ImportError:
        return None
    packer = packing.packer()
    rows, low, high = step_packing.OWN_BESIDE_MKL
    return {"packer": packer,
            "library": packing.mkl_library() if packer == "mkl" else None,
            "own_instance": ("portable", "AVX2+FMA", "AVX-512")[packed_product.level()],
            "own_rows": rows, "own_bytes": [low, high],
            "gemm": blas.gemm_library()}


def per_step_packing_summary(info):
    """One line for config()["per_step_packing"]."""
    if info is None:
        return "no compiled kernels"
    if info["packer"] == "mkl":
        return (f"MKL's packed GEMM ({Path(info['library']).name}, sequential), the own "
                f"kernel at batch 1-4 and at 5-{info['own_rows']} against a W_hh of more "
                f"than {info['own_bytes'][0] >> 20} up to {info['own_bytes'][1] >> 20} MiB; "
                "the other "
                "products on MKL's GEMM")
    return f"fastbptt's own kernel ({info['own_instance']} instance); mkl not in use"


def config():
    """The configuration as a dict (JSON-ready); show_config() prints it."""
    import fastbptt
    return {
        "fastbptt": fastbptt.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "blas": _blas_libraries(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "dtype_paths": dict(DTYPE_PATHS),
        "per_step_packing": per_step_packing(),
        "workspace": {"limit_bytes": _workspace._limit,
                      "kept_bytes_this_thread": _workspace.workspace_bytes()},
        "thread_policy": thread_policy(),
    }


def thread_policy():
    """How the compiled calls use threads (fastbptt.runtime.threads): whether the count of
    scipy's BLAS is under control here, the caller's count, and the batch split's
    threshold (forward FLOPs)."""
    from fastbptt._kernels import blas
    from fastbptt.cells import batch_split
    return {"control": blas.has_thread_control(), "threads": blas.callers_threads(),
            "min_split_flops": batch_split.MIN_SPLIT_FLOPS}


def blas_summary(lib):
    """One line for one entry of config()["blas"]."""
    threads = lib["num_threads"]
    details = [lib["internal_api"], lib["version"],
               lib["architecture"] and f"{lib['architecture']} kernels",
               lib["threading_layer"], f"{threads} thread{'s' * (threads != 1)}"]
    return f"{lib['library']}: " + ", ".join(str(d) for d in details if d)


def show_config():
    """Print what fastbptt's speed depends on, and return it.

    Returns
    -------
    dict
        The versions; the BLAS that the compiled kernels (scipy's) and the reference
        (numpy's) call, with their kernel type (architecture) and thread counts;
        OPENBLAS_CORETYPE; the dtype paths; the CPU's SIMD flags; the thread policy; what
        the per-step products' packed form runs on (MKL's packed GEMM or fastbptt's own
        kernel); the recycled buffers kept between calls. ``fastbptt bench`` prints the same header.
    """
    info = config()
    flags = ", ".join(f"{flag}{'' if on else ' (no)'}" for flag, on in info["cpu_flags"].items())
    lines = [
        f"fastbptt {info['fastbptt']} | NumPy {info['numpy']} | SciPy {info['scipy']}",
        f"CPU: {info['cpu']} ({info['cpu_count']} logical CPUs)",
        f"CPU flags: {flags or 'unknown'}",
    ]
    for lib in info["blas"]:
        lines.append(f"BLAS for {lib['used_by']}: {blas_summary(lib)}")
    lines.append(f"OPENBLAS_CORETYPE: {info['openblas_coretype'] or 'not set (auto-detected)'}")
    lines.append("per-step products on packed W_hh: "
                 + per_step_packing_summary(info["per_step_packing"]))
    for dtype, path in info["dtype_paths"].items():
        lines.append(f"{dtype}: {path}")
    policy = info["thread_policy"]
    if policy["control"]:
        split = (f"B >= 2 calls of {policy['min_split_flops']:.3g}+ forward FLOPs split "
                 f"across the {policy['threads']} threads" if policy["threads"] > 1
                 else "no batch split at 1 thread")
        lines.append(f"threads: every kernel's products on one BLAS thread; {split}")
    else:
        lines.append("threads: no control of scipy's BLAS thread count here (not "
                     "OpenBLAS, or no dladdr): the kernels run as the BLAS chooses, no split")
    ws = info["workspace"]
    lines.append(f"recycled buffers: up to {ws['limit_bytes'] / 2**20:g} MiB per thread, "
                 f"{ws['kept_bytes_this_thread'] / 2**20:.1f} MiB kept now "
                 f"(fastbptt.set_workspace_limit, release_workspace)")
    print("\n".join(lines))
    return info
