"""neural-tangents' ``GlobalSelfAttention`` kernels on small random cases (test data).

Runs in the peer venv (neural-tangents 0.6.5, jax 0.4.23, float64):

    /work/peers/nt/bin/python benchmarks/peer_nt_attention_cases.py \
        tests/kernels/data/attention_nt.npz

(or ``benchmarks/_peer/venv/bin/python``, see README.md); ``time N C T REPEATS`` times
the problem of ``benchmarks/attention_kernels.py`` instead. Each case is a 1-D stack:
``stax.Conv`` (window 1-3, 'SAME'), optionally ``Relu`` / ``Erf``, one or two
``GlobalSelfAttention(linear_scaling=True)`` with random standard deviations, bias and
mechanism (SOFTMAX / IDENTITY / RELU / ABS), then ``GlobalAvgPool`` or ``Flatten`` and
a ``Dense`` readout, NTK parametrisation; and 4 compositions: residual attention blocks
(``FanOut`` / ``FanInSum``) and ``LayerNorm`` over each position's channels after it.
Inputs are drawn here and saved (N, C, T) (torch's Conv1d layout; neural-tangents
reads them channels-last). Saved: ``cases``
(JSON layer lists that ``tests/kernels/test_attention.py`` rebuilds as specs) and,
per case, ``x1_i``, ``x2_i`` (empty: the symmetric kernel), ``nngp_i``, ``ntk_i``.
"""

from __future__ import annotations

import json
import math
import sys
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

MECHANISMS = ["softmax", "identity", "relu", "abs"]


def random_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for index in range(12):
        shape = [int(rng.integers(2, 4)), int(rng.integers(1, 4)), int(rng.integers(3, 7))]
        layers: list[list] = []
        n_att = 1 + index % 2
        for j in range(n_att):
            k = int(rng.integers(1, 4))
            c_w = float(rng.uniform(0.5, 2.0))
            c_b = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.01, 0.3))
            layers.append(["conv", int(rng.integers(2, 9)), [k], c_w, c_b])
            act = ["relu", "erf", None][(index + j) % 3]
            if act:
                layers.append([act])
            stds = [float(rng.uniform(0.5, 1.5)) for _ in range(4)]  # key, query, value, out
            b_std = 0.0 if rng.random() < 0.4 else float(rng.uniform(0.1, 0.6))
            layers.append(["attention", MECHANISMS[(index + j) % 4], *stds, b_std])
        layers.append(["gap"] if index % 3 != 2 else ["flatten"])
        layers.append(["dense", float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.0, 0.2))])
        cases.append({"layers": layers, "shape": shape, "cross": index % 3 == 1})
    # Compositions: a residual attention block (FanOut, Identity / attention, FanInSum)
    # and LayerNorm over the channels of each position after attention.
    for index in range(4):
        shape = [3, 2, int(rng.integers(3, 6))]
        stds = [float(rng.uniform(0.5, 1.5)) for _ in range(4)]
        att = ["attention", MECHANISMS[index], *stds, 0.2 * index]
        conv = ["conv", 8, [int(rng.integers(1, 4))], float(rng.uniform(0.5, 2.0)), 0.1]
        if index % 2 == 0:
            body = [conv, ["residual", [att]], ["relu"], conv, ["residual", [["relu"], att]]]
        else:
            body = [conv, att, ["layernorm", 1e-12], ["relu"], conv, ["erf"], att]
            body += [["layernorm", 0.1]]
        head = ["gap"] if index < 2 else ["flatten"]
        layers = [*body, head, ["dense", 1.3, 0.05]]
        cases.append({"layers": layers, "shape": shape, "cross": index == 1})
    return cases


