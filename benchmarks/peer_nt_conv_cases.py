"""neural-tangents' CNN-GP / CNTK on small random cases: the test data of tests/kernels.

Runs in the peer venv (neural-tangents 0.6.5, jax 0.4.23, float64):

    /work/peers/nt/bin/python benchmarks/peer_nt_conv_cases.py tests/kernels/data/conv_nt.npz

(or ``benchmarks/_peer/venv/bin/python``, see README.md). Each case is a random stack
of ``stax.Conv`` (strides, 'SAME' / 'VALID', 1-D and 2-D, with and without bias),
``Relu`` / ``Erf``, ``AvgPool``, ``GlobalAvgPool``, ``Flatten`` and a ``Dense``
readout in NTK parametrisation; inputs are drawn here, saved NCHW / NCL (torch's
layout; neural-tangents reads them channels-last). Saved: ``cases`` (JSON: the layer
lists that ``tests/kernels/test_conv_nt.py`` rebuilds as dltheory specs), and per case
``x1_i``, ``x2_i`` (may be empty: the symmetric kernel), ``nngp_i``, ``ntk_i``.
neural-tangents' Conv has no dilation and no integer padding: those options are
checked against the NumPy recursion of the tests instead.

With ``--layernorm`` it writes the LayerNorm cases instead (tests/kernels/data/conv_ln_nt.npz,
read by ``tests/kernels/test_conv_layernorm.py``): conv stacks with ``stax.LayerNorm``
after each conv, over the channels of each pixel (``axis=-1``, NHWC) or over channels
and pixels (``axis=(1, 2, 3)``), with eps 1e-12 or 0.1:

    /work/peers/nt/bin/python benchmarks/peer_nt_conv_cases.py --layernorm \
        tests/kernels/data/conv_ln_nt.npz
"""

from __future__ import annotations

import json
import math
import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402


def random_cases(rng: np.random.Generator) -> list[dict]:
    """Cases covering every option neural-tangents shares with dltheory."""
    cases = []
    heads = ["gap", "flatten", "avgpool+gap", "avgpool+flatten"]
    for index in range(16):
        dim = 2 if index % 4 != 3 else 1
        spatial = [int(rng.integers(4, 8)) for _ in range(dim)]
        shape = [int(rng.integers(2, 4)), int(rng.integers(1, 4)), *spatial]
        layers: list[list] = []
        n_conv = int(rng.integers(1, 4))
        act = "erf" if index % 5 == 4 else "relu"
        for _ in range(n_conv):
            k = [int(rng.integers(1, 4)) for _ in range(dim)]
            s = [int(rng.integers(1, 3)) for _ in range(dim)]
            padding = "SAME" if rng.random() < 0.6 else "VALID"
            if padding == "VALID":
                k = [min(a, b) for a, b in zip(k, spatial, strict=True)]
                spatial = [(a - b) // c + 1 for a, b, c in zip(spatial, k, s, strict=True)]
            else:
                spatial = [-(-a // c) for a, c in zip(spatial, s, strict=True)]
            c_w = float(rng.uniform(0.5, 2.5))
            c_b = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.01, 0.3))
            layers.append(["conv", int(rng.integers(2, 9)), k, s, padding, c_w, c_b])
            layers.append([act])
        head = heads[index % 4]
        if head.startswith("avgpool"):
            w = [min(int(rng.integers(1, 3)), a) for a in spatial]
            s = [int(rng.integers(1, 3)) for _ in range(dim)]
            padding = "SAME" if rng.random() < 0.5 else "VALID"
            layers.append(["avgpool", w, s, padding])
            layers.append(["gap"] if head.endswith("gap") else ["flatten"])
        else:
            layers.append([head])
        layers.append(["dense", float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.0, 0.2))])
        cases.append({"dim": dim, "layers": layers, "shape": shape, "cross": index % 3 == 1})
    return cases


