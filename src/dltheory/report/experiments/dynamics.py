"""Training in the kernel regime (Jacot et al. 2018; Lee et al. 2019; Du et al. 2019).

Reproductions (loss L = 1/(2N) sum_i (f(x_i) - y_i)^2 throughout):

* ``lazy_training_vs_width``: the NTK moves by O(width^-1/2) during training in NTK
  parametrisation (Jacot et al. 2018; Lee et al. 2019), O(1) in mean-field.
* ``linearized_vs_trained``: a wide net trained by GD tracks its linearisation's
  closed-form outputs (I - (eta/N) Theta)^t (Lee et al. 2019, Thm 2.1).
* ``mup_coord_check``: per-coordinate activation updates are flat in width in muP and
  grow in standard parametrisation (Yang & Hu 2021; Yang et al. 2022, Fig. 5).
* ``du_exponential_convergence``: wide two-layer ReLU nets under GD stay below
  L(0)(1 - eta lambda_0 / (2N))^k with lambda_min(Theta_t) >= lambda_0 / 2 (Du et al. 2019).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...dynamics import (
    coord_check,
    du_prediction,
    du_two_layer_spec,
    lambda_0,
    linearized_outputs,
    train,
)
from ...finite import Estimate
from ...parallel import torch_threads
from ...spec import MLP
from ..figures import new_figure, png_bytes
from ..quantities import Quantity
from ..registry import reproduction
from ..result import Outcome

__all__ = [
    "du_exponential_convergence",
    "lazy_training_vs_width",
    "linearized_vs_trained",
    "mup_coord_check",
]

_TOPIC = "training dynamics"


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def _data(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, torch.sin(2 * x[:, :1])


def _slope(widths, logs) -> tuple[float, float]:
    """Least-squares slope of mean log value vs log width, and its SE from seed scatter."""
    lw = np.log(widths)
    slope = float(np.polyfit(lw, logs.mean(1), 1)[0])
    se_pts = logs.std(1, ddof=1) / math.sqrt(logs.shape[1])
    c = lw - lw.mean()
    return slope, float(math.sqrt(np.sum(se_pts**2 * c**2)) / np.sum(c**2))


@reproduction(
    "lazy_training_vs_width",
    title="Lazy training: the NTK drift vanishes with width (NTK param), not in mean field",
    claim=(
        "After a fixed number of GD steps the relative NTK change ||Theta_t - Theta_0||_F / "
        "||Theta_0||_F is O(width^(-1/2)) in NTK parametrisation (Lee et al.'s bound; its "
        "leading term is O(1/width), Roberts, Yaida & Hanin ch. 11), so the fitted log-log "
        "slope lies in [-1, -1/2]; it stays O(1) (slope 0) in mean-field parametrisation."
    ),
    topic=_TOPIC,
    reference=(
        "Jacot et al. (2018); Lee et al. (2019), Thm 2.1; Roberts, Yaida & Hanin (2022), "
        "ch. 11; Chizat et al. (2019)"
    ),
)
def lazy_training_vs_width(quick: bool = False, seed: int = 0) -> Outcome:
    """NTK drift after 20 GD steps (lr 1) of one-hidden-layer tanh nets, over widths."""
    widths = np.array([128, 512, 2048] if quick else [128, 256, 512, 1024, 2048, 4096])
    n_seeds = 3 if quick else 6
    x, y = _data(8, 3, seed)
    drift = {}
    with torch_threads(1):
        for p in ("ntk", "mean_field"):
            logs = []
            for n in widths:
                row = []
                for s in _seeds(seed, n_seeds):
                    net = MLP(1, "tanh", parametrization=p).sample(
                        int(n), in_dim=3, seed=s, dtype=torch.float64
                    )
                    tr = train(net, x, y, lr=1.0, steps=20, track=("ntk_drift",), every=20)
                    row.append(math.log(tr.values["ntk_drift"][-1]))
                logs.append(row)
            drift[p] = np.array(logs)
    slope, se = _slope(widths, drift["ntk"])
    mf_slope, mf_se = _slope(widths, drift["mean_field"])
    tol = 0.1 + 3 * se
    verdict = -1 - tol < slope < -0.5 + tol and abs(mf_slope) < 0.1 + 3 * mf_se
    fig, (ax,) = new_figure(1)
    for p, label in (("ntk", "NTK param"), ("mean_field", "mean field")):
        ax.loglog(widths, np.exp(drift[p].mean(1)), "o-", label=label)
    ax.loglog(
        widths,
        np.exp(drift["ntk"].mean(1))[0] * (widths / widths[0]) ** -0.5,
        "k:",
        label=r"$\propto n^{-1/2}$",
    )
    ax.set_xlabel("width n")
    ax.set_ylabel(r"$\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F$ after 20 GD steps")
    ax.legend(fontsize=8)
    n_fit = len(widths) * n_seeds
    return Outcome(
        prediction=-0.5,
        measurement=Estimate(slope, se, n_fit),
        verdict=verdict,
        label="log-log slope of the NTK drift ||Theta_t - Theta_0||_F / ||Theta_0||_F vs width "
        "(NTK parametrisation; dimensionless exponent)",
        kind="bound",
        bound="upper",
        tolerance=f"0.1 + 3 SE = {tol:.2f} on each end of [-1, -1/2]; 0.1 + 3 SE for mean field",
        rows=[
            Quantity(
                "slope, NTK parametrisation (leading O(1/width) term)",
                -1.0,
                Estimate(slope, se, n_fit),
                "lower end of the predicted range",
                bound="lower",
            ),
            Quantity(
                "slope, mean-field parametrisation",
                0.0,
                Estimate(mf_slope, mf_se, n_fit),
                "O(1) drift: slope 0",
            ),
        ],
        caption=(
            "Relative NTK change after 20 GD steps against width (geometric mean over seeds): "
            "NTK parametrisation, mean-field parametrisation, and a width^(-1/2) guide."
        ),
        criterion=(
            "-1 - (0.1 + 3 SE) < slope_ntk < -0.5 + 0.1 + 3 SE and |slope_mean_field| < 0.1 + 3 SE"
        ),
        summary=(
            f"log-log slope of NTK drift: {slope:.3f} +- {se:.3f} (NTK param), "
            f"{mf_slope:.3f} +- {mf_se:.3f} (mean field)"
        ),
        parameters={"widths": widths.tolist(), "n_seeds": n_seeds, "steps": 20, "lr": 1.0},
        details={
            "mean_log_drift_ntk": drift["ntk"].mean(1).tolist(),
            "mean_log_drift_mean_field": drift["mean_field"].mean(1).tolist(),
            "mean_field_slope": mf_slope,
            "mean_field_slope_se": mf_se,
        },
        figure=png_bytes(fig),
    )


@reproduction(
    "linearized_vs_trained",
    title="A wide net trained by GD follows its linearisation",
    claim=(
        "Train and test outputs of a wide one-hidden-layer net under GD stay within 2 % of "
        "f_lin(t) = y + (I - (eta/N) Theta_0)^t (f_0 - y) (test: through Theta_{*X} Theta^-1)."
    ),
    topic=_TOPIC,
    reference="Lee et al. (2019), Eqs. 9-11 and Thm 2.1",
)
def linearized_vs_trained(quick: bool = False, seed: int = 0) -> Outcome:
    """Relative deviation ||f_t - f_lin,t|| / ||f_lin,t|| along training."""
    width = 4096
    spec = MLP(1, "tanh", c_w=1.0, c_b=0.1)
    x, y = _data(6 if quick else 10, 2, seed)
    xt, _ = _data(8 if quick else 32, 2, seed + 10**6)
    times = list(range(0, 61, 5))
    with torch_threads(1):
        net = spec.sample(width, in_dim=2, seed=_seeds(seed, 1)[0], dtype=torch.float64)
        lr = len(x) / float(torch.linalg.eigvalsh(spec.kernel(x).ntk)[-1])
        pred = linearized_outputs(net, x, y, xt, lr=lr, t=times)
        devs, outs, done = [], [], 0
        for i, s in enumerate(times):
            train(net, x, y, lr=lr, steps=s - done, track=())
            done = s
            with torch.no_grad():
                ftr, fte = net(x), net(xt)
            outs.append(fte[:4, 0].tolist())
            devs.append(
                max(
                    float(
                        torch.linalg.norm(ftr - pred.train[i]) / torch.linalg.norm(pred.train[i])
                    ),
                    float(torch.linalg.norm(fte - pred.test[i]) / torch.linalg.norm(pred.test[i])),
                )
            )
    worst = max(devs)
    fig, (ax1, ax2) = new_figure(2)
    outs = np.array(outs)
    for j in range(4):
        ax1.plot(times, outs[:, j], "o", ms=3)
        ax1.plot(times, pred.test[:, j, 0].numpy(), "-", lw=1)
    ax1.set_xlabel("GD step t")
    ax1.set_ylabel(r"test output $f_t(x)$")
    ax1.set_title("test outputs: trained (dots), linearised (lines)")
    ax2.plot(times, devs, "o-", label="measured")
    ax2.axhline(0.02, color="r", ls="--", label="criterion 0.02")
    ax2.set_xlabel("GD step t")
    ax2.set_ylabel(r"$\|f_t - f^{lin}_t\| / \|f^{lin}_t\|$")
    ax2.legend(fontsize=8)
    return Outcome(
        prediction=0.02,
        measurement=Estimate(worst, 0.0, len(times)),
        verdict=worst < 0.02,
        label="max over steps of ||f_t - f_lin,t|| / ||f_lin,t||, train and test (relative)",
        kind="bound",
        bound="upper",
        exact=True,
        tolerance="2 % (relative), the claim's own slack",
        caption=(
            "Left: four test outputs along GD, trained network (dots) and linearisation "
            "(lines). Right: the relative deviation, train and test together, and the 2 % "
            "criterion."
        ),
        criterion="max over steps of relative train/test deviation < 0.02",
        summary=f"width {width}: max relative deviation from the linearisation {worst:.2e}",
        parameters={
            "width": width,
            "lr": lr,
            "steps": times[-1],
            "n_train": len(x),
            "n_test": len(xt),
        },
        details={"deviation": devs, "times": times},
        figure=png_bytes(fig),
    )


@reproduction(
    "mup_coord_check",
    title="muP coordinate check: activation updates flat in width",
    claim=(
        "After a few SGD steps at a fixed learning rate, every layer's mean |h_t - h_0| is "
        "independent of width in muP, and grows with width in standard parametrisation."
    ),
    topic=_TOPIC,
    reference="Yang & Hu (2021), Table 3; Yang et al. (2022), Fig. 5",
)
def mup_coord_check(quick: bool = False, seed: int = 0) -> Outcome:
    """coord_check on a depth-2 ReLU MLP, muP vs standard."""
    widths = [64, 256, 1024] if quick else [64, 128, 256, 512, 1024, 2048]
    n_seeds = 2 if quick else 4
    with torch_threads(1):
        mup = coord_check(
            MLP(2, "relu", c_w=2.0, parametrization="mup"),
            widths,
            3,
            lr=0.05,
            n_seeds=n_seeds,
            seed=seed,
        )
        std = coord_check(
            MLP(2, "relu", c_w=2.0, parametrization="standard"),
            widths,
            3,
            lr=0.05,
            n_seeds=n_seeds,
            seed=seed,
        )
    s_mup, s_std = mup.slopes(), std.slopes()
    worst = float(np.max(np.abs(s_mup)))
    verdict = worst < 0.2 and float(np.max(s_std)) > 0.5
    fig, (ax1, ax2) = new_figure(2)
    for ax, cc, name in ((ax1, mup, "muP"), (ax2, std, "standard")):
        for j, layer in enumerate(cc.layers):
            ax.loglog(cc.widths, cc.change[:, -1, j], "o-", label=f"layer {layer}")
        ax.set_title(f"{name}: mean |h_3 - h_0|")
        ax.set_xlabel("width n")
        ax.set_ylabel(r"mean $|h_3 - h_0|$ per coordinate")
    ax1.legend(fontsize=8)
    layers = [str(layer) for layer in mup.layers]
    return Outcome(
        prediction=[0.2] * len(s_mup),
        measurement=Estimate(np.abs(s_mup).tolist(), [0.0] * len(s_mup), len(widths) * n_seeds),
        verdict=verdict,
        label="|s|, log-log slope of mean |h_3 - h_0| vs width, muP (dimensionless exponent)",
        index=layers,
        index_label="layer",
        kind="bound",
        bound="upper",
        exact=True,
        tolerance="|s| < 0.2 for muP (width-independent); s > 0.5 for some standard layer",
        rows=[
            Quantity(
                "largest slope, standard parametrisation",
                0.5,
                float(np.max(s_std)),
                "grows with width",
                bound="lower",
            )
        ],
        caption=(
            "Mean coordinate change of each layer's activations after 3 SGD steps against "
            "width: flat in muP (left), growing in standard parametrisation (right)."
        ),
        criterion="every muP layer's log-log slope |s| < 0.2; some standard layer's slope > 0.5",
        summary=(
            f"slopes of mean |h_t - h_0| vs width: muP {np.round(s_mup, 3).tolist()}, "
            f"standard {np.round(s_std, 3).tolist()}"
        ),
        parameters={"widths": widths, "n_seeds": n_seeds, "steps": 3, "lr": 0.05},
        details={"mup_slopes": s_mup.tolist(), "standard_slopes": s_std.tolist()},
        figure=png_bytes(fig),
    )


@reproduction(
    "du_exponential_convergence",
    title="Du et al.: exponential convergence of wide two-layer ReLU nets",
    claim=(
        "GD on a wide two-layer ReLU net (first layer trained) keeps L(k) <= "
        "(1 - eta lambda_0 / (2N))^k L(0) and lambda_min(Theta_k) >= lambda_0 / 2, so the "
        "loss decays exponentially at least at the envelope's rate."
    ),
    topic=_TOPIC,
    reference="Du et al. (2019), Thm 4.1 (loss Phi = N L, step eta / N)",
)
def du_exponential_convergence(quick: bool = False, seed: int = 0) -> Outcome:
    """Measured loss vs envelope; fitted late decay rate vs the empirical-kernel rate."""
    n, width, steps = (6, 2048, 150) if quick else (10, 8192, 400)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    spec = du_two_layer_spec(3)
    lam0 = lambda_0(spec, x)
    lam_max = float(torch.linalg.eigvalsh(spec.kernel(x).ntk)[-1])
    lr = 0.5 * n / lam_max
    with torch_threads(1):
        net = spec.sample(width, seed=_seeds(seed, 1)[0], dtype=torch.float64)
        tr = train(
            net,
            x,
            y,
            lr=lr,
            steps=steps,
            every=max(steps // 30, 1),
            track=("loss", "ntk_lambda_min"),
        )
    pred = du_prediction(lam0, float(tr.values["loss"][0]), n, width, lr, steps)
    loss, ks = tr.values["loss"], tr.steps
    under = bool(np.all(loss <= pred.envelope[ks] * (1 + 1e-12)))
    floor = bool(np.all(tr.values["ntk_lambda_min"] >= pred.ntk_floor))
    late = ks >= steps // 2
    rate = float(-np.polyfit(ks[late], np.log(loss[late]), 1)[0])
    kernel_rate = -2 * math.log(1 - lr * float(tr.values["ntk_lambda_min"][-1]) / n)
    envelope_rate = -math.log(pred.rate)
    fig, (ax1, ax2) = new_figure(2)
    ax1.semilogy(ks, loss, "o-", ms=3, label="measured L(k)")
    ax1.semilogy(
        np.arange(steps + 1), pred.envelope, "r--", label=r"$(1 - \eta \lambda_0 / 2N)^k L(0)$"
    )
    ax1.set_xlabel("GD step k")
    ax1.set_ylabel("training loss L(k)")
    ax1.legend(fontsize=8)
    ax2.plot(ks, tr.values["ntk_lambda_min"], "o-", ms=3, label=r"$\lambda_{\min}(\Theta_k)$")
    ax2.axhline(lam0, color="k", ls=":", label=r"$\lambda_0$")
    ax2.axhline(lam0 / 2, color="r", ls="--", label=r"$\lambda_0 / 2$")
    ax2.set_xlabel("GD step k")
    ax2.set_ylabel(r"smallest NTK eigenvalue $\lambda_{\min}(\Theta_k)$")
    ax2.legend(fontsize=8)
    ratio = float(np.max(loss / pred.envelope[ks]))
    verdict = under and floor and rate >= envelope_rate
    return Outcome(
        prediction=envelope_rate,
        measurement=Estimate(rate, 0.0, int(late.sum())),
        verdict=verdict,
        label="late loss decay rate -d log L / dk (fitted, per GD step)",
        kind="bound",
        bound="lower",
        exact=True,
        tolerance="none beyond float round-off (1e-12 relative on the envelope)",
        rows=[
            Quantity(
                "max_k L(k) / envelope(k)", 1.0, ratio, "loss under the envelope", bound="upper"
            ),
            Quantity(
                "min_k lambda_min(Theta_k)",
                lam0 / 2,
                float(np.min(tr.values["ntk_lambda_min"])),
                "NTK floor lambda_0 / 2",
                bound="lower",
            ),
        ],
        caption=(
            "Left: the training loss against Du et al.'s envelope. Right: the smallest NTK "
            "eigenvalue along training against lambda_0 and the floor lambda_0 / 2."
        ),
        criterion=(
            "loss <= envelope at every recorded step; lambda_min(Theta_k) >= lambda_0 / 2; "
            "fitted late decay rate >= the envelope's -log(1 - eta lambda_0 / (2N))"
        ),
        summary=(
            f"lambda_0 = {lam0:.4f}; late rate {rate:.4f} vs kernel rate {kernel_rate:.4f} "
            f"(envelope rate {envelope_rate:.4f}); under envelope: {under}; NTK floor: {floor}"
        ),
        parameters={"n": n, "width": width, "steps": steps, "lr": lr},
        details={
            "lambda_0": lam0,
            "envelope_rate": envelope_rate,
            "kernel_rate_lambda_min_theta_t": kernel_rate,
            "weight_movement_bound": pred.weight_movement,
            "lambda_min_ntk": tr.values["ntk_lambda_min"].tolist(),
        },
        figure=png_bytes(fig),
    )
