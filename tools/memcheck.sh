#!/usr/bin/env bash
# Memory safety of the compiled kernels, in three passes over a temporary copy of this
# tree (the tree's own build is not touched):
#
#   1. debug:    rebuilt with FASTBPTT_DEBUG=1 (Cython boundscheck, wraparound and
#                initializedcheck on, -O1 -g): an out-of-range memoryview index raises
#                IndexError instead of corrupting memory. Runs the whole test suite.
#   2. asan:     rebuilt with -fsanitize=address and run under CPython with libasan
#                preloaded (PYTHONMALLOC=malloc so every Python and NumPy buffer has
#                redzones; detect_leaks=0 because CPython keeps its interned objects to
#                exit). Any invalid read or write aborts with an AddressSanitizer report.
#                Runs the whole test suite but the torch tests (torch's own libraries
#                are not built for a preloaded ASan runtime) and test_leaks.py (ASan's
#                quarantine keeps freed memory resident, so RSS grows by design).
#   3. valgrind: (with --valgrind) the default -O3 build under valgrind memcheck, on a
#                driver that calls every registered function (tests/_registry.py) over a
#                grid of shapes, layouts, dtypes and lengths. Counts invalid reads and
#                writes, uninitialised reads, bad frees... (leak checking off: CPython
#                keeps objects to exit; tools/leakcheck.py checks leaks). Known noise of
#                glibc's loader, CPython and OpenBLAS is in tools/valgrind-python.supp;
#                the pass fails on any error with a fastbptt frame, and prints the count
#                of all other errors.
#
# Usage: tools/memcheck.sh [--valgrind] [--only debug|asan|valgrind]
# Exit status 0 when every pass ran clean. Prints each pass's runtime.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
# the interpreter itself, not a launcher script (pyenv shims): valgrind must run it
python=$("$python" -c 'import sys; print(sys.executable)')
run_valgrind=0
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --valgrind) run_valgrind=1 ;;
        --only) only=$2; run_valgrind=1; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

copy_tree() {   # a clean copy of the sources: no build products, no .git
    mkdir -p "$1"
    (cd "$here" && tar cf - --exclude=.git --exclude=build --exclude='*.so' \
        --exclude='src/fastbptt/_kernels/*.c' --exclude=.hypothesis --exclude=__pycache__ \
        --exclude=.pytest_cache .) | (cd "$1" && tar xf -)
}

status=0
summary=""

if want debug; then
    start=$(date +%s)
    copy_tree "$work/debug"
    (cd "$work/debug" && FASTBPTT_DEBUG=1 "$python" setup.py build_ext --inplace -q \
        > "$work/debug-build.log" 2>&1) || { cat "$work/debug-build.log"; exit 1; }
    echo "== debug build (bounds checks on): test suite"
    (cd "$work/debug" && PYTHONPATH="$work/debug/src" "$python" -m pytest -q \
        -p no:cacheprovider tests > "$work/debug.log" 2>&1) && r=0 || r=$?
    tail -1 "$work/debug.log"
    grep -E "^(FAILED|ERROR) " "$work/debug.log" || true
    [ "$r" = 0 ] || status=1
    summary+="debug: pytest exit $r, $(( $(date +%s) - start )) s"$'\n'
fi

