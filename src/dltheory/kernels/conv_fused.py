"""Fused CPU engine for image kernels: each pair of images runs through every layer in cache.

The torch rules of :mod:`dltheory.kernels.conv` make a dozen passes over a block's
N1 N2 P^2 numbers per layer; on a CPU the time goes to memory traffic. Here one
compiled loop (numba, threads over rows of image pairs) carries a single pair's
pixel-pair covariance (P^2 numbers, or P on the pixel diagonal) through the whole
network in a few buffers that stay in cache, and writes two numbers per pair. The
recursion is the same (the shift averages of :mod:`dltheory.kernels.conv`, the
activations' scalar closed forms ``closed_pair_row`` tested against their torch forms);
each image's own pixel variances at every activation come first, from the pairs (a, a).

The spec is compiled to a program of rows (op, parameters...) by :func:`program`;
specs outside it (activations without a scalar closed form, layer kinds of other
modules) use the torch rules.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._fastmath import acos
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
            row = [_POOL, kh, kw, sh, sw, lh, lw, oh, ow, h, w]
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


def _add_row(dst, src, out0, in0, lo, hi):
    for q in range(lo, hi):
        dst[out0 + q] += src[in0 + q]


def _shift_full_same(src, dst, r, t_src, t_dst):
    """Unscaled sums of the conv shifts, stride 1 and output shape = input shape.

    Shifting both pixels of a pair by D = di W + dj moves the flat (P, P) index by
    D (P + 1): one long contiguous add per tap, masked where a pixel leaves the image.
    """
    kh, kw, dh, dw = int(r[5]), int(r[6]), int(r[9]), int(r[10])
    lh, lw, h, w = int(r[11]), int(r[12]), int(r[15]), int(r[16])
    p = h * w
    for o in range(p * p):
        dst[o] = 0.0
        t_dst[o] = 0.0
    m = np.empty(p)
    for a in range(kh):
        for b in range(kw):
            di, dj = a * dh - lh, b * dw - lw
            for o1 in range(h):
                for o2 in range(w):
                    inside = 0 <= o1 + di < h and 0 <= o2 + dj < w
                    m[o1 * w + o2] = 1.0 if inside else 0.0
            d = di * w + dj
            q_lo, q_hi = max(0, -d), min(p, p - d)
            for o in range(p):
                if m[o] == 0.0:
                    continue
                _add_masked(dst, t_dst, src, t_src, m, o * p, (o + d) * p + d, q_lo, q_hi)


def _add_masked(dst, t_dst, src, t_src, m, out0, in0, lo, hi):
    for q in range(lo, hi):
        dst[out0 + q] += src[in0 + q] * m[q]
        t_dst[out0 + q] += t_src[in0 + q] * m[q]


def _shift_full(src, dst, r, scale_k, scale_t, t_src, t_dst, lr_w, c_b, lr_b):
    """Conv on the full layout: dst = c_b + scale_k A src; t_dst = lr_b + A(lr_w src + c_w t)."""
    kh, kw, sh, sw = int(r[5]), int(r[6]), int(r[7]), int(r[8])
    dh, dw, lh, lw = int(r[9]), int(r[10]), int(r[11]), int(r[12])
    oh, ow, h, w = int(r[13]), int(r[14]), int(r[15]), int(r[16])
    p_in, p_out = h * w, oh * ow
    inv = 1.0 / (kh * kw)
    if sh == 1 and sw == 1 and oh == h and ow == w:
        _shift_full_same(src, dst, r, t_src, t_dst)
        _scale(dst, t_dst, p_out * p_out, inv, scale_k, scale_t, lr_w, c_b, lr_b)
        return
    for o in range(p_out * p_out):
        dst[o] = 0.0
        t_dst[o] = 0.0
    for o1 in range(oh):
        for o2 in range(ow):
            row_out = (o1 * ow + o2) * p_out
            for a in range(kh):
                i1 = o1 * sh + a * dh - lh
                if i1 < 0 or i1 >= h:
                    continue
                for b in range(kw):
                    i2 = o2 * sw + b * dw - lw
                    if i2 < 0 or i2 >= w:
                        continue
                    row_in = (i1 * w + i2) * p_in
                    # columns: q2 with 0 <= q2 sw + b dw - lw < w
                    q_lo = 0
                    while q_lo < ow and q_lo * sw + b * dw - lw < 0:
                        q_lo += 1
                    q_hi = ow
                    while q_hi > q_lo and (q_hi - 1) * sw + b * dw - lw >= w:
                        q_hi -= 1
                    for q1 in range(oh):
                        j1 = q1 * sh + a * dh - lh
                        if j1 < 0 or j1 >= h:
                            continue
                        base_in = row_in + j1 * w + b * dw - lw
                        base_out = row_out + q1 * ow
                        if sw == 1:  # contiguous: a vectorised loop
                            _add_row(dst, src, base_out, base_in, q_lo, q_hi)
                            _add_row(t_dst, t_src, base_out, base_in, q_lo, q_hi)
                        else:
                            for q2 in range(q_lo, q_hi):
                                dst[base_out + q2] += src[base_in + q2 * sw]
                                t_dst[base_out + q2] += t_src[base_in + q2 * sw]
    _scale(dst, t_dst, p_out * p_out, inv, scale_k, scale_t, lr_w, c_b, lr_b)


def _scale(dst, t_dst, n, inv, scale_k, scale_t, lr_w, c_b, lr_b):
    for o in range(n):
        k = dst[o] * inv
        t_dst[o] = lr_b + (lr_w * k + scale_t * t_dst[o] * inv)
        dst[o] = c_b + scale_k * k


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


def _pool_side(src, dst, r, n_other, rows_side):
    """Average over windows along one side of a (P, P) layout (rows or columns)."""
    kh, kw, sh, sw = int(r[1]), int(r[2]), int(r[3]), int(r[4])
    lh, lw, oh, ow, h, w = int(r[5]), int(r[6]), int(r[7]), int(r[8]), int(r[9]), int(r[10])
    inv = 1.0 / (kh * kw)
    p_in, p_out = h * w, oh * ow
    for m in range(n_other):
        for o1 in range(oh):
            for o2 in range(ow):
                acc = 0.0
                for a in range(kh):
                    i1 = o1 * sh + a - lh
                    if i1 < 0 or i1 >= h:
                        continue
                    for b in range(kw):
                        i2 = o2 * sw + b - lw
                        if 0 <= i2 < w:
                            if rows_side:  # src (P_in, n_other) -> dst (P_out, n_other)
                                acc += src[(i1 * w + i2) * n_other + m]
                            else:  # src (n_other, P_in) -> dst (n_other, P_out)
                                acc += src[m * p_in + i1 * w + i2]
                o = o1 * ow + o2
                if rows_side:
                    dst[o * n_other + m] = acc * inv
                else:
                    dst[m * p_out + o] = acc * inv


def _relu_row(k, t, start, n, sa, isa, sb, isb):
    """ReLU on a row of pixel pairs: K <- sqrt(K_aa K_bb) (sin th + (pi - th) cos th) / 2 pi,
    Theta <- Theta (pi - th) / 2 pi, cos th = K / sqrt(K_aa K_bb) (Cho & Saul 2009)."""
    for j in range(n):
        o = start + j
        rho = k[o] * isa * isb[j]
        rho = min(1.0, max(-1.0, rho))
        # |rho| within 64 eps of 1 is the diagonal (a, a): exactly +-1 (a select, no branch)
        rho = math.copysign(1.0, rho) if abs(rho) >= 1 - _SNAP else rho
        theta = acos(rho)
        sin = math.sqrt(max((1 - rho) * (1 + rho), 0.0))
        k[o] = (sa * sb[j]) * (sin + (math.pi - theta) * rho) / (2 * math.pi)
        t[o] *= (math.pi - theta) / (2 * math.pi)


def _run_pair(xa, xb, prog, va, vb, size, record, full0):
    """(nngp, ntk) of one pair through the program; ``record``: store the pixel variances."""
    # The first conv from the images' patches (rows: output pixels, scaled by 1/sqrt(C k)):
    # A(x_a . x_b / C)(o, q) = patch_a(o) . patch_b(q) / (C k), one small matrix product.
    n_pix = xa.shape[0]
    k = np.zeros(size)
    t = np.zeros(size)
    k2 = np.zeros(size)
    t2 = np.zeros(size)
    r = prog[0]
    c_w, c_b, lr_w, lr_b = r[1], r[2], r[3], r[4]
    if full0:
        g = np.dot(xa, xb.T)
        for i in range(n_pix):
            for j in range(n_pix):
                k[i * n_pix + j] = c_b + c_w * g[i, j]
                t[i * n_pix + j] = lr_b + lr_w * g[i, j]
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
        if op == _CONV:
            c_w, c_b, lr_w, lr_b = r[1], r[2], r[3], r[4]
            n_pix = int(r[13]) * int(r[14])
            if layout == 1:
                _shift_full(k, k2, r, c_w, c_w, t, t2, lr_w, c_b, lr_b)
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
                    va[index, i] = k[i * n_pix + i] if layout == 1 else k[i]
            if layout == 1 and code == 1:  # ReLU: the arc-cosine map, one vectorised row
                sb = np.empty(n_pix)
                isb = np.empty(n_pix)
                for j in range(n_pix):
                    sb[j] = math.sqrt(vb[index, j])
                    isb[j] = 1.0 / sb[j] if sb[j] > 0 else 0.0
                for i in range(n_pix):
                    sa = math.sqrt(va[index, i])
                    _relu_row(k, t, i * n_pix, n_pix, sa, 1.0 / sa if sa > 0 else 0.0, sb, isb)
            elif layout == 1:
                for i in range(n_pix):
                    s = slice(i * n_pix, (i + 1) * n_pix)
                    closed_pair_row(code, param, va[index, i], k[s], vb[index, :n_pix], t[s])
            else:
                for i in range(n_pix):
                    closed_pair_row(
                        code, param, va[index, i], k[i : i + 1], vb[index, i : i + 1], t[i : i + 1]
                    )
        elif op == _POOL:
            p_out = int(r[7]) * int(r[8])
            _pool_side(k, k2, r, n_pix, True)
            _pool_side(k2, k, r, p_out, False)
            _pool_side(t, t2, r, n_pix, True)
            _pool_side(t2, t, r, p_out, False)
            n_pix = p_out
        elif op == _GAP:
            m = n_pix * n_pix
            acc, tacc = 0.0, 0.0
            for o in range(m):
                acc += k[o]
                tacc += t[o]
            k[0], t[0] = acc / m, tacc / m
            n_pix, layout = 1, 2
        elif op == _FLAT or op == _DIAG:
            acc, tacc = 0.0, 0.0
            for i in range(n_pix):
                o = i * n_pix + i if layout == 1 else i
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


def _self_pass(x, prog, variances, size, full0):
    n = x.shape[0]
    out = np.empty((n, 2))
    for a in nb.prange(n):
        va = variances[a]
        out[a, 0], out[a, 1] = _run_pair(x[a], x[a], prog, va, va, size, True, full0)
    return out


def _pair_pass(x1, x2, prog, var1, var2, size, full0, row0, symmetric, nngp, ntk):
    n1, n2 = nngp.shape
    for i in nb.prange(n1):
        start = row0 + i + 1 if symmetric else 0
        for j in range(start, n2):
            nngp[i, j], ntk[i, j] = _run_pair(
                x1[i], x2[j], prog, var1[row0 + i], var2[j], size, False, full0
            )


if nb is not None:
    _opts = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": False}
    _relu_row = nb.njit(**{**_opts, "fastmath": True})(_relu_row)
    _add_row = nb.njit(**{**_opts, "fastmath": True})(_add_row)
    _add_masked = nb.njit(**{**_opts, "fastmath": True})(_add_masked)
    _shift_full_same = nb.njit(**_opts)(_shift_full_same)
    _scale = nb.njit(**_opts)(_scale)
    _shift_full = nb.njit(**_opts)(_shift_full)
    _shift_diag = nb.njit(**_opts)(_shift_diag)
    _pool_side = nb.njit(**_opts)(_pool_side)
    _run_pair = nb.njit(**_opts)(_run_pair)
    _self_pass = nb.njit(parallel=True, **_opts)(_self_pass)
    _pair_pass = nb.njit(parallel=True, **_opts)(_pair_pass)


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
    a = _patches(spec.layers[0], x1)
    symmetric = x2 is None
    b = a if symmetric else _patches(spec.layers[0], x2)
    var1 = np.zeros((len(a), max(n_acts, 1), max_pix))
    own1 = _self_pass(a, prog, var1, size, full0)
    if symmetric:
        var2, own2 = var1, own1
    else:
        var2 = np.zeros((len(b), max(n_acts, 1), max_pix))
        own2 = _self_pass(b, prog, var2, size, full0)
    nngp = np.zeros((len(a), len(b)))
    ntk = np.zeros((len(a), len(b)))
    for row0 in range(0, len(a), rows_per_step):
        rows = slice(row0, min(row0 + rows_per_step, len(a)))
        _pair_pass(
            a[rows], b, prog, var1, var2, size, full0, row0, symmetric, nngp[rows], ntk[rows]
        )
        if on_step is not None:
            on_step(rows.stop - rows.start)
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
