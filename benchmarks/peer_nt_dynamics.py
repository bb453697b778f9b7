"""neural-tangents side of benchmarks/dynamics.py (runs in the peer venv; no torch).

Usage: peer_nt_dynamics.py JOB.json -> prints one JSON line of results.
Jobs: {"kind": "ntk", "npz": ...} empirical NTK of a ReLU MLP with the weights in the
npz (W0, b0, W1, b1, ...; x), by structured derivatives and by the Jacobian
contraction; {"kind": "gd_mse", "npz": ...} predict.gradient_descent_mse on the
kernels in the npz (k_tt, k_st, y, f0_train, f0_test, lr, t).
"""

import json
import os
import resource
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402


def _time(fn, repeats):
    fn()  # warm-up, compilation included
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "median": float(np.median(walls)),
        "best": float(min(walls)),
        "cpu": float(np.median(cpus)),
    }


def ntk_job(job):
    data = np.load(job["npz"])
    n_layers = sum(1 for k in data.files if k.startswith("W"))
    params = [(jnp.asarray(data[f"W{i}"]), jnp.asarray(data[f"b{i}"])) for i in range(n_layers)]
    x = jnp.asarray(data["x"])

    def f(p, x):
        h = x
        for i, (w, b) in enumerate(p):
            h = h @ w.T + b
            if i < len(p) - 1:
                h = jax.nn.relu(h)
        return h

    out = {}
    impls = {
        "structured": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
        "jacobian": nt.NtkImplementation.JACOBIAN_CONTRACTION,
    }
    for name, impl in impls.items():
        fn = jax.jit(nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0, implementation=impl))
        result = {}

        def call(fn=fn, result=result):
            result["k"] = fn(x, None, params).block_until_ready()

        out[name] = _time(call, job.get("repeats", 5))
        np.save(os.path.join(job["out_dir"], f"nt_ntk_{name}.npy"), np.asarray(result["k"]))
    return out


def gd_job(job):
    d = np.load(job["npz"])
    k_tt, k_st = jnp.asarray(d["k_tt"]), jnp.asarray(d["k_st"])
    y, f0, f0t = jnp.asarray(d["y"]), jnp.asarray(d["f0_train"]), jnp.asarray(d["f0_test"])
    lr, t = float(d["lr"]), float(d["t"])
    result = {}

    def call():
        # neural-tangents' loss is 1/(2N) ||f - y||^2 with `trace_axes`; its
        # learning_rate is eta of that loss: the same normalisation as dltheory.
        predict = nt.predict.gradient_descent_mse(k_tt, y, learning_rate=lr)
        tr, te = predict(t, f0, f0t, k_st)
        result["train"], result["test"] = np.asarray(tr), np.asarray(te)

    timing = _time(call, job.get("repeats", 3))
    np.save(os.path.join(job["out_dir"], "nt_gd_train.npy"), result["train"])
    np.save(os.path.join(job["out_dir"], "nt_gd_test.npy"), result["test"])
    return timing


if __name__ == "__main__":
    job = json.load(open(sys.argv[1]))
    load = os.getloadavg()[0]
    res = ntk_job(job) if job["kind"] == "ntk" else gd_job(job)
    res["loadavg_1min"] = load
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))
