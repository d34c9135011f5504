"""Optimizers that update a parameter dict in place, and gradient clipping.

Every optimizer holds the caller's arrays themselves ({name: ndarray}, e.g. layer.params)
and updates them with ufuncs writing into them (out=), never by rebinding, so the layer
and the optimizer keep sharing the arrays. (A layer's load_state_dict replaces its
arrays: build the optimizer after loading, or load into the optimizer too.)

The update rules are torch.optim's, step for step, with its defaults (no weight decay,
no dampening, no learning-rate decay), for a parameter w with gradient g:

    SGD       w -= lr g
    Momentum  b = momentum b + g  (b = g at the first step);  w -= lr b,
              or with nesterov: w -= lr (g + momentum b)
    Adagrad   s += g^2;  w -= lr g / (sqrt(s) + eps)
    Adam      m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2;  t += 1
              w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

step(grads) takes a dict with exactly the parameters' keys, shapes and dtypes; the
caller's gradients are read, never written (only clip_grad_norm / clip_grad_value
write into gradients, by design). Each parameter has one scratch buffer, so a step
allocates no per-parameter temporaries.

state_dict() returns a flat dict of arrays and scalars ready for np.savez;
load_state_dict(d) restores it (from np.load too) into an optimizer built on the same
parameters.
"""
import math

import numpy as np

from fastbptt.cells import docs
from fastbptt.nn.versions import mark_modified
from fastbptt.runtime.validation import FLOAT_DTYPES


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_nonnegative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_unit_interval(name, value):
    """A coefficient in [0, 1): a decay rate such as momentum or Adam's betas."""
    value = _check_nonnegative(name, value)
    if value >= 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return value


def _check_float_arrays(what, arrays, writable):
    """arrays must be a non-empty dict {str: float32/float64 ndarray}."""
    if not isinstance(arrays, dict):
        raise TypeError(f"{what} must be a dict {{name: ndarray}}, got {type(arrays).__name__}")
    if not arrays:
        raise ValueError(f"{what} is empty")
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{what}[{key!r}] must be a NumPy array, got {type(value).__name__}")
        if value.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{what}[{key!r}] must have dtype float32 or float64, "
                            f"got {value.dtype}")
        if writable and not value.flags.writeable:
            raise ValueError(f"{what}[{key!r}] is read-only; it is updated in place")


# The parameter and the sections every optimizer documents alike, filled into their
# docstrings (fastbptt.cells.docs.fill_from).
_OPTIMIZER_DOCS = {
    "optimizer_params": """\
params : dict of str to ndarray
    The arrays to train (a layer's ``params``, merged with a head's if need be), float32
    or float64, writable; :meth:`step` updates them in place.""",
    "optimizer_sections": """\
Notes
-----
``opt.step(grads)`` takes a dict with exactly the keys, shapes and dtypes of ``params``
and never writes into it. ``opt.state_dict()`` is a flat dict of arrays for
``np.savez``; ``opt.load_state_dict(np.load(path))`` resumes. After
``layer.load_state_dict(...)``, which replaces the layer's arrays, build the optimizer
again.

Raises
------
TypeError, ValueError
    ``params`` not a dict of float arrays, or a hyperparameter out of its range (the
    message names it).""",
}
_optimizer_doc = docs.fill_from(_OPTIMIZER_DOCS.__getitem__)


