"""Linear regions of a ReLU network before and after training, counted exactly.

``count_pieces_1d`` finds every breakpoint of a ReLU network on a segment
(exact, not sampled). At initialisation the number of pieces per unit length
is about the number of neurons times a constant (Hanin & Rolnick 2019);
training to fit a wiggly target typically adds pieces where it needs them.
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

x = torch.linspace(-3, 3, 128, dtype=torch.float64)[:, None]
y = torch.sin(3 * x)
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
for _ in range(150):
    opt.zero_grad()
    loss = 0.5 * (net(x) - y).square().mean()
    loss.backward()
    opt.step()
after = count_pieces_1d(net, -3.0, 3.0).n_pieces
print(
    f"pieces on [-3, 3]: {before} at init (Kac-Rice expects about "
    f"{predicted.expected_pieces:.1f}), {after} after training (loss {loss.item():.3g})"
)
assert after >= 1 and math.isfinite(loss.item())
