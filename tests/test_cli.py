"""The ``dltheory`` command line: kernel output, report files, errors, interrupts."""

from __future__ import annotations

import base64
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dltheory import MLP, Estimate
from dltheory.cli import main
from dltheory.report import REGISTRY, Outcome, Reproduction, registered

PNG = b"\x89PNG\r\n\x1a\n"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``main(argv)`` in-process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out, err


def relu_kernels(x: np.ndarray, depth: int, c_w: float, c_b: float):
    """Independent float64 reference: Cho-Saul arc-cosine recursion for NNGP and NTK.

    E[relu(u) relu(v)] = sqrt(k11 k22) (sin t + (pi - t) cos t) / (2 pi),
    E[relu'(u) relu'(v)] = (pi - t) / (2 pi), cos t = k12 / sqrt(k11 k22); NTK
    parametrisation with lambda_w = C_w, lambda_b = C_b (DESIGN.md).
    """
    k = c_b + c_w * x @ x.T / x.shape[1]
    theta = k.copy()
    for _ in range(depth):
        d = np.sqrt(np.diag(k))
        norms = np.outer(d, d)
        cos = np.clip(k / norms, -1.0, 1.0)
        np.fill_diagonal(cos, 1.0)  # exact: arccos loses half the digits next to 1
        t = np.arccos(cos)
        e_ss = norms * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi)
        e_dd = (np.pi - t) / (2 * np.pi)
        k = c_b + c_w * e_ss
        theta = k + c_w * e_dd * theta
    return k, theta


