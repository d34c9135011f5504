"""The backend switch: run code written against fastbptt on the compiled kernels or on the
pure-NumPy reference, without changing it.

    fastbptt.set_backend("reference")          # the process-wide default
    with fastbptt.use_backend("reference"):    # an override for this thread / task only
        h, cache = fastbptt.rnn_forward(...)   # runs fastbptt.reference.rnn_forward
    grads = fastbptt.rnn_backward(dh, cache)   # goes where the cache came from

The effective backend is the innermost `use_backend` override of the current context, else
the global default (`set_backend`, "compiled" at import). The override lives in a
contextvars.ContextVar, so it is private to its thread and to its asyncio task; a new
thread starts without an override and sees the global default.

A public function joins the switch with one decorator line, `@dispatch("name")`, on its
compiled implementation; its reference twin is `fastbptt.reference.<name>`, looked up at
the call. A function with a parameter named `cache` (the backward functions) dispatches
on the backend that cache names instead: a cache made by a reference function goes to the reference
twin, any other to the compiled code, whatever the switch says at that moment, so a
forward and its backward always run on the same backend.
"""
import contextlib
import contextvars
import functools
import importlib
import inspect

BACKENDS = ("compiled", "reference")

_default = "compiled"
_override = contextvars.ContextVar("fastbptt_backend", default=None)
_compiled = {}   # name -> the undecorated compiled function


def _check(name):
    if name not in BACKENDS:
        raise ValueError(f"backend must be 'compiled' or 'reference', got {name!r}")
    return name


def set_backend(name):
    """Set the process-wide default backend.

    An active :func:`use_backend` override still wins inside its block.

    Parameters
    ----------
    name : {"compiled", "reference"}
        "compiled" (the default at import) runs the kernels; "reference" the pure-NumPy
        twins of ``fastbptt.reference``.

    Raises
    ------
    ValueError
        Another name.
    """
    global _default
    _default = _check(name)


def get_backend():
    """The backend in effect here: the innermost :func:`use_backend` override, else the default.

    Returns
    -------
    str
        "compiled" or "reference".
    """
    override = _override.get()
    return _default if override is None else override


@contextlib.contextmanager
def use_backend(name):
    """Run a block on another backend, in this thread or asyncio task only.

    The override is a ``contextvars.ContextVar``: a new thread starts from the
    process-wide default. The previous setting comes back on exit, also on an exception.

    Parameters
    ----------
    name : {"compiled", "reference"}

    Raises
    ------
    ValueError
        Another name.

    Examples
    --------
    >>> import fastbptt
    >>> with fastbptt.use_backend("reference"):
    ...     print(fastbptt.get_backend())
    reference
    >>> fastbptt.get_backend()
    'compiled'
    """
    token = _override.set(_check(name))
    try:
        yield name
    finally:
        _override.reset(token)


def is_reference_cache(cache):
    """Whether `cache` was made by a function of fastbptt.reference: every cache names the
    backend that made it (fastbptt.cells.cache.CellCache.backend)."""
    return getattr(cache, "backend", None) == "reference"


def implementation(name, backend):
    """The function `name` of a backend, not dispatching: the compiled one as registered by
    @dispatch, or fastbptt.reference.<name>."""
    if _check(backend) == "compiled":
        if name not in _compiled:
            # the public names load their modules on first use (fastbptt.__getattr__),
            # and loading one registers its compiled implementation here
            getattr(importlib.import_module("fastbptt"), name)
        return _compiled[name]
    return getattr(importlib.import_module("fastbptt.reference"), name)


def dispatch(name):
    """Decorator for the compiled implementation of public function `name`: the returned
    function runs it or its reference twin, chosen by get_backend(), or by the type of
    its `cache` argument when it has one."""
    def decorate(compiled):
        _compiled[name] = compiled
        params = list(inspect.signature(compiled).parameters)
        if "cache" in params:
            position = params.index("cache")

            @functools.wraps(compiled)
            def by_cache(*args, **kwargs):
                cache = args[position] if len(args) > position else kwargs.get("cache")
                if is_reference_cache(cache):
                    return implementation(name, "reference")(*args, **kwargs)
                return compiled(*args, **kwargs)
            return by_cache

        @functools.wraps(compiled)
        def by_switch(*args, **kwargs):
            if get_backend() == "compiled":
                return compiled(*args, **kwargs)
            return implementation(name, "reference")(*args, **kwargs)
        return by_switch
    return decorate
