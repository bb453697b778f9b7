"""Time neural-tangents' infinite-width kernels on one benchmark job (runs in the peer venv).

Run by ``kernels.py`` as ``benchmarks/_peer/venv/bin/python peer_neural_tangents.py JOB``
where JOB is a JSON object (see ``kernels.py``):

    {"activation": "relu" | "tanh", "depth": 20, "c_w": 2.0, "c_b": 0.0,
     "inputs": "benchmarks/_peer/inputs_relu.npy", "out": "benchmarks/_peer/nt_relu.npz",
     "repeats": 3, "deg": 25, "extra": [{"inputs": ..., "out": ...}, ...]}

The network is stax.serial(*[Dense(W_std=sqrt(c_w), b_std=sqrt(c_b)), act] * depth,
Dense(W_std=sqrt(c_w), b_std=sqrt(c_b))) in NTK parametrisation, act = stax.Relu()
(closed form) or stax.ElementwiseNumerical(jnp.tanh, deg) (2-D Gauss-Hermite quadrature).
``kernel_fn(x, None, ("nngp", "ntk"))`` is jitted, run once (compilation included),
then ``repeats`` times. Prints one JSON line: wall and process CPU seconds per call,
peak RSS (VmHWM), versions. Saves the kernels of ``inputs`` (and of each ``extra``
input set, not timed) with ``np.savez``.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402


def _max_rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM: reset by exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as status:
            lines = status.read().splitlines()
        for line in lines:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _kernel_fn(job: dict):
    w_std, b_std = math.sqrt(job["c_w"]), math.sqrt(job["c_b"])
    if job["activation"] == "relu":
        act = stax.Relu()
    elif job["activation"] == "tanh":
        act = stax.ElementwiseNumerical(fn=jnp.tanh, deg=job.get("deg", 25))
    else:
        raise ValueError(f"activation must be 'relu' or 'tanh'. Got {job['activation']!r}.")
    layers = [stax.Dense(512, W_std=w_std, b_std=b_std), act] * job["depth"]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=w_std, b_std=b_std))
    return jax.jit(kernel_fn, static_argnames="get")


def _run(kernel_fn, x):
    out = kernel_fn(x, None, ("nngp", "ntk"))
    out.nngp.block_until_ready()
    out.ntk.block_until_ready()
    return out


def main(job: dict) -> dict:
    warnings.filterwarnings("ignore", module="neural_tangents")
    kernel_fn = _kernel_fn(job)
    x = jnp.asarray(np.load(job["inputs"]), dtype=jnp.float64)
    rss_before = _max_rss_mb()
    start = time.perf_counter()
    _run(kernel_fn, x)
    first = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(job.get("repeats", 3)):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = _run(kernel_fn, x)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    rss_peak = _max_rss_mb()
    np.savez(job["out"], nngp=np.asarray(out.nngp), ntk=np.asarray(out.ntk))
    del out
    for extra in job.get("extra", []):
        small = _run(kernel_fn, jnp.asarray(np.load(extra["inputs"]), dtype=jnp.float64))
        np.savez(extra["out"], nngp=np.asarray(small.nngp), ntk=np.asarray(small.ntk))
    return {
        "library": "neural-tangents",
        "versions": {"neural_tangents": nt.__version__, "jax": jax.__version__},
        "first_s": first,
        "times_s": times,
        "cpu_s": cpu,
        "rss_before_mb": rss_before,
        "rss_peak_mb": rss_peak,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
