"""CNN-GP + CNTK of dltheory against neural-tangents on PEERS' conv problem (same run).

The network (PEERS.md): 3 x [Conv(16, (3, 3), 'SAME', W_std^2 = 2, b_std^2 = 0.1), ReLU],
GlobalAvgPool (or Flatten), Dense(1, W_std^2 = 2, b_std^2 = 0.1), float64, inputs
``np.random.default_rng(0).standard_normal((N, S, S, 3))`` (NHWC; dltheory reads NCHW).
Each measurement runs in a fresh subprocess (wall, process CPU time, peak RSS above the
RSS after imports and a 2-image warm-up call that loads the compiled engine);
neural-tangents runs ``peer_nt_conv.py`` in its venv (``--peer-python``, default
``benchmarks/_peer/venv/bin/python`` or ``$DLTHEORY_NT_PYTHON``), first call (compilation
included) and a second call. The digits case is all 1,797 ``load_digits`` images as
1 x 8 x 8 (x / 16), GAP CNTK, with a progress bar.

    .venv/bin/python benchmarks/conv_kernels.py            # full run; rewrites RESULTS.md
    .venv/bin/python benchmarks/conv_kernels.py --quick    # 16 images only; prints
    .venv/bin/python benchmarks/conv_kernels.py --cases digits   # one case, merged in
    .venv/bin/python benchmarks/conv_kernels.py --table-only     # RESULTS.md from stored runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "_peer"
STORE = OUT / "conv_results.json"
CASES = {
    "gap_16_8": ("gap", 16, 8),  # --quick only
    "gap_64_8": ("gap", 64, 8),
    "flatten_64_8": ("flatten", 64, 8),
    "gap_64_16": ("gap", 64, 16),
    "flatten_64_16": ("flatten", 64, 16),
    "gap_128_16": ("gap", 128, 16),
    "gap_256_16": ("gap", 256, 16),
    "gap_64_16_2t": ("gap", 64, 16),  # two numba threads
    "digits_128": ("gap", 128, 8),  # the first 128 digits: neural-tangents' cost per pair
    "digits": ("gap", 1797, 8),
}
NT_CASES = ("gap_64_8", "flatten_64_8", "digits_128")  # 16 x 16 needs 14.7 GiB (PEERS.md)
THREADS = {"gap_64_16_2t": 2}  # numba threads where not --threads


def _rss_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def child(name: str) -> None:
    """Measure dltheory on one case (runs in a subprocess)."""
    import numpy as np
    import torch

    from dltheory import Dense, Nonlinearity, Serial
    from dltheory.spec import Conv, Flatten, GlobalAvgPool

    head, n, size = CASES[name]
    layers = []
    for _ in range(3):
        layers += [Conv(16, (3, 3), padding="same", c_w=2.0, c_b=0.1), Nonlinearity("relu")]
    spec = Serial(
        *layers, GlobalAvgPool() if head == "gap" else Flatten(), Dense(2.0, 0.1, width=1)
    )
    if name.startswith("digits"):
        x = torch.from_numpy(_digits()[:n].transpose(0, 3, 1, 2).copy())
    else:
        x = np.random.default_rng(0).standard_normal((n, size, size, 3))
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    spec.kernel(x[:2])  # load the compiled engine
    rss0 = _rss_mb("VmRSS:")
    wall, cpu = time.perf_counter(), time.process_time()
    k = spec.kernel(x, progress=name == "digits")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    np.savez(OUT / f"dl_{name}.npz", nngp=k.nngp.numpy(), ntk=k.ntk.numpy())
    print(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_above_mb": _rss_mb("VmHWM:") - rss0,
                "threads": int(os.environ.get("NUMBA_NUM_THREADS", "0")) or None,
            }
        )
    )


def _digits():
    """load_digits as (1797, 8, 8, 1) images (x / 16), NHWC."""
    from sklearn.datasets import load_digits

    return load_digits().data.reshape(-1, 8, 8, 1) / 16.0


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def peer(name: str, python: str) -> dict:
    head, n, size = CASES[name]
    job = {"n": n, "size": size, "head": head, "repeats": 1, "out": str(OUT / f"nt_{name}.npz")}
    if name.startswith("digits"):
        import numpy as np

        np.save(OUT / "digits.npy", _digits())
        job["inputs"] = str(OUT / "digits.npy")
    result = _run([python, str(HERE / "peer_nt_conv.py"), json.dumps(job)], 3600)
    if "rss_peak_mb" in result:
        result["peak_above_mb"] = result["rss_peak_mb"] - result["rss_before_mb"]
    return result


def _agreement(name: str) -> str:
    import numpy as np

    try:
        a, b = np.load(OUT / f"dl_{name}.npz"), np.load(OUT / f"nt_{name}.npz")
    except OSError:
        return ""
    rel = [float(np.abs(a[key] - b[key]).max() / np.abs(b[key]).max()) for key in ("nngp", "ntk")]
    return f"{rel[0]:.1e} / {rel[1]:.1e}"


def _pairs(n: int) -> float:
    return n * (n + 1) / 2


def table(results: dict) -> str:
    """The markdown section."""
    lines = [
        "## Convolutional kernels (CNN-GP + CNTK) against neural-tangents",
        "",
        f"Run {results.get('date', '?')} on a shared 2-core machine (8 engineers; the load "
        "average at the end of each case is in the table: wall times are inflated, compare "
        "CPU times). float64; PEERS' problem: 3 x [Conv 3x3 SAME, ReLU], GAP or Flatten, "
        "Dense; N random 3-channel S x S images (digits: `load_digits` as 1 x 8 x 8 images, "
        "x / 16). dltheory: the fused CPU engine (each image pair through every layer in "
        "cache; the pixel-pair covariance in the block layout (p1, q1, p2, q2), so a 3 x 3 "
        "conv is 3 + 3 block shifts; the ReLU map vectorised; pairs split evenly over the "
        "numba threads, whose number is in the table); memory is the peak RSS above the RSS "
        "after imports and a warm-up call. us / pair: CPU time per distinct pair (dltheory "
        "computes the N (N + 1) / 2 pairs of the upper triangle; neural-tangents all N^2, "
        "second call). neural-tangents 0.6.5 (jax 0.4.23) in the same run: first call "
        "(compilation included) / second call; its 16 x 16 cases need 14.7 GiB (PEERS.md: "
        "63.9 s at N = 64; 57 GiB projected at N = 128), more than this machine had free, so "
        "they were not rerun. Agreement: max |dltheory - nt| / max |nt| (NNGP / NTK).",
        "",
        "| case | threads | load | wall s | CPU s | CPU us / pair | peak MB | nt wall s "
        "(1st / 2nd) | nt CPU s (1st / 2nd) | nt us / pair | nt peak MB | CPU ratio (nt 2nd "
        "/ dl) | memory ratio | agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    dls = results.get("dltheory", {})
    for name, (head, n, size) in CASES.items():
        dl = dls.get(name)
        if dl is None or (name == "gap_16_8" and len(dls) > 1):
            continue
        nt = results.get("nt", {}).get(name, {})
        label = f"{head}, N = {n}, {size} x {size}"
        if name.startswith("digits"):
            label = f"digits GAP, N = {n}"
        if "error" in dl:
            lines.append(f"| {label} | failed: {dl['error']} |" + " |" * 12)
            continue
        row = [
            label,
            str(dl.get("threads", "?")),
            str(dl.get("load", "?")),
            f"{dl['wall_s']:.2f}",
            f"{dl['cpu_s']:.2f}",
            f"{dl['cpu_s'] / _pairs(n) * 1e6:.0f}",
            f"{dl['peak_above_mb']:.0f}",
        ]
        if "first_s" in nt:
            row += [
                f"{nt['first_s']:.2f} / {nt['times_s'][0]:.2f}",
                f"{nt['first_cpu_s']:.2f} / {nt['cpu_s'][0]:.2f}",
                f"{nt['cpu_s'][0] / n**2 * 1e6:.0f}",
                f"{nt['peak_above_mb']:.0f}",
                f"{nt['cpu_s'][0] / dl['cpu_s']:.1f}x",
                f"{nt['peak_above_mb'] / max(dl['peak_above_mb'], 1):.0f}x",
                _agreement(name),
            ]
        else:
            row += ["-"] * 7
        lines.append("| " + " | ".join(row) + " |")
    dl, nt = dls.get("digits"), results.get("nt", {}).get("digits_128")
    if dl and "cpu_s" in dl and nt and "cpu_s" in nt:
        per_dl, per_nt = dl["cpu_s"] / _pairs(1797), nt["cpu_s"][0] / 128**2
        lines += [
            "",
            f"All 1,797 digits (GAP CNTK + CNN-GP, {_pairs(1797):,.0f} pairs of the upper "
            f"triangle, progress bar on): {dl['wall_s']:.0f} s wall, {dl['cpu_s']:.0f} s CPU, "
            f"{dl['peak_above_mb']:.0f} MB above the imports. Cost per image pair: dltheory "
            f"{per_dl * 1e6:.1f} us CPU, neural-tangents {per_nt * 1e6:.0f} us CPU (second "
            "call on the first 128 digits, all N^2 pairs) = "
            f"{per_nt / per_dl:.0f}x per pair; the full Gram in neural-tangents would take "
            f"~{per_nt * 1797**2 / 60:.0f} CPU min batched (unbatched it would hold "
            f"{1797**2 * 64**2 * 8 / 2**40:.1f} TiB per pixel-pair array).",
        ]
    lines += ["", *_verdicts(results)]
    return "\n".join(lines) + "\n"


def _verdicts(results: dict) -> list[str]:
    """The issue's targets against the stored numbers (CPU time: the machine is shared)."""
    dls, nts = results.get("dltheory", {}), results.get("nt", {})
    out = ["Targets (issue 20):"]
    dl, nt = dls.get("gap_64_8", {}), nts.get("gap_64_8", {})
    if "cpu_s" in dl and "cpu_s" in nt:
        ratio = nt["cpu_s"][0] / dl["cpu_s"]
        mem = f"{dl['peak_above_mb']:.1f} MB vs {nt['peak_above_mb']:.0f} MB"
        out.append(
            f"- GAP, 64 images 8 x 8 x 3, >= 10x faster with <= 1/10 of the memory: "
            f"{'reached' if ratio >= 10 else 'not reached'} in CPU time ({ratio:.0f}x, one "
            f"thread against neural-tangents' second call), memory {mem}."
        )
    dl = dls.get("gap_64_16", {})
    if "cpu_s" in dl:
        ok = dl["cpu_s"] <= 6 and dl["peak_above_mb"] <= 1536
        out.append(
            f"- GAP, 64 images 16 x 16 x 3, <= 6 s and 1.5 GiB: {dl['cpu_s']:.1f} s CPU on "
            f"one thread, {dl['peak_above_mb']:.0f} MB: {'reached' if ok else 'not reached'} "
            f"in CPU time; the wall time here ({dl['wall_s']:.0f} s at load {dl['load']}) is "
            "the shared machine's (one core's share is ~1/8 of a core)."
        )
    done = [name for name in ("gap_128_16", "gap_256_16") if "cpu_s" in dls.get(name, {})]
    out.append(
        f"- 128 and 256 images of 16 x 16: {', '.join(done) or 'none'} ran (table); "
        "neural-tangents cannot (57 GiB projected at 128)."
    )
    if "cpu_s" in dls.get("digits", {}):
        out.append("- All 1,797 digits, GAP CNTK with a progress bar: ran (above).")
    dl, nt = dls.get("flatten_64_8", {}), nts.get("flatten_64_8", {})
    if "cpu_s" in dl and "cpu_s" in nt:
        ratio = nt["cpu_s"][0] / dl["cpu_s"]
        out.append(
            f"- Flattened readout at least as fast as neural-tangents: {ratio:.1f}x in CPU "
            f"time at 8 x 8 ({'reached' if ratio >= 1 else 'not reached'})."
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", nargs="*", default=list(CASES)[1:])
    parser.add_argument(
        "--peer-python",
        default=os.environ.get("DLTHEORY_NT_PYTHON", str(OUT / "venv" / "bin" / "python")),
    )
    parser.add_argument("--threads", type=int, default=1, help="numba / torch threads")
    parser.add_argument("--table-only", action="store_true", help="rewrite from stored results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.table_only:
        sys.path.insert(0, str(HERE))
        from results_file import write_section

        write_section("conv_kernels", table(json.loads(STORE.read_text())))
        return
    OUT.mkdir(exist_ok=True)
    if args.quick:
        args.cases = ["gap_16_8"]
    results = json.loads(STORE.read_text()) if STORE.exists() and not args.quick else {}
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["load"] = f"{os.getloadavg()[0]:.1f}"
    for name in args.cases:
        t = str(THREADS.get(name, args.threads))
        threads = {"NUMBA_NUM_THREADS": t, "OMP_NUM_THREADS": t}
        dl = _run([sys.executable, __file__, "--child", name], 7200, threads)
        results.setdefault("dltheory", {})[name] = dl
        dl["load"] = f"{os.getloadavg()[0]:.1f}"
        print(name, "dltheory", dl, flush=True)
        if (name in NT_CASES or args.quick) and Path(args.peer_python).exists():
            results.setdefault("nt", {})[name] = peer(name, args.peer_python)
            print(name, "neural-tangents", results["nt"][name], flush=True)
        if not args.quick:
            STORE.write_text(json.dumps(results, indent=1))
    text = table(results)
    print(text)
    if not args.quick:
        sys.path.insert(0, str(HERE))
        from results_file import write_section

        write_section("conv_kernels", text)


if __name__ == "__main__":
    main()
