"""Characters per second of `fastbptt sample` at the demo's settings, this build against
another, interleaved (issue 18: generation at least 3x faster per character than before
the streaming step).

    python bench/sample_speed.py                                   # this build alone
    python bench/sample_speed.py --against /work/venv-old/bin/python --rounds 7

The model is the demo's default (fastbptt.app.demo.DemoOptions: an LSTM, one layer of 128,
float32, the embedded corpus' characters), trained for --train-steps steps by this build's
`fastbptt demo` into a temporary checkpoint (or --checkpoint PATH), so both builds load
the same weights. Two figures:

- loop: the generation alone. One worker process per build loads the checkpoint once
  and then, on each request, times model.sample(--length, temperature 0.8, rng=seed)
  (CharLM.sample in every build since the first: fastbptt.app.charlm, or fastbptt.charlm
  before the package was split); process start and checkpoint load are not timed. Each
  round asks every build once, in turn, with the same seed.
- command: the whole `python -m fastbptt sample CHECKPOINT --length 300 --seed 0` as a
  user runs it (interpreter start, imports, checkpoint load, generation, printing), its
  wall time, again one run per build in turn each round.

The timer is fastbptt.bench.harness, loaded from this checkout by file path (as
bench/fixed_cost.py does) so that an older build is timed by the same code. The figures
are medians over rounds; new/old is the ratio of the medians (a speed-up above 1).
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, os.pardir, "src", "fastbptt", "bench", "harness.py")
TEMPERATURE = 0.8      # the demo's and `fastbptt sample`'s default
COMMAND_LENGTH = 300   # the length the demo's closing line suggests


def _harness():
    spec = importlib.util.spec_from_file_location("_sample_speed_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _char_model_class():
    try:
        from fastbptt.app.charlm import CharLM
    except ImportError:   # the builds before fastbptt.app (the pre-CellSpec build)
        from fastbptt.charlm import CharLM
    return CharLM


def worker(checkpoint, threads):
    """Load the model once, then answer each stdin line "length seed" with one JSON line
    {"seconds": wall time of model.sample(length, TEMPERATURE, rng=seed), "chars": n}."""
    harness = _harness()
    model, _ = _char_model_class().load(checkpoint)
    limit = harness.thread_limit(threads) if threads else None
    if limit is not None:
        limit.__enter__()
    print(json.dumps({"cell": model.cell, "hidden_size": model.hidden_size,
                      "num_layers": model.num_layers, "dtype": str(model.dtype)}),
          flush=True)   # ready, and which model it loaded
    for line in sys.stdin:
        length, seed = map(int, line.split())
        text = []
        seconds = harness.time_once(
            lambda: text.append(model.sample(length, TEMPERATURE, rng=seed)))
        print(json.dumps({"seconds": seconds, "chars": len(text[0])}), flush=True)


class Worker:
    """A worker process of one build, kept for the whole run."""

    def __init__(self, python, checkpoint, threads):
        argv = [python, os.path.abspath(__file__), "--worker", checkpoint]
        if threads:
            argv += ["--threads", str(threads)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd="/")
        line = self.proc.stdout.readline()
        if not line.startswith("{"):
            sys.exit(f"sample_speed: the worker of {python} did not start")
        self.model = json.loads(line)

    def chars_per_second(self, length, seed):
        self.proc.stdin.write(f"{length} {seed}\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer["chars"] / answer["seconds"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def command_seconds(harness, python, checkpoint):
    """Wall time of one `fastbptt sample` command run by `python`."""
    argv = [python, "-m", "fastbptt", "sample", checkpoint, "--length",
            str(COMMAND_LENGTH), "--seed", "0"]

    def run():
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd="/")
    return harness.time_once(run)


def make_checkpoint(path, steps):
    """Train the demo's default model for `steps` steps with this build into `path`."""
    subprocess.run([sys.executable, "-m", "fastbptt", "demo", "--steps", str(steps),
                    "--checkpoint", path, "--sample-length", "0", "--force"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="another build's python (e.g. the old build)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--length", type=int, default=2000,
                        help="characters per timed sample() call")
    parser.add_argument("--checkpoint", help="a character-model checkpoint (default: the "
                                             "demo's model trained --train-steps steps)")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads in the loop workers (default: the BLAS "
                             "default, as `fastbptt sample` runs)")
    parser.add_argument("--no-command", action="store_true",
                        help="skip the whole-command figure")
    parser.add_argument("--worker", metavar="CHECKPOINT", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        worker(opts.worker, opts.threads)
        return
    builds = {"new": sys.executable}
    if opts.against:
        builds = {"old": opts.against, "new": sys.executable}
    harness = _harness()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = opts.checkpoint
        if checkpoint is None:
            checkpoint = os.path.join(tmp, "demo.npz")
            make_checkpoint(checkpoint, opts.train_steps)
        checkpoint = os.path.abspath(checkpoint)
        workers = {name: Worker(python, checkpoint, opts.threads)
                   for name, python in builds.items()}
        loop = {name: [] for name in builds}
        command = {name: [] for name in builds}
        for w in workers.values():   # warm-up: first-call costs, untimed
            w.chars_per_second(opts.length, 0)
        for r in range(opts.rounds):
            for name, w in workers.items():
                loop[name].append(w.chars_per_second(opts.length, r))
            if not opts.no_command:
                for name, python in builds.items():
                    command[name].append(command_seconds(harness, python, checkpoint))
        model = workers["new"].model
        for w in workers.values():
            w.close()
    m = model
    source = "the demo's default model" if opts.checkpoint is None else opts.checkpoint
    print(f"fastbptt sample speed: {m['cell'].upper()} {m['num_layers']} x "
          f"{m['hidden_size']}, {m['dtype']} ({source}), temperature {TEMPERATURE}; "
          f"median over {opts.rounds} interleaved rounds")
    names = list(builds)
    print("| figure | " + " | ".join(names) + (" | new/old |" if len(names) == 2 else " |"))
    print("|---" * (len(names) + 1 + (len(names) == 2)) + "|")
    rows = [(f"loop: chars/s of sample({opts.length})", loop, False)]
    if not opts.no_command:
        rows.append((f"command: s per `fastbptt sample --length {COMMAND_LENGTH}`",
                     command, True))
    for label, values, seconds in rows:
        medians = [statistics.median(values[name]) for name in names]
        row = f"| {label} | " + " | ".join(
            f"{m:.3f}" if seconds else f"{m:,.0f}" for m in medians)
        if len(names) == 2:
            old, new = medians
            row += f" | {(old / new if seconds else new / old):.2f}x"
        print(row + " |")
    if len(names) == 2:
        spread = [n / o for o, n in zip(loop["old"], loop["new"])]
        print(f"loop speed-up per round: {min(spread):.2f}x to {max(spread):.2f}x")


if __name__ == "__main__":
    main()
