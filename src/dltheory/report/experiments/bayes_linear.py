"""Deep linear Bayesian nets (12/7) and entropy and widths (11/28).

Reproductions:

* ``deep_linear_evidence``: the exact evidence and predictive variance against effective
  depth lambda = P sum 1/n_l, with importance-sampling points from real weight matrices
  (Hanin & Zlokapa 2023).
* ``marchenko_pastur_spectrum``: sample-covariance spectra against the Marchenko-Pastur law
  for c = 1/2 and c = 2 (with its atom).
* ``product_norm_lognormal``: log|W_L ... W_1 u|^2 has mean ~ -L/n and variance ~ 2L/n.
* ``jl_distortion``: worst pairwise distortion of Gaussian projections against m, below
  eps(m) = sqrt(8 ln k / m) as often as the union bound promises.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats as st
import torch

from ...bayes_linear import deep_linear_posterior, effective_depth_limit, monte_carlo_posterior
from ...entropy import jl_distortion, jl_failure_bound, random_projection
from ...finite import Estimate
from ...random_matrices import (
    ProductNormLaw,
    marchenko_pastur_density,
    marchenko_pastur_ks,
    sample_marchenko_pastur,
)
from ..figures import new_figure, png_bytes
from ..quantities import Quantity, Table
from ..registry import reproduction
from ..result import Outcome

__all__ = [
    "deep_linear_evidence",
    "jl_distortion_vs_m",
    "marchenko_pastur_spectrum",
    "product_norm_lognormal",
]

_TOPIC = "deep linear Bayesian nets"


@reproduction(
    "deep_linear_evidence",
    title="Deep linear Bayesian interpolation: exact evidence and predictive variance vs depth",
    claim=(
        "The evidence p(y|x) and posterior of a deep linear network are Meijer G-functions; "
        "importance sampling over real Gaussian weight matrices agrees with them, and the "
        "predictive variance moves with the effective depth lambda = P sum 1/n_l from the "
        "prior scale toward |theta*|^2 / P."
    ),
    topic=_TOPIC,
    reference="Hanin & Zlokapa (2023), PNAS 120(23), Theorem 1",
)
def deep_linear_evidence(quick: bool = False, seed: int = 0) -> Outcome:
    """Sweep the depth L at fixed width; exact curves, Monte-Carlo points at a few depths."""
    p, n0, width = 3, 6, 6
    depths_curve = list(range(1, 13 if quick else 25))
    depths_mc = [1, 3, 6] if quick else [1, 2, 4, 8, 12]
    n_samples = 4000 if quick else 40_000
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p, n0, generator=g, dtype=torch.float64)
    y = torch.randn(p, generator=g, dtype=torch.float64)
    x_test = torch.randn(1, n0, generator=g, dtype=torch.float64)
    perp2 = float(deep_linear_posterior(x, y, ()).predict(x_test).variance[0]) * n0  # |x_perp|^2
    lam, log_ev, var, limit = [], [], [], []
    for depth in depths_curve:
        post = deep_linear_posterior(x, y, (width,) * depth)
        lam.append(post.effective_depth)
        log_ev.append(post.log_evidence)
        var.append(float(post.predict(x_test).variance[0]))
        limit.append(effective_depth_limit(x, y, (width,) * depth).perp_variance * perp2)
    # Independent seeds per depth, spawned from the run's seed.
    seeds = np.random.SeedSequence(seed).spawn(len(depths_mc))
    z_ev, z_var, mc_ev, mc_var = [], [], [], []
    for depth, ss in zip(depths_mc, seeds, strict=True):
        post = deep_linear_posterior(x, y, (width,) * depth)
        mc = monte_carlo_posterior(
            x, y, (width,) * depth, n_samples=n_samples, seed=int(ss.generate_state(1)[0])
        )
        z_ev.append(float(mc.evidence.zscore(post.evidence)))
        z_var.append(float(mc.perp_variance.zscore(post.perp_variance)))
        mc_ev.append((float(mc.evidence.mean), float(mc.evidence.stderr)))
        mc_var.append(
            (float(mc.perp_variance.mean) * perp2, float(mc.perp_variance.stderr) * perp2)
        )
    worst = max(abs(z) for z in z_ev + z_var)
    verdict = worst < 4.0
    fig, (ax1, ax2) = new_figure(2)
    ax1.plot(lam, np.exp(log_ev), "k-", label="exact (Meijer G)")
    lam_mc = [p * depth / width for depth in depths_mc]
    ax1.errorbar(
        lam_mc, [m for m, _ in mc_ev], [2 * s for _, s in mc_ev], fmt="o", label="MC ± 2 SE"
    )
    ax1.set_xlabel(r"effective depth $\lambda = P \sum_\ell 1/n_\ell$")
    ax1.set_ylabel("evidence p(y | x)")
    ax1.legend(fontsize=8)
    ax2.plot(lam, var, "k-", label="exact predictive variance")
    ax2.plot(lam, limit, "b--", label="leading order (large P, L)")
    ax2.axhline(perp2 / n0, color="gray", ls=":", label=r"$\lambda \to 0$ (GP)")
    q = float(y @ torch.linalg.solve(x @ x.T, y))
    ax2.axhline(perp2 * q / p, color="r", ls=":", label=r"$\lambda \to \infty$: $|\theta^*|^2 / P$")
    ax2.errorbar(
        lam_mc, [m for m, _ in mc_var], [2 * s for _, s in mc_var], fmt="o", label="MC ± 2 SE"
    )
    ax2.set_xlabel(r"effective depth $\lambda$")
    ax2.set_ylabel(r"Var $f(x_{test})$")
    ax2.legend(fontsize=7)
    return Outcome(
        prediction=[float(math.exp(log_ev[d - 1])) for d in depths_mc],
        measurement=Estimate([m for m, _ in mc_ev], [s for _, s in mc_ev], n_samples),
        verdict=verdict,
        criterion="|MC - exact| < 4 standard errors for the evidence and E_post[v] at every depth",
        label="evidence p(y | x) (density of the P = 3 targets)",
        index=depths_mc,
        index_label="depth L",
        tolerance="4 SE (evidence and posterior scale, every depth)",
        max_z=worst,
        caption=(
            "Left: the exact evidence (Meijer G) against effective depth and importance-sampling "
            "estimates (± 2 SE). Right: the exact predictive variance, its leading order, its "
            "two limits and the Monte-Carlo estimates."
        ),
        summary=(
            f"max |z| = {worst:.2f} over {len(depths_mc)} depths (evidence and posterior scale); "
            f"lambda from {lam[0]:.2f} to {lam[-1]:.1f}"
        ),
        parameters={
            "P": p,
            "n0": n0,
            "width": width,
            "depths_mc": depths_mc,
            "n_samples": n_samples,
            "seed": seed,
        },
        details={
            "z_evidence": z_ev,
            "z_scale": z_var,
            "lambda": lam,
            "log_evidence": log_ev,
            "variance": var,
        },
        figure=png_bytes(fig),
    )


@reproduction(
    "marchenko_pastur_spectrum",
    title="Sample-covariance spectra follow the Marchenko-Pastur law (c = 1/2 and c = 2)",
    claim=(
        "The eigenvalues of X X^T / n for Gaussian X (P x n) follow mu_c with c = P/n, "
        "including an atom of mass 1 - 1/c at 0 when c > 1."
    ),
    topic=_TOPIC,
    reference="Marchenko & Pastur (1967)",
)
def marchenko_pastur_spectrum(quick: bool = False, seed: int = 0) -> Outcome:
    """KS p-value of the pooled spectrum (stated threshold 0.01) and the atom's exact share."""
    n = 100 if quick else 400
    mats = 4 if quick else 10
    seeds = np.random.SeedSequence(seed).spawn(2)
    fig, axes = new_figure(2)
    pvals, atoms = [], []
    for ax, c, ss in zip(axes, (0.5, 2.0), seeds, strict=True):
        p = int(c * n)
        ev = sample_marchenko_pastur(p, n, n_matrices=mats, seed=int(ss.generate_state(1)[0]))
        res = marchenko_pastur_ks(ev, c)
        pvals.append(res.pvalue)
        atoms.append((res.atom_fraction, res.atom_expected))
        nz = ev[ev > 0].numpy()
        ax.hist(nz, bins=50, density=True, alpha=0.5, label="eigenvalues (non-zero)")
        ax.set_xlabel(r"eigenvalue of $X X^T / n$")
        ax.set_ylabel("density")
        t = np.linspace(0, nz.max() * 1.05, 400)
        ax.plot(t, marchenko_pastur_density(t, c) / min(1.0, 1 / c), "k-", label="MP density")
        ax.set_title(f"c = {c:g}: KS p = {res.pvalue:.2f}, atom {res.atom_fraction:.2f}")
        ax.legend(fontsize=8)
    verdict = min(pvals) > 0.01 and all(abs(a - b) < 1e-12 for a, b in atoms)
    return Outcome(
        prediction=[b for _, b in atoms],
        measurement=Estimate([a for a, _ in atoms], [0.0, 0.0], mats),
        verdict=verdict,
        criterion="KS p-value > 0.01 for both ratios; zero-eigenvalue share = max(0, 1 - 1/c)",
        label="share of zero eigenvalues (the atom 1 - 1/c of mu_c; fraction)",
        index=["1/2", "2"],
        index_label="ratio c = P/n",
        kind="exact",
        tolerance="atom exact to 1e-12; KS p > 0.01",
        rows=[
            Quantity(f"KS p-value of the pooled spectrum, c = {c}", 0.01, p, bound="lower")
            for c, p in zip(("1/2", "2"), pvals, strict=True)
        ],
        caption=(
            "Histograms of the non-zero eigenvalues of X X^T / n pooled over the matrices, "
            "with the Marchenko-Pastur density (its continuous part, renormalised)."
        ),
        summary=f"KS p = {pvals[0]:.3f} (c = 1/2), {pvals[1]:.3f} (c = 2); atom {atoms[1][0]:.3f}",
        parameters={"n": n, "matrices": mats, "seed": seed},
        details={"pvalues": pvals},
        figure=png_bytes(fig),
    )


