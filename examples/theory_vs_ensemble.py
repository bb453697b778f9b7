"""Theory vs an ensemble of finite networks: the NNGP kernel in standard errors.

``ensemble`` samples many independent networks at once (one batched matmul per
layer); their output covariance estimates the NNGP kernel K^(L+1) (Neal 1996;
Lee et al. 2018) up to Monte-Carlo noise and an O(1/width) bias. With 1000
networks the Monte-Carlo error (a few per cent) hides the 1/width bias at both
widths here, so the claim checked is agreement within standard errors, not a
trend in width.
"""

import torch

from dltheory import MLP, Estimate, ensemble

x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
spec = MLP(depth=4, activation="gelu", c_w=1.5, c_b=0.1)
k = spec.kernel(x).nngp
worst = []
for width in (32, 256):
    nets = ensemble(spec, width=width, n_networks=1000, seed=width, in_dim=6)
    f = nets.forward(x.float()).double()[..., 0]
    cov = Estimate.from_samples(f[:, :, None] * f[:, None, :])
    z = cov.zscore(k).abs().max().item()
    rel = ((cov.mean - k) / k).abs().max().item()
    noise = (cov.stderr / k.abs()).max().item()
    worst.append(z)
    print(
        f"width {width:4d}: max |z| = {z:.2f}, max relative deviation = {rel:.3f} "
        f"(one standard error: {noise:.3f})"
    )
print(
    "Theory and ensemble agree within Monte-Carlo error at both widths (max |z| below 4); "
    "with 1000 networks that error hides any O(1/width) bias."
)
# 6 distinct entries x 2 widths: |z| > 4 by chance has probability about 12 x 6e-5 < 1e-3.
assert max(worst) < 4.0, worst
