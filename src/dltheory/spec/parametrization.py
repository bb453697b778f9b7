"""Per-layer scalings of the four parametrisations (data read by the module builder).

Written in the form "initial variance of W, effective learning-rate factor of W"
with a global learning rate eta: a layer trained by (S)GD with lr eta moves W by
eta * lr_factor * grad_W L. Any abc-parametrisation (Yang & Hu 2021, "Tensor
programs IV", Sec. 3: W = n^{-a} w, w ~ N(0, n^{-2b}), lr eta n^{-c}) reduces to this
form for SGD by the symmetry (a, b, c) -> (a + s, b - s, c - 2s). ``n`` is the width
(fan_in of hidden and readout layers, fan_out of the input layer), ``d`` = n_0.

| parametrisation | layer | Var W | lr factor of W | lr factor of b |
|---|---|---|---|---|
| standard | all | C_w / fan_in | lr_w (1) | lr_b (1) |
| ntk | all | C_w / fan_in | lr_w / fan_in (lr_w = C_w) | lr_b (= C_b) |
| mup | input | C_w / d | lr_w * n | lr_b * n |
| mup | hidden | C_w / n | lr_w | lr_b * n |
| mup | readout | C_w / n^2 | lr_w / n | lr_b |
| mean_field | input | C_w / d | n * lr_w / d (lr_w = C_w) | n * lr_b (= C_b) |
| mean_field | hidden | C_w / n | lr_w | n * lr_b |
| mean_field | readout | C_w / n^2 | lr_w / n | lr_b |

The muP rows are Table 3 of Yang & Hu 2021 (and Table 3 of Yang et al. 2022,
"Tensor programs V", SGD column: input weights and all biases lr eta * fan_out,
output weights init variance 1/fan_in^2 and lr eta / fan_in, hidden weights init
1/fan_in and lr eta). Mean field: NTK parametrisation with the readout multiplier
1/n instead of 1/sqrt(n) and every learning rate scaled by n (the readout bias is
not scaled, so the output moves by O(1) per step); for SGD it coincides with muP
up to the constant factors C_w, d (Yang & Hu 2021, Sec. 5: muP is the deep
extension of the mean-field limit).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = ["LayerScaling", "Role", "layer_scaling"]

Role = Literal["input", "hidden", "readout"]


class LayerScaling(NamedTuple):
    """Initial variances and effective learning-rate factors of one dense layer."""

    w_var: float
    b_var: float
    w_lr: float
    b_lr: float


def layer_scaling(
    parametrization: str,
    role: Role,
    fan_in: int,
    fan_out: int,
    c_w: float,
    c_b: float,
    lr_w: float | None,
    lr_b: float | None,
) -> LayerScaling:
    """One row of the module docstring's table.

    >>> layer_scaling("mup", "readout", 100, 1, 1.0, 0.0, None, None).w_var
    0.0001
    """
    if parametrization in ("ntk", "mean_field"):
        lw = c_w if lr_w is None else lr_w
        lb = c_b if lr_b is None else lr_b
    else:
        lw = 1.0 if lr_w is None else lr_w
        lb = 1.0 if lr_b is None else lr_b
    if parametrization == "standard":
        return LayerScaling(c_w / fan_in, c_b, lw, lb)
    if parametrization == "ntk":
        return LayerScaling(c_w / fan_in, c_b, lw / fan_in, lb)
    if role == "readout":
        return LayerScaling(c_w / fan_in**2, c_b, lw / fan_in, lb)
    width = fan_out if role == "input" else fan_in
    if parametrization == "mup":
        w_lr = lw * fan_out if role == "input" else lw
        return LayerScaling(c_w / fan_in, c_b, w_lr, lb * fan_out)
    # mean_field: NTK rates times the width
    return LayerScaling(c_w / fan_in, c_b, width * lw / fan_in, width * lb)
