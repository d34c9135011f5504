"""Check what the built distributions hold (CI runs it after `python -m build`).

python tools/check_dist.py DIST_DIR

- the wheel: the Python modules, the compiled extensions and the demo's corpus; no
  generated C, no Cython sources or headers (fastbptt._kernels is private), no build
  junk; on Linux the extensions are stripped (no .symtab or .debug_* section left);
- the sdist: what its tests, examples and docs need (tests/ with its helpers, tools/,
  examples/, docs/), the kernels' sources, and no generated C or compiled files.
Exits 1 with one line per problem.
"""
import pathlib
import sys
import tarfile
import zipfile

WHEEL_FORBIDDEN = (".c", ".pyx", ".pxd", ".h", ".html", ".o", ".pyc")
SDIST_NEEDS = ["tests/_helpers.py", "tests/_registry.py", "tests/mpi_jobs/fail_fast.py",
               "tests/test_docs.py", "tools/fuzz.py", "tools/leakcheck.py",
               "examples/cs231n_model.py", "docs/conf.py", "docs/index.md",
               "src/fastbptt/_kernels/recurrent_gemm.pxd", "src/fastbptt/_kernels/vmath.h",
               "src/fastbptt/cells/_fastpath.pyx",
               "src/fastbptt/app/data/corpus.txt", "README.md", "LICENSE", "CHANGELOG.md"]
SDIST_FORBIDDEN = (".c", ".so", ".pyd", ".o", ".pyc")


def check_wheel(path):
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        for name in names:
            if name.endswith(WHEEL_FORBIDDEN):
                problems.append(f"{path.name}: {name} should not be in the wheel")
            if name.endswith(".so") and "linux" in path.name:
                data = wheel.read(name)
                # Section names live in .shstrtab, which strip keeps for the sections
                # it keeps: an unstripped .so still names its symbol and debug tables.
                if b".symtab\0" in data or b".debug_info\0" in data:
                    problems.append(f"{path.name}: {name} is not stripped")
    if not any(n.endswith(".so") or n.endswith(".pyd") for n in names):
        problems.append(f"{path.name}: no compiled extension")
    if "fastbptt/app/data/corpus.txt" not in names:
        problems.append(f"{path.name}: the demo's corpus is missing")
    return problems


def check_sdist(path):
    problems = []
    with tarfile.open(path) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for need in SDIST_NEEDS:
        if need not in names:
            problems.append(f"{path.name}: {need} is missing")
    for name in sorted(names):
        if name.endswith(SDIST_FORBIDDEN):
            problems.append(f"{path.name}: {name} should not be in the sdist")
    return problems


def main(argv):
    dist = pathlib.Path(argv[1])
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    problems = [] if wheels and sdists else [f"{dist}: expected a wheel and an sdist"]
    for wheel in wheels:
        problems += check_wheel(wheel)
    for sdist in sdists:
        problems += check_sdist(sdist)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"check_dist: {', '.join(p.name for p in wheels + sdists)} OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
