"""What every peer module shares: its interface's records and the import probe."""
import importlib
from typing import Callable, NamedTuple


class Availability(NamedTuple):
    ok: bool        # whether the peer can run here
    detail: str     # its version when ok, else why not (the ImportError's message)


class Prepared(NamedTuple):
    run: Callable[[], object]   # one forward+backward, the timed unit
    result: dict                # outputs and gradients of one call, named as fastbptt's


class PeerUnavailable(Exception):
    """The peer cannot run this row (the message says why); the row shows it as skipped."""


def import_available(package):
    """Availability of an importable package: (True, its version) or (False, the reason)."""
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        return Availability(False, f"not importable ({exc})")
    return Availability(True, f"{package} {getattr(module, '__version__', '?')}")


def result_of(h, grads):
    """The result record of a peer: {"h": h, **grads} without the entries that are None
    (a problem without biases has no bias gradients)."""
    return {"h": h, **{key: value for key, value in grads.items() if value is not None}}
