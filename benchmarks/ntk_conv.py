"""Empirical NTK of conv nets: dltheory.empirical_ntk vs the torch.func Jacobian contraction.

The model is the test zoo's conv net (Conv2d + BatchNorm2d + ReLU + average pooling +
Linear on (N, 1, 8, 8) images), 16 channels and 10 outputs (P = 2,762), float32, and
the zoo's GroupNorm conv net likewise widened. For N = 64 and 256 it compares

* BatchNorm in eval mode (per-example map): ``empirical_ntk(output="full")`` with the
  torch.func tutorial's contraction ``vmap(jacrev(f(x_a)))`` on all N inputs then
  ``einsum("Naf,Mbf->NMab")``; and ``output="trace"`` with the same Jacobians
  contracted to the trace;
* BatchNorm in train mode (batched map): ``empirical_ntk`` with ``jacrev`` of the
  batched map f(X) (the (N k, P) Jacobian at once), contracted.

In eval mode ``empirical_ntk`` takes its layerwise structured path (conv and Linear
layers from back-propagated signals and unfolded inputs, BatchNorm / GroupNorm affines
from signals and normalised inputs: :mod:`dltheory.finite.ntk_layerwise`); in train
mode (batch statistics) the blocked Jacobian contraction.

Target: empirical_ntk never slower than the torch.func contraction. Each measurement
runs in a fresh subprocess (one torch thread): the median of 3 timed calls (wall and
CPU) after one warm call, and the peak resident-memory growth of that call over the
process after a warm-up on 2 inputs.

Usage: python benchmarks/ntk_conv.py [--quick]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dltheory import empirical_ntk
from results_file import run_and_record


def conv_bn(channels: int = 16, out: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * 16, out),
    )


def groupnorm_conv(channels: int = 16, out: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, channels, 3),
        nn.GroupNorm(4, channels),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(channels * 36, out),
    )


MODELS = {"conv_bn": conv_bn, "groupnorm_conv": groupnorm_conv}


def torch_func_ntk(model: nn.Module, x: torch.Tensor, output: str, batched: bool):
    """The torch.func tutorial's Jacobian contraction (all N inputs at once)."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    if batched:  # the batched map (BatchNorm with batch statistics, running stats unused)
        buffers = {k: None for k in buffers}
        jac = jacrev(lambda p: functional_call(model, (p, buffers), (x,)))(params)
        j = torch.cat([t.flatten(2) for t in jac.values()], 2)
    else:

        def f(p, xi):
            return functional_call(model, (p, buffers), (xi[None],))[0]

        jac = vmap(jacrev(f), (None, 0))(params, x)
        j = torch.cat([t.flatten(2) for t in jac.values()], 2)
    if output == "full":
        return torch.einsum("Naf,Mbf->NMab", j, j)
    return torch.einsum("Naf,Maf->NM", j, j) / j.shape[1]


def child(job: dict) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MODELS[job["model"]]()
    model.train(job["mode"] == "train")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(job["n"], 1, 8, 8, generator=g)
    batched = job["model"] == "conv_bn" and job["mode"] == "train"
    if job["impl"] == "dltheory":

        def run(xx):
            return empirical_ntk(model, xx, output=job["output"])
    else:

        def run(xx):
            return torch_func_ntk(model, xx, job["output"], batched)

    run(x[:2])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = run(x)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    walls, cpus = [], []
    for _ in range(job["repeats"]):
        c0, t0 = time.process_time(), time.perf_counter()
        run(x)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "wall": float(np.median(walls)),
        "cpu": float(np.median(cpus)),
        "rss_mb": (rss1 - rss0) / 1024,
        "checksum": float(out.double().abs().sum()),
        "params": sum(p.numel() for p in model.parameters()),
    }


def measure(job: dict) -> dict | None:
    res = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:  # e.g. SIGKILL from the out-of-memory killer
        print(f"<!-- {job}: exit {res.returncode} {res.stderr[-300:]!r} -->", file=sys.stderr)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def _cell(r: dict | None, key: str, fmt: str) -> str:
    return "—" if r is None else format(r[key], fmt)


def main(quick: bool) -> None:
    ns = (16,) if quick else (64, 256)
    repeats = 1 if quick else 3
    cases = [
        ("conv_bn", "eval", "full"),
        ("conv_bn", "eval", "trace"),
        ("conv_bn", "train", "full"),
        ("groupnorm_conv", "eval", "full"),
        ("groupnorm_conv", "eval", "trace"),
    ]
    print("## Empirical NTK on conv nets (benchmarks/ntk_conv.py)\n")
    print(
        f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, CPU, one torch thread per "
        "process; a 2-core machine shared with other jobs (wall times noisy: CPU times "
        "beside them). Float32, (N, 1, 8, 8) inputs, 10 outputs; memory = peak RSS growth "
        "of one call. Target: ratio (torch.func / dltheory) >= 1.\n"
    )
    print(
        "| model | mode | output | N | P | dltheory wall / CPU (s) | torch.func wall / CPU (s)"
        " | ratio (CPU) | dltheory MB | torch.func MB | same result |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model, mode, output in cases:
        for n in ns:
            job = {"model": model, "mode": mode, "output": output, "n": n, "repeats": repeats}
            batched_big = mode == "train" and n > 64
            if batched_big:  # O(N^2) work in the batched map: one timed call
                job["repeats"] = 1
            ours = measure({**job, "impl": "dltheory"})
            # torch.func's jacrev of the batched map vmaps N k cotangents through the whole
            # batch's activations at once: at N = 256 it was killed by the out-of-memory
            # killer (SIGKILL) on this 2-core machine; it is not rerun there
            ref = None if batched_big else measure({**job, "impl": "torch.func"})
            same = (
                ours is not None
                and ref is not None
                and abs(ours["checksum"] - ref["checksum"]) <= 1e-4 * abs(ref["checksum"])
            )
            ratio = "—" if ours is None or ref is None else f"{ref['cpu'] / ours['cpu']:.2f}"
            params = ours["params"] if ours else (ref["params"] if ref else "?")
            ref_time = (
                "killed (out of memory)"
                if batched_big
                else f"{_cell(ref, 'wall', '.3f')} / {_cell(ref, 'cpu', '.3f')}"
            )
            print(
                f"| {model} | {mode} | {output} | {n} | {params} | "
                f"{_cell(ours, 'wall', '.3f')} / {_cell(ours, 'cpu', '.3f')} | {ref_time} | "
                f"{ratio} | {_cell(ours, 'rss_mb', '.0f')} | {_cell(ref, 'rss_mb', '.0f')} | "
                f"{'yes' if same else '—'} |",
                flush=True,
            )
            print(f"done {model} {mode} {output} {n}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        quick = "--quick" in sys.argv
        run_and_record("ntk_conv", lambda: main(quick), quick)