class _Optimizer:
    """The parameter bookkeeping shared by SGD, Momentum, Adagrad and Adam; use those."""

    # Names of the per-parameter state arrays, e.g. ("exp_avg", "exp_avg_sq").
    _slots = ()

    def __init__(self, params, lr):
        _check_float_arrays("params", params, writable=True)
        self.params = params
        self.lr = _check_positive("lr", lr)
        self.state = {slot: {k: np.zeros_like(p) for k, p in params.items()}
                      for slot in self._slots}
        self._scratch = {k: np.empty_like(p) for k, p in params.items()}

    def _check_grads(self, grads):
        """Every check before any parameter changes, so a bad dict updates nothing."""
        _check_float_arrays("grads", grads, writable=False)
        missing = [k for k in self.params if k not in grads]
        unexpected = [k for k in grads if k not in self.params]
        if missing or unexpected:
            raise ValueError(f"grads must have exactly the parameters' keys: missing "
                             f"{missing}, unexpected {unexpected}")
        for key, p in self.params.items():
            g = grads[key]
            if g.shape != p.shape:
                raise ValueError(f"grads[{key!r}] must have the parameter's shape {p.shape}, "
                                 f"got {g.shape}")
            if g.dtype != p.dtype:
                raise ValueError(f"grads[{key!r}] must have the parameter's dtype {p.dtype}, "
                                 f"got {g.dtype}")

    def step(self, grads):
        """Update every parameter in place from grads {name: ndarray} (read only)."""
        self._check_grads(grads)
        self._begin_step()
        for key, p in self.params.items():
            self._update(key, p, grads[key], self._scratch[key])
            mark_modified(p)   # a layer's pending backward now raises (nn/versions.py)

    def _begin_step(self):
        """Per-step bookkeeping shared by all parameters (Adam's step count)."""

    def _update(self, key, p, g, scratch):
        raise NotImplementedError

    # ------------------------------------------------------------ checkpoints

    def _hyperparameters(self):
        return {"lr": self.lr}

    def state_dict(self):
        """A flat dict for np.savez: 'optimizer' (the class name), the hyperparameters as
        scalars, and each state array as '<slot>.<parameter name>' (a copy)."""
        out = {"optimizer": type(self).__name__}
        out.update(self._hyperparameters())
        for slot, arrays in self.state.items():
            for key, value in arrays.items():
                out[f"{slot}.{key}"] = value.copy()
        return out

    def load_state_dict(self, state_dict):
        """Restore what state_dict() returned (a dict or an np.load result) into this
        optimizer, built on parameters with the same keys, shapes and dtypes. State arrays
        are copied into the optimizer's own buffers."""
        name = str(np.asarray(state_dict.get("optimizer", "")))
        if name != type(self).__name__:
            raise ValueError(f"state_dict is for optimizer {name!r}, not {type(self).__name__}")
        hyper = {}
        for key, current in self._hyperparameters().items():
            if key not in state_dict:
                raise ValueError(f"state_dict has no {key!r}")
            hyper[key] = type(current)(np.asarray(state_dict[key]).item())
        # Check every array before writing any, so a bad dict leaves the state as it was.
        arrays = {}
        for slot, current in self.state.items():
            for key, buf in current.items():
                name = f"{slot}.{key}"
                if name not in state_dict:
                    raise ValueError(f"state_dict has no {name!r}")
                value = np.asarray(state_dict[name])
                if value.shape != buf.shape or value.dtype != buf.dtype:
                    raise ValueError(f"state_dict[{name!r}] must have shape {buf.shape} and "
                                     f"dtype {buf.dtype}, got {value.shape} {value.dtype}")
                arrays[name] = (buf, value)
        self._set_hyperparameters(hyper)
        for buf, value in arrays.values():
            np.copyto(buf, value)

    def _set_hyperparameters(self, hyper):
        self.lr = _check_positive("lr", hyper["lr"])


@_optimizer_doc
class SGD(_Optimizer):
    """Plain gradient descent, ``w -= lr * g`` (torch.optim.SGD without momentum).

    Parameters
    ----------
    {optimizer_params}
    lr : float, default 0.1
        The learning rate, > 0.

    {optimizer_sections}

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> w = np.array([1.0, -2.0])
    >>> opt = fastbptt.SGD({"w": w}, lr=0.5)
    >>> opt.step({"w": np.array([1.0, -1.0])})
    >>> w                                   # updated in place
    array([ 0.5, -1.5])
    """

    def __init__(self, params, lr=0.1):
        super().__init__(params, lr)

    def _update(self, key, p, g, scratch):
        np.multiply(g, self.lr, out=scratch)
        np.subtract(p, scratch, out=p)


