"""Checkpoints of training runs that survive a late failure, a Ctrl-C and a full disk.

A checkpoint is one .npz file (no pickles): "__meta__", a JSON string (the model's
configuration, facts about training and, for a run that can be resumed, "run": its
settings and progress), then the model's parameters under their own keys,
the optimizer's state under "optimizer.<key>" and the carried recurrent state of truncated
BPTT under "state.<i>". Loaders that only want the model read the parameters and ignore
the rest, so one file serves `fastbptt sample` and `fastbptt demo --resume`.

What this module guarantees:
- the path is checked before the first training step (checkpoint_path): ".npz" is
  appended when missing, as np.savez would do, so the name a run prints is the name it
  wrote; the directory must exist and be writable; an existing file is refused unless
  the caller forces it or continues the run that file holds;
- writes are atomic (save_atomic): a temporary file in the same directory, flushed to
  disk, then renamed over the target, so a crash or Ctrl-C mid-write leaves the previous
  checkpoint intact, never a truncated one;
- reads give one CheckpointError (a ValueError) naming the file and what is wrong with it
  (load_arrays, read_meta): missing, empty, truncated, not a .npz, no metadata;
- Ctrl-C during training is deferred to the end of the current step (deferred_interrupt)
  so the state saved is a consistent one; a second Ctrl-C interrupts at once.
"""
import contextlib
import json
import os
import signal
import tempfile
import threading
import zipfile
import zlib

import numpy as np

_ZIP_MAGIC = b"PK\x03\x04"
_OPTIMIZER = "optimizer."
_STATE = "state."


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or written; the message names the file."""


class TrainingInterrupted(Exception):
    """Training stopped by Ctrl-C (SIGINT) after a completed step; `checkpoint` is the
    path of the checkpoint saved then (None when the run saves none)."""

    def __init__(self, step, checkpoint):
        self.step, self.checkpoint = step, checkpoint
        where = (f"checkpoint saved to {checkpoint} (continue with: fastbptt demo --resume "
                 f"{checkpoint})" if checkpoint else "no checkpoint saved")
        super().__init__(f"interrupted after step {step}; {where}")


class TrainingDiverged(ValueError):
    """The loss became non-finite or exploded; training stopped before the parameters
    were updated from it."""


# ------------------------------------------------------------------ paths

def check_output_dir(path, what):
    """CheckpointError unless the directory that `path` goes into exists and is writable;
    `what` names the option in the message ("--checkpoint", "--plot")."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CheckpointError(f"{what} {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CheckpointError(f"{what} {path}: the directory {directory} is not writable")
    if os.path.isdir(path):
        raise CheckpointError(f"{what} {path}: is a directory")


def checkpoint_path(path, force=False, resuming=None, what="--checkpoint"):
    """The path a checkpoint will be written to, checked before training starts.

    ".npz" is appended when missing (np.savez's rule, applied here so it is applied once
    and the printed path is the written one). An existing file is refused unless `force`,
    or it is the checkpoint `resuming` (the run continues it). CheckpointError otherwise.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    check_output_dir(path, what)
    if os.path.exists(path) and not force:
        if resuming is None or not os.path.samefile(path, resuming):
            raise CheckpointError(
                f"{what} {path} already exists: pass --force to overwrite it, or "
                f"--resume {path} to continue the run it holds")
    return path


# ------------------------------------------------------------------ write and read

def save_atomic(path, arrays):
    """np.savez(path, **arrays), atomically: the file at `path` is either the previous
    one or the complete new one, whatever happens during the write."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp's 0o600 -> what open() would give
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_arrays(path):
    """Every array of the .npz at `path`, read now, as a dict. CheckpointError naming the
    file when it is missing, empty, truncated or corrupt, or not a .npz file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not head:
        raise CheckpointError(f"{path}: the file is empty")
    if head != _ZIP_MAGIC:
        kind = "a single NumPy array (.npy)" if head == b"\x93NUM" else "not a .npz archive"
        raise CheckpointError(f"{path}: {kind}, not a fastbptt checkpoint")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, EOFError, zlib.error, ValueError, KeyError, OSError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt .npz file "
                              f"({type(err).__name__}: {err})") from None


def read_meta(path, arrays):
    """The JSON metadata dict of a checkpoint read by load_arrays; CheckpointError when
    there is none or it is not a JSON object."""
    if "__meta__" not in arrays:
        raise CheckpointError(f"{path}: a .npz file without fastbptt metadata, not a "
                              f"fastbptt checkpoint")
    try:
        meta = json.loads(str(arrays["__meta__"]))
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata is not a JSON object (corrupt file?)")
    return meta


def require(path, meta, *keys):
    """CheckpointError naming the first of `keys` missing from meta."""
    for key in keys:
        if key not in meta:
            raise CheckpointError(f"{path}: its metadata lacks {key!r} (not a checkpoint "
                                  f"this fastbptt writes)")


# ------------------------------------------------------------------ runs

def run_arrays(meta, params, optimizer=None, state=()):
    """The arrays save_atomic writes for a run: the metadata, the parameters, the
    optimizer's state_dict under "optimizer.<key>" and the carried state arrays (h, or
    h and c, each (L, B, H)) under "state.0", "state.1"."""
    arrays = {"__meta__": np.array(json.dumps(meta))}
    arrays.update(params)
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            arrays[_OPTIMIZER + key] = np.asarray(value)
    for i, value in enumerate(state):
        arrays[f"{_STATE}{i}"] = value
    return arrays


def optimizer_state(arrays):
    """The optimizer's state_dict stored by run_arrays."""
    return {key[len(_OPTIMIZER):]: value for key, value in arrays.items()
            if key.startswith(_OPTIMIZER)}


