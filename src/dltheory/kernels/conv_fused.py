"""Fused CPU engine for image kernels: each pair of images runs through every layer in cache.

The torch rules of :mod:`dltheory.kernels.conv` make a dozen passes over a block's
N1 N2 P^2 numbers per layer; on a CPU the time goes to memory traffic. Here one
compiled loop (numba; the pairs of the upper triangle split evenly over the threads)
carries a single pair's pixel-pair covariance (P^2 numbers, or P on the pixel diagonal)
through the whole network in a few buffers that stay in cache, and writes two numbers
per pair. The recursion is the same (the shift averages of :mod:`dltheory.kernels.conv`,
the activations' scalar closed forms ``closed_pair_row`` tested against their torch
forms); each image's own pixel variances at every activation come first, from the pairs
(a, a).

The full covariance of pixels p = (p1, p2), q = (q1, q2) is stored in the block layout
(p1, q1, p2, q2): a conv's sum over aligned shifts (Novak et al. 2019;
Arora et al. 2019) factorises into shifts of whole w x w blocks along the rows
and masked shifts inside a block along the columns (3 + 3 vector passes for 3 x 3, not
9), and the first conv reads the input covariance x_a(p) . x_b(q) / C the same way. The
ReLU map is one vectorised loop per block (the arc-cosine kernel of Cho & Saul 2009 with
the rational arccos ``acos_rational``); inner loops index with unsigned offsets rather
than slices (a numba slice costs two atomic reference counts).

The spec is compiled to a program of rows (op, parameters...) by :func:`program`;
specs outside it (activations without a scalar closed form, layer kinds of other
modules) use the torch rules.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._fastmath import acos_rational
from ..activations.closed_form import closed_pair_row
from ..spec.conv import AvgPool, Conv, Flatten, GlobalAvgPool, padding_sizes
from ..spec.layers import Dense, Nonlinearity, Serial
from .conv import LayoutPlan, _windows

try:
    import numba as nb
except ImportError:  # pragma: no cover
    nb = None

__all__ = ["available", "fused_image_kernel", "program"]

_SNAP = 64 * 2.220446049250313e-16  # |rho| this close to 1 is 1 (as the scalar maps)
_CONV, _ACT, _POOL, _GAP, _FLAT, _DIAG, _DENSE = range(7)
_WIDTH = 20  # columns of a program row


def available(spec: Serial, device: torch.device) -> bool:
    """Whether every layer has a fused op (and numba runs on this device)."""
    if nb is None or device.type != "cpu":
        return False
    for layer in spec.layers:
        if isinstance(layer, Nonlinearity):
            if not layer.activation.pair_code:
                return False
        elif not isinstance(layer, Conv | AvgPool | GlobalAvgPool | Flatten | Dense):
            return False
    return True


def _hw(pixels: tuple[int, ...]) -> tuple[int, int]:
    return (1, pixels[0]) if len(pixels) == 1 else (pixels[0], pixels[1])


def _windows_2d(layer, pixels):
    """(k, s, d, lo, out) for the (H, W) axes; a 1-D axis is W with H = 1."""
    rows = _windows(layer, pixels)
    if len(rows) == 1:
        rows = [(1, 1, 1, (0, 0), 1), rows[0]]
    return rows


def program(
    spec: Serial, plan: LayoutPlan, channels: int, width: int | None
) -> tuple[np.ndarray, int]:
    """The spec as rows of a float64 table, and the number of activations."""
    rows: list[list[float]] = []
    fan_in, n_acts = channels, 0
    full = plan.full_input[0] if plan.pixels[0] else False
    for i, layer in enumerate(spec.layers):
        pixels = plan.pixels[i]
        if full and not plan.full_input[i] and pixels:
            rows.append([_DIAG, *_hw(pixels)] + [0.0] * (_WIDTH - 3))
            full = False
        row: list[float]
        if isinstance(layer, Conv):
            lr_w, lr_b = layer.learning_rates(None if fan_in is None else fan_in * layer.area)
            (kh, sh, dh, (lh, _), oh), (kw, sw, dw, (lw, _), ow) = _windows_2d(layer, pixels)
            h, w = _hw(pixels)
            row = [_CONV, layer.c_w, layer.c_b, lr_w, lr_b, kh, kw, sh, sw, dh, dw, lh, lw]
            row += [oh, ow, h, w, float(full)]
            fan_in = layer.channels if layer.channels is not None else width
        elif isinstance(layer, Nonlinearity):
            act = layer.activation
            row = [_ACT, act.pair_code, act.pair_param, n_acts]
            n_acts += 1
        elif isinstance(layer, AvgPool):
            (kh, sh, _, (lh, _), oh), (kw, sw, _, (lw, _), ow) = _windows_2d(layer, pixels)
            h, w = _hw(pixels)
            row = [_POOL, 0.0, 0.0, 0.0, 0.0, kh, kw, sh, sw, 1, 1, lh, lw, oh, ow, h, w]
        elif isinstance(layer, GlobalAvgPool):
            row = [_GAP, *_hw(pixels)]
            full = False
        elif isinstance(layer, Flatten) and not pixels:
            continue  # a feature vector already
        elif isinstance(layer, Flatten):
            row = [_FLAT, *_hw(pixels), float(full)]
            fan_in = None if fan_in is None else fan_in * math.prod(pixels)
            full = False
        elif isinstance(layer, Dense):
            lr_w, lr_b = layer.learning_rates(fan_in)
            row = [_DENSE, layer.c_w, layer.c_b, lr_w, lr_b]
            fan_in = layer.width if layer.width is not None else width
        else:  # pragma: no cover - excluded by available()
            raise TypeError(type(layer).__name__)
        rows.append(row + [0.0] * (_WIDTH - len(row)))
    return np.array(rows, dtype=np.float64), n_acts


def _window(sk, st, dk, dt, g, c, bk, bt, mask):
    """One conv layer on the block layout: unscaled sums over the window taps
    at the aligned pixel pairs, then dk = c0 + c1 S_K, dt = c2 + c3 S_K + c4 S_T.

    The layout (p1, q1, p2, q2) of a pixel pair ((p1, p2), (q1, q2)) makes the shift sum
    separable: the taps a along the rows move whole w x w blocks (pass A: contiguous adds
    into a block buffer bk / bt), the taps b along the columns move within a block (pass
    B, from the buffer; at stride 1 and same width a masked shift of the whole block).
    g: (kh, kw, sh, sw, dh, dw, lh, lw, oh, ow, h, w).
    """
    kh, kw, sh, sw, dh, dw = g[0], g[1], g[2], g[3], g[4], g[5]
    lh, lw, oh, ow, h, w = g[6], g[7], g[8], g[9], g[10], g[11]
    c0, c2 = c[0], c[2]
    ww, oww = w * w, ow * ow
    margin = (bk.shape[0] // 3) if bk.shape[0] >= 3 * ww else 0
    fast = sw == 1 and ow == w and margin >= ww
    if fast:  # masks of the column taps; the buffers' right margins zero
        for b in range(kw):
            off = b * dw - lw
            mb = mask[b * ww : (b + 1) * ww]
            for o2 in range(w):
                for r2 in range(w):
                    inside = 0 <= o2 + off < w and 0 <= r2 + off < w
                    mb[o2 * w + r2] = 1.0 if inside else 0.0
        zk = bk[margin + ww : margin + 2 * ww]
        zt = bt[margin + ww : margin + 2 * ww]
        for n in range(ww):
            zk[n] = 0.0
            zt[n] = 0.0
    ak = bk[margin : margin + ww]
    at = bt[margin : margin + ww]
    bases = np.empty(kh, dtype=np.int64)
    shifts = np.empty(kw, dtype=np.int64)
    for b in range(kw):  # where tap b reads the block buffer (a zero mask when outside)
        off = b * dw - lw
        shifts[b] = margin + off * (w + 1) if -w < off < w else margin
    for o1 in range(oh):
        for r1 in range(oh):
            taps = 0
            for a in range(kh):  # pass A: whole blocks
                i1 = o1 * sh + a * dh - lh
                j1 = r1 * sh + a * dh - lh
                if 0 <= i1 < h and 0 <= j1 < h:
                    bases[taps] = (i1 * h + j1) * ww
                    taps += 1
            if taps == 3:
                _add3(sk, st, bases[0], bases[1], bases[2], bk, bt, margin, ww)
            elif taps > 0:
                _copy(sk, st, bases[0], bk, bt, margin, ww)
                for m in range(1, taps):
                    _add_into(sk, st, bases[m], bk, bt, margin, ww)
            out = (o1 * oh + r1) * oww
            if taps > 0 and fast and kw == 3:  # pass B: three masked shifts, scaled
                _shift3(bk, bt, shifts, mask, dk, dt, out, ww, c)
                continue
            ok = dk[out : out + oww]
            ot = dt[out : out + oww]
            if taps == 0:
                for n in range(oww):
                    ok[n] = c0
                    ot[n] = c2
            elif fast:  # pass B: masked shifts of the block
                for n in range(oww):
                    ok[n] = 0.0
                    ot[n] = 0.0
                for b in range(kw):
                    yk = bk[shifts[b] : shifts[b] + ww]
                    yt = bt[shifts[b] : shifts[b] + ww]
                    mb = mask[b * ww : (b + 1) * ww]
                    for n in range(ww):
                        ok[n] += yk[n] * mb[n]
                        ot[n] += yt[n] * mb[n]
                _affine(ok, ot, c)
            else:  # pass B: any stride
                for n in range(oww):
                    ok[n] = 0.0
                    ot[n] = 0.0
                for b in range(kw):
                    off = b * dw - lw
                    lo = 0
                    while lo < ow and lo * sw + off < 0:
                        lo += 1
                    hi = ow
                    while hi > lo and (hi - 1) * sw + off >= w:
                        hi -= 1
                    for o2 in range(lo, hi):
                        row = (o2 * sw + off) * w + off
                        for r2 in range(lo, hi):
                            ok[o2 * ow + r2] += ak[row + r2 * sw]
                            ot[o2 * ow + r2] += at[row + r2 * sw]
                _affine(ok, ot, c)


def _add3(sk, st, b0, b1, b2, ak, at, a0, ww):
    """ak = the sum of three blocks of sk (at: of st). Unsigned offsets, no slices (see
    :func:`_relu_block`)."""
    b0, b1, b2, a0 = np.uint64(b0), np.uint64(b1), np.uint64(b2), np.uint64(a0)
    for m in range(ww):
        n = np.uint64(m)
        ak[a0 + n] = sk[b0 + n] + sk[b1 + n] + sk[b2 + n]
        at[a0 + n] = st[b0 + n] + st[b1 + n] + st[b2 + n]


def _copy(sk, st, b0, ak, at, a0, ww):
    b0, a0 = np.uint64(b0), np.uint64(a0)
    for m in range(ww):
        n = np.uint64(m)
        ak[a0 + n] = sk[b0 + n]
        at[a0 + n] = st[b0 + n]


def _add_into(sk, st, b0, ak, at, a0, ww):
    b0, a0 = np.uint64(b0), np.uint64(a0)
    for m in range(ww):
        n = np.uint64(m)
        ak[a0 + n] += sk[b0 + n]
        at[a0 + n] += st[b0 + n]


def _shift3(bk, bt, shifts, mask, dk, dt, out, ww, c):
    """A block of dk, dt = the affine map c of three masked shifts of the block buffers."""
    c0, c1, c2, c3, c4 = c[0], c[1], c[2], c[3], c[4]
    s0, s1, s2 = np.uint64(shifts[0]), np.uint64(shifts[1]), np.uint64(shifts[2])
    w1, w2, out = np.uint64(ww), np.uint64(2 * ww), np.uint64(out)
    for m in range(ww):
        n = np.uint64(m)
        m0, m1, m2 = mask[n], mask[w1 + n], mask[w2 + n]
        sk_ = bk[s0 + n] * m0 + bk[s1 + n] * m1 + bk[s2 + n] * m2
        st_ = bt[s0 + n] * m0 + bt[s1 + n] * m1 + bt[s2 + n] * m2
        dk[out + n] = c0 + c1 * sk_
        dt[out + n] = c2 + (c3 * sk_ + c4 * st_)


def _affine(ok, ot, c):
    c0, c1, c2, c3, c4 = c[0], c[1], c[2], c[3], c[4]
    for n in range(ok.shape[0]):
        s = ok[n]
        ok[n] = c0 + c1 * s
        ot[n] = c2 + (c3 * s + c4 * ot[n])


def _gram_row(fa, fb, p, q0, n_pix, channels, k, o, n):
    """k[o:o + n] = sum_c x_a[c, p] x_b[c, q0:q0 + n] (flat (C, P) images)."""
    q0, o, n_pix = np.uint64(q0), np.uint64(o), np.uint64(n_pix)
    a = fa[p]
    for m in range(n):
        j = np.uint64(m)
        k[o + j] = a * fb[q0 + j]
    for c in range(1, channels):
        a = fa[c * n_pix + p]
        cq = np.uint64(c) * n_pix + q0
        for m in range(n):
            j = np.uint64(m)
            k[o + j] += a * fb[cq + j]


def _sum2(k, t, m):
    """(sum k[:m], sum t[:m]), vectorised (reassociated)."""
    acc, tacc = 0.0, 0.0
    for o in range(m):
        acc += k[o]
        tacc += t[o]
    return acc, tacc


def _shift_diag(src, dst, r, t_src, t_dst):
    """The shift average on the pixel diagonal (unscaled)."""
    kh, kw, sh, sw = int(r[5]), int(r[6]), int(r[7]), int(r[8])
    dh, dw, lh, lw = int(r[9]), int(r[10]), int(r[11]), int(r[12])
    oh, ow, h, w = int(r[13]), int(r[14]), int(r[15]), int(r[16])
    inv = 1.0 / (kh * kw)
    for o1 in range(oh):
        for o2 in range(ow):
            acc = 0.0
            tacc = 0.0
            for a in range(kh):
                i1 = o1 * sh + a * dh - lh
                if i1 < 0 or i1 >= h:
                    continue
                for b in range(kw):
                    i2 = o2 * sw + b * dw - lw
                    if 0 <= i2 < w:
                        acc += src[i1 * w + i2]
                        tacc += t_src[i1 * w + i2]
            dst[o1 * ow + o2] = acc * inv
            t_dst[o1 * ow + o2] = tacc * inv


def _pool(sk, st, dk, dt, g, bk, bt):
    """Average pooling on the block layout: both pixels of a pair average over their own
    windows (fixed weights, so all k^2 tap pairs, unlike a conv's aligned shifts):
    K'(o, r) = sum_{a, a'} K(o s + a - l, r s + a' - l) / k^2 along each axis."""
    kh, kw, sh, sw = g[0], g[1], g[2], g[3]
    lh, lw, oh, ow, h, w = g[6], g[7], g[8], g[9], g[10], g[11]
    ww, oww = w * w, ow * ow
    inv = 1.0 / (kh * kw) ** 2
    ak = bk[:ww]
    at = bt[:ww]
    for o1 in range(oh):
        for r1 in range(oh):
            for n in range(ww):
                ak[n] = 0.0
                at[n] = 0.0
            for a in range(kh):
                i1 = o1 * sh + a - lh
                for a2 in range(kh):
                    j1 = r1 * sh + a2 - lh
                    if i1 < 0 or i1 >= h or j1 < 0 or j1 >= h:
                        continue
                    base = (i1 * h + j1) * ww
                    xk = sk[base : base + ww]
                    xt = st[base : base + ww]
                    for n in range(ww):
                        ak[n] += xk[n]
                        at[n] += xt[n]
            out = (o1 * oh + r1) * oww
            for o2 in range(ow):
                for r2 in range(ow):
                    acc, tacc = 0.0, 0.0
                    for b in range(kw):
                        i2 = o2 * sw + b - lw
                        for b2 in range(kw):
                            j2 = r2 * sw + b2 - lw
                            if 0 <= i2 < w and 0 <= j2 < w:
                                acc += ak[i2 * w + j2]
                                tacc += at[i2 * w + j2]
                    dk[out + o2 * ow + r2] = acc * inv
                    dt[out + o2 * ow + r2] = tacc * inv


def _relu_block(k, t, base, xa, ya, a0, xb, yb, b0, n):
    """ReLU on a block of pixel pairs (Cho & Saul 2009): with cos th = rho = K / (s_a s_b),
    K <- s_a s_b (sin th + (pi - th) rho) / 2 pi, Theta <- Theta (pi - th) / 2 pi.
    x: 1 / s, y: s of the block's two pixels (from a0, b0); pi - th = acos(-rho).
    Unsigned indices: no negative-index wraparound, so the loop vectorises without
    slicing (a slice costs two atomic reference counts)."""
    base, a0, b0 = np.uint64(base), np.uint64(a0), np.uint64(b0)
    for m in range(n):
        j = np.uint64(m)
        o = base + j
        rho = k[o] * (xa[a0 + j] * xb[b0 + j])
        rho = min(1.0, max(-1.0, rho))
        # |rho| within 64 eps of 1 is the diagonal (a, a): exactly +-1 (a select, no branch)
        rho = (1.0 if rho > 0 else -1.0) if abs(rho) >= 1 - _SNAP else rho
        phi = acos_rational(-rho)
        sin = math.sqrt(max((1.0 - rho) * (1.0 + rho), 0.0))
        k[o] = (ya[a0 + j] * yb[b0 + j]) * ((sin + phi * rho) / (2 * math.pi))
        t[o] *= phi / (2 * math.pi)


def _expand(v, h, w, ys, xs, rows):
    """Per block row (p1 or q1) the w x w block of s = sqrt(v) (and 1 / s) at its
    row pixel (rows) or at its column pixel (columns)."""
    ww = w * w
    for p1 in range(h):
        for p2 in range(w):
            s = math.sqrt(v[p1 * w + p2])
            inv = 1.0 / s if s > 0 else 0.0
            for q2 in range(w):
                n = p1 * ww + (p2 * w + q2 if rows else q2 * w + p2)
                ys[n] = s
                xs[n] = inv


def _act_full(k, t, h, w, code, param, va, vb, ws):
    """An activation on the block layout."""
    ww = w * w
    if code == 1:
        ya, xa, yb, xb = ws[4], ws[5], ws[6], ws[7]
        _expand(va, h, w, ya, xa, True)
        _expand(vb, h, w, yb, xb, False)
        for p1 in range(h):
            for q1 in range(h):
                base = (p1 * h + q1) * ww
                _relu_block(k, t, base, xa, ya, p1 * ww, xb, yb, q1 * ww, ww)
        return
    for p1 in range(h):
        for q1 in range(h):
            for p2 in range(w):
                o = ((p1 * h + q1) * w + p2) * w
                s = slice(o, o + w)
                row = vb[q1 * w : (q1 + 1) * w]
                closed_pair_row(code, param, va[p1 * w + p2], k[s], row, t[s])


def _workspace(dims):
    """Buffers of one worker: K, Theta (twice), the expanded pixel scales, block buffers."""
    size, pw, wwm, kwm = dims[0], dims[1], dims[2], dims[3]
    return (
        np.zeros(size),
        np.zeros(size),
        np.zeros(size),
        np.zeros(size),
        np.zeros(pw),
        np.zeros(pw),
        np.zeros(pw),
        np.zeros(pw),
        np.zeros(3 * wwm),
        np.zeros(3 * wwm),
        np.zeros(kwm * wwm),
    )


def _run_pair(xa, xb, prog, iprog, va, vb, record, full0, ws):
    """(nngp, ntk) of one pair through the program; ``record``: store the pixel variances.

    The full layout is the block layout (p1, q1, p2, q2) of :func:`_window`.
    """
    k, t, k2, t2 = ws[0], ws[1], ws[2], ws[3]
    coef = np.empty(5)
    r = prog[0]
    c_w, c_b, lr_w, lr_b = r[1], r[2], r[3], r[4]
    h, w = int(r[13]), int(r[14])  # the first conv's output
    n_pix = h * w
    if full0:
        # the input covariance x_a(p) . x_b(q) / C (x: (C, P), scaled by 1 / sqrt(C)) in
        # the block layout, then the first conv as any other (Theta_0 = 0: c4 = 0)
        hi, wi = iprog[0, 15], iprog[0, 16]
        fa, fb = xa.ravel(), xb.ravel()
        for p1 in range(hi):
            for p2 in range(wi):
                for q1 in range(hi):
                    o = ((p1 * hi + q1) * wi + p2) * wi
                    _gram_row(fa, fb, p1 * wi + p2, q1 * wi, hi * wi, xa.shape[0], k2, o, wi)
        inv = 1.0 / (iprog[0, 5] * iprog[0, 6])
        coef[0], coef[1], coef[2], coef[3], coef[4] = c_b, c_w * inv, lr_b, lr_w * inv, 0.0
        _window(k2, k2, k, t, iprog[0, 5:17], coef, ws[8], ws[9], ws[10])
        layout = 1
    else:
        for i in range(n_pix):
            acc = 0.0
            for ch in range(xa.shape[1]):
                acc += xa[i, ch] * xb[i, ch]
            k[i] = c_b + c_w * acc
            t[i] = lr_b + lr_w * acc
        layout = 0
    for row in range(1, prog.shape[0]):
        r = prog[row]
        op = int(r[0])
        if op == _CONV or op == _POOL:
            g = iprog[row, 5:17]
            inv = 1.0 / (g[0] * g[1])
            if op == _CONV:
                c_w, c_b, lr_w, lr_b = r[1], r[2], r[3], r[4]
                coef[0], coef[1], coef[2] = c_b, c_w * inv, lr_b
                coef[3], coef[4] = lr_w * inv, c_w * inv
            h, w = int(r[13]), int(r[14])
            n_pix = h * w
            if op == _POOL:
                _pool(k, t, k2, t2, g, ws[8], ws[9])
            elif layout == 1:
                _window(k, t, k2, t2, g, coef, ws[8], ws[9], ws[10])
            else:
                _shift_diag(k, k2, r, t, t2)
                for o in range(n_pix):
                    t2[o] = lr_b + (lr_w * k2[o] + c_w * t2[o])
                    k2[o] = c_b + c_w * k2[o]
            k, k2 = k2, k
            t, t2 = t2, t
        elif op == _ACT:
            code, param, index = int(r[1]), r[2], int(r[3])
            if record:
                for i in range(n_pix):
                    va[index, i] = k[_diag(i, h, w)] if layout == 1 else k[i]
            if layout == 1:
                _act_full(k, t, h, w, code, param, va[index], vb[index], ws)
            else:
                for i in range(n_pix):
                    closed_pair_row(
                        code, param, va[index, i], k[i : i + 1], vb[index, i : i + 1], t[i : i + 1]
                    )
        elif op == _GAP:
            m = n_pix * n_pix
            acc, tacc = _sum2(k, t, m)
            k[0], t[0] = acc / m, tacc / m
            n_pix, layout = 1, 2
        elif op == _FLAT or op == _DIAG:
            acc, tacc = 0.0, 0.0
            for i in range(n_pix):
                o = _diag(i, h, w) if layout == 1 else i
                if op == _DIAG:
                    k2[i], t2[i] = k[o], t[o]
                acc += k[o]
                tacc += t[o]
            if op == _DIAG:
                k, k2 = k2, k
                t, t2 = t2, t
                layout = 0
            else:
                k[0], t[0] = acc / n_pix, tacc / n_pix
                n_pix, layout = 1, 2
        elif op == _DENSE:
            c_w, c_b, lr_w, lr_b = r[1], r[2], r[3], r[4]
            t[0] = lr_b + (lr_w * k[0] + c_w * t[0])
            k[0] = c_b + c_w * k[0]
    return k[0], t[0]


def _diag(i, h, w):
    """Where pixel pair (i, i) sits in the block layout."""
    p1, p2 = i // w, i % w
    return ((p1 * h + p1) * w + p2) * w + p2


def _self_pass(x, prog, iprog, variances, full0, dims, out, n_tasks):
    n = x.shape[0]
    for task in nb.prange(n_tasks):
        ws = _workspace(dims)
        for a in range(task * n // n_tasks, (task + 1) * n // n_tasks):
            va = variances[a]
            out[a, 0], out[a, 1] = _run_pair(x[a], x[a], prog, iprog, va, va, True, full0, ws)


def _pair_pass(x1, x2, prog, iprog, var1, var2, full0, dims, ii, jj, nngp, ntk, n_tasks):
    m = ii.shape[0]
    for task in nb.prange(n_tasks):
        ws = _workspace(dims)
        for e in range(task * m // n_tasks, (task + 1) * m // n_tasks):
            i, j = ii[e], jj[e]
            nngp[i, j], ntk[i, j] = _run_pair(
                x1[i], x2[j], prog, iprog, var1[i], var2[j], False, full0, ws
            )


if nb is not None:
    _opts = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": False}
    _window = nb.njit(**{**_opts, "fastmath": True})(_window)
    _pool = nb.njit(**_opts)(_pool)
    _fm = {**_opts, "fastmath": True}
    _add3 = nb.njit(**_fm)(_add3)
    _copy = nb.njit(**_fm)(_copy)
    _add_into = nb.njit(**_fm)(_add_into)
    _shift3 = nb.njit(**_fm)(_shift3)
    _affine = nb.njit(**_fm)(_affine)
    _gram_row = nb.njit(**_fm)(_gram_row)
    _sum2 = nb.njit(**_fm)(_sum2)
    _relu_block = nb.njit(**{**_opts, "fastmath": True})(_relu_block)
    _expand = nb.njit(**_opts)(_expand)
    _act_full = nb.njit(**_opts)(_act_full)
    _workspace = nb.njit(**_opts)(_workspace)
    _diag = nb.njit(**_opts)(_diag)
    _shift_diag = nb.njit(**_opts)(_shift_diag)
    _run_pair = nb.njit(**_opts)(_run_pair)
    _self_pass = nb.njit(parallel=True, **_opts)(_self_pass)
    _pair_pass = nb.njit(parallel=True, **_opts)(_pair_pass)


def _dims(prog: np.ndarray, size: int) -> np.ndarray:
    """Workspace sizes: entries, the largest P w and w^2 of a full layout, the widest window."""
    pw, wwm, kwm = 1, 1, 1
    for r in prog:
        if int(r[0]) in (_CONV, _POOL):
            for h, w in ((int(r[15]), int(r[16])), (int(r[13]), int(r[14]))):
                pw, wwm = max(pw, h * w * w), max(wwm, w * w)
            kwm = max(kwm, int(r[6]))
    return np.array([size, pw, wwm, kwm], dtype=np.int64)


def _pixels(layer: Conv, x: torch.Tensor) -> np.ndarray:
    """(N, C, P) images scaled by 1 / sqrt(C): x_a(p) . x_b(q) is the input covariance."""
    x = x.reshape(x.shape[0], x.shape[1], -1) / math.sqrt(x.shape[1])
    return np.ascontiguousarray(x.numpy())


def _patches(layer: Conv, x: torch.Tensor) -> np.ndarray:
    """(N, P_out, C k) zero-padded windows of the first conv, scaled by 1/sqrt(C k)."""
    if x.ndim == 3:
        x = x[:, :, None, :]
        size = dict(kernel_size=(1, *layer.kernel_size), dilation=(1, *layer.dilation))
        size["stride"] = (1, *layer.stride)
        pads = _pads_2d(layer, x.shape[3:], (0,))
    else:
        size = dict(kernel_size=layer.kernel_size, dilation=layer.dilation, stride=layer.stride)
        pads = _pads_2d(layer, x.shape[2:], (0, 1))
    cols = torch.nn.functional.unfold(torch.nn.functional.pad(x, pads), **size)
    cols = cols.transpose(1, 2) / math.sqrt(x.shape[1] * layer.area)
    return np.ascontiguousarray(cols.numpy())


def _pads_2d(layer: Conv, sizes, axes) -> list[int]:
    pads: list[int] = []
    for m, size in zip(reversed(axes), reversed(tuple(sizes)), strict=True):
        args = (layer.kernel_size[m], layer.stride[m], layer.dilation[m], m)
        pads.extend(padding_sizes(layer.padding, size, *args))
    return pads + [0, 0] * (2 - len(axes))


def fused_image_kernel(
    spec: Serial,
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    plan: LayoutPlan,
    rows_per_step: int,
    on_step=None,
):
    """(nngp, ntk, var1, var2) of image inputs (N, C, *pixels), float64 CPU tensors."""
    channels = x1.shape[1]
    prog, n_acts = program(spec, plan, channels, spec.width)
    full0 = bool(plan.pixels[0]) and plan.full_input[0]
    size = max(plan.entries, 1)
    max_pix = max([math.prod(p) for p in plan.pixels] + [1])
    inputs = _pixels if full0 else _patches
    a = inputs(spec.layers[0], x1)
    symmetric = x2 is None
    b = a if symmetric else inputs(spec.layers[0], x2)
    iprog = prog.astype(np.int64)
    dims = _dims(prog, size)
    n_tasks = 4 * nb.get_num_threads()
    var1 = np.zeros((len(a), max(n_acts, 1), max_pix))
    own1 = np.zeros((len(a), 2))
    _self_pass(a, prog, iprog, var1, full0, dims, own1, min(n_tasks, len(a)))
    if symmetric:
        var2, own2 = var1, own1
    else:
        var2 = np.zeros((len(b), max(n_acts, 1), max_pix))
        own2 = np.zeros((len(b), 2))
        _self_pass(b, prog, iprog, var2, full0, dims, own2, min(n_tasks, len(b)))
    nngp = np.zeros((len(a), len(b)))
    ntk = np.zeros((len(a), len(b)))
    for row0 in range(0, len(a), rows_per_step):
        rows = range(row0, min(row0 + rows_per_step, len(a)))
        # the step's pairs (upper triangle when symmetric), split evenly over the tasks
        cols = [np.arange(i + 1 if symmetric else 0, len(b)) for i in rows]
        jj = np.concatenate(cols)
        ii = np.repeat(np.arange(rows.start, rows.stop), [len(c) for c in cols])
        if len(ii):
            tasks = min(n_tasks, len(ii))
            _pair_pass(a, b, prog, iprog, var1, var2, full0, dims, ii, jj, nngp, ntk, tasks)
        if on_step is not None:
            on_step(len(rows))
    if symmetric:
        idx = np.arange(len(a))
        nngp[idx, idx], ntk[idx, idx] = own1[:, 0], own1[:, 1]
        upper = np.triu_indices(len(a), 1)
        nngp[upper[::-1]] = nngp[upper]
        ntk[upper[::-1]] = ntk[upper]
    return (
        torch.from_numpy(nngp),
        torch.from_numpy(ntk),
        torch.from_numpy(own1[:, 0].copy()),
        torch.from_numpy(own2[:, 0].copy()),
    )
