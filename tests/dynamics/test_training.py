"""train(): optimizers, trackers, divergence, JSON, errors; NTK drift vs width."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from tests.conftest import ZOO, ConvBN
from torch import nn

from dltheory import MLP, TrainState, Trajectory, train
from dltheory.dynamics import mse_loss
from dltheory.dynamics.trackers import Tracker


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


def _dense_ntk(model: nn.Module, params: dict, x: torch.Tensor) -> torch.Tensor:
    """(N k, N k) NTK of a copy of ``model`` holding ``params``, one autograd row per output."""
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(params[name])
    ps = list(ref.parameters())
    out = ref(x).reshape(len(x), -1)
    rows = [
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(o, ps, retain_graph=True)])
        for o in out.reshape(-1)
    ]
    j = torch.stack(rows)
    return j @ j.T


def test_trackers_after_step_zero_match_independent_calculations():
    x, y = _data()
    net = MLP(1, "tanh", c_w=1.5).sample(32, in_dim=3, seed=0, dtype=torch.float64)
    model0 = copy.deepcopy(net)
    snaps = []
    keep = Tracker(
        "snap", lambda s: snaps.append({k: v.clone() for k, v in s.params().items()}) or 0
    )
    names = ("ntk_drift", "ntk_lambda_min", "ntk_lambda_max", "weight_movement")
    lr, steps = 1.0, 8
    traj = train(
        net, x, y, lr=lr, steps=steps, every=3, track=(*names, "linearized_distance", keep)
    )
    assert traj.steps.tolist() == [0, 3, 6, 8] and len(snaps) == 4
    theta0 = _dense_ntk(model0, snaps[0], x)
    # the linearised network by explicit GD iterations on its outputs (not the closed form)
    with torch.no_grad():
        f_lin = model0(x).reshape(-1).clone()
    lin, t = {0: f_lin.clone()}, 0
    for step in traj.steps[1:]:
        while t < step:
            f_lin = f_lin - (lr / len(x)) * theta0 @ (f_lin - y.reshape(-1))
            t += 1
        lin[int(step)] = f_lin.clone()
    for i, step in enumerate(traj.steps):
        theta = _dense_ntk(model0, snaps[i], x)
        lam = torch.linalg.eigvalsh(theta)
        # Lanczos certifies |theta - lambda| <= tol |theta| with tol = 1e-8 (float64)
        assert traj["ntk_lambda_max"][i] == pytest.approx(float(lam[-1]), rel=1e-7)
        assert traj["ntk_lambda_min"][i] == pytest.approx(float(lam[0]), rel=1e-6)
        drift = float(torch.linalg.norm(theta - theta0) / torch.linalg.norm(theta0))
        assert traj["ntk_drift"][i] == pytest.approx(drift, rel=1e-9, abs=1e-14)
        moves = [
            float(torch.linalg.norm(snaps[i][k] - w0) / torch.linalg.norm(w0))
            for k, w0 in snaps[0].items()
            if w0.ndim == 2
        ]
        assert traj["weight_movement"][i] == pytest.approx(max(moves), rel=1e-12, abs=1e-15)
        ref = copy.deepcopy(model0)
        with torch.no_grad():
            for k, p in ref.named_parameters():
                p.copy_(snaps[i][k])
            dist = float(torch.sqrt(torch.mean((ref(x).reshape(-1) - lin[int(step)]) ** 2)))
        assert traj["linearized_distance"][i] == pytest.approx(dist, rel=1e-6, abs=1e-12)
    # the values move after step 0, so the comparisons above can fail
    assert traj["weight_movement"][-1] > 1e-3 and traj["ntk_drift"][-1] > 1e-4
    assert traj["linearized_distance"][-1] > 1e-8


def test_trackers_leave_batch_norm_training_exactly_as_a_plain_loop():
    torch.manual_seed(0)
    net = ConvBN().double()
    plain = copy.deepcopy(net)
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    y = torch.randn(6, 3, dtype=torch.float64)
    track = ("loss", "ntk_lambda_max", "ntk_drift", "weight_movement", "linearized_distance")
    traj = train(net, x, y, lr=0.05, steps=3, track=track)
    opt = torch.optim.SGD(plain.parameters(), lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        mse_loss(plain(x), y).backward()
        opt.step()
    want, got = plain.state_dict(), net.state_dict()  # parameters, running stats, counter
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
    assert int(net[1].num_batches_tracked) == 3
    assert np.all(np.isfinite(traj["ntk_lambda_max"]))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_train_and_trackers_run_on_the_zoo(name):
    builder, sample, k = ZOO[name]
    torch.manual_seed(0)
    net = builder().double()
    g = torch.Generator().manual_seed(0)
    x = sample(5, g)
    y = torch.randn(5, k, generator=g, dtype=torch.float64)
    if name == "dropout_mlp":  # trains with dropout; measuring trackers refuse it
        assert train(net, x, y, lr=0.01, steps=2).values["loss"].shape == (3,)
        with pytest.raises(ValueError, match="Dropout at '2' in train mode"):
            train(net, x, y, lr=0.01, steps=2, track=("ntk_lambda_max",))
        net.eval()
    traj = train(net, x, y, lr=0.01, steps=2, track=("loss", "ntk_lambda_max", "weight_movement"))
    assert np.all(np.isfinite(traj["ntk_lambda_max"])) and traj["weight_movement"][-1] > 0
    labels = torch.tensor([0, 1, 0, 1, 1])
    ce = train(
        net, x, labels, loss="cross_entropy", lr=0.01, steps=1, optimizer="sgd", batch_size=2
    )
    assert np.all(np.isfinite(ce["loss"]))


def test_mse_loss_and_trajectory_json_refuse_bad_input():
    out = torch.ones(4, 2, dtype=torch.float64)
    assert float(mse_loss(out, torch.zeros(4, 2, dtype=torch.float64))) == 1.0  # 8 / (2 * 4)
    with pytest.raises(ValueError, match=r"target must be the shape of output \(4, 2\)"):
        mse_loss(out, torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="output must be a floating-point tensor"):
        mse_loss(out.bool(), out)
    with pytest.raises(TypeError, match=r"target must be a torch\.Tensor"):
        mse_loss(out, np.zeros((4, 2)))
    for text, exc in ((None, TypeError), ("bogus", ValueError), ("[1, 2]", ValueError)):
        with pytest.raises(exc, match=r"text must be a JSON string from Trajectory\.to_json"):
            Trajectory.from_json(text)
    net = nn.Linear(3, 1)
    x, y = _data()
    with pytest.raises(ValueError, match="steps must be small enough for the memory budget"):
        train(net, x, y, lr=0.1, steps=10**12)
