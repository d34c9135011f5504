"""fastbptt: compiled backpropagation through time for recurrent networks in NumPy.

The functions here run compiled kernels; :mod:`fastbptt.reference` holds their pure-NumPy
twins with the same names and signatures.

The package layout is the architecture (docs/design and CONTRIBUTING.md):
``cells`` (CellSpec, the one compiled driver, per-cell adapters), ``losses``,
``reference`` (pure NumPy, nothing compiled), ``nn`` (layer classes), ``training``
(optimizers, truncated BPTT, diagnostics), ``compat``, ``runtime`` (backend switch,
threads, validation), ``app`` (the CLI and its tools), ``bench`` and ``_kernels``.

Every public name below is imported on first use (PEP 562), so that
``import fastbptt.reference`` runs where the compiled extensions did not build.
"""
import importlib

from fastbptt import reference

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(["rnn_forward", "rnn_backward"], "fastbptt.cells.rnn"),
    **dict.fromkeys(["lstm_forward", "lstm_backward"], "fastbptt.cells.lstm"),
    **dict.fromkeys(["gru_forward", "gru_backward"], "fastbptt.cells.gru"),
    **dict.fromkeys(["RNNGrads", "LSTMGrads", "LSTMPGrads", "GRUGrads"], "fastbptt.cells.grads"),
    **dict.fromkeys(["RNN", "LSTM", "GRU"], "fastbptt.nn.layers"),
    **dict.fromkeys(["RNNCell", "LSTMCell", "GRUCell"], "fastbptt.nn.cells"),
    **dict.fromkeys(["Embedding", "embedding_forward", "embedding_backward"],
                    "fastbptt.nn.embedding"),
    **dict.fromkeys(["softmax_cross_entropy", "sigmoid_binary_cross_entropy",
                     "mean_squared_error", "last_step"], "fastbptt.losses.heads"),
    "HeadGrads": "fastbptt.losses.grads",
    **dict.fromkeys(["SGD", "Momentum", "Adagrad", "Adam", "clip_grad_norm",
                     "clip_grad_value"], "fastbptt.training.optim"),
    **dict.fromkeys(["TruncatedBPTT", "TruncatedBPTTWindow"], "fastbptt.training.tbptt"),
    **dict.fromkeys(["GradientFlow", "gradient_flow", "plot_gradient_flow"],
                    "fastbptt.training.diagnostics"),
    **dict.fromkeys(["set_backend", "get_backend", "use_backend"], "fastbptt.runtime.backend"),
    "show_config": "fastbptt.runtime.config",
    "threads": "fastbptt.runtime.threads",
    **dict.fromkeys(["release_workspace", "set_workspace_limit", "workspace_bytes"],
                    "fastbptt.cells.workspace"),
}

__all__ = ["reference", "__version__", *_EXPORTS]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fastbptt' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        if (exc.name or "").startswith("fastbptt._kernels"):
            raise ImportError(
                f"fastbptt.{name} needs the compiled extensions, which are not built or do "
                f"not load ({exc}); reinstall with `pip install .` from a source tree, or "
                f"use fastbptt.reference, which runs without them") from exc
        raise
    globals()[name] = value   # later lookups are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
