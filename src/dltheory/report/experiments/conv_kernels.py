"""Convolutional kernels: CNN-GP / CNTK on digit images; signal propagation in deep CNNs.

Reproductions:

* ``cnn_kernels_digits``: ``load_digits`` as 1 x 8 x 8 images; kernel ridge classifiers
  with the CNN-GP and the CNTK of a ReLU CNN with global average pooling (Novak et al.
  2019; Arora et al. 2019) against the MLP NNGP and an RBF SVC, accuracy with standard
  errors over random splits.
* ``critical_deep_cnn``: a 100-layer ReLU CNN at its critical point (C_w = 2, C_b = 0,
  fan-in C_in k) keeps the same-pixel variance K^(l)(i, i) and the correlation of two
  images at every depth, as the MLP recursion does (Xiao et al. 2018, "Dynamical
  isometry and a mean field theory of CNNs"); off criticality (C_w = 1.5 or 2.5) the
  variance vanishes or explodes as (C_w / 2)^l. Measured on torch CNNs initialised by
  ``critical_init_`` and by hand.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC
from torch import nn

from ...criticality import critical_init_
from ...finite import Estimate
from ...kernels.conv import image_state, plan_layout
from ...kernels.graph import GraphContext, run_layers
from ...parallel import torch_threads
from ...spec import Conv, Dense, GlobalAvgPool, Nonlinearity, Serial
from ...spec.mlp import MLP
from ..figures import new_figure, png_bytes
from ..registry import reproduction
from ..result import Outcome

__all__ = ["cnn_kernels_digits", "critical_deep_cnn"]

_TOPIC = "kernel methods"


def cnn(depth: int, c_w: float = 2.0, c_b: float = 0.1) -> Serial:
    """depth x [Conv 3x3 same, ReLU], global average pooling, Dense readout (rows 1 x 8 x 8)."""
    layers = []
    for _ in range(depth):
        layers += [Conv(None, 3, padding="same", c_w=c_w, c_b=c_b), Nonlinearity("relu")]
    return Serial(*layers, GlobalAvgPool(), Dense(c_w, c_b, width=1), input_shape=(1, 8, 8))


def _ridge_accuracy(k_all: np.ndarray, n_tr: int, y_tr, y_te, alpha: float) -> float:
    """Kernel ridge classification (one-hot targets, ridge alpha x mean diagonal)."""
    k_tr, k_te = k_all[:n_tr, :n_tr], k_all[n_tr:, :n_tr]
    onehot = np.eye(10)[y_tr]
    ridge = alpha * np.mean(np.diag(k_tr))
    coef = np.linalg.solve(k_tr + ridge * np.eye(n_tr), onehot - onehot.mean(0))
    return float(np.mean(np.argmax(k_te @ coef, 1) == y_te))


@reproduction(
    "cnn_kernels_digits",
    title="CNN-GP / CNTK with global average pooling classify digit images",
    claim=(
        "Kernel machines with the infinite-width kernels of a ReLU CNN with global average "
        "pooling (CNN-GP, CNTK), on load_digits as 8 x 8 images, reach at least the test "
        "accuracy of the MLP NNGP on the same pixels and of an RBF SVC."
    ),
    topic=_TOPIC,
    reference="Novak et al. (2019); Arora et al. (2019); Garriga-Alonso et al. (2019)",
)
def cnn_kernels_digits(quick: bool = False, seed: int = 0) -> Outcome:
    """Accuracy (mean +- s.e. over splits) of CNN-GP, CNTK, MLP NNGP, RBF SVC.

    Ridge alpha = 1e-3 x mean diagonal of the training kernel for every kernel; the SVC
    uses its defaults (C = 1, gamma = 'scale'). Pixels are x / 16 (images) and the same
    rows for the MLP and the SVC.
    """
    depth, n_tr, n_te, splits = (2, 60, 60, 2) if quick else (3, 400, 400, 3)
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    spec, mlp = cnn(depth), MLP(depth, "relu", c_w=2.0, c_b=0.1)
    acc = {"CNN-GP": [], "CNTK": [], "MLP NNGP": [], "RBF SVC": []}
    with torch_threads(1):
        for split in range(splits):
            x_tr, x_te, y_tr, y_te = train_test_split(
                x, y, train_size=n_tr, test_size=n_te, random_state=seed + split
            )
            rows = torch.from_numpy(np.concatenate([x_tr, x_te]))
            k = spec.kernel(rows)
            acc["CNN-GP"].append(_ridge_accuracy(k.nngp.numpy(), n_tr, y_tr, y_te, 1e-3))
            acc["CNTK"].append(_ridge_accuracy(k.ntk.numpy(), n_tr, y_tr, y_te, 1e-3))
            k_mlp = mlp.kernel(rows).nngp.numpy()
            acc["MLP NNGP"].append(_ridge_accuracy(k_mlp, n_tr, y_tr, y_te, 1e-3))
            acc["RBF SVC"].append(float(SVC().fit(x_tr, y_tr).score(x_te, y_te)))
    mean = {name: float(np.mean(v)) for name, v in acc.items()}
    # s.e. of a mean accuracy over splits: the binomial error of one split / sqrt(splits)
    # (splits overlap, so their spread understates it).
    se = {name: float(np.sqrt(m * (1 - m) / n_te / splits)) for name, m in mean.items()}
    best = max(mean["CNN-GP"], mean["CNTK"])
    best_name = "CNN-GP" if mean["CNN-GP"] >= mean["CNTK"] else "CNTK"
    reference = max(mean["MLP NNGP"], mean["RBF SVC"])
    verdict = best >= reference - 2 * se[best_name]
    fig, (ax,) = new_figure(1)
    names = list(acc)
    ax.bar(names, [mean[n] for n in names], yerr=[2 * se[n] for n in names], capsize=4)
    ax.set_ylim(min(mean.values()) - 0.1, 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"digits as 8 x 8 images ({n_tr} train / {n_te} test, {splits} splits)")
    summary = "; ".join(f"{n} {mean[n]:.3f} +- {se[n]:.3f}" for n in names)
    return Outcome(
        prediction=reference,
        measurement=Estimate(best, se[best_name], n_te * splits),
        verdict=bool(verdict),
        criterion=("best of CNN-GP / CNTK accuracy >= max(MLP NNGP, RBF SVC) - 2 standard errors"),
        summary=summary,
        parameters={
            "conv_layers": depth,
            "n_train": n_tr,
            "n_test": n_te,
            "splits": splits,
            "alpha": 1e-3,
            "seed": seed,
        },
        details={"accuracy": acc, "mean": mean, "stderr": se},
        figure=png_bytes(fig),
        label="test accuracy A (fraction of test digits), mean over splits",
        tolerance="2σ (binomial standard error of the mean accuracy)",
    )


def _kernel_profile(spec: Serial, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """After each ReLU: E[relu(z)^2] at each pixel averaged over pixels (image 0), and the
    correlation of the two images' same-pixel second moments."""
    body = spec.layers[:-2]  # the conv / ReLU stack (no pooling: the pixel diagonal)
    plan = plan_layout(body, tuple(x.shape[2:]))
    state = image_state(x[:1], x[1:2], full=False)
    ctx = GraphContext()
    variance, correlation = [], []
    for i, layer in enumerate(body):
        state = run_layers((layer,), state, ctx, (plan.full_input[i],))
        if isinstance(layer, Nonlinearity):
            v1, v2 = state.var1.mean(), state.var2.mean()
            variance.append(float(v1))
            correlation.append(float(state.nngp.mean() / torch.sqrt(v1 * v2)))
    return np.array(variance), np.array(correlation)


