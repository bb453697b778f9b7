"""Loss Hessian and classifiers (Papyan 2020; Gur-Ari et al. 2018) on scikit-learn's load_digits.

Reproductions:

* ``hessian_class_outliers``: a trained MLP's cross-entropy Hessian has about C
  outliers above the bulk, and its top-C eigenspace lies in the span of Papyan's
  class and cross-class mean gradients (Papyan 2019, 2020; Sagun et al. 2017).
* ``neural_collapse_training``: training far past zero error makes NC1 fall by
  orders of magnitude while NC2-NC4 move toward collapse (Papyan, Han & Donoho 2020).
* ``gradient_top_subspace``: during SGD the gradient lies mostly in the top-C
  Hessian eigenspace (Gur-Ari, Roberts & Dyer 2018).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from ...curvature import (
    gauss_newton_decomposition,
    gradient_overlap,
    hessian_spectral_density,
    neural_collapse,
)
from ...finite import Estimate
from ..figures import new_figure, png_bytes
from ..quantities import Quantity
from ..registry import reproduction
from ..result import Outcome

__all__ = ["gradient_top_subspace", "hessian_class_outliers", "neural_collapse_training"]

_TOPIC = "loss Hessian"
_C = 10


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _digits(n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """load_digits (X / 16, float64); n balanced samples (n / 10 per class) or all."""
    from sklearn.datasets import load_digits

    X, Y = load_digits(return_X_y=True)
    x = torch.tensor(X / 16.0, dtype=torch.float64)
    y = torch.tensor(Y, dtype=torch.long)
    if n is None:
        return x, y
    g = torch.Generator().manual_seed(seed)
    per = n // _C
    idx = torch.cat(
        [
            torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:per]]
            for c in range(_C)
        ]
    )
    return x[idx], y[idx]


def _mlp(
    widths: tuple[int, ...], seed: int, activation: type[torch.nn.Module] = torch.nn.Tanh
) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for a, b in zip(widths[:-2], widths[1:-1], strict=True):  # noqa: RUF007
        layers += [torch.nn.Linear(a, b), activation()]
    layers.append(torch.nn.Linear(widths[-2], widths[-1]))
    return torch.nn.Sequential(*layers).double()


@reproduction(
    "hessian_class_outliers",
    title="Hessian outliers: about C eigenvalues above the bulk, located by class means",
    claim=(
        "The cross-entropy Hessian of a trained C-class classifier has about C outliers "
        "separated from a bulk; its top-C eigenspace lies in the span of the class-mean "
        "and cross-class-mean gradients (C^2 of P directions)."
    ),
    topic=_TOPIC,
    reference="Papyan (2019), Sec. 4; Papyan (2020); Sagun et al. (2017)",
)
def hessian_class_outliers(quick: bool = False, seed: int = 0) -> Outcome:
    """Papyan's decomposition of the GGN of a load_digits MLP trained with Adam."""
    n, widths, steps = (400, (64, 32, 32, 10), 300) if quick else (None, (64, 128, 128, 10), 300)
    x, y = _digits(n, seed)
    net = _mlp(widths, seed)
    loss_fn = torch.nn.functional.cross_entropy
    with _threads(1 if quick else torch.get_num_threads()):
        opt = torch.optim.Adam(net.parameters(), lr=1e-2 if quick else 1e-3)
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()
        d = gauss_newton_decomposition(net, (x, y), k=2 * _C, tol=1e-3, seed=seed)
        density = hessian_spectral_density(
            net,
            loss_fn,
            (x, y),
            n_probes=3 if quick else 6,
            n_steps=40 if quick else 80,
            deflate=2 * _C,
            seed=seed,
        )
    evals = d.hessian_eigenvalues
    bulk_edge = float(d.within_eigenvalues[0])  # top of the within-class (bulk) part
    n_out = int((evals > bulk_edge).sum())
    overlap = d.class_cross_overlap[:_C]
    mean_overlap = float(overlap.mean())
    P = sum(p.numel() for p in net.parameters())
    verdict = bool(_C - 3 <= n_out <= _C + 3 and mean_overlap > 0.5)
    fig, (ax1, ax2) = new_figure(2)
    ax1.semilogy(
        density.grid.numpy(),
        np.maximum(density.density.numpy(), 1e-8),
        lw=1,
        label="SLQ density of H",
    )
    for i, e in enumerate(evals.tolist()):
        ax1.axvline(
            e,
            color="C3" if e > bulk_edge else "0.6",
            lw=0.8,
            ls="--",
            label="top eigenvalues of H" if i == 0 else None,
        )
    ax1.axvline(bulk_edge, color="k", lw=1, label=r"bulk edge $\lambda_{\max}(G_2)$")
    ax1.set_ylim(1e-6, None)
    ax1.set_xlabel(r"eigenvalue $\lambda$ of the loss Hessian $H$")
    ax1.set_ylabel("spectral density (SLQ)")
    ax1.legend(fontsize=7)
    k = np.arange(1, len(evals) + 1)
    ax2.plot(k, d.class_overlap.numpy(), "o-", label=r"in span$\{g_c\}$ (class means)")
    ax2.plot(k, d.class_cross_overlap.numpy(), "s-", label=r"in span$\{g_c, g_{cc'}\}$")
    ax2.axvline(_C + 0.5, color="0.6", ls=":")
    ax2.set_xlabel(r"Hessian eigenvector index $j$")
    ax2.set_ylabel(r"$\|P v_j\|^2$ (fraction of $v_j$ in the span)")
    ax2.legend(fontsize=7)
    return Outcome(
        prediction=_C,
        measurement=Estimate(n_out, 0.0, 1),
        verdict=verdict,
        label="number of Hessian eigenvalues above the bulk edge λ_max(G_2) (a count; C = 10)",
        kind="exact",
        tolerance="C ± 3 eigenvalues; mean overlap > 0.5",
        rows=[
            Quantity(
                "mean ||P v_j||^2 of the top-C eigenvectors on span{g_c, g_cc'}",
                0.5,
                mean_overlap,
                f"a random C^2-dim subspace gives {_C * _C / P:.1e}",
                bound="lower",
            )
        ],
        caption=(
            "Left: spectral density of H (SLQ, deflated), its top eigenvalues (red: above "
            "the bulk edge) and the bulk edge. Right: the fraction of each top eigenvector "
            "in the span of the class-mean gradients and of the class and cross-class ones."
        ),
        criterion=(
            "C-3 <= #(Hessian eigenvalues above lambda_max(G_2)) <= C+3 and the top-C "
            "eigenvectors have mean squared projection > 0.5 on span{g_c, g_cc'}"
        ),
        summary=(
            f"{n_out} eigenvalues above the bulk edge {bulk_edge:.3g} (C = {_C}); top-C "
            f"eigenvectors {mean_overlap:.0%} in span of class/cross-class means "
            f"({_C * _C} of {P} directions); class-mean share of top-2C curvature "
            f"{d.shares['class']:.0%}"
        ),
        parameters={"n": n or 1797, "widths": list(widths), "adam_steps": steps, "seed": seed},
        details={
            "hessian_eigenvalues": evals.tolist(),
            "class_eigenvalues": d.class_eigenvalues.tolist(),
            "cross_eigenvalues": d.cross_eigenvalues[: 2 * _C].tolist(),
            "within_eigenvalues": d.within_eigenvalues.tolist(),
            "shares": d.shares,
            "class_overlap": d.class_overlap.tolist(),
            "class_cross_overlap": d.class_cross_overlap.tolist(),
        },
        figure=png_bytes(fig),
    )


