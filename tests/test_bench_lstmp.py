"""`fastbptt bench --proj-size P` (fastbptt.bench.lstmp): it runs, each row holds
what the module promises, torch's projected LSTM does fastbptt's work before it is
timed, and the FLOP count is the products' count. Tiny shapes, one timed call: no
figure here means anything about speed."""
import json

import numpy as np
import pytest

from fastbptt.app.cli import main
from fastbptt.bench import PeerMismatch, check_peer, report
from fastbptt.bench import lstmp as proj

FAST = ["--threads", "1", "--repeat", "1"]


@pytest.fixture(autouse=True)
def small_ceiling(monkeypatch):
    monkeypatch.setattr(report, "CEILING_N", 64)


def test_flops_count_the_gate_and_projection_products():
    T, B, I, H, P = 3, 2, 5, 7, 4
    gates = 2 * T * B * (I + P) * 4 * H       # [x_t, h_{t-1}] (B, I+P) (I+P, 4H), forward
    projection = 2 * T * B * H * P            # m_t (B, H) (H, P), forward
    assert proj.projected_flops(T, B, I, H, P) == 3 * (gates + projection)


def test_rows_without_torch():
    rows = list(proj.measure_projection_rows([(3, 2, 4, 5)], ["float64"], 2, repeat=1,
                                             torch=False))
    assert len(rows) == 1
    row = rows[0]
    assert row["shape"] == [3, 2, 4, 5] and row["proj_size"] == 2
    for key in ("compiled_ms", "lstm_ms", "reference_ms", "lstm_ratio", "speedup"):
        assert row[key] > 0, key
    assert "torch_ms" not in row
    assert row["lstm_ratio"] == row["compiled_ms"] / row["lstm_ms"]


def test_proj_size_must_be_below_H():
    with pytest.raises(ValueError, match=r"proj_size must lie in \(0, H\) = \(0, 5\)"):
        list(proj.measure_projection_rows([(3, 2, 4, 5)], ["float64"], 5, repeat=1,
                                          torch=False))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_does_the_same_work(dtype):
    pytest.importorskip("torch")
    problem = proj.make_projected_problem(4, 3, 5, 6, 2, dtype, seed=1)
    _, result = proj.prepare_torch(problem)
    expected = proj.expected_projected_result(problem)
    assert set(result) == set(expected)   # every gradient, dW_hr included
    check_peer("torch", result, expected)
    # and the check would catch a torch doing other work: a wrong projection
    wrong = dict(result, dW_hr=result["dW_hr"] * 1.01)
    with pytest.raises(PeerMismatch, match="dW_hr"):
        check_peer("torch", wrong, expected)


def test_cli_table(capsys):
    assert main(["bench", "--proj-size", "2", "--shapes", "3,2,4", "--dtypes", "float64",
                 "--no-torch", *FAST]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert "projected/plain" in lines[0] and len(lines) == 3
    assert lines[2].startswith("| 3,2,4,4 | 2 | float64 | 1 |")


def test_cli_json_with_torch(capsys):
    pytest.importorskip("torch")
    assert main(["bench", "--proj-size", "2", "--shapes", "3,2,3,5", "--dtypes", "float32",
                 "--json", *FAST]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 1 and rows[0]["torch_speedup"] > 0
    assert np.isclose(rows[0]["torch_speedup"], rows[0]["torch_ms"] / rows[0]["compiled_ms"])


def test_cli_refuses_proj_size_at_or_above_H(capsys):
    assert main(["bench", "--proj-size", "4", "--shapes", "3,2,4", "--no-torch", *FAST]) == 2
    assert "--proj-size must be smaller than H" in capsys.readouterr().err