def _torch_cnn(depth: int, channels: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU()]
    return nn.Sequential(*layers).double()


def _measured_profile(net: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    """(depth, n_images) mean square of the post-activations at each ReLU."""
    out, h = [], x
    with torch.no_grad():
        for module in net:
            h = module(h)
            if isinstance(module, nn.ReLU):
                out.append(h.square().mean((1, 2, 3)).numpy())
    return np.array(out)


@reproduction(
    "critical_deep_cnn",
    title="A critical 100-layer CNN propagates signal; off-critical ones do not",
    claim=(
        "For a ReLU CNN the same-pixel variance obeys the MLP recursion with fan-in "
        "C_in x kernel area: at C_w = 2 it is constant over 100 layers, at C_w = 1.5 / 2.5 "
        "it shrinks / grows as (C_w / 2)^l; torch CNNs initialised by critical_init_ "
        "measure the same."
    ),
    topic="criticality",
    reference="Xiao et al. (2018); Schoenholz et al. (2017)",
)
def critical_deep_cnn(quick: bool = False, seed: int = 0) -> Outcome:
    """Kernel profile vs measured post-activation mean squares of sampled torch CNNs.

    Without biases (C_b = 0) a ReLU layer halves the mean same-pixel variance and the conv
    multiplies it by C_w times the average over the window (zero padding lowers it at the
    border), so the exact kernel recursion, not (C_w / 2)^l, is the prediction. Global
    pooling would average the pixel-pair covariance (not shown): it does not change the
    recursion above it.
    """
    depth, channels, nets = (30, 32, 4) if quick else (100, 48, 8)
    # Digits upsampled to 32 x 32: zero padding makes the window average lose variance at
    # the border (its top eigenvalue is ((1 + 2 cos(pi / (S + 1))) / 3)^2: 0.92 per layer
    # at S = 8, 0.994 at S = 32), so large images isolate the criticality of the bulk.
    small = load_digits().data[:2].reshape(2, 8, 8) / 16.0
    x = torch.from_numpy(np.kron(small, np.ones((4, 4)))[:, None])
    rows = {}
    for c_w in (1.5, 2.0, 2.5):
        layers = []
        for _ in range(depth):
            layers += [Conv(None, 3, padding="same", c_w=c_w, c_b=0.0), Nonlinearity("relu")]
        spec = Serial(*layers, GlobalAvgPool(), Dense(c_w, 0.0, width=1))
        variance, correlation = _kernel_profile(spec, x)
        measured = []
        generator = torch.Generator().manual_seed(seed)
        for _ in range(nets):
            net = _torch_cnn(depth, channels)
            if c_w == 2.0:
                critical_init_(net, generator=generator, activation="relu")
            else:
                with torch.no_grad():
                    for m in net:
                        if isinstance(m, nn.Conv2d):
                            fan_in = m.in_channels * 9
                            m.weight.normal_(0, np.sqrt(c_w / fan_in), generator=generator)
            measured.append(_measured_profile(net, x)[:, 0])
        measured = np.array(measured)
        logs = np.log10(np.maximum(measured, 1e-300))
        rows[c_w] = {
            "kernel_variance": variance,
            "kernel_correlation": correlation,
            "measured_mean": 10 ** logs.mean(0),  # geometric mean over nets
            "measured_se": logs.std(0, ddof=1) / np.sqrt(nets),  # in decades
        }
    crit = rows[2.0]
    # The post-activation mean square over channels and pixels has the kernel's value as
    # its expectation, but its law over nets is close to log-normal with a log-variance
    # growing like depth / channels (the finite-width products of Hanin & Nica 2019), so
    # a few nets are compared in decades: the geometric mean within 1 decade.
    last_pred, last_mean = float(crit["kernel_variance"][-1]), float(crit["measured_mean"][-1])
    last_se = float(crit["measured_se"][-1])
    decades = abs(np.log10(last_mean / last_pred))
    ratio_lo = float(rows[1.5]["kernel_variance"][-1] / rows[1.5]["kernel_variance"][0])
    ratio_hi = float(rows[2.5]["kernel_variance"][-1] / rows[2.5]["kernel_variance"][0])
    flat = float(crit["kernel_variance"][-1] / crit["kernel_variance"][0])
    # Off criticality the variance follows (C_w / 2)^l up to the border losses above.
    expect_lo, expect_hi = 0.75**depth, 1.25**depth
    verdict = (
        decades < 1
        and 0.3 < flat < 3
        and expect_lo / 10 < ratio_lo < expect_lo * 10
        and expect_hi / 10 < ratio_hi < expect_hi * 10
    )
    fig, (ax,) = new_figure(1)
    layers_axis = np.arange(1, depth + 1)
    for c_w, row in rows.items():
        ax.semilogy(layers_axis, row["kernel_variance"], "-", label=f"kernel, C_w = {c_w}")
        ax.plot(layers_axis[::3], row["measured_mean"][::3], "o", ms=3,
                label=f"torch CNNs (geometric mean), C_w = {c_w}")  # fmt: skip
    ax.set_xlabel("layer l")
    ax.set_ylabel("mean same-pixel variance after ReLU")
    ax.legend(fontsize=7)
    return Outcome(
        prediction=last_pred,
        measurement=Estimate(last_mean, last_mean * last_se * np.log(10), nets),
        verdict=bool(verdict),
        criterion=(
            "critical: geometric mean over nets at the last layer within 1 decade of the kernel, "
            "the kernel variance changes by less than 3x over depth; off-critical: it "
            "shrinks / grows as (C_w / 2)^depth within a factor 10"
        ),
        summary=(
            f"C_w = 2: last-layer E[relu^2] {last_mean:.4g} (geometric mean, +-{last_se:.2g} "
            "decades) measured vs "
            f"{last_pred:.4g} kernel (x{flat:.2f} over {depth} layers); C_w = 1.5: x"
            f"{ratio_lo:.2g}; C_w = 2.5: x{ratio_hi:.2g}; critical correlation at the last "
            f"layer {crit['kernel_correlation'][-1]:.4f}"
        ),
        parameters={"depth": depth, "channels": channels, "networks": nets, "seed": seed},
        details={
            str(k): {a: np.asarray(b).tolist() for a, b in v.items()} for k, v in rows.items()
        },
        figure=png_bytes(fig),
        label="mean over pixels of E[relu(z_i)^2] after the last ReLU (input units squared)",
        tolerance="1 decade (log-normal finite-width spread); factor 10 off criticality",
    )
