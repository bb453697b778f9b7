"""The peers' Hessian problem (PEERS.md): load_digits, MLP 64-128-128-10 tanh, float64,
300 full-batch Adam steps at lr 1e-3 after torch.manual_seed(0), mean cross-entropy."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

REFERENCE_TOP5 = (2.2633114202, 1.7560908093, 1.5593287973, 0.9664987279, 0.8929246883)
REFERENCE_TRACE = 15.5348695403
REFERENCE_LOSS = 0.024951


def digits_problem(steps: int = 300):
    """(model, loss_fn, x, y) of the reference problem, trained."""
    torch.manual_seed(0)
    X, Y = load_digits(return_X_y=True)
    x = torch.tensor(X / 16.0, dtype=torch.float64)
    y = torch.tensor(Y, dtype=torch.long)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the peers drew the initial weights in float64
    try:
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 128),
            torch.nn.Tanh(),
            torch.nn.Linear(128, 128),
            torch.nn.Tanh(),
            torch.nn.Linear(128, 10),
        )
    finally:
        torch.set_default_dtype(before)
    loss_fn = torch.nn.functional.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return model, loss_fn, x, y
