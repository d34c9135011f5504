"""The tasks of the experiments: batches drawn from their definitions, and each task's
baseline (the score of a model that uses no memory of the sequence).

All arrays are time-major, (T, B, ...), the layers' default, and float of the dtype asked
for; class targets are int64.
"""
import math

import numpy as np

#: The adding problem's answer for a model that knows nothing about the sequence: the mean
#: of the target, E[u1 + u2] = 1 for u ~ U(0, 1).
ADDING_CONSTANT = 1.0
#: Its MSE: Var(u1 + u2) = 2 * Var(U(0, 1)) = 2 / 12.
ADDING_BASELINE_MSE = 1.0 / 6.0

#: Copying memory (Arjovsky, Shah and Bengio 2016): symbols 0..7 are data, 8 is blank,
#: 9 the delimiter; 10 data symbols to remember.
COPY_CATEGORIES = 8
COPY_BLANK = 8
COPY_DELIMITER = 9
COPY_VOCAB = 10
COPY_LENGTH = 10


def _check_sizes(T, B, T_min=1):
    for name, value, low in (("T", T, T_min), ("B", B, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def adding_batch(T, B, rng, dtype=np.float32):
    """The adding problem (Hochreiter and Schmidhuber 1997; the setup of Le, Jaitly and
    Hinton 2015 and Arjovsky et al. 2016).

    x (T, B, 2): channel 0 values u_t ~ U(0, 1); channel 1 a marker, 1 at exactly two
    steps, one drawn uniformly in the first half [0, T//2) and one in the second half
    [T//2, T), 0 elsewhere. y (B, 1) = the sum of the two marked values, read at the last
    step (many-to-one). Needs T >= 2. Returns (x, y).
    """
    _check_sizes(T, B, T_min=2)
    half = T // 2
    x = np.zeros((T, B, 2), dtype)
    x[:, :, 0] = rng.uniform(0.0, 1.0, (T, B))
    first = rng.integers(0, half, B)
    second = rng.integers(half, T, B)
    rows = np.arange(B)
    x[first, rows, 1] = 1
    x[second, rows, 1] = 1
    y = (x[first, rows, 0] + x[second, rows, 0]).astype(dtype)[:, None]
    return x, y


def copy_batch(T, B, rng):
    """The copying-memory task (Arjovsky et al. 2016, section 4.1), T + 20 steps long.

    inputs (T + 20, B) ints: 10 symbols drawn uniformly from the 8 categories 0..7, then
    T - 1 blanks (8), the delimiter (9) at step T + 9, then 10 more blanks. targets
    (T + 20, B): blanks for the first T + 10 steps, then the 10 symbols in their order.
    Returns (inputs, targets); one_hot(inputs) is the network's input.
    """
    _check_sizes(T, B)
    L = T + 2 * COPY_LENGTH
    symbols = rng.integers(0, COPY_CATEGORIES, (COPY_LENGTH, B))
    inputs = np.full((L, B), COPY_BLANK, np.int64)
    inputs[:COPY_LENGTH] = symbols
    inputs[T + COPY_LENGTH - 1] = COPY_DELIMITER
    targets = np.full((L, B), COPY_BLANK, np.int64)
    targets[-COPY_LENGTH:] = symbols
    return inputs, targets


def copy_baseline(T):
    """Cross-entropy per step (nats) of the memoryless strategy: blank for the first
    T + 10 steps (loss 0), then uniform over the 8 categories for the last 10:
    10 log(8) / (T + 20)."""
    _check_sizes(T, 1)
    return COPY_LENGTH * math.log(COPY_CATEGORIES) / (T + 2 * COPY_LENGTH)


def one_hot(indices, depth, dtype=np.float32):
    """indices (...) ints in [0, depth) -> (..., depth) one-hot floats."""
    out = np.zeros(indices.shape + (depth,), dtype)
    np.put_along_axis(out, indices[..., None], 1, axis=-1)
    return out


def load_digits_sequences(T, seed, test_fraction=0.25, dtype=np.float32):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, no download) as
    sequences: T = 8 reads an image row by row (8 steps of 8 pixels), T = 64 pixel by pixel
    (64 steps of 1 pixel, row-major). Pixels are scaled from 0..16 to [0, 1].

    Split per class (stratified), the test set a fixed `test_fraction` drawn with `seed`.
    Returns (x_train (T, N, I), y_train (N,), x_test, y_test). ImportError naming the
    extra when scikit-learn is missing.
    """
    if T not in (8, 64):
        raise ValueError(f"digits are read row by row (T = 8) or pixel by pixel (T = 64), "
                         f"got T = {T}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError('the digits experiment needs scikit-learn: pip install '
                          '"fastbptt[experiments]" (or pip install scikit-learn)') from None
    data = load_digits()
    images = (data.images / 16.0).astype(dtype)            # (N, 8, 8)
    labels = data.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):                             # stratified split
        members = rng.permutation(np.flatnonzero(labels == c))
        test[members[:round(test_fraction * len(members))]] = True
    seqs = images.reshape(len(labels), T, 64 // T).transpose(1, 0, 2)   # (T, N, I)
    return (np.ascontiguousarray(seqs[:, ~test]), labels[~test],
            np.ascontiguousarray(seqs[:, test]), labels[test])


def majority_baseline(y_train, y_test):
    """Test accuracy of always answering the most frequent training class."""
    counts = np.bincount(y_train)
    return float(np.mean(y_test == np.argmax(counts)))
