"""Names of the vanilla RNN's nonlinearities and the codes the kernels know them by."""

# Must match the enum in _kernels/activations.pxd.
NONLINEARITY_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3}


def nonlinearity_code(nonlinearity):
    """The kernel code of a nonlinearity name (PyTorch's names, plus sigmoid and identity)."""
    try:
        return NONLINEARITY_CODES[nonlinearity]
    except (KeyError, TypeError):
        raise ValueError(
            f"nonlinearity must be one of {sorted(NONLINEARITY_CODES)}, "
            f"got {nonlinearity!r}"
        ) from None
