"""The `fastbptt` command (also `python -m fastbptt`): one subcommand per tool.

Only parsing and printing live here; each subcommand calls the module that does the work
(`bench`: fastbptt.bench; `demo`: fastbptt.app.demo; `sample`: fastbptt.app.charlm).
A new subcommand is a parser in _parser() with its run function
set as `run`. Bad option values are argparse errors: a message naming the option, exit 2.
The benchmark is imported only when `bench` runs or shows its help (_LazyOptions).
"""
import argparse
import contextlib
import dataclasses
import os
import sys

from fastbptt.cells.spec import CELLS

# Exit statuses of a run stopped by a signal, as a shell reports them (128 + signal).
EXIT_INTERRUPTED = 130   # SIGINT, Ctrl-C
EXIT_BROKEN_PIPE = 141   # SIGPIPE: the reader of stdout went away (`fastbptt demo | head`)


def main(argv=None):
    """Run the command line argv (sys.argv[1:] when None); return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        parser.exit(2)
    try:
        return args.run(args)
    except BrokenPipeError:
        # Quietly, as a tool killed by SIGPIPE: point stdout at /dev/null so the
        # interpreter's final flush does not report the broken pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


class _LazyOptions(argparse.ArgumentParser):
    """A subcommand's parser whose options are added on first use: when it parses its
    arguments or formats its help or usage. add_options(parser) adds them; without it the
    parser is a plain one. So `fastbptt demo` never builds, nor imports what builds,
    the options of `bench`, while `fastbptt bench --help` shows them as before."""

    def __init__(self, *args, add_options=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_options = add_options

    def _complete(self):
        add_options, self._add_options = self._add_options, None
        if add_options is not None:
            add_options(self)

    def parse_known_args(self, args=None, namespace=None):
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_help(self):
        self._complete()
        return super().format_help()

    def format_usage(self):
        self._complete()
        return super().format_usage()


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastbptt",
        description="Compiled backpropagation through time for recurrent networks in NumPy.",
    )
    from fastbptt import __version__
    parser.add_argument("--version", action="version", version=f"fastbptt {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command",
                                     parser_class=_LazyOptions)

    bench_parser = commands.add_parser(
        "bench",
        help="time the compiled forward+backward against the NumPy reference",
        description="Time one forward+backward through all steps (dh given at every "
                    "step) of the compiled functions and their NumPy reference twins, and "
                    "print the machine, then a table of milliseconds, speedups and GFLOP/s.",
        add_options=_bench_options,
    )
    bench_parser.set_defaults(run=_run_bench)

    from fastbptt.app.demo import DemoOptions  # the defaults live with the demo
    from fastbptt.app.wordlm import WordDemoOptions
    d, w = DemoOptions(), WordDemoOptions()
    demo_parser = commands.add_parser(
        "demo",
        help="train a character-level language model and sample from it",
        description="Train a character-level language model (truncated BPTT, fused softmax "
                    "cross-entropy, Adam, gradient clipping) on the embedded corpus or "
                    "--text, with a progress bar and samples; print the unigram baseline "
                    "and the final training and held-out losses; save a checkpoint.",
    )
    demo_parser.add_argument("--cell", choices=list(CELLS), default=d.cell,
                             help=f"recurrent cell (default: {d.cell})")
    demo_parser.add_argument("--hidden", type=_positive_int, default=d.hidden,
                             help=f"hidden units per layer (default: {d.hidden})")
    demo_parser.add_argument("--layers", type=_positive_int, default=d.layers,
                             help=f"stacked layers (default: {d.layers})")
    demo_parser.add_argument("--seq-len", type=_positive_int, default=None,
                             help=f"steps per truncated-BPTT window (default: {d.seq_len}; "
                                  f"{w.seq_len} with --level word)")
    demo_parser.add_argument("--batch", type=_positive_int, default=None,
                             help=f"parallel text streams, in all under MPI (default: "
                                  f"{d.batch}; {w.batch} with --level word)")
    demo_parser.add_argument("--steps", type=_positive_int, default=None,
                             help=f"training steps (default: {d.steps}; {w.steps} with "
                                  f"--level word; with --resume, the total to reach, "
                                  f"default the run's own)")
    demo_parser.add_argument("--lr", type=_positive_float, default=d.lr,
                             help=f"Adam learning rate (default: {d.lr:g})")
    demo_parser.add_argument("--clip", type=_positive_float, default=d.clip,
                             help=f"clip the gradient's global norm to this (default: {d.clip:g})")
    demo_parser.add_argument("--backend", choices=["compiled", "reference"], default=d.backend,
                             help="compiled kernels or the NumPy reference (default: compiled)")
    demo_parser.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype,
                             help=f"parameter and activation dtype (default: {d.dtype})")
    demo_parser.add_argument("--threads", type=_demo_threads, default=d.threads,
                             help="BLAS threads, a positive integer or 'all' (default: all "
                                  "cores; use 1 on a machine shared with other jobs)")
    demo_parser.add_argument("--text", metavar="PATH", default=None,
                             help="train on this UTF-8 text file (default: the embedded corpus)")
    demo_parser.add_argument("--seed", type=int, default=d.seed,
                             help="seed of the initial weights and the samples "
                                  f"(default: {d.seed})")
    demo_parser.add_argument("--sample-every", type=_positive_int, default=None,
                             help="steps between printed samples (default: four in the run)")
    demo_parser.add_argument("--sample-length", type=_nonnegative_int, default=None,
                             help=f"characters per printed sample (default: {d.sample_length}; "
                                  f"with --level word, words: {w.sample_length})")
    demo_parser.add_argument("--checkpoint", metavar="PATH", default=None,
                             help=f"save the model and the run here, '.npz' appended if "
                                  f"missing (default: {d.checkpoint}, or the --resume file; "
                                  f"'' to not save)")
    demo_parser.add_argument("--checkpoint-every", metavar="N", type=_nonnegative_int,
                             default=d.checkpoint_every,
                             help=f"also save every N steps (default: {d.checkpoint_every}; "
                                  f"0: at the end only); Ctrl-C saves and stops")
    demo_parser.add_argument("--force", action="store_true",
                             help="overwrite an existing --checkpoint file")
    demo_parser.add_argument("--resume", metavar="CHECKPOINT", default=None,
                             help="continue the run saved in CHECKPOINT bit for bit (its "
                                  "settings and text; --steps is the total to reach, "
                                  "default the run's own)")
    demo_parser.add_argument("--eval-chars", metavar="N", type=_nonnegative_int,
                             default=d.eval_chars,
                             help=f"the final losses read the first N characters of the "
                                  f"training and held-out texts (default: {d.eval_chars:,}; "
                                  f"0: all)")
    demo_parser.add_argument("--plot", metavar="PNG", default=None,
                             help="save the loss curve and gradient-flow profile here "
                                  "(needs matplotlib)")
    demo_parser.add_argument("--level", choices=["char", "word"], default="char",
                             help="character-level model (default) or a word-level one "
                                  "(embedding, recurrent layers, softmax over the words)")
    demo_parser.add_argument("--tied", action="store_true",
                             help="--level word: tie the output head's weight to the "
                                  "embedding matrix (embedding size = --hidden)")
    demo_parser.add_argument("--embedding-dim", type=_positive_int, default=None,
                             help="--level word: embedding size (default: --hidden)")
    demo_parser.add_argument("--min-count", type=_positive_int, default=w.min_count,
                             help=f"--level word: words seen fewer times in the training "
                                  f"text are <unk> (default: {w.min_count})")
    demo_parser.set_defaults(run=_run_demo)

    from fastbptt.app.experiments.command import add_parser as add_experiment_parser
    add_experiment_parser(commands)   # `experiment`: its options and run live there

    sample_parser = commands.add_parser(
        "sample", help="generate text from a checkpoint saved by `fastbptt demo`",
        description="Load a character-model checkpoint (.npz from `fastbptt demo`) and print "
                    "generated text.")
    sample_parser.add_argument("checkpoint", metavar="CHECKPOINT", help="the .npz file")
    sample_parser.add_argument("--length", type=_nonnegative_int, default=500,
                               help="characters to generate (default: 500)")
    sample_parser.add_argument("--temperature", type=_positive_float, default=0.8,
                               help="softmax temperature: below 1 is more conservative "
                                    "(default: 0.8)")
    sample_parser.add_argument("--prime", default="",
                               help="text to start from (default: a random character)")
    sample_parser.add_argument("--seed", type=int, default=None,
                               help="random seed (default: fresh randomness)")
    sample_parser.set_defaults(run=_run_sample)
    return parser


def _bench_options(bench_parser):
    """Add the options of `bench`: their defaults and help come from the benchmark, so
    they are added only when the subcommand is used (_LazyOptions)."""
    from fastbptt import bench
    bench_parser.add_argument(
        "--cells", type=_cells, default=list(bench.CELLS),
        help=f"comma-separated cells, from: {', '.join(bench.CELLS)} (default: all)")
    bench_parser.add_argument(
        "--shapes", type=_shapes, nargs="+", action="extend", metavar="SHAPES",
        help="T,B,H (input size I = H) or T,B,I,H; several separated by ';' or spaces "
             "(default: " + "; ".join(bench.shape_text(s) for s in bench.DEFAULT_SHAPES) + ")")
    bench_parser.add_argument(
        "--full", action="store_true",
        help="the issue's six shapes: " + "; ".join(bench.shape_text(s) for s in bench.ISSUE_SHAPES)
             + " (ignored with --shapes)")
    bench_parser.add_argument(
        "--dtypes", type=_dtypes, default=bench.DEFAULT_DTYPES,
        help="comma-separated, from: float32, float64 (default: float32,float64)")
    bench_parser.add_argument(
        "--repeat", type=_positive_int,
        help=f"timed calls per measurement (default: as many as fit in about "
             f"{bench.REPEAT_BUDGET:g} s, {bench.MIN_REPEAT} to {bench.MAX_REPEAT})")
    bench_parser.add_argument(
        "--threads", type=_threads, default=bench.thread_counts(bench.DEFAULT_THREADS),
        help="comma-separated BLAS (and torch) thread counts, positive integers or 'all' "
             f"(default: {bench.DEFAULT_THREADS}); each row runs under one")
    bench_parser.add_argument(
        "--json", action="store_true",
        help='print one JSON object {"header": {...}, "rows": [...]} instead of text')
    bench_parser.add_argument(
        "--no-reference", dest="reference", action="store_false",
        help="time the compiled functions only")
    bench_parser.add_argument(
        "--reference-budget", type=_seconds, default=bench.REFERENCE_BUDGET,
        help="skip the reference where one call is estimated to take longer than this "
             f"many seconds; 0 for no limit (default: {bench.REFERENCE_BUDGET:g})")
    bench_parser.add_argument(
        "--peers", type=_peers, default=["torch"],
        help="comma-separated peers timed beside fastbptt on the same weights and work, "
             f"from: {', '.join(bench.PEERS)}; each one not importable is skipped with a "
             "note, each one's outputs and gradients checked against fastbptt's first "
             "(default: torch)")
    bench_parser.add_argument(
        "--no-torch", dest="torch", action="store_false",
        help="leave PyTorch out of --peers (it runs by default when importable)")
    bench_parser.add_argument(
        "--no-roofline", dest="roofline", action="store_false",
        help="leave the GEMM roofline and the ceiling out")
    bench_parser.add_argument(
        "--plot", metavar="PATH",
        help="also save a PNG of the times (needs matplotlib)")
    from fastbptt.bench import lstmp
    bench_parser.add_argument(
        "--proj-size", type=_positive_int, metavar="P",
        help="instead of the table, time the LSTM with a projection to P features "
             "(torch's proj_size, 0 < P < H) against the plain LSTM of the same sizes and "
             "torch.nn.LSTM(proj_size=P) (--no-torch leaves it out); shapes from --shapes "
             "(default: " + "; ".join(bench.shape_text(s) for s in lstmp.PROJECTION_SHAPES)
             + f"; the issue's P is {lstmp.PROJ_SIZE})")


def _run_bench(args):
    from fastbptt import bench
    # Before anything is allocated for the rows: no row's figures may depend on the rows
    # (or the imports) before it through the allocator's state.
    allocator = bench.steady_allocator()
    shapes = bench.ISSUE_SHAPES if args.full else bench.DEFAULT_SHAPES
    if args.shapes:   # --shapes "a;b" c gives [[a, b], [c]]
        shapes = [shape for group in args.shapes for shape in group]
    if args.proj_size:
        return _run_projection_bench(args, shapes if args.shapes else None, allocator)
    requested = [p for p in args.peers if args.torch or p != "torch"]
    peers = bench.chosen_peers(requested)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("fastbptt bench: error: --plot needs matplotlib (pip install matplotlib)",
                  file=sys.stderr)
            return 2
    # With one thread count the header's BLAS lines show it; with several, the default.
    with bench.thread_limit(args.threads[0]) if len(args.threads) == 1 else _nothing():
        header = bench.machine_header(args.threads, args.dtypes, ceiling=args.roofline,
                                      peers=requested)
    header["allocator"] = allocator
    rows = bench.measure_rows(args.cells, shapes, args.dtypes, threads=args.threads,
                              repeat=args.repeat, reference=args.reference, peers=peers,
                              roofline=args.roofline,
                              reference_budget=args.reference_budget or None)
    measured = []   # the rows, kept as they stream past for --json, --plot and the faults
    try:
        if args.json:
            print(bench.json_report(header, _kept(rows, measured)))
        else:
            print("\n".join(bench.format_header(header)), end="\n\n", flush=True)
            for line in bench.table_lines(_kept(rows, measured), reference=args.reference,
                                          peers=peers, roofline=args.roofline):
                print(line, flush=True)
            _print_fault_lines(measured)
    except bench.PeerMismatch as exc:   # a peer doing other work than fastbptt: no figure
        print(f"fastbptt bench: error: {exc}", file=sys.stderr)
        return 1
    notes = {f"{name} skipped at {row['threads']} thread(s): {row[f'{name}_skipped']}"
             for row in measured for name in peers if row.get(f"{name}_skipped")}
    for note in sorted(notes):
        print(f"note: {note}", file=sys.stderr)
    if args.plot:
        bench.plot(measured, args.plot)
        print(f"plot saved to {args.plot}", file=sys.stderr)
    return 0


def _kept(rows, measured):
    """rows, each appended to measured as it streams past (for what follows the table)."""
    for row in rows:
        measured.append(row)
        yield row


def _print_fault_lines(rows):
    """The page-fault lines below a table (fastbptt.bench.fault_lines), after a blank
    line; nothing where they were not counted."""
    from fastbptt import bench
    lines = bench.fault_lines(rows)
    if lines:
        print("\n" + "\n".join(lines), flush=True)


def _run_projection_bench(args, shapes, allocator):
    """`fastbptt bench --proj-size P`: fastbptt.bench.lstmp's rows."""
    from fastbptt import bench
    from fastbptt.bench import lstmp
    shapes = shapes or lstmp.PROJECTION_SHAPES
    for shape in shapes:
        if not args.proj_size < shape[-1]:
            print(f"fastbptt bench: error: --proj-size must be smaller than H, got "
                  f"{args.proj_size} for the shape {bench.shape_text(shape)}", file=sys.stderr)
            return 2
    with bench.thread_limit(args.threads[0]) if len(args.threads) == 1 else _nothing():
        header = bench.machine_header(args.threads, args.dtypes, ceiling=args.roofline,
                                      peers=["torch"] if args.torch else [])
    header["allocator"] = allocator
    rows = lstmp.measure_projection_rows(
        shapes, args.dtypes, args.proj_size, threads=args.threads, repeat=args.repeat,
        torch=args.torch, reference=args.reference,
        reference_budget=args.reference_budget or None)
    try:
        if args.json:
            print(bench.json_report(header, rows))
        else:
            print("\n".join(bench.format_header(header, legend=False)), end="\n\n",
                  flush=True)
            measured = []
            for line in lstmp.projection_table_lines(_kept(rows, measured)):
                print(line, flush=True)
            _print_fault_lines(measured)
    except bench.PeerMismatch as exc:
        print(f"fastbptt bench: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_demo(args):
    from fastbptt.training.checkpoint import TrainingInterrupted
    if args.resume:
        level = _resume_level(args)
        if level is None:
            return 1
        args.level = level
    try:
        return _run_word_demo(args) if args.level == "word" else _run_char_demo(args)
    except TrainingInterrupted as stop:
        print(f"fastbptt demo: {stop}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _resume_level(args):
    """The --level of the run in the --resume checkpoint ("char" or "word"); None after
    printing the error when it cannot be read."""
    from fastbptt.app.wordlm import _FORMAT as WORD_FORMAT
    from fastbptt.training.checkpoint import load_arrays, read_meta
    try:
        meta = read_meta(args.resume, load_arrays(args.resume))
    except ValueError as err:
        print(f"fastbptt demo: error: {err}", file=sys.stderr)
        return None
    return "word" if meta.get("format") == WORD_FORMAT else "char"


def _demo_checkpoint(args, default):
    """--checkpoint as given ('' for none); else the --resume file, else the default."""
    if args.checkpoint is not None:
        return args.checkpoint or None
    return args.resume or default


def _resume_conflicts(args, settings, defaults):
    """An error message when an option given with --resume would change a setting of the
    run (`settings`, saved in the checkpoint), else None. An option counts as given when
    it differs from its default; given with the run's own value, it is accepted."""
    from fastbptt.app.demo import resume_conflicts
    given = {name: getattr(args, name) for name in settings
             if getattr(args, name) is not None and getattr(args, name) != getattr(defaults, name)}
    try:
        changed = resume_conflicts(args.resume, given)
    except ValueError as err:
        return str(err)
    if changed:
        names = ", ".join("--" + name.replace("_", "-") for name in changed)
        return (f"{names} cannot change on --resume: the run continues with the settings "
                f"saved in {args.resume}")
    return None


def _run_char_demo(args):
    from fastbptt.app import demo
    d = demo.DemoOptions()
    if args.resume:
        message = _resume_conflicts(args, demo.RUN_SETTINGS, d)
        if message:
            print(f"fastbptt demo: error: {message}", file=sys.stderr)
            return 2
    for name in ("seq_len", "batch", "sample_length"):   # None: not given
        if getattr(args, name) is None:
            setattr(args, name, getattr(d, name))
    if args.steps is None and not args.resume:
        args.steps = d.steps
    if args.tied or args.embedding_dim is not None:
        print("fastbptt demo: error: --tied and --embedding-dim need --level word",
              file=sys.stderr)
        return 2
    options = demo.DemoOptions(
        cell=args.cell, hidden=args.hidden, layers=args.layers, seq_len=args.seq_len,
        batch=args.batch, steps=args.steps, lr=args.lr, clip=args.clip, backend=args.backend,
        dtype=args.dtype, threads=args.threads, text=args.text, seed=args.seed,
        sample_every=args.sample_every, sample_length=args.sample_length,
        checkpoint=_demo_checkpoint(args, d.checkpoint),
        checkpoint_every=args.checkpoint_every, force=args.force, resume=args.resume,
        eval_chars=args.eval_chars, plot=args.plot)
    try:
        demo.run(options)
    except BrokenPipeError:
        raise   # main() ends quietly
    except (OSError, ValueError, ImportError) as err:   # a bad --text, a too-short text, ...
        if getattr(err, "report", True):   # False: another MPI rank reports it
            print(f"fastbptt demo: error: {_one_line(err)}", file=sys.stderr)
        return 1
    return 0


def _one_line(err):
    """An OSError as 'file: reason' (its str() is '[Errno 2] No such file...: 'x''),
    anything else as its message."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def _run_word_demo(args):
    from fastbptt.app import wordlm
    w = wordlm.WordDemoOptions()
    if args.resume:
        message = _resume_conflicts(args, wordlm.RUN_SETTINGS, w)
        if message:
            print(f"fastbptt demo: error: {message}", file=sys.stderr)
            return 2
    given = {name: getattr(args, name) for name in ("seq_len", "batch", "steps",
                                                    "sample_length")}
    if args.resume and args.steps is None:
        given["steps"] = None   # the run's own target
    options = dataclasses.replace(
        w, cell=args.cell, hidden=args.hidden, layers=args.layers, lr=args.lr,
        clip=args.clip, backend=args.backend, dtype=args.dtype, threads=args.threads,
        text=args.text, seed=args.seed, sample_every=args.sample_every,
        checkpoint=_demo_checkpoint(args, w.checkpoint), plot=args.plot, tied=args.tied,
        embedding_dim=args.embedding_dim, min_count=args.min_count,
        checkpoint_every=args.checkpoint_every, force=args.force, resume=args.resume,
        **{name: value for name, value in given.items()
           if value is not None or name == "steps" and args.resume})
    try:
        wordlm.run(options)
    except BrokenPipeError:
        raise   # main() ends quietly
    except (OSError, ValueError, ImportError) as err:
        print(f"fastbptt demo: error: {_one_line(err)}", file=sys.stderr)
        return 1
    return 0


def _run_sample(args):
    from fastbptt.app.wordlm import load_checkpoint
    try:
        model, _ = load_checkpoint(args.checkpoint)   # a character or a word model
        print(args.prime + model.sample(args.length, args.temperature, prime=args.prime,
                                        rng=args.seed))
    except BrokenPipeError:
        raise   # main() ends quietly
    except (OSError, ValueError) as err:   # CheckpointError names the file
        print(f"fastbptt sample: error: {_one_line(err)}", file=sys.stderr)
        return 1
    return 0


def _demo_threads(text):
    return None if text == "all" else _positive_int(text)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


@contextlib.contextmanager
def _nothing():
    yield


def _threads(text):
    from fastbptt import bench
    try:
        return bench.thread_counts(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _shapes(text):
    """'T,B,H' or 'T,B,I,H', several separated by ';' -> [(T, B, I, H), ...]."""
    shapes = []
    for shape in text.split(";"):
        try:
            sizes = [int(size) for size in shape.split(",")]
        except ValueError:
            sizes = []
        if len(sizes) not in (3, 4) or min(sizes) < 1:
            raise argparse.ArgumentTypeError(
                f"invalid shape {shape!r}: expected T,B,H (I = H) or T,B,I,H, positive "
                f"integers, shapes separated by ';'")
        shapes.append(tuple(sizes) if len(sizes) == 4 else (*sizes, sizes[2]))
    return shapes


def _choices(text, allowed, what):
    chosen = text.split(",")
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        unknown = ", ".join(map(repr, unknown))
        raise argparse.ArgumentTypeError(
            f"unknown {what} {unknown}; choose from {', '.join(allowed)}")
    return chosen


def _peers(text):
    from fastbptt import bench
    return _choices(text, list(bench.PEERS), "peer")


def _cells(text):
    from fastbptt import bench
    return _choices(text, list(bench.CELLS), "cell")


def _dtypes(text):
    return _choices(text, ["float32", "float64"], "dtype")
