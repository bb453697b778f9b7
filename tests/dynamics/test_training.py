"""train(): optimizers, trackers, divergence, JSON, errors; NTK drift vs width."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dltheory import MLP, TrainState, Trajectory, train
from dltheory.dynamics import mse_loss


def _data(n=6, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x, torch.sin(x[:, :1])


def test_gd_on_linear_model_matches_closed_form_loss():
    x, y = _data()
    net = nn.Linear(3, 1, bias=False).double()
    w0 = net.weight.detach().clone()
    traj = train(net, x, y, lr=0.2, steps=5, every=2)
    assert traj.steps.tolist() == [0, 2, 4, 5]
    # independent: iterate w <- w - lr * x^T (x w - y) / N by hand
    w, losses = w0.T.clone(), []
    for _ in range(6):
        r = x @ w - y
        losses.append(float(0.5 * (r**2).sum() / 6))
        w = w - 0.2 * x.T @ r / 6
    np.testing.assert_allclose(traj.values["loss"], np.array(losses)[[0, 2, 4, 5]], rtol=1e-12)


def test_sgd_and_adam_reduce_the_loss_and_are_seeded():
    x, y = _data(12)
    runs = []
    for opt, bs in (("sgd", 4), ("adam", None), ("sgd", 4)):
        net = MLP(1, "tanh").sample(32, in_dim=3, seed=0, dtype=torch.float64)
        runs.append(train(net, x, y, optimizer=opt, lr=0.05, steps=30, batch_size=bs, seed=1))
    for r in runs:
        assert r.values["loss"][-1] < r.values["loss"][0]
    assert np.array_equal(runs[0].values["loss"], runs[2].values["loss"])


def test_trackers_builtin_and_custom_and_json_roundtrip():
    x, y = _data()
    net = MLP(1, "relu", c_w=2.0).sample(64, in_dim=3, seed=0, dtype=torch.float64)

    class Norm:
        name = "out_norm"

        def __call__(self, state: TrainState):
            assert state.loss_fn is mse_loss and state.lr == 0.5
            return torch.linalg.norm(state.model(state.x))

    names = ("loss", "ntk_drift", "ntk_lambda_min", "ntk_lambda_max", "weight_movement")
    traj = train(net, x, y, lr=0.5, steps=4, track=(*names, "linearized_distance", Norm()))
    assert traj.values["ntk_drift"][0] == 0.0 and traj.values["weight_movement"][0] == 0.0
    assert np.all(traj.values["ntk_lambda_min"] <= traj.values["ntk_lambda_max"])
    assert traj.values["linearized_distance"][0] < 1e-12
    t2 = train(
        net, x, y, lr=0.5, steps=1, track={"first_w": lambda s: s.params()["0.weight"][0, 0]}
    )
    assert t2.values["first_w"].shape == (2,)
    back = Trajectory.from_json(traj.to_json())
    assert back.steps.tolist() == traj.steps.tolist() and not back.diverged
    np.testing.assert_array_equal(back.values["loss"], traj.values["loss"])
    fig = traj.plot()
    assert len(fig.axes) == 7


def test_divergence_is_reported_without_nan():
    x, y = _data()
    net = MLP(1, "relu", c_w=2.0).sample(16, in_dim=3, seed=0, dtype=torch.float64)
    traj = train(net, x, y, lr=1e4, steps=50, track=("loss", "weight_movement"))
    assert traj.diverged and traj.divergence.step >= 1
    assert "initial loss" in traj.divergence.reason or "non-finite" in traj.divergence.reason
    assert all(np.isfinite(v).all() for v in traj.values.values())
    assert '"diverged": true' in traj.to_json()


def test_progress_bar_runs():
    x, y = _data()
    net = nn.Linear(3, 1).double()
    assert train(net, x, y, lr=0.1, steps=3, progress=True).steps[-1] == 3


def _err(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_errors():
    x, y = _data()
    net = nn.Linear(3, 1).double()
    _err(lambda: train(net, x, y, lr=0.0, steps=1), ValueError, r"lr must be > 0\. Got 0\.0")
    _err(lambda: train(net, x, y, lr=-1.0, steps=1), ValueError, "lr must be > 0")
    _err(lambda: train(net, x[:, :2], y, lr=0.1, steps=1), ValueError, "x must be inputs the model")
    _err(lambda: train(net, x, y[:3], lr=0.1, steps=1), ValueError, "y must be targets with 6 rows")
    _err(
        lambda: train(net, torch.zeros(0, 3), y, lr=0.1, steps=1),
        ValueError,
        "x must be at least 1 sample",
    )
    _err(
        lambda: train(net, x, y, lr=0.1, steps=1, optimizer="lbfgs"),
        ValueError,
        "optimizer must be one of",
    )
    _err(
        lambda: train(net, x, y, lr=0.1, steps=1, optimizer="sgd"),
        ValueError,
        "batch_size must be given",
    )
    _err(
        lambda: train(net, x, y, lr=0.1, steps=1, batch_size=2),
        ValueError,
        "batch_size must be None",
    )
    _err(
        lambda: train(net, x, y, lr=0.1, steps=1, track=("bogus",)),
        ValueError,
        "track must be built-in",
    )
    _err(
        lambda: train(net, x, y, lr=0.1, steps=1, track=(print,)), TypeError, "track must be a name"
    )
    _err(lambda: train(net, x, y, lr=0.1, steps=1, loss="hinge"), ValueError, "loss must be one of")
    _err(lambda: train("net", x, y, lr=0.1, steps=1), TypeError, "model must be a torch.nn.Module")
    clf = nn.Linear(3, 2).double()
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    _err(
        lambda: train(
            clf, x, labels, loss="cross_entropy", lr=0.1, steps=1, track=("linearized_distance",)
        ),
        ValueError,
        "track must be free of 'linearized_distance' unless optimizer='gd' and loss='mse'",
    )
    assert train(clf, x, labels, loss="cross_entropy", lr=0.1, steps=2).values["loss"].shape == (3,)


def _drift_slope(parametrization: str, widths=(128, 512, 2048), n_seeds=3):
    x, y = _data(8, 3, seed=1)
    logs = []
    for n in widths:
        vals = []
        for s in np.random.SeedSequence(7).spawn(n_seeds):
            net = MLP(1, "tanh", parametrization=parametrization).sample(
                n, in_dim=3, seed=int(s.generate_state(1)[0]), dtype=torch.float64
            )
            tr = train(net, x, y, lr=1.0, steps=20, track=("ntk_drift",), every=20)
            vals.append(math.log(tr.values["ntk_drift"][-1]))
        logs.append(vals)
    logs = np.array(logs)  # (widths, seeds)
    lw = np.log(widths)
    slope = np.polyfit(lw, logs.mean(1), 1)[0]
    # SE of the slope from the seed-to-seed scatter of each width's mean log-drift
    se_pts = logs.std(1, ddof=1) / math.sqrt(n_seeds)
    se = math.sqrt(np.sum(se_pts**2 * (lw - lw.mean()) ** 2)) / np.sum((lw - lw.mean()) ** 2)
    return slope, se


def test_ntk_drift_shrinks_in_ntk_and_stays_order_one_in_mean_field_and_mup():
    # Lee et al. 2019 (Thm 2.1) bound the drift by O(n^-1/2); its leading term is O(1/n)
    # (Roberts, Yaida & Hanin 2022, ch. 11), so the fitted slope lies in [-1, -1/2]
    # up to 0.1 + 3 SE (measured about -0.5 here, about -0.9 over widths 128-4096).
    slope, se = _drift_slope("ntk")
    assert -1 - 0.1 - 3 * se < slope < -0.5 + 0.1 + 3 * se, (slope, se)
    for p in ("mean_field", "mup"):
        slope, se = _drift_slope(p)
        assert abs(slope) < 0.1 + 3 * se, (p, slope, se)
