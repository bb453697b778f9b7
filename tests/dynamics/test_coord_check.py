"""coord_check and the parametrisation table: muP flat, standard growing; spec errors."""

from __future__ import annotations

import pytest
import torch

from dltheory import MLP, Dense
from dltheory.dynamics import coord_check
from dltheory.spec.parametrization import layer_scaling


def test_mup_flat_standard_grows():
    widths = [64, 256, 1024]
    mup = coord_check(MLP(2, "relu", c_w=2.0, parametrization="mup"), widths, 2, lr=0.05, n_seeds=2)
    std = coord_check(
        MLP(2, "relu", c_w=2.0, parametrization="standard"), widths, 2, lr=0.05, n_seeds=2
    )
    # muP: per-coordinate change of every layer is Theta(1) in width (Yang & Hu 2021,
    # Thm 3.8); slope 0 up to O(1/sqrt(n)) fluctuations, measured ~0.05 or less.
    assert all(abs(s) < 0.2 for s in mup.slopes())
    # standard at a fixed lr: the hidden layers' change grows at least like sqrt(width)
    assert max(std.slopes()) > 0.5
    assert mup.plot("muP") is not None


def test_table_rows():
    # Yang & Hu 2021 Table 3 / Yang et al. 2022 Table 3 (SGD): output init 1/fan_in^2,
    # output lr eta / fan_in, input and bias lr eta * fan_out, hidden init 1/fan_in.
    assert layer_scaling("mup", "readout", 100, 1, 1.0, 0.0, None, None) == (1e-4, 0.0, 0.01, 1.0)
    assert layer_scaling("mup", "input", 5, 100, 1.0, 0.0, None, None) == (0.2, 0.0, 100.0, 100.0)
    assert layer_scaling("mup", "hidden", 100, 100, 2.0, 0.0, None, None) == (0.02, 0.0, 1.0, 100.0)
    assert layer_scaling("ntk", "hidden", 100, 100, 2.0, 0.1, None, None) == (0.02, 0.1, 0.02, 0.1)
    assert layer_scaling("mean_field", "readout", 100, 1, 1.0, 0.0, None, None)[0] == 1e-4


def test_finite_init_variances_follow_the_table():
    net = MLP(1, "relu", c_w=1.0, parametrization="mup").sample(
        4000, in_dim=3, seed=0, dtype=torch.float64
    )
    w_out = net[2].weight.detach() * net[2].w_mult
    # Var W_out = 1 / n^2: the sample variance of 4000 entries has relative SE sqrt(2/4000)
    assert abs(float(w_out.var()) * 4000**2 - 1) < 5 * (2 / 4000) ** 0.5


def test_kernel_refuses_mean_field_and_mup():
    x = torch.eye(2, dtype=torch.float64)
    for p in ("mean_field", "mup"):
        with pytest.raises(ValueError, match="parametrization must be 'ntk' or 'standard' for an"):
            MLP(1, parametrization=p).kernel(x)
    assert Dense(parametrization="mup").parametrization == "mup"


def test_coord_check_errors():
    with pytest.raises(TypeError, match="spec_or_factory must be a Serial spec"):
        coord_check(3, [8, 16])
    with pytest.raises(ValueError, match="widths must be non-empty"):
        coord_check(MLP(1), [])
    with pytest.raises(ValueError, match="lr must be > 0"):
        coord_check(MLP(1), [8], lr=0.0)


def test_ensemble_refuses_mean_field_and_mup():
    from dltheory.finite import ensemble

    with pytest.raises(ValueError, match="spec must be in 'ntk' or 'standard' parametrisation"):
        ensemble(MLP(1, parametrization="mup"), width=8, n_networks=2, in_dim=2)


def test_slopes_and_sizes_are_checked():
    cc = coord_check(MLP(2, "relu", c_w=2.0, parametrization="mup"), [16, 32], 1, n_seeds=1)
    assert cc.slopes(step=1).shape == cc.slopes(step=-1).shape == (len(cc.layers),)
    with pytest.raises(ValueError, match="which must be one of 'size', 'change'"):
        cc.slopes(which="bogus")
    with pytest.raises(ValueError, match=r"step must be a recorded step index in \[-2, 1\]"):
        cc.slopes(step=2)
    with pytest.raises(TypeError, match="step must be an integer"):
        cc.slopes(step=1.5)
    spec = MLP(2, "relu")
    for kwargs, name in (({"steps": 10**12}, "steps"), ({"n_seeds": 10**12}, "n_seeds")):
        with pytest.raises(ValueError, match=f"{name} must be small enough for the memory"):
            coord_check(spec, [16], **kwargs)
    with pytest.raises(ValueError, match="widths must be small enough for the memory budget"):
        coord_check(spec, [10**9], 1)