@_optimizer_doc
class Momentum(_Optimizer):
    """Heavy-ball or Nesterov momentum, with torch.optim.SGD(momentum=...)'s rule.

    The update, per array::

        b = momentum * b + g        (b starts at zero, so b = g at the first step)
        w -= lr * b                 or, nesterov, w -= lr * (g + momentum * b)

    Parameters
    ----------
    {optimizer_params}
    lr : float, default 0.1
        The learning rate, > 0.
    momentum : float, default 0.9
        In [0, 1).
    nesterov : bool, default False
        Nesterov's variant.

    {optimizer_sections}

    Examples
    --------
    The second of two equal gradients moves w 1.9 times as far (b = 0.9 g + g):

    >>> import numpy as np
    >>> import fastbptt
    >>> w = np.array([1.0, -2.0])
    >>> opt = fastbptt.Momentum({"w": w}, lr=0.5, momentum=0.9)
    >>> g = {"w": np.array([1.0, -1.0])}
    >>> for _ in range(2):
    ...     opt.step(g)
    >>> w                                   # w - lr g (1 + 1.9)
    array([-0.45, -0.55])
    """
    _slots = ("momentum_buffer",)

    def __init__(self, params, lr=0.1, momentum=0.9, nesterov=False):
        self.momentum = _check_unit_interval("momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)
        super().__init__(params, lr)

    def _update(self, key, p, g, scratch):
        buf = self.state["momentum_buffer"][key]
        buf *= self.momentum
        buf += g
        if self.nesterov:
            np.multiply(buf, self.momentum, out=scratch)
            scratch += g
            scratch *= self.lr
        else:
            np.multiply(buf, self.lr, out=scratch)
        np.subtract(p, scratch, out=p)

    def _hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}

    def _set_hyperparameters(self, hyper):
        super()._set_hyperparameters(hyper)
        self.momentum = _check_unit_interval("momentum", hyper["momentum"])
        self.nesterov = bool(hyper["nesterov"])


@_optimizer_doc
class Adagrad(_Optimizer):
    """Adagrad, with torch.optim.Adagrad's rule (initial accumulator 0, no lr decay).

    The update, per array::

        s += g^2;  w -= lr * g / (sqrt(s) + eps)

    Parameters
    ----------
    {optimizer_params}
    lr : float, default 0.01
        The learning rate, > 0.
    eps : float, default 1e-10
        Added to the denominator, >= 0.

    {optimizer_sections}

    Examples
    --------
    Each coordinate is scaled by its own history: a gradient 100 times larger moves its
    coordinate as far:

    >>> import numpy as np
    >>> import fastbptt
    >>> w = np.array([1.0, -2.0])
    >>> opt = fastbptt.Adagrad({"w": w}, lr=0.5)
    >>> opt.step({"w": np.array([1.0, -100.0])})
    >>> w, opt.state["sum"]["w"]            # both moved by lr; s = g^2
    (array([ 0.5, -1.5]), array([1.e+00, 1.e+04]))
    """
    _slots = ("sum",)

    def __init__(self, params, lr=0.01, eps=1e-10):
        self.eps = _check_nonnegative("eps", eps)
        super().__init__(params, lr)

    def _update(self, key, p, g, scratch):
        s = self.state["sum"][key]
        np.multiply(g, g, out=scratch)
        s += scratch
        np.sqrt(s, out=scratch)
        scratch += self.eps
        np.divide(g, scratch, out=scratch)
        scratch *= self.lr
        np.subtract(p, scratch, out=p)

    def _hyperparameters(self):
        return {"lr": self.lr, "eps": self.eps}

    def _set_hyperparameters(self, hyper):
        super()._set_hyperparameters(hyper)
        self.eps = _check_nonnegative("eps", hyper["eps"])


