import sys, torch, time
torch.set_num_threads(1)
from _resnet18_problem import problem, baseline_gradient, peak_rss_bytes
from dltheory.curvature import HessianOperator
m, x, y = problem("resnet18", 4)
P = sum(p.numel() for p in m.parameters())
base = baseline_gradient(m, x, y)
H = HessianOperator(m, torch.nn.functional.cross_entropy, (x, y), method=sys.argv[1])
v = torch.randn(P)
H @ v; H @ v
print(sys.argv[1], "extra P floats", (peak_rss_bytes() - base) / (4 * P), flush=True)
