"""dltheory.parallel: serial and Dask sweeps give bitwise the same numbers."""

from __future__ import annotations

import pytest
import torch

from dltheory import MLP
from dltheory.finite import ensemble
from dltheory.finite.moments import preactivation_moments
from dltheory.parallel import grid, sweep, task_seeds


def measure(width: int, depth: int, seed: int) -> dict[str, list[float]]:
    """One sweep point: measured E[z^2] and kurtosis of a tanh ensemble (module-level)."""
    spec = MLP(depth, "tanh", c_w=1.5, c_b=0.1)
    x = torch.tensor([[0.3, -1.2, 0.8]])
    m = preactivation_moments(ensemble(spec, width, 200, in_dim=3, seed=seed), x)
    return {
        "second": m.second.mean[:, 0].tolist(),
        "kurtosis": m.excess_kurtosis.mean[:, 0].tolist(),
    }


def test_grid_and_seeds():
    tasks = grid(seed=5, width=[8, 16], depth=[1, 2, 3])
    assert [(t["width"], t["depth"]) for t in tasks] == [
        (8, 1), (8, 2), (8, 3), (16, 1), (16, 2), (16, 3)
    ]  # fmt: skip
    assert [t["seed"] for t in tasks] == task_seeds(5, 6)
    assert len({t["seed"] for t in tasks}) == 6
    assert task_seeds(5, 6) != task_seeds(6, 6)


def test_serial_sweep_calls_back_in_order_and_restores_threads():
    seen = []
    before = torch.get_num_threads()
    out = sweep(
        measure, grid(seed=0, width=[4], depth=[1, 2]), on_result=lambda i, t, r: seen.append(i)
    )
    assert seen == [0, 1] and len(out) == 2
    assert torch.get_num_threads() == before


def test_dask_local_cluster_matches_serial_bitwise():
    pytest.importorskip("dask.distributed")
    tasks = grid(seed=1, width=[8, 16], depth=[2, 3])
    serial = sweep(measure, tasks)
    seen = []
    dask = sweep(
        measure, tasks, backend="dask", n_workers=2, on_result=lambda i, t, r: seen.append(i)
    )
    assert dask == serial  # bitwise: same floats
    assert sorted(seen) == [0, 1, 2, 3]


def test_errors():
    with pytest.raises(ValueError, match="backend must be one of 'serial', 'dask'"):
        sweep(measure, [], backend="ray")
    with pytest.raises(TypeError, match=r"tasks\[0\] must be a dict of keyword arguments"):
        sweep(measure, [3])
    with pytest.raises(ValueError, match="address must be given only with backend='dask'"):
        sweep(measure, [], address="tcp://localhost:8786")
    with pytest.raises(TypeError, match="width must be a sequence of values"):
        grid(width=8)
    with pytest.raises(ValueError, match="threads_per_task must be an integer >= 1"):
        sweep(measure, [], threads_per_task=0)


def failing(x: int) -> int:
    if x == 2:
        raise ValueError("x must not be 2")
    return x


def test_a_failing_task_keeps_its_type_and_names_the_task():
    with pytest.raises(ValueError, match="x must not be 2") as info:
        sweep(failing, [{"x": 1}, {"x": 2}])
    assert "in sweep task {'x': 2}" in "".join(info.value.__notes__)


def test_torch_threads_restores_the_count_and_refuses_bad_counts():
    import torch

    from dltheory.parallel import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n must be an integer >= 1"), torch_threads(bad):
            pass


def test_task_seeds_refuses_an_impossible_count_in_one_line():
    import pytest

    from dltheory.parallel import task_seeds

    with pytest.raises(ValueError, match="n must be small enough for the memory budget"):
        task_seeds(0, 10**12)
