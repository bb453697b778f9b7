"""High-precision reference kernels (mpmath) for the benchmarks in ``kernels.py``.

Independent of dltheory and of the peer: only the recursion of DESIGN.md,
evaluated at ``dps`` decimal digits from the exact values of the float64 inputs.

* ReLU: arc-cosine closed forms (Cho & Saul 2009, with E[relu relu] half of
  their k_1), the angle taken at ``dps`` digits, the diagonal by its exact
  theta = 0 case, all pairs of a small input set.
* tanh: for one pair (a, b) the recursion closes on three numbers
  (K_aa, K_bb, K_ab), so each pair runs through every layer alone. A 2-D
  Gaussian expectation is written in conditional form, u = sqrt(K_aa) z_1,
  v = c z_1 + s z_2 with independent standard normal z_1, z_2, and integrated
  by a tensor trapezoidal rule whose step follows the distance of tanh's poles
  from the real axis (see ``gaussian_rule``); ``python benchmarks/reference.py``
  checks the rule against ``mpmath.quad`` and against a finer rule.

Conventions: K^(1) = C_b + C_w x.x'/n0, K^(l+1) = C_b + C_w E[s(u) s(v)];
Theta^(1) = K^(1), Theta^(l+1) = K^(l+1) + C_w E[s'(u) s'(v)] Theta^(l), for
``depth`` nonlinearities and a readout Dense (NTK parametrisation).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from functools import cache

import mpmath
import numpy as np
from mpmath import mp

__all__ = ["gaussian_rule", "relu_reference", "tanh_reference"]


def _gram(x: np.ndarray, c_w: mpmath.mpf, c_b: mpmath.mpf) -> list[list[mpmath.mpf]]:
    """K^(1) at the working precision from the exact float64 inputs."""
    rows = [[mp.mpf(float(v)) for v in row] for row in x]
    n0 = x.shape[1]
    n = len(rows)
    gram = [[mp.zero] * n for _ in range(n)]
    for a in range(n):
        for b in range(a, n):
            gram[a][b] = gram[b][a] = c_b + c_w * mp.fdot(rows[a], rows[b]) / n0
    return gram


def relu_reference(
    x: np.ndarray, depth: int, c_w: float, c_b: float, dps: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK of a ReLU MLP on all pairs of ``x`` (N, n0), rounded to float64.

    E[relu(u) relu(v)] = sqrt(K_aa K_bb) (sin t + (pi - t) cos t) / (2 pi),
    E[step(u) step(v)] = (pi - t) / (2 pi), cos t = K_ab / sqrt(K_aa K_bb).
    """
    with mp.workdps(dps):
        cw, cb = mp.mpf(c_w), mp.mpf(c_b)
        k = _gram(x, cw, cb)
        t = [row[:] for row in k]
        n = len(k)
        two_pi = 2 * mp.pi
        for _ in range(depth):
            k_new = [[mp.zero] * n for _ in range(n)]
            t_new = [[mp.zero] * n for _ in range(n)]
            for a in range(n):
                for b in range(a, n):
                    if a == b:  # theta = 0 exactly
                        e_ss, e_dd = k[a][a] / 2, mp.mpf(1) / 2
                    else:
                        norm = mp.sqrt(k[a][a] * k[b][b])
                        cos = min(mp.one, max(-mp.one, k[a][b] / norm))
                        theta = mp.acos(cos)
                        e_ss = norm * (mp.sin(theta) + (mp.pi - theta) * cos) / two_pi
                        e_dd = (mp.pi - theta) / two_pi
                    k_new[a][b] = k_new[b][a] = cb + cw * e_ss
                    t_new[a][b] = t_new[b][a] = k_new[a][b] + cw * e_dd * t[a][b]
            k, t = k_new, t_new
        nngp = np.array([[float(v) for v in row] for row in k])
        ntk = np.array([[float(v) for v in row] for row in t])
    return nngp, ntk


