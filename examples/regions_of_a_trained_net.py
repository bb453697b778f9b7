"""Linear regions of a ReLU network before and after training, counted exactly.

``count_pieces_1d`` finds every breakpoint of a ReLU network on a segment
(exact, not sampled). At initialisation the expected number of pieces is about
the number of neurons times a constant (Hanin & Rolnick 2019, Kac-Rice formula
in ``density_prediction``). Training does not make the count explode: Hanin &
Rolnick (2019, "Complexity of linear regions in deep networks", Sec. 5) observe
that it stays of the order of its value at initialisation; fitting sin(3x)
here moves it by well under a factor of two (up or down, depending on the run).
"""

import math

import torch

from dltheory import MLP
from dltheory.regions import count_pieces_1d, density_prediction

torch.manual_seed(0)
spec = MLP(depth=2, activation="relu", c_w=2.0, c_b=0.1)
net = spec.sample(width=32, in_dim=1, seed=0, dtype=torch.float64)
before = count_pieces_1d(net, -3.0, 3.0).n_pieces
predicted = density_prediction([32, 32], 1, c_w=2.0, c_b=0.1, offset=0.0, length=6.0)
expected = predicted.expected_pieces

x = torch.linspace(-3, 3, 128, dtype=torch.float64)[:, None]
y = torch.sin(3 * x)
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
loss0 = 0.5 * (net(x) - y).square().mean().item()
for _ in range(150):
    opt.zero_grad()
    loss = 0.5 * (net(x) - y).square().mean()
    loss.backward()
    opt.step()
after = count_pieces_1d(net, -3.0, 3.0).n_pieces
print(
    f"pieces on [-3, 3]: {before} at init (Kac-Rice expects about {expected:.1f}), "
    f"{after} after training (loss {loss0:.3g} -> {loss.item():.3g}): the count stays "
    f"of the order of its initial value (ratio {after / before:.2f})"
)
# One network's count scatters around the expectation by a few sqrt(expected) (a
# Poisson-like scale; the breakpoints of different neurons are nearly independent).
assert abs(before - expected) < 4 * math.sqrt(expected)
assert 0.5 < after / before < 2.0 and loss.item() < loss0
