"""The experiments of `fastbptt experiment`: what BPTT's theory predicts (vanishing and
exploding gradients, long-range memory), measured on the adding problem, copying memory,
an exploding tanh RNN and the 8x8 digits, with fastbptt's public API only.

    from fastbptt.experiments import run, Options
    result = run("adding", Options(T=(50,), steps=500))
"""
from fastbptt.app.experiments.models import CELLS, Model
from fastbptt.app.experiments.report import plot, table_lines, to_json
from fastbptt.app.experiments.suite import (
                                            DEFAULTS,
                                            EXPERIMENTS,
                                            QUICK,
                                            Options,
                                            Result,
                                            Settings,
                                            run,
                                            settings,
                                            spectral_radius,
)
from fastbptt.app.experiments.tasks import (
                                            ADDING_BASELINE_MSE,
                                            adding_batch,
                                            copy_baseline,
                                            copy_batch,
                                            load_digits_sequences,
                                            majority_baseline,
                                            one_hot,
)
from fastbptt.app.experiments.train import History, global_norm, train

__all__ = ["CELLS", "Model", "plot", "table_lines", "to_json", "DEFAULTS", "EXPERIMENTS",
           "QUICK", "Options", "Result", "Settings", "run", "settings", "spectral_radius",
           "ADDING_BASELINE_MSE", "adding_batch", "copy_baseline", "copy_batch",
           "load_digits_sequences", "majority_baseline", "one_hot", "History",
           "global_norm", "train"]