@cache
def _trapezoid_rule(step: str, half_width: str, dps: int):
    """Nodes k h, |k h| <= half_width, and weights h phi(k h) of the standard normal."""
    with mp.workdps(dps + 10):
        h, m = mp.mpf(step), int(mp.ceil(mp.mpf(half_width) / mp.mpf(step)))
        nodes = [k * h for k in range(-m, m + 1)]
        weights = [h * mp.npdf(z) for z in nodes]
    with mp.workdps(dps):
        return tuple(+z for z in nodes), tuple(+w for w in weights)


def gaussian_rule(k_max: mpmath.mpf, dps: int, digits: int) -> tuple[tuple, tuple]:
    """A rule for E[f(z)], z ~ N(0, 1), exact to ~10^-digits for f(z) = g(sqrt(k) z), k <= k_max.

    The trapezoidal rule on the real line converges like exp(-2 pi d / h) for an
    integrand analytic in the strip |Im z| < d (Trefethen & Weideman, SIAM Rev.
    2014); tanh(sqrt(k) z) and sech^2 have their poles at |Im z| = pi / (2 sqrt(k)),
    so h = 2 pi (0.8 d) / (digits ln 10); the Gaussian tail is cut at
    exp(-L^2 / 2) = 10^-digits. (Gauss-Hermite converges only like
    exp(-2 d sqrt(2 n)) here: many more nodes for the same accuracy.)
    """
    budget = digits * math.log(10)
    strip = 0.8 * math.pi / (2 * math.sqrt(float(k_max)))
    step = 2 * math.pi * strip / budget
    return _trapezoid_rule(f"{step:.3e}", f"{math.sqrt(2 * budget) + 1:.3f}", dps)


def _tanh_moments(kaa, kbb, kab, nodes, weights):
    """(E[tanh u tanh v], E[sech^2 u sech^2 v]) for (u, v) ~ N(0, [[kaa, kab], [kab, kbb]]).

    u = sqrt(kaa) z_1, v = c z_1 + s z_2 with c = kab / sqrt(kaa), s^2 = kbb - c^2.
    """
    root = mp.sqrt(kaa)
    c = kab / root
    s = mp.sqrt(max(mp.zero, kbb - c * c))
    e_tt, e_dd = [], []
    for z1, w1 in zip(nodes, weights, strict=True):
        tu = mp.tanh(root * z1)
        cz = c * z1
        tv = [mp.tanh(cz + s * z2) for z2 in nodes]
        inner_t = mp.fdot(weights, tv)
        inner_d = mp.fdot(weights, [1 - q * q for q in tv])
        e_tt.append(w1 * tu * inner_t)
        e_dd.append(w1 * (1 - tu * tu) * inner_d)
    return mp.fsum(e_tt), mp.fsum(e_dd)


def _tanh_moments_diag(kaa, nodes, weights):
    root = mp.sqrt(kaa)
    tu = [mp.tanh(root * z) for z in nodes]
    return mp.fdot(weights, [q * q for q in tu]), mp.fdot(weights, [(1 - q * q) ** 2 for q in tu])


