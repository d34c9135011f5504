"""The inverse-CDF categorical draw of CharLM.sample: the compiled InverseCDF
(fastbptt._kernels.step) against its NumPy twin (fastbptt.reference.sampling), which are
the calls it replaced, and against rng.choice's draw for the same uniform number."""
import numpy as np
import pytest

from fastbptt._kernels.step import InverseCDF as CompiledInverseCDF
from fastbptt.reference.sampling import InverseCDF as ReferenceInverseCDF

IMPLS = {"compiled": CompiledInverseCDF, "reference": ReferenceInverseCDF}


def _draws(impl, logits, bias, us):
    """shift, exp, draw for each u, on a fresh copy of logits every time; and the
    shifted logits of the first."""
    out, shifted = [], None
    for u in us:
        buf = logits.copy()
        softmax = IMPLS[impl](buf, bias)
        with np.errstate(invalid="ignore", over="ignore"):   # the inf and NaN cases
            softmax.shift()
            if shifted is None:
                shifted = buf.copy()
            np.exp(buf, out=buf)
        out.append(softmax.draw(u))
    return out, shifted


LOGITS = {
    "random": lambda rng, V: rng.standard_normal(V) * 3,
    "ties": lambda rng, V: np.round(rng.standard_normal(V)),
    "one": lambda rng, V: np.zeros(V),
    "-inf": lambda rng, V: np.where(rng.random(V) < 0.5, -np.inf, rng.standard_normal(V)),
    "+inf": lambda rng, V: np.where(np.arange(V) == V // 2, np.inf, 0.0),
    "nan": lambda rng, V: np.where(np.arange(V) == V - 1, np.nan, rng.standard_normal(V)),
}


@pytest.mark.parametrize("kind", list(LOGITS))
@pytest.mark.parametrize("V", [1, 2, 53])
def test_compiled_draws_are_the_numpy_draws(kind, V):
    rng = np.random.default_rng(V)
    logits, bias = LOGITS[kind](rng, V), rng.standard_normal(V)
    us = np.concatenate([rng.random(200), [0.0, np.nextafter(1.0, 0.0)]])
    compiled, shifted_c = _draws("compiled", logits, bias, us)
    reference, shifted_r = _draws("reference", logits, bias, us)
    assert compiled == reference
    np.testing.assert_array_equal(shifted_c, shifted_r)
    assert all(0 <= ix < V for ix in compiled)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_the_draw_is_rng_choices_for_the_same_uniform_number(impl):
    # Generator.choice(p=...) draws one uniform u and searches the normalised CDF: the
    # same index as the unnormalised search here (equal up to ties at a boundary)
    rng = np.random.default_rng(3)
    logits, bias = rng.standard_normal(20), np.zeros(20)
    p = np.exp(logits - logits.max())
    draws, _ = _draws(impl, logits, bias, np.random.default_rng(4).random(300))
    expected = [int(np.random.default_rng(4).choice(20, size=300, p=p / p.sum())[i])
                for i in range(300)]
    assert np.mean(np.array(draws) == np.array(expected)) > 0.99


@pytest.mark.parametrize("impl", list(IMPLS))
def test_bad_buffers_are_refused(impl):
    cls = IMPLS[impl]
    with pytest.raises(ValueError, match="one length V >= 1"):
        cls(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="one length V >= 1"):
        cls(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError):
        cls(np.zeros(3, np.float32), np.zeros(3))
    with pytest.raises(ValueError):
        cls(np.zeros(6)[::2], np.zeros(3))
