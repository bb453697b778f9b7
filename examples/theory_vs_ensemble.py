"""Theory vs an ensemble of finite networks: the NNGP kernel in standard errors.

``ensemble`` samples many independent networks at once (one batched matmul per
layer); their output covariance estimates the NNGP kernel K^(L+1) (Neal 1996;
Lee et al. 2018) up to Monte-Carlo noise and an O(1/width) bias.
"""

import torch

from dltheory import MLP, Estimate, ensemble

x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
spec = MLP(depth=4, activation="gelu", c_w=1.5, c_b=0.1)
k = spec.kernel(x).nngp
for width in (32, 256):
    nets = ensemble(spec, width=width, n_networks=1000, seed=width, in_dim=6)
    f = nets.forward(x.float()).double()[..., 0]
    cov = Estimate.from_samples(f[:, :, None] * f[:, None, :])
    z = cov.zscore(k).abs().max().item()
    rel = ((cov.mean - k) / k).abs().max().item()
    print(f"width {width:4d}: max |z| = {z:.2f}, max relative deviation = {rel:.3f}")
print("Expect max |z| of a few at most; the relative deviation shrinks like 1/width.")
