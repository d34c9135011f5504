"""What an experiment prints and draws: the final table against the task's baseline, the
JSON form of a Result, and the figure (loss curves beside the gradient-flow profiles at
the start and at the end of training)."""
import math

import numpy as np

from fastbptt.app.experiments.models import CELL_NAMES, RECIPES

# One colour per model in every panel (matplotlib's tab10 entries), from its recipe.
COLORS = {name: recipe.color for name, recipe in RECIPES.items()}
FLOOR = 1e-30      # gradient norms below this are drawn at the bottom edge of the panel


def _color(key):
    """The model's colour; in the exploding experiment, one per run (with/without clipping)."""
    model, _, run = key.partition(" ")
    if run:
        return RECIPES[model].run_colors[run]
    return COLORS[model]


def _cell_label(key):
    cell, _, rest = key.partition(" ")
    return CELL_NAMES[cell] + (f" {rest}" if rest else "")


def _fmt(v):
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.3g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"
    return str(v)


def table_lines(result):
    """The final table as Markdown lines (also readable as plain text)."""
    s = result.settings
    if result.name == "exploding":
        head = ["cell", "T", "clipping", "max finite grad norm", "median grad norm",
                "non-finite steps", "test MSE", "baseline MSE"]
        body = [[CELL_NAMES[r["cell"]], r["T"],
                 "none" if r["clip"] is None else f"norm {r['clip']:g}",
                 _fmt(r["max finite grad norm"]), _fmt(r["median grad norm"]),
                 f"{r['non-finite steps']} / {r['steps']}", _fmt(r["test MSE"]),
                 _fmt(r["baseline"])] for r in result.rows]
    else:
        m = result.metric
        head = ["cell", "T", m, f"baseline ({result.baseline_name})",
                "/ baseline"]
        extra = "recall accuracy" if result.name == "copy" else None
        if extra:
            head.append(extra + " (chance 0.125)")
        head.append("seconds (CPU)")
        body = []
        for r in result.rows:
            line = [CELL_NAMES[r["cell"]], r["T"], _fmt(r[m]), _fmt(r["baseline"]),
                    f"{r['ratio']:.3f}"]
            if extra:
                line.append(_fmt(r[extra]))
            line.append(f"{r['seconds']:.0f} ({r['cpu_seconds']:.0f})")
            body.append(line)
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in body]
    lines.append(f"({result.name}: {s.steps} steps of batch {s.batch}, hidden {s.hidden}, "
                 f"{'SGD' if result.name == 'exploding' else 'Adam'} lr {s.lr:g}, "
                 f"clip {s.clip:g}; {result.seconds:.0f} s in all, "
                 f"{result.cpu_seconds:.0f} s of CPU)")
    return lines


def _flow_dict(flow):
    if flow is None:
        return None
    return {"grad_norm": flow.grad_norm[0].tolist(),
            "jacobian_norm": None if flow.jacobian_norm is None
            else flow.jacobian_norm[0].tolist()}