def stax_layers(case: dict):
    out = []
    for layer in case["layers"]:
        kind = layer[0]
        if kind == "conv":
            _, ch, k, c_w, c_b = layer
            out.append(
                stax.Conv(
                    ch,
                    tuple(k),
                    padding="SAME",
                    W_std=math.sqrt(c_w),
                    b_std=math.sqrt(c_b) if c_b > 0 else None,
                )
            )
        elif kind == "relu":
            out.append(stax.Relu())
        elif kind == "erf":
            out.append(stax.Erf())
        elif kind == "attention":
            _, mech, w_k, w_q, w_v, w_o, b_std = layer
            out.append(
                stax.GlobalSelfAttention(
                    n_chan_out=8,
                    n_chan_key=8,
                    n_chan_val=8,
                    n_heads=2,
                    linear_scaling=True,
                    W_key_std=w_k,
                    W_query_std=w_q,
                    W_value_std=w_v,
                    W_out_std=w_o,
                    b_std=b_std if b_std > 0 else None,
                    attention_mechanism=mech.upper(),
                )
            )
        elif kind == "residual":
            branch = stax.serial(*stax_layers({"layers": layer[1]}))
            out.append(stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch)))
            out.append(stax.FanInSum())
        elif kind == "layernorm":
            out.append(stax.LayerNorm(axis=-1, eps=layer[1]))
        elif kind == "gap":
            out.append(stax.GlobalAvgPool())
        elif kind == "flatten":
            out.append(stax.Flatten())
        elif kind == "dense":
            _, c_w, c_b = layer
            out.append(stax.Dense(1, W_std=math.sqrt(c_w), b_std=math.sqrt(c_b) or None))
    return out


def main(path: str) -> None:
    """Draw the cases, their inputs and neural-tangents' kernels; save one npz."""
    warnings.filterwarnings("ignore", message="Linear scaling attention")
    rng = np.random.default_rng(2006)
    cases = random_cases(rng)
    arrays: dict[str, np.ndarray] = {}
    for i, case in enumerate(cases):
        _, _, kernel_fn = stax.serial(*stax_layers(case))
        x1 = rng.standard_normal(case["shape"])
        x2 = rng.standard_normal([3, *case["shape"][1:]]) if case["cross"] else None
        to_nt = lambda x: np.moveaxis(x, 1, -1)  # noqa: E731  NCT -> NTC
        out = kernel_fn(to_nt(x1), None if x2 is None else to_nt(x2), ("nngp", "ntk"))
        arrays[f"x1_{i}"] = x1
        arrays[f"x2_{i}"] = np.zeros((0,)) if x2 is None else x2
        arrays[f"nngp_{i}"] = np.asarray(out.nngp)
        arrays[f"ntk_{i}"] = np.asarray(out.ntk)
    np.savez_compressed(path, cases=np.array(json.dumps(cases)), **arrays)
    print(f"saved {len(cases)} cases to {path}")


def time_problem(n: int, c: int, t: int, repeats: int) -> None:
    """``time N C T REPEATS``: the benchmark problem of benchmarks/attention_kernels.py."""
    import time

    warnings.filterwarnings("ignore", message="Linear scaling attention")
    x = np.random.default_rng(0).standard_normal((n, c, t))
    _, _, kernel_fn = stax.serial(*stax_layers({"layers": BENCH_LAYERS}))
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    xt = np.moveaxis(x, 1, -1)
    out = kernel_fn(xt, None, ("nngp", "ntk"))
    jax.block_until_ready(out)
    walls, cpus = [], []
    for _ in range(repeats):
        w, p = time.perf_counter(), time.process_time()
        jax.block_until_ready(kernel_fn(xt, None, ("nngp", "ntk")))
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - p)
    print(json.dumps({"wall": sorted(walls), "cpu": sorted(cpus), "nngp00": float(out.nngp[0, 0])}))


# Conv(1), ReLU, attention (softmax), ReLU, Conv(1), GlobalAvgPool, Dense(1).
BENCH_LAYERS = [
    ["conv", 8, [1], 2.0, 0.1],
    ["relu"],
    ["attention", "softmax", 1.0, 1.0, 1.0, 1.0, 0.1],
    ["relu"],
    ["conv", 8, [1], 2.0, 0.1],
    ["gap"],
    ["dense", 1.0, 0.0],
]


if __name__ == "__main__":
    if sys.argv[1] == "time":
        time_problem(*(int(a) for a in sys.argv[2:6]))
    else:
        main(sys.argv[1])
