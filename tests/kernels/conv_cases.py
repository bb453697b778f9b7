"""Shared by the conv kernel tests: the neural-tangents cases as dltheory specs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dltheory import Dense, Nonlinearity, Serial
from dltheory.spec import AvgPool, Conv, Flatten, GlobalAvgPool, LayerNorm

DATA = Path(__file__).parent / "data" / "conv_nt.npz"


def spec_of(case: dict) -> Serial:
    """The dltheory spec of one case of benchmarks/peer_nt_conv_cases.py."""
    layers = []
    for layer in case["layers"]:
        kind = layer[0]
        if kind == "conv":
            _, ch, k, s, padding, c_w, c_b = layer
            layers.append(Conv(ch, tuple(k), stride=tuple(s), padding=padding, c_w=c_w, c_b=c_b))
        elif kind in ("relu", "erf"):
            layers.append(Nonlinearity(kind))
        elif kind == "layernorm":  # ("layernorm", over, eps): stax.LayerNorm without affine
            layers.append(LayerNorm(affine=False, eps=layer[2], over=layer[1]))
        elif kind == "avgpool":
            _, w, s, padding = layer
            layers.append(AvgPool(tuple(w), stride=tuple(s), padding=padding))
        elif kind == "gap":
            layers.append(GlobalAvgPool())
        elif kind == "flatten":
            layers.append(Flatten())
        elif kind == "dense":
            _, c_w, c_b = layer
            layers.append(Dense(c_w, c_b, width=1))
    return Serial(*layers)


def nt_cases() -> list[tuple[dict, dict]]:
    """(case, arrays) for every stored case."""
    data = np.load(DATA)
    cases = json.loads(str(data["cases"]))
    out = []
    for i, case in enumerate(cases):
        x2 = data[f"x2_{i}"]
        arrays = {
            "x1": data[f"x1_{i}"],
            "x2": None if x2.size == 0 else x2,
            "nngp": data[f"nngp_{i}"],
            "ntk": data[f"ntk_{i}"],
        }
        out.append((case, arrays))
    return out