# (samples, width, Adam steps); samples: a balanced subset of load_digits. With all 1797
# digits this 64-64 MLP interpolates only late (step ~400) and NC1 then falls < 2x in
# 20,000 steps; 300 digits (30 per class) keep it in the regime of Papyan et al., whose
# networks fit their training sets early and then train hundreds of epochs past it.
_NC_QUICK = (200, 64, 1000)
_NC_FULL = (300, 64, 20000)


@reproduction(
    "neural_collapse_training",
    title="Neural collapse: NC1 falls by orders of magnitude past zero training error",
    claim=(
        "Training far past zero error, within-class variability collapses "
        "(NC1 = tr(Sigma_W Sigma_B^+)/C -> 0), class means and classifier approach a "
        "simplex ETF and each other, and the net decides like the nearest class mean."
    ),
    topic=_TOPIC,
    reference=(
        "Papyan, Han & Donoho (2020), Figs. 4-9; Han, Papyan & Donoho (2022), "
        "MSE loss with weight decay"
    ),
)
def neural_collapse_training(quick: bool = False, seed: int = 0) -> Outcome:
    """NC1-NC4 of the penultimate features of a load_digits MLP along training.

    The set-up of the terminal phase in Papyan, Han & Donoho (2020) and Han, Papyan &
    Donoho (2022): the MSE loss on one-hot targets with weight decay (an L2 penalty
    of 1e-3, as ``torch.optim.Adam(weight_decay=...)`` adds it to the gradient), a
    step decay of the learning rate, and a ReLU network trained long past zero
    error (20,000 full-batch steps; quick: 1,000 on 200 digits). With cross-entropy,
    a tanh net and no weight decay, NC1 fell only 3x past zero error.
    """
    n, width, steps = _NC_QUICK if quick else _NC_FULL
    lr, weight_decay, factor = 1e-2, 1e-3, 10.0
    x, y = _digits(n, seed)
    net = _mlp((64, width, width, _C), seed, activation=torch.nn.ReLU)
    body, head = net[:-1], net[-1]
    target = torch.nn.functional.one_hot(y, _C).to(x.dtype)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    # Step decay of the learning rate (/10 at 1/2 and 3/4 of training), as Papyan et al.
    schedule = torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 2, 3 * steps // 4], 0.1)
    checkpoints = set(np.unique(np.geomspace(10, steps, 24).astype(int)).tolist())
    rows, zero_error_step = [], None

    def record(step: int, err: float) -> None:
        with torch.no_grad():
            h = body(x)
            rows.append((step, err, neural_collapse(h, y, head.weight, head.bias)))

    with _threads(1 if quick else torch.get_num_threads()):
        for step in range(steps + 1):
            out = net(x)
            err = float((out.argmax(1) != y).double().mean())
            # The terminal phase starts at the first step of zero training error: record
            # NC there exactly, not at the next checkpoint of the geometric grid.
            first = err == 0.0 and zero_error_step is None
            if first:
                zero_error_step = step
            if step in checkpoints or first or step == steps:
                record(step, err)
            if step < steps:
                opt.zero_grad()
                # Han et al. (2022): (1/2N) sum_i |f(x_i) - e_{y_i}|^2.
                (0.5 * ((out - target) ** 2).sum(1).mean()).backward()
                opt.step()
                schedule.step()
    steps_arr = np.array([r[0] for r in rows])
    nc1 = np.array([r[2].nc1 for r in rows])
    nc2 = np.array([r[2].max_angle_means for r in rows])
    nc3 = np.array([r[2].self_duality for r in rows])
    nc4 = np.array([r[2].ncc_mismatch for r in rows])
    start = next((i for i, r in enumerate(rows) if r[0] == zero_error_step), None)
    s0 = start or 0
    drop = 0.0 if start is None else float(nc1[start] / max(nc1[-1], 1e-300))
    verdict = bool(
        start is not None
        and drop >= factor
        and nc2[-1] < nc2[start]
        and nc3[-1] < nc3[start]
        and nc4[-1] <= nc4[start]
    )
    fig, (ax1, ax2) = new_figure(2)
    ax1.loglog(steps_arr, nc1, "o-", label=r"NC1 $= \mathrm{tr}(\Sigma_W \Sigma_B^+)/C$")
    if zero_error_step is not None:
        ax1.axvline(zero_error_step, color="0.5", ls=":", label="zero training error")
        ax1.axhline(
            nc1[s0] / factor,
            color="C3",
            ls="--",
            lw=1,
            label=rf"NC1 at zero error / {factor:g} (criterion)",
        )
    ax1.set_xlabel("Adam step")
    ax1.set_ylabel("NC1 (dimensionless)")
    ax1.legend(fontsize=7)
    ax2.semilogx(steps_arr, nc2, "o-", label=r"NC2: mean $|\cos + 1/(C-1)|$ (class means)")
    ax2.semilogx(steps_arr, nc3, "s-", label=r"NC3: $\|W/\|W\|_F - M/\|M\|_F\|_F^2$")
    ax2.semilogx(steps_arr, nc4, "^-", label="NC4: mismatch with nearest class mean")
    ax2.set_xlabel("Adam step")
    ax2.set_ylabel("NC2, NC3, NC4 (dimensionless)")
    ax2.legend(fontsize=7)
    return Outcome(
        prediction=factor,
        measurement=Estimate(drop, 0.0, 1),
        verdict=verdict,
        criterion=(
            f"NC1 falls by >= {factor:g}x from the first step of zero training error to the end "
            f"({steps} steps), and NC2, NC3 decrease and NC4 does not increase over the same span"
        ),
        summary=(
            f"zero training error at step {zero_error_step}; NC1 falls {drop:.1f}x, "
            f"{nc1[s0]:.2e} -> {nc1[-1]:.2e}. NC2 {nc2[s0]:.3f} -> {nc2[-1]:.3f}, "
            f"NC3 {nc3[s0]:.3f} -> {nc3[-1]:.3f}, NC4 {nc4[s0]:.3f} -> {nc4[-1]:.3f}."
        ),
        label="NC1 at the first step of zero training error / NC1 at the end (drop factor, ×)",
        kind="bound",
        bound="lower",
        exact=True,
        tolerance=f"none: drop >= {factor:g}x exactly (one deterministic run)",
        rows=[
            Quantity(
                "NC2 at the end (max-angle, class means)",
                float(nc2[s0]),
                float(nc2[-1]),
                "bound: its value at zero error",
                bound="upper",
            ),
            Quantity(
                "NC3 at the end (self-duality)",
                float(nc3[s0]),
                float(nc3[-1]),
                "bound: its value at zero error",
                bound="upper",
            ),
            Quantity(
                "NC4 at the end (fraction unlike nearest class mean)",
                float(nc4[s0]),
                float(nc4[-1]),
                "bound: its value at zero error",
                bound="upper",
            ),
        ],
        caption=(
            "Left: NC1 along training (log-log), the step of zero training error (dotted) and "
            "the level the criterion asks NC1 to fall below (dashed). Right: NC2-NC4."
        ),
        parameters={
            "n": n or 1797,
            "width": width,
            "steps": steps,
            "loss": "MSE on one-hot targets",
            "optimizer": "Adam",
            "lr": lr,
            "weight_decay": weight_decay,
            "lr_schedule": "x0.1 at 1/2 and 3/4 of the steps",
            "activation": "relu",
            "seed": seed,
        },
        details={
            "steps": steps_arr.tolist(),
            "nc1": nc1.tolist(),
            "nc2": nc2.tolist(),
            "nc3": nc3.tolist(),
            "nc4": nc4.tolist(),
            "train_error": [r[1] for r in rows],
            "zero_error_step": zero_error_step,
        },
        figure=png_bytes(fig),
    )