@reproduction(
    "product_norm_lognormal",
    title="Products of Gaussian matrices: log|theta|^2 ~ N(-L/n, 2L/n)",
    claim=(
        "|W_L ... W_1 u|^2 is a product of independent chi2_n / n factors: the exact mean and "
        "variance of its log (digamma, trigamma) match products of real matrices, and to "
        "leading order they are -L/n and 2L/n."
    ),
    topic=_TOPIC,
    reference="Hanin & Nica (2020); leading order -L/n for log|theta|^2, not -L/(2n)",
)
def product_norm_lognormal(quick: bool = False, seed: int = 0) -> Outcome:
    """Sample means/variances vs exact moments over depths and widths; KS at one setting."""
    widths = (8, 32) if quick else (8, 32, 128)
    depths = (2, 8) if quick else (2, 8, 32)
    n_samples = 1000 if quick else 2000  # full mode: ~45 s of CPU (n = 128, L = 32 products)
    seeds = iter(np.random.SeedSequence(seed).spawn(len(widths) * len(depths) + 1))
    fig, (ax1, ax2) = new_figure(2)
    zs = []
    for n in widths:
        means, ses = [], []
        for depth in depths:
            law = ProductNormLaw((n,) * (depth + 1))
            s = law.sample(n_samples, seed=int(next(seeds).generate_state(1)[0]))
            est = Estimate.from_samples(s)
            var = Estimate.from_samples((s - law.log_mean) ** 2)
            zs += [float(est.zscore(law.log_mean)), float(var.zscore(law.log_variance))]
            means.append(float(est.mean))
            ses.append(float(est.stderr))
        dd = np.array(depths, dtype=float)
        ax1.errorbar(dd, means, [2 * s for s in ses], fmt="o", label=f"n = {n} (matrices)")
        ax1.plot(dd, -dd / n, "--", lw=1)
    ax1.set_xscale("log")
    ax1.set_xlabel("depth L")
    ax1.set_ylabel(r"E $\log|\theta|^2$ (dashed: $-L/n$)")
    ax1.legend(fontsize=8)
    law = ProductNormLaw((widths[0],) * (depths[-1] + 1))
    s = law.sample(n_samples, seed=int(next(seeds).generate_state(1)[0])).numpy()
    ks = st.kstest(s, law.log_cdf).pvalue
    ax2.hist(s, bins=40, density=True, alpha=0.5, label="matrix products")
    t = np.linspace(s.min(), s.max(), 300)
    mu, v = law.lognormal()
    ax2.plot(t, st.norm.pdf(t, mu, math.sqrt(v)), "b--", label=r"leading order $N(-L/n, 2L/n)$")
    ax2.set_xlabel(r"$\log|\theta|^2$")
    ax2.set_ylabel("density")
    ax2.plot(
        t, st.norm.pdf(t, law.log_mean, math.sqrt(law.log_variance)), "k-", label="exact mean/var"
    )
    ax2.set_title(f"n = {widths[0]}, L = {depths[-1]}: KS p (exact law) = {ks:.2f}")
    ax2.legend(fontsize=7)
    worst = max(abs(z) for z in zs)
    verdict = worst < 4.0 and ks > 0.01
    return Outcome(
        prediction=law.log_mean,
        measurement=Estimate(
            float(np.mean(s)), float(np.std(s, ddof=1) / math.sqrt(len(s))), len(s)
        ),
        verdict=verdict,
        criterion="exact log-moments within 4 SE at every (n, L); KS p-value > 0.01",
        label=f"E log|theta|^2 at n = {widths[0]}, L = {depths[-1]} (natural log)",
        tolerance="4 SE (mean and variance, every (n, L)); KS p > 0.01",
        max_z=worst,
        rows=[
            Quantity(
                f"KS p-value of the exact law, n = {widths[0]}, L = {depths[-1]}",
                0.01,
                float(ks),
                bound="lower",
            )
        ],
        caption=(
            "Left: sample means of log|theta|^2 (± 2 SE) against depth, with the leading "
            "order -L/n (dashed). Right: one setting's samples against the exact and the "
            "leading-order normal laws."
        ),
        summary=f"max |z| = {worst:.2f} over {len(zs)} moments; KS p = {ks:.3f}",
        parameters={
            "widths": list(widths),
            "depths": list(depths),
            "n_samples": n_samples,
            "seed": seed,
        },
        details={"zscores": zs, "ks_pvalue": ks},
        figure=png_bytes(fig),
    )


