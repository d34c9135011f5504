"""What tools/memcheck.sh runs under valgrind: every registered function (compiled) over a
grid of problems that reaches every kernel branch: B = 1 (GEMV), 1 < B < H (transposed
step), B >= H, time-major and batch-first, lengths (with zeros and full lengths) or not,
both dtypes, bias or not, every layout. Small sizes: valgrind runs ~50x slower."""
import itertools

import numpy as np

from _registry import LAYOUTS, NONLINEARITIES, REGISTRY, Case, flatten

calls = 0
for entry in REGISTRY:
    for (B, H), bf, lengths, dtype in itertools.product(
            [(1, 5), (3, 6), (6, 3)], [False, True], [False, True], [np.float32, np.float64]):
        case = Case(T=4, B=B, I=3, H=H, dtype=dtype, batch_first=bf, lengths=lengths,
                    layout=LAYOUTS[calls % len(LAYOUTS)], bias=bool(calls % 2),
                    nonlinearity=NONLINEARITIES[calls % len(NONLINEARITIES)], seed=calls)
        for a in flatten(entry.build(case, "compiled")()):
            np.asarray(a).sum()   # read every result
        calls += 1
print(f"memcheck driver: {calls} calls of {len(REGISTRY)} functions done")
