"""`fastbptt experiment NAME`: the parser of its options and what it prints.

cli.py registers the subcommand with add_parser(commands); run(args) trains, prints the
table against the baseline (or --json) and saves --plot. Errors are one line on stderr
and exit status 1 (2 for bad option values, argparse's).
"""
import argparse
import json
import sys

from tqdm.auto import tqdm

# the option parsers `demo` uses (cli.py imports this module, so it is loaded)
from fastbptt.app.cli import _demo_threads as _threads
from fastbptt.app.cli import _positive_int
from fastbptt.app.experiments import report, suite
from fastbptt.app.experiments.models import CELLS


def add_parser(commands):
    """Add the `experiment` subcommand to an argparse subparsers object."""
    d = suite.DEFAULTS
    defaults = "; ".join(f"{n}: {','.join(map(str, s.T))}" for n, s in d.items())
    p = commands.add_parser(
        "experiment",
        help="reproduce what BPTT's theory predicts: vanishing and exploding gradients "
             "and long-range memory (adding, copy, exploding, digits)",
        description="Train the cells on a standard task and print their final test "
                    "metric against the task's baseline: adding (the adding problem), "
                    "copy (copying memory), exploding (a tanh RNN with and without "
                    "gradient clipping), digits (scikit-learn's 8x8 digits as sequences; "
                    'needs pip install "fastbptt[experiments]").')
    p.add_argument("name", choices=suite.EXPERIMENTS, metavar="NAME",
                   help=f"one of: {', '.join(suite.EXPERIMENTS)}")
    p.add_argument("--cells", type=_cells, default=None,
                   help=f"comma-separated, from {', '.join(CELLS)} (exploding: rnn, irnn); "
                        "default: every cell the experiment runs")
    p.add_argument("--T", type=_lengths, default=None, metavar="T",
                   help=f"sequence length(s), comma-separated (defaults: {defaults}; "
                        f"digits: 8 row by row or 64 pixel by pixel)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="training steps per cell (default: "
                        + "; ".join(f"{n}: {s.steps}" for n, s in d.items()) + ")")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the weights, the training batches and the test set "
                        "(default: 0)")
    p.add_argument("--threads", type=_threads, default=1,
                   help="BLAS threads, a positive integer or 'all' (default: 1; the "
                        "per-step products are small)")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="save the loss curves and gradient-flow profiles here (needs "
                        "matplotlib)")
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON object (with every history and "
                        "profile) instead of the table")
    p.add_argument("--quick", action="store_true",
                   help="a seconds-long form (short T, few steps, fewer cells) that "
                        "still shows the effect; the tests run it")
    p.set_defaults(run=run)
    return p


def run(args):
    """Run the parsed `fastbptt experiment` command; return the exit status."""
    prog = f"fastbptt experiment {args.name}"
    options = suite.Options(cells=args.cells, T=args.T, steps=args.steps, seed=args.seed,
                            threads=args.threads, quick=args.quick)
    try:
        suite.settings(args.name, options)      # bad combinations fail before any work
        if args.plot:
            import matplotlib  # noqa: F401
        if args.name == "digits":
            import sklearn  # noqa: F401
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        need = ('scikit-learn: pip install "fastbptt[experiments]"' if err.name == "sklearn"
                else 'matplotlib: pip install "fastbptt[plot]"')
        print(f"{prog}: error: this needs {need}", file=sys.stderr)
        return 1
    try:
        result = suite.run(args.name, options, progress=_progress)
        if args.json:
            print(json.dumps(report.to_json(result)))
        else:
            print("\n".join(report.table_lines(result)))
        if args.plot:
            report.plot(result, args.plot)
            print(f"plot saved to {args.plot}", file=sys.stderr)
    except (OSError, ValueError, ImportError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


def _progress(total):
    return tqdm(total=total, unit="step", dynamic_ncols=True, mininterval=0.5,
                file=sys.stderr)


def _lengths(text):
    try:
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, got {text!r}")
    return values


def _cells(text):
    chosen = tuple(text.split(","))
    unknown = [c for c in chosen if c not in CELLS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown cell {', '.join(map(repr, unknown))}; choose from {', '.join(CELLS)}")
    return chosen