@reproduction(
    "jl_distortion",
    title="Johnson-Lindenstrauss: worst pairwise distortion of Gaussian projections vs m",
    claim=(
        "A Gaussian projection of k points to m >= 8 ln k / eps^2 dimensions keeps every "
        "pairwise distance within 1 +- eps, except with probability at most the union bound."
    ),
    topic="entropy and widths",
    reference=(
        "Johnson & Lindenstrauss (1984); the distance form m >= 8 ln k / eps^2 from Gaussian "
        "concentration (Boucheron, Lugosi & Massart 2013, Thm 5.6), not Dasgupta & Gupta "
        "(2003), whose bound is for squared distances"
    ),
)
def jl_distortion_vs_m(quick: bool = False, seed: int = 0) -> Outcome:
    """Worst distortion over projections at each m; failures against the binomial bound."""
    k, d = (30, 200) if quick else (100, 1000)
    runs = 10 if quick else 40
    ms = [16, 64, 256] if quick else [16, 32, 64, 128, 256, 512, 1024]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(k, d, generator=gen, dtype=torch.float64)
    worst_mean, worst_se, eps_m, ok = [], [], [], []
    failures, allowed, union = [], [], []
    for m in ms:
        worst = [jl_distortion(x, random_projection(x, m, generator=gen)) for _ in range(runs)]
        eps = math.sqrt(8 * math.log(k) / m)
        est = Estimate.from_samples(torch.tensor(worst))
        worst_mean.append(float(est.mean))
        worst_se.append(float(est.stderr))
        eps_m.append(eps)
        failures.append(sum(w > eps for w in worst))
        if eps < 1:
            union.append(jl_failure_bound(k, m, eps))
            allowed.append(int(st.binom.ppf(0.999, runs, union[-1])))
            ok.append(failures[-1] <= allowed[-1])
        else:  # eps >= 1: the claim says nothing (a distance may shrink to 0)
            union.append(None)
            allowed.append(None)
    verdict = bool(ok) and all(ok)
    fig, (ax,) = new_figure(1)
    ax.errorbar(
        ms,
        worst_mean,
        [2 * s for s in worst_se],
        fmt="o-",
        label=f"measured worst distortion (mean of {runs} projections, ± 2 SE)",
    )
    ax.plot(ms, eps_m, "k--", label=r"$\varepsilon(m) = \sqrt{8 \ln k / m}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("target dimension m")
    ax.set_ylabel(r"worst distortion $\max_{i<j} |\,|Ay_{ij}| / |y_{ij}| - 1\,|$")
    ax.legend(fontsize=8)
    return Outcome(
        prediction=allowed,
        measurement=Estimate(failures, [0] * len(ms), runs),
        verdict=verdict,
        criterion=(
            "failures (distortion > eps(m)) within the 0.999 binomial quantile of the union bound"
        ),
        label=f"projections (of {runs}) with worst distortion > ε(m) (a count)",
        index=ms,
        index_label="target dimension m",
        kind="bound",
        bound="upper",
        exact=True,
        tolerance="the 0.999 binomial quantile of the union bound (no slack beyond it)",
        tables=[
            Table(
                "worst pairwise distortion by target dimension",
                (
                    "target dimension m",
                    "ε(m) = sqrt(8 ln k / m)",
                    "worst distortion ± SE",
                    "union bound on P(fail)",
                ),
                [
                    (m, e, Estimate(w, s, runs), u)
                    for m, e, w, s, u in zip(ms, eps_m, worst_mean, worst_se, union, strict=True)
                ],
            )
        ],
        caption=(
            "Worst pairwise distortion of the k points under Gaussian projections to m "
            "dimensions (mean over projections, ± 2 SE) against eps(m) (dashed); the "
            "criterion counts the projections above eps(m)."
        ),
        summary=(
            f"k = {k}: worst distortion {worst_mean[0]:.2f} at m = {ms[0]} "
            f"to {worst_mean[-1]:.3f} at m = {ms[-1]}"
        ),
        parameters={"k": k, "d": d, "runs": runs, "ms": ms, "seed": seed},
        details={
            "eps": eps_m,
            "worst_mean": worst_mean,
            "worst_se": worst_se,
            "failures": failures,
            "allowed": allowed,
            "union_bound": union,
        },
        figure=png_bytes(fig),
    )
