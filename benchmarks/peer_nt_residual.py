"""neural-tangents' residual and LayerNorm MLP kernels (runs in the peer venv).

Usage (the peer venv: ``NT_PYTHON`` or ``benchmarks/_peer/venv/bin/python``)::

    $NT_PYTHON benchmarks/peer_nt_residual.py reference tests/data/nt_residual_layernorm.npz
    $NT_PYTHON benchmarks/peer_nt_residual.py time N D DEPTH REPEATS

Networks (every Dense W_std^2 = 2, b_std^2 = 0.1, NTK parametrisation, float64; the
problem of the peer facts: N = 1000, d = 100, depth 10):

* ``residual``: Dense, [FanOut(2), parallel(serial(Relu, Dense), Identity), FanInSum] * L,
  Relu, Dense(1);
* ``residual_scaled``: the same with the branch Dense's (W_std, b_std) times alpha = 0.5
  (alpha (W u + b) has the kernels of alpha^2 (C_w, C_b), NTK included);
* ``layernorm``: [Dense, LayerNorm, Relu] * L, Dense(1) (post-LN; LayerNorm reads a
  Gaussian input, as neural-tangents requires);
* ``preln``: Dense, [FanOut(2), parallel(serial(LayerNorm, Relu, Dense), Identity),
  FanInSum] * L, LayerNorm, Relu, Dense(1) (pre-LN residual).

``reference`` saves, for inputs ``default_rng(0).standard_normal((8, 5))`` and depth 4,
each network's nngp / ntk (LayerNorm eps = 1e-12, neural-tangents' default).
``time`` prints one JSON line of wall / CPU seconds per jitted call (after one warm-up).
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

W_STD, B_STD = math.sqrt(2.0), math.sqrt(0.1)


def dense(out: int = 512, scale: float = 1.0):
    return stax.Dense(out, W_std=W_STD * scale, b_std=B_STD * scale)


def network(name: str, depth: int):
    if name in ("residual", "residual_scaled"):
        alpha = 0.5 if name == "residual_scaled" else 1.0
        block = [
            stax.FanOut(2),
            stax.parallel(stax.serial(stax.Relu(), dense(scale=alpha)), stax.Identity()),
            stax.FanInSum(),
        ]
        return stax.serial(dense(), *block * depth, stax.Relu(), dense(1))
    if name == "plain":
        return stax.serial(*[dense(), stax.Relu()] * depth, dense(1))
    if name == "layernorm":
        return stax.serial(*[dense(), stax.LayerNorm(axis=-1), stax.Relu()] * depth, dense(1))
    if name == "preln":
        branch = stax.serial(stax.LayerNorm(axis=-1), stax.Relu(), dense())
        block = [stax.FanOut(2), stax.parallel(branch, stax.Identity()), stax.FanInSum()]
        return stax.serial(dense(), *block * depth, stax.LayerNorm(axis=-1), stax.Relu(), dense(1))
    raise ValueError(f"network must be 'plain' or one of {NAMES}. Got {name!r}.")


NAMES = ("residual", "residual_scaled", "layernorm", "preln")  # reference networks


def reference(path: str) -> None:
    x = np.random.default_rng(0).standard_normal((8, 5))
    out = {"x": x}
    for name in NAMES:
        kernel_fn = network(name, 4)[2]
        k = kernel_fn(jnp.asarray(x), None, ("nngp", "ntk"))
        out[f"{name}_nngp"] = np.asarray(k.nngp)
        out[f"{name}_ntk"] = np.asarray(k.ntk)
    np.savez(path, **out)
    print(f"wrote {path}")


def timing(n: int, d: int, depth: int, repeats: int) -> None:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((n, d)))
    result = {}
    for name in ("plain", "residual", "layernorm"):
        kernel_fn = jax.jit(network(name, depth)[2], static_argnames="get")
        k = kernel_fn(x, None, ("nngp", "ntk"))
        k.ntk.block_until_ready()
        walls, cpus = [], []
        for _ in range(repeats):
            w, c = time.perf_counter(), time.process_time()
            k = kernel_fn(x, None, ("nngp", "ntk"))
            k.ntk.block_until_ready()
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        result[name] = {"wall": sorted(walls), "cpu": sorted(cpus)}
    print(json.dumps(result))


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    if sys.argv[1] == "reference":
        reference(sys.argv[2])
    else:
        timing(*map(int, sys.argv[2:6]))