@_optimizer_doc
class Adam(_Optimizer):
    """Adam, with torch.optim.Adam's bias-corrected rule, step count t from 1.

    The update, per array::

        m = lerp(m, g, 1 - beta1)           m + (1 - beta1) (g - m), as torch computes it
        v = beta2 v + (1 - beta2) g^2
        w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Parameters
    ----------
    {optimizer_params}
    lr : float, default 1e-3
        The learning rate, > 0.
    betas : (float, float), default (0.9, 0.999)
        beta1 and beta2, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.

    {optimizer_sections}

    Examples
    --------
    Steps of about lr whatever the gradient's scale; the step count is part of the
    state that :meth:`state_dict` saves:

    >>> import numpy as np
    >>> import fastbptt
    >>> w = np.array([1.0, -2.0])
    >>> opt = fastbptt.Adam({"w": w}, lr=0.1)
    >>> for _ in range(3):
    ...     opt.step({"w": np.array([0.01, -100.0])})
    >>> w.round(6)
    array([ 0.7, -1.7])
    >>> int(opt.state_dict()["step"])
    3
    """
    _slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_unit_interval("betas[0]", betas[0]),
                      _check_unit_interval("betas[1]", betas[1]))
        self.eps = _check_nonnegative("eps", eps)
        self.step_count = 0
        super().__init__(params, lr)

    def _begin_step(self):
        self.step_count += 1

    def _update(self, key, p, g, scratch):
        beta1, beta2 = self.betas
        t = self.step_count
        m = self.state["exp_avg"][key]
        v = self.state["exp_avg_sq"][key]
        # torch's lerp: start + w (end - start) for w < 0.5, else end - (1 - w)(end - start)
        weight = 1 - beta1
        np.subtract(g, m, out=scratch)
        if weight < 0.5:
            scratch *= weight
            m += scratch
        else:
            scratch *= beta1
            np.subtract(g, scratch, out=m)
        v *= beta2
        np.multiply(g, g, out=scratch)
        scratch *= 1 - beta2
        v += scratch
        step_size = self.lr / (1 - beta1 ** t)
        np.sqrt(v, out=scratch)
        scratch /= math.sqrt(1 - beta2 ** t)
        scratch += self.eps
        np.divide(m, scratch, out=scratch)
        scratch *= step_size
        np.subtract(p, scratch, out=p)

    def _hyperparameters(self):
        return {"lr": self.lr, "beta1": self.betas[0], "beta2": self.betas[1],
                "eps": self.eps, "step": self.step_count}

    def _set_hyperparameters(self, hyper):
        super()._set_hyperparameters(hyper)
        self.betas = (_check_unit_interval("beta1", hyper["beta1"]),
                      _check_unit_interval("beta2", hyper["beta2"]))
        self.eps = _check_nonnegative("eps", hyper["eps"])
        step = hyper["step"]
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self.step_count = step


# ---------------------------------------------------------------- clipping

def clip_grad_norm(grads, max_norm):
    """Scale every gradient in place so their global L2 norm is at most max_norm.

    ``norm = sqrt(sum over arrays of sum(g**2))``, the norm of the concatenation of all
    gradients; when ``norm > max_norm`` every g is multiplied by
    ``max_norm / (norm + 1e-6)``, ``torch.nn.utils.clip_grad_norm_``'s factor (it leaves
    the norm just below max_norm).

    Parameters
    ----------
    grads : dict of str to ndarray
        Writable float arrays, changed in place.
    max_norm : float
        The largest global norm let through, > 0.

    Returns
    -------
    norm : float
        The global norm BEFORE clipping. A NaN or infinite norm is returned and the
        gradients are left untouched (torch would multiply them all by NaN): test
        ``math.isfinite(norm)`` and skip the update.

    Raises
    ------
    TypeError, ValueError
        ``grads`` not a dict of writable float arrays, or ``max_norm`` not positive.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> grads = {"a": np.full(4, 3.0), "b": np.full(4, 4.0)}     # norm 10
    >>> fastbptt.clip_grad_norm(grads, max_norm=1.0)
    10.0
    >>> round(float(np.sqrt(sum((g ** 2).sum() for g in grads.values()))), 6)
    1.0
    """
    _check_float_arrays("grads", grads, writable=True)
    max_norm = _check_positive("max_norm", max_norm)
    # Norm of the per-array norms, accumulated in Python floats (float64): the same value
    # as the norm of the concatenation, without building it.
    total = math.sqrt(sum(float(np.linalg.norm(g.ravel())) ** 2 for g in grads.values()))
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= scale
    return total


def clip_grad_value(grads, clip_value):
    """Clamp every gradient in place to [-clip_value, clip_value].

    As ``torch.nn.utils.clip_grad_value_``; NaN entries stay NaN.

    Parameters
    ----------
    grads : dict of str to ndarray
        Writable float arrays, changed in place.
    clip_value : float
        The bound, > 0.

    Returns
    -------
    None
    """
    _check_float_arrays("grads", grads, writable=True)
    clip_value = _check_positive("clip_value", clip_value)
    for g in grads.values():
        np.clip(g, -clip_value, clip_value, out=g)