def test_kernel_json_matches_independent_references(capsys):
    code, out, err = run_cli(
        capsys, "kernel", "--depth", "4", "--c-w", "1.7", "--c-b", "0.3", "--n", "4",
        "--dim", "3", "--seed", "7", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) >= {"inputs", "nngp", "ntk", "spec"}
    expected_x = torch.randn(4, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    np.testing.assert_array_equal(np.array(doc["inputs"]), expected_x.numpy())
    k_ref, theta_ref = relu_kernels(expected_x.numpy(), depth=4, c_w=1.7, c_b=0.3)
    np.testing.assert_allclose(doc["nngp"], k_ref, rtol=1e-10)
    np.testing.assert_allclose(doc["ntk"], theta_ref, rtol=1e-10)
    lib = MLP(4, "relu", c_w=1.7, c_b=0.3).kernel(expected_x)
    np.testing.assert_allclose(doc["nngp"], lib.nngp.numpy(), rtol=1e-12)
    np.testing.assert_allclose(doc["ntk"], lib.ntk.numpy(), rtol=1e-12)
    assert doc["spec"]["activation"] == "relu"
    assert doc["spec"]["depth"] == 4
    assert doc["spec"]["c_w"] == 1.7
    assert doc["spec"]["c_b"] == 0.3


def test_kernel_table_shows_the_matrices(capsys):
    code, out, _ = run_cli(capsys, "kernel", "--depth", "2", "--n", "2", "--dim", "2")
    assert code == 0
    x = torch.randn(2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    k_ref, theta_ref = relu_kernels(x.numpy(), depth=2, c_w=2.0, c_b=0.0)
    assert "NNGP" in out and "NTK" in out
    for value in (k_ref[0, 0], k_ref[0, 1], theta_ref[1, 1]):
        assert f"{value:.6g}" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["kernel", "--activation", "rleu"], "--activation must be one of"),
        (["kernel", "--depth", "0"], "--depth must be an integer >= 1. Got 0."),
        (["kernel", "--c-w", "-1"], "--c-w must be a finite variance >= 0. Got -1.0."),
        (["kernel", "--c-b", "-0.5"], "--c-b must be a finite variance >= 0. Got -0.5."),
        (["kernel", "--c-w", "nan"], "--c-w must be a finite variance"),
        (["kernel", "--n", "0"], "--n must be an integer >= 1. Got 0."),
        (["kernel", "--dim", "-2"], "--dim must be an integer >= 1. Got -2."),
        (["kernel", "--slope", "0.1"], "--slope must be given only with --activation leaky_relu"),
        (["criticality", "--alpha", "0.5"], "--alpha must be given only with --activation elu"),
        (["kernel", "--activation", "leaky_relu", "--slope", "nan"], "--slope must be a finite"),
        (["kernel", "--depth", "abc"], "Invalid value for '--depth'"),
        (["kernel", "--bogus"], "No such option: --bogus"),
        (["report"], "--out must be a directory path. Got None."),
        (["report", "--only", "nope", "--out", "{tmp}"], "--only must be the name of a reprod"),
        (["nope"], "No such command 'nope'"),
        (["report", "--out", "{tmp}", "--backend", "ray"], "--backend must be one of 'serial'"),
        (["report", "--out", "{tmp}", "--address", "tcp://h:8786"], "--address must be given"),
        (["report", "--out", "{tmp}", "--workers", "0"], "--workers must be an integer >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, argv, expected):
    argv = [a.replace("{tmp}", str(tmp_path / "out")) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("dltheory: error: ")
    assert expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_entry_point_bad_argument_is_one_line_no_traceback():
    script = Path(sys.executable).with_name("dltheory")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "dltheory.cli"]
    proc = subprocess.run(
        [*cmd, "kernel", "--depth", "0"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr == "dltheory: error: --depth must be an integer >= 1. Got 0.\n"
    assert proc.stdout == ""


def test_help_and_no_command_exit_0(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "kernel" in out and "report" in out
    code, out, _ = run_cli(capsys)
    assert code == 0 and "kernel" in out


def test_report_list(capsys):
    code, out, err = run_cli(capsys, "report", "--list")
    assert code == 0, err
    for name in ("fan_in_variance", "gaussian_outputs"):
        assert name in out


def test_report_quick_fan_in_variance_writes_json_and_html(capsys, tmp_path):
    out_dir = tmp_path / "rep"
    code, out, err = run_cli(
        capsys, "report", "--quick", "--only", "fan_in_variance", "--out", str(out_dir)
    )
    assert code == 0, err
    doc = json.loads((out_dir / "results.json").read_text())
    assert doc["status"] == "complete" and doc["quick"] is True
    (result,) = doc["results"]
    assert result["name"] == "fan_in_variance"
    assert result["status"] == "pass" and result["verdict"] is True
    # He initialisation: K^(l)_aa = 2 |x|^2 / n_0 at every Dense layer, from the recorded input.
    x = np.array(result["details"]["input"])
    depth = result["parameters"]["depth"]
    np.testing.assert_allclose(result["prediction"], [2 * x @ x / len(x)] * (depth + 1))
    measurement = result["measurement"]
    assert len(measurement["mean"]) == depth + 1 and measurement["n"] > 1
    assert result["seconds"] > 0
    page = (out_dir / "report.html").read_text()
    assert result["title"] in page and "pass" in page
    marker = 'src="data:image/png;base64,'
    assert marker in page
    data = page.split(marker, 1)[1].split('"', 1)[0]
    assert base64.b64decode(data).startswith(PNG)
    for external in ("<script", "<link", 'src="http', 'href="http'):
        assert external not in page
    assert "fan_in_variance" in out


def _error_lines(err: str) -> list[str]:
    """The error message lines of stderr (the progress bar also writes there), no traceback."""
    assert "Traceback" not in err
    assert err.endswith("\n")
    return [line for line in err.splitlines() if line.startswith("dltheory: error:")]


def _outcome() -> Outcome:
    return Outcome(prediction=1.0, measurement=Estimate(1.0, 0.1, 10), verdict=True, criterion="c")


@pytest.fixture
def fake_reproductions(monkeypatch):
    """Register 'aa_first' (finishes), 'ab_interrupt' (Ctrl-C) and 'ac_raises'."""
    registered()  # load the real ones first, so the fakes only add to them

    def interrupt(quick=False, seed=0):
        raise KeyboardInterrupt

    def raises(quick=False, seed=0):
        raise RuntimeError("boom\nsecond line")

    fakes = {
        "aa_first": lambda quick=False, seed=0: _outcome(),
        "ab_interrupt": interrupt,
        "ac_raises": raises,
    }
    for name, run in fakes.items():
        monkeypatch.setitem(REGISTRY, name, Reproduction(name, f"Title {name}", "Claim.", run))


def test_report_ctrl_c_exits_130_and_keeps_finished(capsys, tmp_path, fake_reproductions):
    out_dir = tmp_path / "rep"
    code, _, err = run_cli(
        capsys, "report", "--only", "aa_first", "--only", "ab_interrupt", "--out", str(out_dir)
    )
    assert code == 130
    assert _error_lines(err) == [
        f"dltheory: error: interrupted; finished reproductions are saved in {out_dir}"
    ]
    doc = json.loads((out_dir / "results.json").read_text())
    assert doc["status"] == "interrupted"
    assert [r["name"] for r in doc["results"]] == ["aa_first"]
    assert doc["pending"] == ["ab_interrupt"]
    assert "Title aa_first" in (out_dir / "report.html").read_text()


def test_report_error_in_a_reproduction_exits_1_and_records_it(
    capsys, tmp_path, fake_reproductions
):
    out_dir = tmp_path / "rep"
    code, _, err = run_cli(
        capsys, "report", "--only", "ac_raises", "--only", "aa_first", "--out", str(out_dir)
    )
    assert code == 1
    (line,) = _error_lines(err)
    assert line.startswith("dltheory: error: 1 reproduction(s) raised an error; see ")
    doc = json.loads((out_dir / "results.json").read_text())
    assert doc["status"] == "complete"
    statuses = {r["name"]: (r["status"], r["error"]) for r in doc["results"]}
    assert statuses == {
        "aa_first": ("pass", None),
        "ac_raises": ("error", "RuntimeError: boom second line"),
    }


def test_sigint_during_report_exits_130_with_files_intact(tmp_path):
    """A real SIGINT to a running ``dltheory report`` keeps the finished result."""
    out_dir = tmp_path / "rep"
    program = textwrap.dedent(
        """
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from dltheory import Estimate
        from dltheory.cli import main
        from dltheory.report import Outcome, reproduction

        @reproduction("zz_fast", title="Fast one", claim="Finishes.")
        def fast(quick=False, seed=0):
            return Outcome(1.0, Estimate(1.0, 0.1, 10), True, "c")

        @reproduction("zz_slow", title="Slow one", claim="Never finishes.")
        def slow(quick=False, seed=0):
            time.sleep(60)

        main(sys.argv[1:])
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", program, "report", "--out", str(out_dir),
         "--only", "zz_fast", "--only", "zz_slow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    results = out_dir / "results.json"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if results.exists() and json.loads(results.read_text())["results"]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the first reproduction never finished")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert _error_lines(err) == [
        f"dltheory: error: interrupted; finished reproductions are saved in {out_dir}"
    ]
    assert err.splitlines()[-1].startswith("dltheory: error: interrupted")
    doc = json.loads(results.read_text())
    assert doc["status"] == "interrupted"
    assert [r["name"] for r in doc["results"]] == ["zz_fast"]
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".tmp")]
    assert math.isfinite(doc["results"][0]["seconds"])