def layernorm_cases(rng: np.random.Generator) -> list[dict]:
    """Conv, LayerNorm, ReLU blocks (LayerNorm reads the conv's Gaussian output, as
    neural-tangents requires), then a head and a Dense readout."""
    cases = []
    heads = ["gap", "flatten", "avgpool+gap", "flatten"]
    for index in range(8):
        dim = 2 if index % 4 != 3 else 1
        spatial = [int(rng.integers(3, 6)) for _ in range(dim)]
        shape = [int(rng.integers(2, 4)), int(rng.integers(1, 4)), *spatial]
        over = "channels" if index % 2 == 0 else "all"
        eps = 1e-12 if index % 3 != 2 else 0.1
        layers: list[list] = []
        for _ in range(int(rng.integers(1, 3))):
            k = [int(rng.integers(1, 4)) for _ in range(dim)]
            c_w = float(rng.uniform(0.5, 2.5))
            c_b = float(rng.uniform(0.01, 0.3))
            layers.append(["conv", int(rng.integers(2, 9)), k, [1] * dim, "SAME", c_w, c_b])
            layers.append(["layernorm", over, eps])
            layers.append(["relu"])
        head = heads[index % 4]
        if head.startswith("avgpool"):
            layers.append(["avgpool", [2] * dim, [1] * dim, "SAME"])
            layers.append(["gap"])
        else:
            layers.append([head])
        layers.append(["dense", float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.0, 0.2))])
        cases.append({"dim": dim, "layers": layers, "shape": shape, "cross": index % 3 == 1})
    return cases


def stax_layers(case: dict):
    out = []
    for layer in case["layers"]:
        kind = layer[0]
        if kind == "conv":
            _, ch, k, s, padding, c_w, c_b = layer
            out.append(
                stax.Conv(
                    ch,
                    tuple(k),
                    strides=tuple(s),
                    padding=padding,
                    W_std=math.sqrt(c_w),
                    b_std=math.sqrt(c_b) if c_b > 0 else None,
                )
            )
        elif kind == "relu":
            out.append(stax.Relu())
        elif kind == "erf":
            out.append(stax.Erf())
        elif kind == "avgpool":
            _, w, s, padding = layer
            out.append(stax.AvgPool(tuple(w), strides=tuple(s), padding=padding))
        elif kind == "gap":
            out.append(stax.GlobalAvgPool())
        elif kind == "layernorm":
            _, over, eps = layer
            axis = -1 if over == "channels" else tuple(range(1, case["dim"] + 2))
            out.append(stax.LayerNorm(axis=axis, eps=eps))
        elif kind == "flatten":
            out.append(stax.Flatten())
        elif kind == "dense":
            _, c_w, c_b = layer
            out.append(stax.Dense(1, W_std=math.sqrt(c_w), b_std=math.sqrt(c_b) or None))
    return out


def main(path: str, layernorm: bool = False) -> None:
    """Draw the cases, their inputs and neural-tangents' kernels; save one npz."""
    rng = np.random.default_rng(21 if layernorm else 20)
    cases = layernorm_cases(rng) if layernorm else random_cases(rng)
    arrays: dict[str, np.ndarray] = {}
    for i, case in enumerate(cases):
        _, _, kernel_fn = stax.serial(*stax_layers(case))
        x1 = rng.standard_normal(case["shape"])
        x2 = rng.standard_normal([3, *case["shape"][1:]]) if case["cross"] else None
        to_nt = lambda x: np.moveaxis(x, 1, -1)  # noqa: E731  NCHW -> NHWC
        out = kernel_fn(to_nt(x1), None if x2 is None else to_nt(x2), ("nngp", "ntk"))
        arrays[f"x1_{i}"] = x1
        arrays[f"x2_{i}"] = np.zeros((0,)) if x2 is None else x2
        arrays[f"nngp_{i}"] = np.asarray(out.nngp)
        arrays[f"ntk_{i}"] = np.asarray(out.ntk)
    np.savez_compressed(path, cases=np.array(json.dumps(cases)), **arrays)
    print(f"saved {len(cases)} cases to {path}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(next(a for a in args if not a.startswith("--")), layernorm="--layernorm" in args)
