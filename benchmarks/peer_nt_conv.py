"""Time neural-tangents' CNN-GP + CNTK on the conv benchmark problem (runs in the peer venv).

Run by ``conv_kernels.py`` as ``PEER_PYTHON peer_nt_conv.py JOB`` where JOB is a JSON object
{"n": 64, "size": 8, "head": "gap" | "flatten", "repeats": 1, "out": "path.npz" or null,
"inputs": "images.npy" (optional: NHWC images to use instead of the random ones)}.
The network is PEERS' ``stax.serial(*[stax.Conv(16, (3, 3), padding='SAME',
W_std=sqrt(2), b_std=sqrt(0.1)), stax.Relu()] * 3, stax.GlobalAvgPool() (or Flatten()),
stax.Dense(1, W_std=sqrt(2), b_std=sqrt(0.1)))`` in float64 on
``np.random.default_rng(0).standard_normal((N, S, S, 3))``; the jitted
``kernel_fn(x, None, ('nngp', 'ntk'))`` runs once (compilation included), then
``repeats`` times. Prints one JSON line: wall and CPU seconds, peak RSS (VmHWM) before
and after.
"""

from __future__ import annotations

import json
import math
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402


def _rss_mb(key: str = "VmHWM:") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main(job: dict) -> dict:
    w, b = math.sqrt(2.0), math.sqrt(0.1)
    head = stax.GlobalAvgPool() if job["head"] == "gap" else stax.Flatten()
    _, _, kernel_fn = stax.serial(
        *[stax.Conv(16, (3, 3), padding="SAME", W_std=w, b_std=b), stax.Relu()] * 3,
        head,
        stax.Dense(1, W_std=w, b_std=b),
    )
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    if job.get("inputs"):
        x = np.load(job["inputs"])[: job["n"]]
    else:
        x = np.random.default_rng(0).standard_normal((job["n"], job["size"], job["size"], 3))
    rss_before = _rss_mb("VmRSS:")
    start, start_cpu = time.perf_counter(), time.process_time()
    out = kernel_fn(x, None, ("nngp", "ntk"))
    out.ntk.block_until_ready()
    first, first_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    times, cpu = [], []
    for _ in range(job.get("repeats", 1)):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = kernel_fn(x, None, ("nngp", "ntk"))
        out.ntk.block_until_ready()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if job.get("out"):
        np.savez(job["out"], nngp=np.asarray(out.nngp), ntk=np.asarray(out.ntk))
    return {
        "first_s": first,
        "first_cpu_s": first_cpu,
        "times_s": times,
        "cpu_s": cpu,
        "rss_before_mb": rss_before,
        "rss_peak_mb": _rss_mb(),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