def tanh_reference(
    x: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    depth: int,
    c_w: float,
    c_b: float,
    dps: int = 30,
    digits: int = 22,
) -> tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK of a tanh MLP for each pair (a, b) of rows of ``x``, rounded to float64.

    Each Gaussian expectation is accurate to about 10^-digits (absolute; the
    integrands are bounded by 1). Returns two arrays of shape (len(pairs),).
    """
    nngp, ntk = [], []
    with mp.workdps(dps):
        cw, cb = mp.mpf(c_w), mp.mpf(c_b)
        for a, b in pairs:
            gram = _gram(x[[a, b]], cw, cb)
            kaa, kbb, kab = gram[0][0], gram[1][1], gram[0][1]
            taa, tbb, tab = kaa, kbb, kab
            for _ in range(depth):
                nodes, weights = gaussian_rule(max(kaa, kbb), dps, digits)
                ett_aa, edd_aa = _tanh_moments_diag(kaa, nodes, weights)
                if a == b:
                    ett_bb, edd_bb, ett_ab, edd_ab = ett_aa, edd_aa, ett_aa, edd_aa
                else:
                    ett_bb, edd_bb = _tanh_moments_diag(kbb, nodes, weights)
                    ett_ab, edd_ab = _tanh_moments(kaa, kbb, kab, nodes, weights)
                kaa, kbb, kab = cb + cw * ett_aa, cb + cw * ett_bb, cb + cw * ett_ab
                taa = kaa + cw * edd_aa * taa
                tbb = kbb + cw * edd_bb * tbb
                tab = kab + cw * edd_ab * tab
            nngp.append(float(kab))
            ntk.append(float(tab))
    return np.array(nngp), np.array(ntk)


def _self_check(slow: bool) -> None:
    """Check the Gaussian rule against mpmath.quad (tanh-sinh) and against a finer rule."""
    with mp.workdps(30):
        print("1-D, E[tanh(sqrt(k) z)^2] and E[sech^4]: rule(22 digits) - mpmath.quad")
        for k in ("0.3", "1.5", "4", "8.5"):
            k = mp.mpf(k)
            nodes, weights = gaussian_rule(k, 30, 22)
            got = _tanh_moments_diag(k, nodes, weights)
            root = mp.sqrt(k)
            want = (
                mp.quad(
                    lambda z, r=root: mp.npdf(z) * mp.tanh(r * z) ** 2, [-mp.inf, -1, 0, 1, mp.inf]
                ),
                mp.quad(
                    lambda z, r=root: mp.npdf(z) * (1 - mp.tanh(r * z) ** 2) ** 2,
                    [-mp.inf, -1, 0, 1, mp.inf],
                ),
            )
            errors = [mp.nstr(abs(g - w), 3) for g, w in zip(got, want, strict=True)]
            print(f"  k={k}: {len(nodes)} nodes, errors {errors}")
        kaa, kbb, kab = mp.mpf("1.3"), mp.mpf("0.9"), mp.mpf("0.45")
        results = {}
        for digits in (16, 22, 28):
            nodes, weights = gaussian_rule(kaa, 30, digits)
            start = time.perf_counter()
            results[digits] = _tanh_moments(kaa, kbb, kab, nodes, weights)
            elapsed = time.perf_counter() - start
            print(
                f"2-D rule({digits} digits), {len(nodes)}^2 nodes: {results[digits]}"
                f" ({elapsed:.1f} s)"
            )
        for digits in (16, 22):
            diff = [abs(p - q) for p, q in zip(results[digits], results[28], strict=True)]
            print(f"  rule({digits}) - rule(28): {[mp.nstr(d, 3) for d in diff]}")
        if not slow:
            return
        # Conditional 1-D form: inner and outer integrals by tanh-sinh (about a minute).
        root = mp.sqrt(kaa)
        c, s = kab / root, mp.sqrt(kbb - kab**2 / kaa)

        def inner(z1):
            return mp.quad(lambda z2: mp.npdf(z2) * mp.tanh(c * z1 + s * z2), [-mp.inf, 0, mp.inf])

        start = time.perf_counter()
        quad = mp.quad(
            lambda z1: mp.npdf(z1) * mp.tanh(root * z1) * inner(z1), [-mp.inf, 0, mp.inf]
        )
        print(f"nested mpmath.quad: E[tt]={quad} ({time.perf_counter() - start:.1f} s)")
        print(f"  rule(22) - quad: {mp.nstr(abs(results[22][0] - quad), 3)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=_self_check.__doc__)
    parser.add_argument("--slow", action="store_true", help="also run a nested mpmath.quad")
    _self_check(parser.parse_args().slow)
