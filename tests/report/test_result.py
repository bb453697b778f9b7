"""Outcome / Result: normalisation to plain values, validation, JSON records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dltheory import Estimate
from dltheory.report import Outcome, Reproduction, Result, new_figure, png_bytes
from dltheory.report.result import plain

REP = Reproduction("demo", "A title", "A claim.", lambda quick=False, seed=0: None, "topic", "ref")


def test_plain_converts_tensors_arrays_and_non_finite():
    value = {
        "t": torch.tensor([[1.0, 2.0]]),
        "a": np.array([3, 4]),
        "s": np.float32(0.5),
        "inf": float("inf"),
        "e": Estimate(torch.tensor([1.0]), torch.tensor([0.5]), 3),
        "nested": ((1, 2), [np.int64(3)]),
    }
    assert plain(value) == {
        "t": [[1.0, 2.0]],
        "a": [3, 4],
        "s": 0.5,
        "inf": None,
        "e": {"mean": [1.0], "stderr": [0.5], "n": 3},
        "nested": [[1, 2], [3]],
    }


def test_plain_refuses_unknown_objects():
    with pytest.raises(TypeError, match=r"^value must be JSON-serialisable"):
        plain(object())


def test_outcome_stores_plain_values_and_is_frozen():
    outcome = Outcome(
        prediction=torch.tensor([1.0, 2.0], dtype=torch.float64),
        measurement=Estimate(
            torch.tensor([1.1, 1.9], dtype=torch.float64),
            torch.tensor([0.1, 0.1], dtype=torch.float64),
            5,
        ),
        verdict=np.bool_(True),
        criterion="rule",
        parameters={"width": np.int64(8)},
    )
    assert outcome.prediction == [1.0, 2.0]
    assert outcome.measurement.mean == [1.1, 1.9]
    assert outcome.verdict is True
    assert outcome.parameters == {"width": 8}
    with pytest.raises(TypeError):
        outcome.parameters["width"] = 9  # read-only mapping
    with pytest.raises(AttributeError):
        outcome.verdict = False  # frozen dataclass


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"measurement": 1.0}, r"^measurement must be a dltheory\.Estimate"),
        ({"verdict": "yes"}, r"^verdict must be a bool\. Got 'yes'\."),
        ({"figure": b"GIF89a"}, r"^figure must be PNG or SVG bytes or None\. Got 'bytes'\."),
        ({"details": [1, 2]}, r"^details must be a mapping"),
    ],
)
def test_outcome_validation_messages(kwargs, pattern):
    base = {
        "prediction": 1.0,
        "measurement": Estimate(1.0, 0.1, 4),
        "verdict": True,
        "criterion": "rule",
    }
    with pytest.raises(TypeError, match=pattern):
        Outcome(**{**base, **kwargs})


def test_result_records_outcome_and_errors_as_json():
    fig, (ax,) = new_figure()
    ax.plot([0, 1], [0, 1])
    outcome = Outcome(1.0, Estimate(1.2, 0.1, 4), False, "rule", "sum", {"p": 1}, {"d": [1, 2]},
                      png_bytes(fig))  # fmt: skip
    result = Result.from_outcome(REP, outcome, seconds=1.5, seed=3, quick=True)
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["status"] == "fail" and record["verdict"] is False
    assert record["measurement"] == {"mean": 1.2, "stderr": 0.1, "n": 4}
    assert record["has_figure"] is True
    assert (record["seconds"], record["seed"], record["quick"]) == (1.5, 3, True)
    assert (record["name"], record["title"], record["topic"]) == ("demo", "A title", "topic")

    failed = Result.from_error(REP, ValueError("bad\n  input"), seconds=0.1, seed=0, quick=False)
    assert failed.status == "error"
    assert failed.to_dict()["error"] == "ValueError: bad input"
    assert failed.to_dict()["measurement"] is None