@reproduction(
    "gradient_top_subspace",
    title="SGD's gradient lies in the top-C Hessian eigenspace",
    claim=(
        "After a short transient, the fraction of the squared gradient norm inside the top-C "
        "Hessian eigenspace stays large during SGD, although that space has C of P dimensions."
    ),
    topic=_TOPIC,
    reference="Gur-Ari, Roberts & Dyer (2018), Fig. 1",
)
def gradient_top_subspace(quick: bool = False, seed: int = 0) -> Outcome:
    """f_top = ||P_C g||^2/||g||^2 of the full-batch gradient along minibatch SGD."""
    n, widths, steps, every = (
        (400, (64, 32, 32, 10), 600, 100) if quick else (None, (64, 64, 64, 10), 3000, 150)
    )
    x, y = _digits(n, seed)
    net = _mlp(widths, seed)
    loss_fn = torch.nn.functional.cross_entropy
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(seed)
    P = sum(p.numel() for p in net.parameters())
    record, v0 = [], None
    with _threads(1 if quick else torch.get_num_threads()):
        for step in range(steps + 1):
            if step % every == 0:
                r = gradient_overlap(net, loss_fn, (x, y), _C, tol=1e-2, v0=v0, seed=seed)
                v0 = r.eigenvectors.sum(1)
                record.append((step, r.overlap))
            if step < steps:
                batch = torch.randint(0, x.shape[0], (32,), generator=gen)
                opt.zero_grad()
                loss_fn(net(x[batch]), y[batch]).backward()
                opt.step()
    t = np.array([s for s, _ in record])
    f = np.array([o for _, o in record])
    late = f[len(f) // 2 :]
    est = Estimate.from_samples(torch.tensor(late))
    verdict = bool(float(np.median(late)) > 0.5)
    fig, (ax,) = new_figure(1)
    ax.plot(t, f, "o-", label=rf"$f_{{top}}$, top-{_C} eigenspace")
    ax.axhline(_C / P, color="0.5", ls=":", label=f"random {_C}-dim subspace: C/P = {_C / P:.1e}")
    ax.axhline(0.5, color="C3", ls="--", lw=1, label="criterion: median > 0.5")
    ax.set_xlabel("SGD step (batch 32, lr 0.1)")
    ax.set_ylabel(r"$f_{top} = \|P_{top}\, g\|^2 / \|g\|^2$")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    return Outcome(
        prediction=0.5,
        measurement=Estimate(float(np.median(late)), 0.0, len(late)),
        verdict=verdict,
        label="median over the second half of f_top = ||P_top g||^2 / ||g||^2 (fraction)",
        kind="bound",
        bound="lower",
        exact=True,
        tolerance="none: median > 0.5 (a random C-dim subspace gives C/P)",
        rows=[Quantity("mean f_top over the second half (mean ± stderr)", None, est)],
        criterion=(
            "median of f_top over the second half of training > 0.5 "
            "(a random C-dim subspace gives C/P)"
        ),
        summary=(
            f"f_top over the second half: median {np.median(late):.2f}, mean "
            f"{float(est.mean):.2f} +- {float(est.stderr):.2f}; C/P = {_C / P:.1e}"
        ),
        parameters={
            "n": n or 1797,
            "widths": list(widths),
            "steps": steps,
            "lr": 0.1,
            "batch": 32,
            "seed": seed,
        },
        details={"steps": t.tolist(), "f_top": f.tolist()},
        figure=png_bytes(fig),
    )