def carried_state(arrays):
    """The carried state arrays stored by run_arrays, in order (empty: none)."""
    count = sum(key.startswith(_STATE) for key in arrays)
    return [arrays[f"{_STATE}{i}"] for i in range(count)]


def load_params_into(path, params, arrays):
    """Copy the stored parameters into `params` {key: ndarray} in place (the model's
    parts share those arrays); CheckpointError for a missing key, shape or dtype."""
    missing = sorted(set(params) - set(arrays))
    if missing:
        raise CheckpointError(f"{path} lacks parameters {missing}")
    for key, value in params.items():
        stored = arrays[key]
        if stored.shape != value.shape or stored.dtype != value.dtype:
            raise CheckpointError(f"{path}: {key} has shape {stored.shape} {stored.dtype}, "
                                  f"expected {value.shape} {value.dtype}")
        value[...] = stored


# ------------------------------------------------------------------ Ctrl-C

class _InterruptFlag:
    requested = False


@contextlib.contextmanager
def deferred_interrupt():
    """Within the block, the first SIGINT (Ctrl-C) only sets flag.requested, for the
    training loop to stop after the step it is in and save; a second one raises
    KeyboardInterrupt at once. Outside the main thread (where signal handlers cannot be
    set) the block runs with the usual KeyboardInterrupt."""
    flag = _InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------ a training loop's keeper

class RunKeeper:
    """What makes a training loop one you cannot lose, for any model with a params dict,
    an optimizer and a layer whose state TruncatedBPTT carries:

        keeper = RunKeeper(path, params, optimizer, layer, meta, every=100)
        with keeper.guard():                 # deferred Ctrl-C; a late failure saves
            while keeper.step < steps:
                ...                          # forward and backward: nothing changed yet
                with keeper.updating():      # half-updated parameters are never saved
                    optimizer.step(grads)
                keeper.completed(tbptt.state, loss)
                ...                          # print, sample
                keeper.checkpoint(last=keeper.step == steps)   # raises after a Ctrl-C

    path None keeps nothing on disk (Ctrl-C still stops after a step).
    meta() returns the metadata to save (the model's configuration, the run's settings
    and progress); "step" is added. keeper.history holds (step, loss) of every step.
    """

    def __init__(self, path, params, optimizer, layer, meta, every=None):
        self.path, self.params, self.optimizer, self.layer = path, params, optimizer, layer
        self.meta, self.every = meta, every
        self.step, self.state, self.history = 0, None, []
        self._updating, self._interrupt = False, _InterruptFlag()

    def save(self, **extra):
        """Write the run as it stands after self.step steps (atomically)."""
        meta = dict(self.meta(), step=self.step, **extra)
        state = () if self.state is None else self.layer.state_arrays(self.state)
        arrays = run_arrays(meta, self.params, self.optimizer, state)
        arrays["run.history"] = np.array(self.history, np.float64).reshape(-1, 2)
        save_atomic(self.path, arrays)

    def restore(self, path, arrays):
        """Load the optimizer state, the carried state and the history of the run in
        `arrays` (the parameters are the model's to load); returns the carried state, in
        the layer's form, or None."""
        meta = read_meta(path, arrays)
        try:
            self.optimizer.load_state_dict(optimizer_state(arrays))
        except ValueError as err:
            raise CheckpointError(f"{path}: its optimizer state does not fit: {err}") from None
        state = carried_state(arrays)
        self.state = self.layer.state_from_arrays(state) if state else None
        self.history = [(int(s), float(loss)) for s, loss in arrays.get("run.history", ())]
        self.step = int(meta["step"])
        return self.state

    @contextlib.contextmanager
    def guard(self):
        """The training loop's block: Ctrl-C deferred (checkpoint() acts on it), NumPy's
        overflow warnings off (the caller checks the loss for divergence instead), and
        any other failure saves the completed steps, unless it struck inside updating()."""
        with deferred_interrupt() as self._interrupt, \
                np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                yield self
            except (TrainingInterrupted, TrainingDiverged):
                raise
            except BaseException:   # a second Ctrl-C, a broken pipe, MemoryError, ...
                if self.path and not self._updating:
                    self.save()
                raise

    @contextlib.contextmanager
    def updating(self):
        """The block that writes the parameters: a failure inside leaves them half
        updated, so nothing is saved then (the last checkpoint stands)."""
        self._updating = True
        yield
        self._updating = False

    def completed(self, state, loss):
        """One more step done: the carried state after it and its loss."""
        self.step += 1
        self.state = state
        self.history.append((self.step, loss))

    def checkpoint(self, last=False):
        """Save when due (every `every` steps, the last step, after a Ctrl-C); then, after
        a Ctrl-C, raise TrainingInterrupted."""
        due = last or self._interrupt.requested or (self.every and self.step % self.every == 0)
        if self.path and due:
            self.save()
        if self._interrupt.requested:
            raise TrainingInterrupted(self.step, self.path)