def to_json(result):
    """A Result as a JSON-ready dict (every number a float or int, NaN as null)."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            return clean(v.item())
        return v
    s = result.settings
    return clean({
        "experiment": result.name, "metric": result.metric,
        "lower_is_better": result.lower_is_better, "baseline": result.baseline_name,
        "settings": {"cells": list(s.cells), "T": list(s.T), "steps": s.steps,
                     "hidden": s.hidden, "batch": s.batch, "lr": s.lr, "clip": s.clip,
                     "test_size": s.test_size, "radius": s.radius},
        "seconds": result.seconds, "rows": result.rows,
        "runs": [{"cell": key[0], "T": key[1], "history": h.to_dict(),
                  "flow_start": _flow_dict(result.flows[key]["start"]),
                  "flow_end": _flow_dict(result.flows[key]["end"])}
                 for key, h in result.histories.items()]})


def plot(result, path):
    """Save the figure: per T one row of three panels, (a) the test metric (exploding: the
    gradient norm) against the training step with the baseline, (b) ||dL/dh_t|| and (c)
    ||dh_{T-1}/dh_t||_F against t, dashed at the start of training, solid at the end."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display
    except ImportError:
        raise ImportError('--plot needs matplotlib: pip install "fastbptt[plot]"') from None
    Ts = result.settings.T
    fig = Figure(figsize=(15, 4.2 * len(Ts)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(Ts), 3))
    for row, T in zip(axes, Ts):
        keys = [k for k in result.histories if k[1] == T]
        _curve_panel(row[0], result, keys, T)
        panels = ((row[1], "grad_norm",
                   r"gradient reaching $h_t$: $\|\partial L/\partial h_t\|$"),
                  (row[2], "jacobian_norm",
                   r"$\|\partial h_{T-1}/\partial h_t\|_F$ through the recurrence"))
        for ax, what, title in panels:
            lowest = 1.0
            for key in keys:
                color = _color(key[0])
                for when, style in (("start", "--"), ("end", "-")):
                    flow = result.flows[key][when]
                    if flow is None:       # the weights went non-finite: nothing to draw
                        continue
                    values = np.maximum(getattr(flow, what)[0], FLOOR)
                    lowest = min(lowest, float(values.min()))
                    ax.plot(np.arange(len(values)), values, style, color=color, lw=1.6,
                            alpha=0.6 if when == "start" else 1.0,
                            label=f"{_cell_label(key[0])}, {when} of training")
            ax.set_yscale("log")
            ax.set_ylim(bottom=max(FLOOR, lowest / 10))   # FLOOR: the bottom edge
            ax.set_xlim(0, len(result.flows[keys[0]]["start"].grad_norm[0]) - 1)
            ax.set_xlabel(f"time step t (the loss is read at t = {T - 1}, right edge)"
                          if result.name != "copy" else "time step t")
            ax.set_ylabel("norm (log scale; mean over 8 sequences)")
            ax.set_title(title)
            ax.grid(True, which="major", alpha=0.3)
        row[2].legend(fontsize="small", loc="lower right")
    fig.suptitle(_title(result), fontsize="large")
    fig.savefig(path, dpi=80)
    return fig


def _title(result):
    s = result.settings
    Ts = ", ".join(map(str, s.T))
    what = {"adding": "adding problem", "copy": "copying memory",
            "exploding": f"exploding gradients (tanh RNN, spectral radius of W_hh {s.radius:g})",
            "digits": "8x8 digits, row by row (T = 8) and pixel by pixel (T = 64)"}[result.name]
    moral = ("a norm that grows going left (back in time) explodes" if result.name == "exploding"
             else "a norm that falls going left (back in time) vanishes")
    return f"fastbptt experiment {result.name}: {what}, T = {Ts}\n{moral}"


def _curve_panel(ax, result, keys, T):
    if result.name == "exploding":
        for key in keys:
            h = result.histories[key]
            norms = np.array(h.grad_norm)
            steps = np.arange(1, len(norms) + 1)
            color = _color(key[0])
            ax.plot(steps, np.where(np.isfinite(norms), norms, np.nan), color=color,
                    label=f"{_cell_label(key[0])}")
            bad = ~np.isfinite(norms)
            if bad.any():
                top = np.nanmax(np.where(np.isfinite(norms), norms, np.nan)) if (~bad).any() else 1
                ax.plot(steps[bad], np.full(bad.sum(), top), "x", color=color,
                        label=f"{_cell_label(key[0])}: NaN/Inf gradient (step skipped)")
        if result.settings.clip:
            ax.axhline(result.settings.clip, color="k", ls=":", lw=1,
                       label=f"clipping threshold {result.settings.clip:g}")
        ax.set_yscale("log")
        ax.set(xlabel="training step", ylabel="global gradient norm before clipping",
               title=f"gradient norm per SGD step (T = {T})")
        ax.legend(fontsize="small")
        return
    metric = result.metric
    for key in keys:
        h = result.histories[key]
        values = [e[metric] for e in h.evals]
        ax.plot(h.eval_steps, values, "-o", ms=2.5, color=_color(key[0]),
                label=_cell_label(key[0]))
    baseline = next(r["baseline"] for r in result.rows if r["T"] == T)
    ax.axhline(baseline, color="k", ls="--", lw=1,
               label=f"baseline: {result.baseline_name} ({baseline:.3g})")
    if result.name in ("adding", "copy"):
        ax.set_yscale("log")
    ax.set(xlabel="training step", ylabel=f"{metric} (held-out set)",
           title=f"{metric} while training (T = {T})")
    ax.legend(fontsize="small")
