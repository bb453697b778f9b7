"""``dltheory criticality``: printed and JSON numbers, the plot, errors."""

from __future__ import annotations

import json

import pytest
import torch

from dltheory.activations import activation
from dltheory.cli import main
from dltheory.criticality import chi_parallel, chi_perp, critical_point

PNG = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out, err


def json_of(capsys, name: str) -> dict:
    code, out, err = run_cli(capsys, "criticality", "--activation", name, "--json")
    assert code == 0, err
    return json.loads(out)


def test_relu_is_he_init_exactly(capsys):
    doc = json_of(capsys, "relu")
    assert (doc["c_b"], doc["c_w"], doc["k_star"]) == (0.0, 2.0, None)
    assert doc["universality_class"] == "scale_invariant"
    # Scale-invariant: evaluated at K = 1; E[relu'^2] = 1/2 and E[relu^2] = K/2 exactly.
    assert doc["k_evaluated"] == 1.0
    assert doc["chi_perp"] == pytest.approx(1.0, abs=1e-12)
    assert doc["chi_parallel"] == pytest.approx(1.0, abs=1e-12)


def test_tanh_is_k_star_zero_with_the_one_over_two_l_law(capsys):
    doc = json_of(capsys, "tanh")
    assert (doc["c_b"], doc["c_w"], doc["k_star"]) == (0.0, 1.0, 0.0)  # tanh'(0) = 1
    assert doc["universality_class"] == "k_star_zero"
    # tanh z = z - z^3/3: a_1 = 6 s_3 / s_1 = -2.
    assert doc["a_1"] == pytest.approx(-2.0, abs=1e-12)
    assert doc["decay_law"] == "K^(l) ~ 1 / (2 l)"
    assert doc["chi_perp"] == pytest.approx(1.0, abs=1e-12)


def test_gelu_numbers_solve_the_three_criticality_equations(capsys):
    doc = json_of(capsys, "gelu")
    c_b, c_w, k = doc["c_b"], doc["c_w"], doc["k_star"]
    assert doc["universality_class"] == "nonzero_k_star"
    fixed = c_b + c_w * float(
        activation("gelu").second_moment(torch.tensor(k, dtype=torch.float64))
    )
    assert fixed == pytest.approx(k, abs=1e-8)
    assert float(chi_parallel("gelu", c_w, k)) == pytest.approx(1.0, abs=1e-8)
    assert float(chi_perp("gelu", c_w, k)) == pytest.approx(1.0, abs=1e-8)
    assert doc["chi_parallel"] == pytest.approx(1.0, abs=1e-8)
    assert doc["reason"] == critical_point("gelu").reason


def test_table_output_shows_the_point_and_the_reason(capsys):
    code, out, err = run_cli(capsys, "criticality", "--activation", "gelu")
    assert code == 0, err
    cp = critical_point("gelu")
    assert f"{cp.c_w:.6g}" in out and f"{cp.c_b:.6g}" in out and f"{cp.k_star:.6g}" in out
    assert "nonzero_k_star" in out and "Half-stable" in out


def test_sigmoid_reports_no_critical_point(capsys):
    doc = json_of(capsys, "sigmoid")
    assert doc["universality_class"] == "none"
    assert doc["c_w"] is None and doc["chi_perp"] is None
    assert doc["reason"].startswith("No critical point")


def test_plot_writes_a_png(capsys, tmp_path):
    path = tmp_path / "tanh.png"
    code, _out, err = run_cli(
        capsys, "criticality", "--activation", "tanh", "--plot", str(path), "--depth", "10"
    )
    assert code == 0, err
    assert path.read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--activation", "relux"], "activation must be one of"),
        (["--activation", "sigmoid", "--plot", "x.png"], "with a critical point to plot"),
        (["--activation", "tanh", "--depth", "0"], "depth must be an integer >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, text):
    code, _out, err = run_cli(capsys, "criticality", *argv)
    assert code == 2
    assert err.count("\n") == 1 and text in err