if want asan; then
    start=$(date +%s)
    libasan=$(gcc -print-file-name=libasan.so)
    # libstdc++ preloaded right after the ASan runtime: otherwise ASan's __cxa_throw
    # interceptor finds no real function to call and aborts the first time a C++
    # extension throws (matplotlib's ft2font does on import, under test_demo_plot).
    preload="$libasan $(gcc -print-file-name=libstdc++.so)"
    copy_tree "$work/asan"
    (cd "$work/asan" && CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
        LDFLAGS="-fsanitize=address" "$python" setup.py build_ext --inplace -q \
        > "$work/asan-build.log" 2>&1) || { cat "$work/asan-build.log"; exit 1; }
    instrumented=$(nm -D "$work"/asan/src/fastbptt/_kernels/rnn*.so | grep -c __asan_report || true)
    [ "$instrumented" -gt 0 ] || { echo "asan build has no instrumentation" >&2; exit 1; }
    # Canary: one byte written past a NumPy buffer must be reported, or the runs below
    # prove nothing (it shows the preload, PYTHONMALLOC=malloc and the redzones work).
    canary=$(LD_PRELOAD="$preload" PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 \
        "$python" -c "import ctypes, numpy as np; a = np.zeros(10); \
ctypes.memset(a.ctypes.data + a.nbytes, 1, 1)" 2>&1 | grep -c "heap-buffer-overflow" || true)
    [ "$canary" -gt 0 ] || { echo "ASan canary not caught: the setup is broken" >&2; exit 1; }
    echo "== AddressSanitizer build: test suite (canary overflow caught: setup works)"
    (cd "$work/asan" && LD_PRELOAD="$preload" PYTHONMALLOC=malloc \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path="$work/asan-report" \
        PYTHONPATH="$work/asan/src" "$python" -m pytest -q -p no:cacheprovider \
        -k "not torch" --ignore=tests/test_leaks.py tests > "$work/asan.log" 2>&1) \
        && r=0 || r=$?
    tail -1 "$work/asan.log"
    grep -E "^(FAILED|ERROR) " "$work/asan.log" || true
    reports=$(cat "$work"/asan-report* 2>/dev/null | grep -c "ERROR: AddressSanitizer" || true)
    if [ "$reports" != 0 ]; then cat "$work"/asan-report*; fi
    echo "AddressSanitizer reports: $reports"
    [ "$r" = 0 ] && [ "$reports" = 0 ] || status=1
    summary+="asan: pytest exit $r, $reports AddressSanitizer reports, $(( $(date +%s) - start )) s"$'\n'
fi

if [ "$run_valgrind" = 1 ] && want valgrind; then
    start=$(date +%s)
    copy_tree "$work/vg"
    (cd "$work/vg" && "$python" setup.py build_ext --inplace -q > "$work/vg-build.log" 2>&1) \
        || { cat "$work/vg-build.log"; exit 1; }
    echo "== valgrind memcheck: every registered function over a grid of problems"
    (cd "$work/vg" && PYTHONMALLOC=malloc OPENBLAS_NUM_THREADS=1 \
        PYTHONPATH="$work/vg/src:$work/vg/tests" valgrind --tool=memcheck --leak-check=no \
        --suppressions="$here/tools/valgrind-python.supp" --num-callers=30 \
        --xml=yes --xml-file="$work/vg.xml" \
        "$python" "$here/tools/memcheck_driver.py" > "$work/vg.log" 2>&1) && r=0 || r=$?
    tail -1 "$work/vg.log"
    counts=$("$python" - "$work/vg.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
# Leak kinds are left out: CPython keeps module objects to exit (leaks are
# tools/leakcheck.py's job, on resident memory).
ours, others, kinds = 0, 0, {}
for err in ET.parse(sys.argv[1]).getroot().iter("error"):
    kind = err.findtext("kind")
    if kind.startswith("Leak_"):
        continue
    if any("fastbptt" in (f.findtext("obj") or "") for f in err.iter("frame")):
        ours += 1
        kinds[kind] = kinds.get(kind, 0) + 1
    else:
        others += 1
print(ours, others, kinds)
EOF
)
    echo "valgrind errors (not leaks) with a fastbptt frame, without one, by kind: $counts"
    ours=${counts%% *}
    [ "$r" = 0 ] && [ "$ours" = 0 ] || status=1
    summary+="valgrind: driver exit $r, errors in fastbptt, elsewhere, kinds: $counts, $(( $(date +%s) - start )) s"$'\n'
fi

echo
echo "memcheck summary:"
printf "%s" "$summary"
exit $status
