"""Benchmark dltheory's infinite-width NNGP + NTK against neural-tangents, same run, same inputs.

    python benchmarks/kernels.py            # full run (minutes); rewrites its RESULTS.md section
    python benchmarks/kernels.py --quick    # smoke run on small inputs; prints only

Workloads (seeded standard-normal inputs, saved to ``benchmarks/_peer/inputs_*.npy`` so
both libraries see the same numbers):

* ReLU MLP, N = 2000 inputs of dimension 100, depth 20, C_w = 2, C_b = 0 (and C_b = 0.1);
* tanh MLP, N = 500 inputs of dimension 100, depth 3, C_w = 1, C_b = 0.1; the peer
  uses its numerical activation (2-D Gauss-Hermite quadrature of degree 25).

Each library runs in its own subprocess (peak RSS: VmHWM): one warm-up call
(compilation included), then several timed calls (median and best, wall and CPU time). The peer
runs ``peer_neural_tangents.py`` in ``benchmarks/_peer/venv``; without that venv the
baseline is a naive float64 NumPy implementation of this file (``--baseline naive``).
Accuracy: both libraries against the mpmath references of ``reference.py`` on a
subset of the inputs, plus a small stress set of near-parallel / antipodal / rescaled
inputs (reported, not part of the targets). The floor: this machine's streaming
bandwidth, acos / tanh throughput and matmul rate, applied to operation counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / "_peer"
PEER_PYTHON = PEER_DIR / "venv" / "bin" / "python"
PEER_SCRIPT = HERE / "peer_neural_tangents.py"
RESULTS = HERE / "RESULTS.md"
TARGETS = {"relu": (3.0, 1e-10), "tanh": (50.0, 1e-9)}  # (speed-up, max relative error)


@dataclass(frozen=True)
class Workload:
    name: str
    activation: str
    n: int
    dim: int
    depth: int
    c_w: float
    c_b: float
    seed: int
    repeats: int  # timed calls of dltheory
    peer_repeats: int  # timed calls of the peer (seconds each)
    n_ref: int  # relu: first n_ref inputs, all pairs; tanh: pairs among the first n_ref

    @property
    def inputs_path(self) -> Path:
        return PEER_DIR / f"inputs_{self.activation}_n{self.n}_d{self.dim}_s{self.seed}.npy"


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [
            Workload("relu", "relu", 300, 100, 20, 2.0, 0.0, 0, 2, 2, 8),
            Workload("tanh", "tanh", 100, 100, 3, 1.0, 0.1, 1, 2, 2, 3),
        ]
    return [
        Workload("relu", "relu", 2000, 100, 20, 2.0, 0.0, 0, 5, 3, 30),
        Workload("relu_cb0.1", "relu", 2000, 100, 20, 2.0, 0.1, 0, 5, 2, 30),
        Workload("tanh", "tanh", 500, 100, 3, 1.0, 0.1, 1, 5, 3, 6),
    ]


# --------------------------------------------------------------------------- inputs


def make_inputs(w: Workload) -> np.ndarray:
    x = np.random.default_rng(w.seed).standard_normal((w.n, w.dim))
    np.save(w.inputs_path, x)
    return x


def stress_inputs(x0: np.ndarray, activation: str, seed: int) -> tuple[np.ndarray, list[str]]:
    """Near-parallel, rescaled, antipodal and orthogonal partners of one input x0."""
    g = np.random.default_rng(seed + 1000).standard_normal(x0.shape)
    orth = g - (g @ x0) / (x0 @ x0) * x0
    rows = {"x0": x0, "x0+1e-2g": x0 + 1e-2 * g, "x0+1e-4g": x0 + 1e-4 * g}
    rows |= {"x0+1e-6g": x0 + 1e-6 * g, "2x0": 2 * x0, "-x0": -x0}
    if activation == "relu":
        rows |= {"1e-3x0": 1e-3 * x0, "1e3x0": 1e3 * x0, "orth": orth}
    else:  # tanh: pairs (x0, .) only; large inputs saturate, small ones are near-linear
        rows |= {"3x0": 3 * x0, "1e-2x0": 1e-2 * x0}
    return np.stack(list(rows.values())), list(rows)


def stress_path(w: Workload) -> Path:
    return PEER_DIR / f"stress_{w.activation}_s{w.seed}.npy"


def tanh_pairs(w: Workload) -> list[tuple[int, int]]:
    diag = [(a, a) for a in range(min(4, w.n_ref))]
    return diag + [(a, b) for a in range(w.n_ref) for b in range(a + 1, w.n_ref)]


def tanh_stress_pairs(n: int) -> list[tuple[int, int]]:
    return [(0, 0)] + [(0, b) for b in range(1, n)]


# --------------------------------------------------------------------------- workers


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


def _timed(fn, x, repeats: int) -> tuple[dict, object]:
    """One warm-up call, then ``repeats`` timed calls: wall and process CPU seconds."""
    rss_before = _max_rss_mb()
    start = time.perf_counter()
    fn(x)
    first = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn(x)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    stats = {"first_s": first, "times_s": times, "cpu_s": cpu, "rss_before_mb": rss_before}
    return stats, out


def _worker_dltheory(job: dict) -> dict:
    import torch

    import dltheory

    spec = dltheory.MLP(
        depth=job["depth"], activation=job["activation"], c_w=job["c_w"], c_b=job["c_b"]
    )
    kwargs = {} if job["backend"] == "default" else {"backend": job["backend"]}

    def fn(x):
        return spec.kernel(torch.from_numpy(x), **kwargs)

    stats, out = _timed(fn, np.load(job["inputs"]), job["repeats"])
    stats["rss_peak_mb"] = _max_rss_mb()
    np.savez(job["out"], nngp=out.nngp.numpy(), ntk=out.ntk.numpy())
    for extra in job["extra"]:
        small = fn(np.load(extra["inputs"]))
        np.savez(extra["out"], nngp=small.nngp.numpy(), ntk=small.ntk.numpy())
    versions = {"dltheory": dltheory.__version__, "torch": torch.__version__}
    return {"library": "dltheory", "versions": versions, **stats}


def naive_relu(x: np.ndarray, depth: int, c_w: float, c_b: float):
    """Layer-by-layer arc-cosine recursion on full N x N float64 arrays."""
    k = c_b + c_w * (x @ x.T) / x.shape[1]
    t = k.copy()
    for _ in range(depth):
        d = np.sqrt(np.diag(k))
        norm = np.outer(d, d)
        cos = np.clip(k / norm, -1.0, 1.0)
        theta = np.arccos(cos)
        k = c_b + c_w * norm * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
        t = k + c_w * (np.pi - theta) / (2 * np.pi) * t
    return k, t


def naive_tanh(x: np.ndarray, depth: int, c_w: float, c_b: float, deg: int = 25):
    """2-D Gauss-Hermite tensor rule of degree ``deg`` over all pairs (upper triangle)."""
    z, w = np.polynomial.hermite_e.hermegauss(deg)
    w = w / w.sum()
    k = c_b + c_w * (x @ x.T) / x.shape[1]
    t = k.copy()
    rows, cols = np.triu_indices(len(x))
    for _ in range(depth):
        diag = np.diag(k).copy()
        e_tt, e_dd = np.empty(len(rows)), np.empty(len(rows))
        for s in range(0, len(rows), 4096):
            a, b = rows[s : s + 4096], cols[s : s + 4096]
            root = np.sqrt(diag[a])
            c = k[a, b] / root
            sd = np.sqrt(np.clip(diag[b] - c * c, 0.0, None))
            tu = np.tanh(root[:, None] * z)
            tv = np.tanh(c[:, None, None] * z[:, None] + sd[:, None, None] * z[None, :])
            e_tt[s : s + 4096] = np.einsum("i,j,pi,pij->p", w, w, tu, tv)
            e_dd[s : s + 4096] = np.einsum("i,j,pi,pij->p", w, w, 1 - tu**2, 1 - tv**2)
        k_new, dd = np.empty_like(k), np.empty_like(k)
        k_new[rows, cols] = k_new[cols, rows] = c_b + c_w * e_tt
        dd[rows, cols] = dd[cols, rows] = e_dd
        t = k_new + c_w * dd * t
        k = k_new
    return k, t


def _worker_naive(job: dict) -> dict:
    if job["activation"] == "relu":

        def fn(x):
            return naive_relu(x, job["depth"], job["c_w"], job["c_b"])
    else:

        def fn(x):
            return naive_tanh(x, job["depth"], job["c_w"], job["c_b"], job["deg"])

    stats, (k, t) = _timed(fn, np.load(job["inputs"]), job["repeats"])
    stats["rss_peak_mb"] = _max_rss_mb()
    np.savez(job["out"], nngp=k, ntk=t)
    for extra in job["extra"]:
        k, t = fn(np.load(extra["inputs"]))
        np.savez(extra["out"], nngp=k, ntk=t)
    return {"library": "naive numpy", "versions": {"numpy": np.__version__}, **stats}


def run_job(kind: str, job: dict) -> dict:
    """Run one job in a subprocess; the result dict, or {"error": ...}."""
    if kind == "peer":
        cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), json.dumps(job)]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(job)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s", "load": load}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:300]}", "load": load}
    return {**json.loads(lines[-1]), "load": load}


# --------------------------------------------------------------------------- references


def _cached(key: dict, compute) -> dict[str, np.ndarray]:
    source = (HERE / "reference.py").read_bytes()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode() + source).hexdigest()[:16]
    path = PEER_DIR / f"reference_{digest}.npz"
    if path.exists():
        return dict(np.load(path))
    result = compute()
    np.savez(path, **result)
    return result


def _input_digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def reference(w: Workload, x: np.ndarray, pairs: list[tuple[int, int]] | None):
    from reference import relu_reference, tanh_reference

    key = {
        "activation": w.activation,
        "depth": w.depth,
        "c_w": w.c_w,
        "c_b": w.c_b,
        "x": _input_digest(x),
        "pairs": pairs,
    }
    if w.activation == "relu":

        def compute():
            nngp, ntk = relu_reference(x, w.depth, w.c_w, w.c_b)
            return {"nngp": nngp, "ntk": ntk}
    else:

        def compute():
            nngp, ntk = tanh_reference(x, pairs, w.depth, w.c_w, w.c_b)
            return {"nngp": nngp, "ntk": ntk}

    return _cached(key, compute)


def errors(
    got: dict, ref: dict, pairs: list[tuple[int, int]] | None, labels=None
) -> dict[str, tuple[float, str]]:
    """Max relative error |got - ref| / |ref| per (kernel, diag/off-diag), with the worst pair."""
    out = {}
    for name in ("nngp", "ntk"):
        if pairs is None:  # all pairs of the first m inputs
            m = len(ref[name])
            a, b = np.triu_indices(m)
        else:
            a, b = map(np.array, zip(*pairs, strict=True))
        want = ref[name] if pairs is not None else ref[name][a, b]
        have = np.asarray(got[name])[a, b]
        rel = np.abs(have - want) / np.abs(want)
        for part, mask in (("diag", a == b), ("off", a != b)):
            if not mask.any():
                continue
            i = int(np.argmax(np.where(mask, rel, -1.0)))
            where = f"{labels[a[i]]} vs {labels[b[i]]}" if labels else f"({a[i]}, {b[i]})"
            out[f"{name} {part}"] = (float(rel[i]), where)
    return out


# --------------------------------------------------------------------------- floor


def machine_rates() -> dict[str, float]:
    """This machine's rates, best of 5 (under load from other users, best is the fairest).

    bandwidth: streaming copy of a 512 MiB float64 array (read + write bytes / s);
    acos, tanh: torch elementwise throughput (elements / s, all threads);
    flops: float64 matrix product 2048^3 (flop / s), the practical arithmetic peak.
    """
    import torch

    def best(fn, n=5):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    n = 1 << 26
    src = torch.ones(n, dtype=torch.float64)
    dst = torch.empty_like(src)
    copy_torch = best(lambda: dst.copy_(src))
    copy_numpy = best(lambda: np.copyto(dst.numpy(), src.numpy()))
    bandwidth = 2 * 8 * n / min(copy_torch, copy_numpy)
    src = dst = None
    m = 1 << 24
    u = torch.rand(m, dtype=torch.float64) * 2 - 1
    out = torch.empty_like(u)
    acos = m / best(lambda: torch.acos(u, out=out))
    tanh = m / best(lambda: torch.tanh(u, out=out))
    a = torch.randn(2048, 2048, dtype=torch.float64)
    flops = 2 * 2048**3 / best(lambda: a @ a)
    threads = torch.get_num_threads()
    return {"bandwidth": bandwidth, "acos": acos, "tanh": tanh, "flops": flops, "threads": threads}


FLOPS_PER_PAIR_LAYER = {"relu": 30, "tanh": 30}


def floors(w: Workload, rates: dict[str, float]) -> dict[str, float]:
    """Lower bounds on the time of one NNGP + NTK evaluation (seconds), from operation counts.

    * layer-by-layer memory: each layer reads K, Theta and writes K, Theta (4 N x N
      float64 arrays; diagonals and the N x d inputs are negligible), at the copy bandwidth;
    * fused memory: each pair runs through all layers in registers: write and read the
      Gram matrix, write NNGP and NTK (4 N x N arrays in all, whatever the depth);
    * elementwise: one torch acos (relu) or tanh (tanh) per pair and layer on the
      N (N + 1) / 2 pairs of the upper triangle, at torch's measured throughput: the
      floor of a tensor-op implementation that evaluates arccos / tanh once per entry;
    * FLOP: ~30 flops per pair and layer (relu: acos ~15, two sqrt/div ~10, the rest ~5;
      tanh: the same budget, i.e. as if E[tanh tanh] cost as little as arccos, a loose
      bound) on the upper triangle at the float64 matmul rate: the arithmetic floor.
    """
    n2 = w.n * w.n * 8
    pairs_layers = w.n * (w.n + 1) / 2 * w.depth
    rate = rates["acos"] if w.activation == "relu" else rates["tanh"]
    return {
        "layerwise memory": 4 * n2 * w.depth / rates["bandwidth"],
        "fused memory": 4 * n2 / rates["bandwidth"],
        "elementwise": pairs_layers / rate,
        "flop": pairs_layers * FLOPS_PER_PAIR_LAYER[w.activation] / rates["flops"],
    }


# --------------------------------------------------------------------------- report


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        ram = f"{int(mem) / 2**20:.0f} GiB"
    except OSError:
        ram = "unknown"
    import torch

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def _stat(r: dict, key: str) -> float:
    """median / best wall seconds, or median CPU seconds ("cpu") of the timed calls."""
    if key == "cpu":
        return float(np.median(r["cpu_s"]))
    return float(np.median(r["times_s"])) if key == "median" else float(min(r["times_s"]))


def _fmt_time(r: dict) -> str:
    if "error" in r:
        return "failed"
    return f"{_stat(r, 'median'):.3f} (best {_stat(r, 'best'):.3f}, first {r['first_s']:.2f})"


def _fmt_rss(r: dict) -> str:
    if "error" in r:
        return "-"
    return f"{r['rss_peak_mb']:.0f} (+{r['rss_peak_mb'] - r['rss_before_mb']:.0f})"


def _speedup(ours: dict, peer: dict, key: str) -> float | None:
    if "error" in ours or "error" in peer:
        return None
    return _stat(peer, key) / _stat(ours, key)


PEER_NOTES = """
Why the peer's errors look as they do (from its source, neural-tangents 0.6.5):
`stax.Relu` takes the angle as arctan2(sqrt(K_aa K_bb - K_ab^2), K_ab); on the diagonal
the rounding of K_aa K_bb - K_ab^2 (~1e-16 K^2) leaves an angle of ~1e-8 instead of 0,
and the NTK, linear in the angle, gains ~1e-8 per layer (~1e-7 after 20 layers), while
the NNGP, flat in the angle at 0, stays at ~1e-15. `stax.ElementwiseNumerical(deg=25)`
is a 25 x 25 Gauss-Hermite tensor rule: its error grows with the variance, as tanh's
poles at Im z = pi / (2 sqrt(K)) approach the real axis (the 3 x0 stress input).
"""


def _versions(rows: list[dict], key: str) -> dict[str, str]:
    return next((r[key]["versions"] for r in rows if "versions" in r[key]), {})


def _targets(rows: list[dict], peer_name: str, quick: bool) -> list[str]:
    """The project's targets (TARGETS) against this run's numbers."""
    lines = [
        "## Targets",
        "",
        *(
            ["(Quick run: small N; the targets are set for the full workloads.)", ""]
            if quick
            else []
        ),
        "| target | measured | met? |",
        "|---|---|---|",
    ]
    for row in rows:
        w = row["w"]
        if w.name not in TARGETS:
            continue
        speed_target, acc_target = TARGETS[w.name]
        med = _speedup(row["ours"], row["peer"], "median")
        err = row["errors"]["workload"].get("dltheory")
        worst = None if err is None else max(v[0] for v in err.values())
        ok_speed = med is not None and med >= speed_target
        ok_acc = worst is not None and worst <= acc_target
        lines.append(
            f"| {w.name}: >= {speed_target:.0f}x faster than {peer_name} (median wall) | "
            f"{'-' if med is None else f'{med:.1f}x'} | {'yes' if ok_speed else '**no**'} |"
        )
        lines.append(
            f"| {w.name}: max rel. error <= {acc_target:.0e} (NNGP, NTK, all pairs) | "
            f"{'-' if worst is None else f'{worst:.1e}'} | {'yes' if ok_acc else '**no**'} |"
        )
    return [*lines, ""]


def render(meta: dict, rows: list[dict], rates: dict, baseline: str) -> str:
    peer_name = "neural-tangents" if baseline == "peer" else "naive numpy"
    lines = [
        "# Benchmark: infinite-width NNGP + NTK",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} (total {meta['total_s']:.0f} s).",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['ram']} RAM; "
        f"Python {meta['python']}, torch {meta['torch']}, numpy {meta['numpy']}, "
        f"{meta['dltheory']}; baseline: {meta['peer_versions']}. "
        f"Load average (1 min) at start / end: {meta['load_start']:.2f} / {meta['load_end']:.2f} "
        "(the machine may be shared: both libraries run alternately in the same session).",
        "",
        *_targets(rows, peer_name, meta["quick"]),
        "## Workloads",
        "",
        "| name | activation | N | d | depth | C_w | C_b | timed calls (dltheory / peer) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        w = row["w"]
        act = w.activation if w.activation == "relu" else "tanh (peer: numerical, deg 25)"
        lines.append(
            f"| {w.name} | {act} | {w.n} | {w.dim} | {w.depth} | {w.c_w} | {w.c_b} "
            f"| {w.repeats} / {w.peer_repeats} |"
        )
    lines += [
        "",
        "Inputs: `np.random.default_rng(seed).standard_normal((N, d))` (seed 0 relu, 1 tanh), "
        "saved to `benchmarks/_peer/`. Output: `kernel(x)` / `kernel_fn(x, None, "
        "('nngp', 'ntk'))`, float64, NTK parametrisation, readout Dense included.",
        "",
        "## Time (seconds) and peak memory",
        "",
        "Steady state: median wall time of the timed calls after one warm-up call (best and "
        "the first call, compilation included, in brackets); CPU: median process CPU seconds "
        "per call (all threads; less sensitive than wall time to other load on the machine). "
        "Peak RSS of the worker process in MB (VmHWM; in brackets the increase over the peak "
        "after imports and loading the inputs). Load: the 1-minute load average when each "
        "job started (dltheory / peer; this machine has "
        f"{meta['cores']} cores and may be shared).",
        "",
        f"| workload | dltheory wall | {peer_name} wall | speed-up (median / best) | "
        f"CPU dltheory / {peer_name} | CPU ratio | RSS dltheory | RSS {peer_name} | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours, peer = row["ours"], row["peer"]
        med, best = _speedup(ours, peer, "median"), _speedup(ours, peer, "best")
        speed = "-" if med is None else f"{med:.1f}x / {best:.1f}x"
        cpu, ratio = "-", "-"
        if med is not None:
            cpu_ours, cpu_peer = _stat(ours, "cpu"), _stat(peer, "cpu")
            cpu, ratio = f"{cpu_ours:.2f} / {cpu_peer:.2f}", f"{cpu_peer / cpu_ours:.1f}x"
        lines.append(
            f"| {row['w'].name} | {_fmt_time(ours)} | {_fmt_time(peer)} | {speed} | {cpu} | "
            f"{ratio} | {_fmt_rss(ours)} | {_fmt_rss(peer)} | "
            f"{ours['load']:.1f} / {peer['load']:.1f} |"
        )
    notes = [
        f"* {row['w'].name}, {who}: {r['note']}"
        for row in rows
        for who, r in (("dltheory", row["ours"]), (peer_name, row["peer"]))
        if r.get("note")
    ]
    notes += [
        f"* {row['w'].name}, {who}: **{r['error']}**"
        for row in rows
        for who, r in (("dltheory", row["ours"]), (peer_name, row["peer"]))
        if r.get("error")
    ]
    if notes:
        lines += ["", *notes]
    lines += [
        "",
        "## Accuracy against the mpmath references (`reference.py`)",
        "",
        "Max relative error |k - k_ref| / |k_ref|, diagonal and off-diagonal entries "
        "separately (worst pair in brackets). relu: all pairs of the first inputs, arc-cosine "
        "recursion at 30 digits; tanh: the listed pairs, each run through every layer at 30 "
        "digits with 2-D Gaussian expectations accurate to ~1e-20. Stress: x0 with "
        "near-parallel (x0 + eps g), rescaled, antipodal and orthogonal partners; not part of "
        "the targets.",
        "",
        "| workload | subset | library | NNGP diag | NNGP off-diag | NTK diag | NTK off-diag |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for subset, errs in row["errors"].items():
            for who, err in errs.items():
                cells = []
                for key in ("nngp diag", "nngp off", "ntk diag", "ntk off"):
                    if err is None:
                        cells.append("-")
                    elif key in err:
                        cells.append(f"{err[key][0]:.1e} ({err[key][1]})")
                    else:
                        cells.append("n/a")
                label = row["subsets"][subset]
                lines.append(f"| {row['w'].name} | {label} | {who} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"dltheory against {peer_name} on all N x N entries (max |k - k_peer| / |k_peer|): "
        + "; ".join(
            f"{row['w'].name}: NNGP {row['agreement']['nngp']:.1e}, "
            f"NTK {row['agreement']['ntk']:.1e}"
            for row in rows
            if row["agreement"] is not None
        )
        + ".",
        "",
    ]
    if baseline == "peer":
        lines += [*PEER_NOTES.strip().splitlines(), ""]
    lines += [
        "## Floor",
        "",
        f"Measured here (best of 5): streaming copy {rates['bandwidth'] / 1e9:.1f} GB/s "
        f"(512 MiB float64 arrays, read + write counted); on {rates['threads']} torch threads "
        f"acos {rates['acos'] / 1e6:.0f} M/s, tanh {rates['tanh'] / 1e6:.0f} M/s, float64 "
        f"matmul {rates['flops'] / 1e9:.1f} GFLOP/s.",
        "",
        "| workload | layer-by-layer memory | fused memory | elementwise | FLOP | "
        "dltheory / max(fused memory, FLOP) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        f = row["floor"]
        bound = max(f["fused memory"], f["flop"])
        ratio = "-" if "error" in row["ours"] else f"{_stat(row['ours'], 'median') / bound:.0f}x"
        cells = " | ".join(
            f"{f[k]:.4f} s" for k in ("layerwise memory", "fused memory", "elementwise", "flop")
        )
        lines.append(f"| {row['w'].name} | {cells} | {ratio} |")
    doc = floors.__doc__.split("\n\n", 1)[1]
    lines += ["", *[line.strip() for line in doc.splitlines() if line.strip()]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run; prints only")
    parser.add_argument("--baseline", choices=("auto", "peer", "naive"), default="auto")
    parser.add_argument(
        "--backend", default="default", help="dltheory kernel backend (default: its own)"
    )
    parser.add_argument("--results", type=Path, default=None, help="markdown output path")
    parser.add_argument("--worker", choices=("dltheory", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("job", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker = _worker_dltheory if args.worker == "dltheory" else _worker_naive
        print(json.dumps(worker(json.loads(args.job))))
        return

    started = time.perf_counter()
    PEER_DIR.mkdir(exist_ok=True)
    baseline = args.baseline
    if baseline == "auto":
        baseline = "peer" if PEER_PYTHON.exists() else "naive"
    meta = machine_info()
    meta["load_start"] = os.getloadavg()[0]
    print(f"baseline: {baseline}; measuring bandwidth ...", flush=True)
    rates = machine_rates()
    rows = []
    for w in workloads(args.quick):
        x = make_inputs(w)
        stress, labels = stress_inputs(x[0], w.activation, w.seed)
        np.save(stress_path(w), stress)
        job = {
            "activation": w.activation,
            "depth": w.depth,
            "c_w": w.c_w,
            "c_b": w.c_b,
            "inputs": str(w.inputs_path),
            "deg": 25,
        }
        results = {}
        for who, kind in (("dltheory", "dltheory"), ("peer", baseline)):
            tag = f"{who}_{w.name}_n{w.n}"
            out = {"out": str(PEER_DIR / f"{tag}.npz")}
            extra = [{"inputs": str(stress_path(w)), "out": str(PEER_DIR / f"{tag}_stress.npz")}]
            repeats = w.repeats if who == "dltheory" else w.peer_repeats
            full = {**job, **out, "extra": extra, "backend": args.backend, "repeats": repeats}
            print(f"{w.name}: {who} ...", flush=True)
            result = run_job(kind, full)
            if who == "dltheory" and "error" in result and args.backend == "default":
                retry = run_job(kind, {**full, "backend": "torch"})
                retry["note"] = (
                    f"default backend failed ({result['error']}); retried with backend='torch'"
                )
                result = retry
            results[who] = {**result, **out, "stress": extra[0]["out"]}
            print(f"  {_fmt_time(result)} {result.get('error', '')}", flush=True)
        if w.activation == "relu":
            pairs, stress_pairs = None, None
            ref = reference(w, x[: w.n_ref], None)
            ref_stress = reference(w, stress, None)
            subsets = {
                "workload": f"first {w.n_ref} inputs, all pairs",
                "stress": f"stress, {len(stress)} inputs, all pairs",
            }
        else:
            pairs, stress_pairs = tanh_pairs(w), tanh_stress_pairs(len(stress))
            ref = reference(w, x, pairs)
            ref_stress = reference(w, stress, stress_pairs)
            n_diag = sum(a == b for a, b in pairs)
            subsets = {
                "workload": f"{len(pairs)} pairs ({n_diag} diagonal) of the first {w.n_ref}",
                "stress": f"stress, x0 with each of {len(stress)} inputs",
            }
        errs = {"workload": {}, "stress": {}}
        peer_label = "neural-tangents" if baseline == "peer" else "naive numpy"
        for who, label in (("dltheory", "dltheory"), ("peer", peer_label)):
            r = results[who]
            if "error" in r:
                errs["workload"][label] = errs["stress"][label] = None
                continue
            errs["workload"][label] = errors(dict(np.load(r["out"])), ref, pairs)
            errs["stress"][label] = errors(
                dict(np.load(r["stress"])), ref_stress, stress_pairs, labels
            )
        agreement = None
        if "error" not in results["dltheory"] and "error" not in results["peer"]:
            ours, theirs = np.load(results["dltheory"]["out"]), np.load(results["peer"]["out"])
            agreement = {
                name: float(np.max(np.abs(ours[name] - theirs[name]) / np.abs(theirs[name])))
                for name in ("nngp", "ntk")
            }
        rows.append(
            {
                "agreement": agreement,
                "w": w,
                "ours": results["dltheory"],
                "peer": results["peer"],
                "errors": errs,
                "subsets": subsets,
                "floor": floors(w, rates),
            }
        )

    meta["load_end"] = os.getloadavg()[0]
    meta["quick"] = args.quick
    meta["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta["command"] = " ".join(["python benchmarks/kernels.py", *sys.argv[1:]])
    meta["total_s"] = time.perf_counter() - started
    ours = _versions(rows, "ours")
    meta["dltheory"] = f"dltheory {ours.get('dltheory', '(failed)')}"
    meta["peer_versions"] = ", ".join(f"{k} {v}" for k, v in _versions(rows, "peer").items())
    raw = [
        {"workload": row["w"].name, **{k: v for k, v in row.items() if k != "w"}} for row in rows
    ]
    (PEER_DIR / "results.json").write_text(json.dumps({"meta": meta, "rows": raw}, indent=1))
    text = render(meta, rows, rates, baseline)
    print(text)
    target = args.results if args.results else (None if args.quick else RESULTS)
    if target is not None:
        if target == RESULTS:
            from results_file import write_section  # beside this script

            write_section("kernels", text)
        else:
            target.write_text(text)
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
