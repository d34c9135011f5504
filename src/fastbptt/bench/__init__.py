"""The benchmark: compiled time loops against their NumPy reference twins, the peers a
user would pick instead (PyTorch, JAX, numba) and the GEMM roofline.

`fastbptt bench`, the pytest-benchmark suites and the probes in bench/ share this one
definition of the timed work, its FLOP count, the timer and the machine description, so
their figures mean the same thing. Three modules and the peers, each importable alone:

- harness: the timer (time_once, time_call, time_interleaved, adaptive_repeat), thread
  limits and thread-count parsing, the page-fault count (minor_faults) and the
  allocator's state (steady_allocator); it knows nothing of cells or backends.
- problems: the timed work (Cell, CELLS, Problem, make_problem, flops, the runners per
  backend in RUNNERS, measure_rows, fault_entries); every cell-specific table of the
  benchmark is here.
- report: the machine header with the GEMM ceiling, the table, the page-fault lines, the
  JSON report, the plot.
- peers: one module per peer (torch, jax, numba) behind one interface, the registry PEERS
  and check_peer, which holds a peer's outputs and gradients to fastbptt's.

Every name is re-exported here, so `fastbptt.bench.X` works for all of them. A setting
read at call time (CEILING_N, REPEAT_BUDGET, ...) is read from its own module: to change
it for a run, set it there (fastbptt.bench.report.CEILING_N), not on this package.
"""
from fastbptt.bench.harness import (
                                    DEFAULT_THREADS,
                                    MAX_REPEAT,
                                    MIN_REPEAT,
                                    REPEAT_BUDGET,
                                    REWARM_BELOW,
                                    Timing,
                                    adaptive_repeat,
                                    minor_faults,
                                    steady_allocator,
                                    thread_counts,
                                    thread_limit,
                                    time_call,
                                    time_interleaved,
                                    time_once,
)
from fastbptt.bench.peers import (
                                    PEERS,
                                    PeerMismatch,
                                    PeerUnavailable,
                                    check_peer,
                                    expected_result,
                                    peer,
)
from fastbptt.bench.problems import (
                                    ALL_BACKENDS,
                                    BACKENDS,
                                    CELLS,
                                    DEFAULT_DTYPES,
                                    DEFAULT_SHAPES,
                                    ISSUE_SHAPES,
                                    REFERENCE_BUDGET,
                                    RUNNERS,
                                    Cell,
                                    Problem,
                                    chosen_peers,
                                    estimated_reference_seconds,
                                    fault_entries,
                                    flops,
                                    head_flops,
                                    make_head_problem,
                                    make_problem,
                                    measure_rows,
                                    runner,
                                    torch_available,
                                    transposed_step,
)
from fastbptt.bench.report import (
                                    CEILING_N,
                                    fault_lines,
                                    format_header,
                                    gemm_ceiling_gflops,
                                    json_report,
                                    machine_header,
                                    machine_lines,
                                    plot,
                                    shape_text,
                                    table_lines,
)

__all__ = [
    # harness
    "DEFAULT_THREADS", "MAX_REPEAT", "MIN_REPEAT", "REPEAT_BUDGET", "REWARM_BELOW",
    "Timing", "adaptive_repeat", "minor_faults", "steady_allocator", "thread_counts",
    "thread_limit", "time_call", "time_interleaved", "time_once",
    # peers
    "PEERS", "PeerMismatch", "PeerUnavailable", "check_peer", "expected_result", "peer",
    # problems
    "ALL_BACKENDS", "BACKENDS", "CELLS", "DEFAULT_DTYPES", "DEFAULT_SHAPES", "ISSUE_SHAPES",
    "REFERENCE_BUDGET", "RUNNERS", "Cell", "Problem", "chosen_peers",
    "estimated_reference_seconds", "fault_entries", "flops", "head_flops", "make_head_problem",
    "make_problem", "measure_rows", "runner", "torch_available", "transposed_step",
    # report
    "CEILING_N", "fault_lines", "format_header", "gemm_ceiling_gflops", "json_report",
    "machine_header", "machine_lines", "plot", "shape_text", "table_lines",
]
