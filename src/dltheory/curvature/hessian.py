"""The loss Hessian as a matrix-free symmetric operator on flat parameter vectors.

H = d^2 L / d theta^2 with L(theta) = sum_b (n_b / N) L_b(theta), the per-sample mean
loss over all N training points, accumulated exactly over the batches b.
Hessian-vector products use torch.func (Pearlmutter 1994, "Fast exact multiplication
by the Hessian"). ``method="linearize"`` traces the gradient's forward-mode derivative
once per batch (``torch.func.linearize(grad(L_b), theta)``, forward-over-reverse with
the primal computation cached), so one product runs only the tangent computation;
``method="vjp"`` caches the gradient's graph and differentiates it backwards
(reverse-over-reverse; H is symmetric, so v^T H = (H v)^T). ``"auto"`` takes
``"linearize"`` for models with 2^16 to 2^22 parameters and ``"vjp"`` outside that range
or for a model torch.func cannot trace: below 2^16 tracing (about half a second and
more) is not repaid by the products; above 2^22 the traced constants cost more memory
than the speed is worth (ResNet-18, 11.2M parameters: ~24 P floats beyond one
forward/backward with ``"linearize"``, ~9 with ``"vjp"``, for a ~10 % faster product).
Two more products keep nothing between calls: ``method="jvp"``
(``torch.func.jvp`` of the gradient, forward-over-reverse, primal recomputed each time)
and ``method="autograd"`` (double backward through torch.autograd's own graph, kept
when ``cache``). Measured (CPU time of one product over one gradient, batch 128,
0.96M-parameter conv net): ``"linearize"`` 1.76, ``"vjp"`` 2.53, ``"autograd"`` 2.61
cached / 3.37 uncached, ``"jvp"`` 3.21-3.34; only the linearisation stays within 2
gradients, and it holds the most memory (about 7x the tensors a double backward
saves, 330 P floats on that net against 120-140 for the cached vjp).

``memory_budget`` (bytes beyond the model's own forward/backward) makes ``"auto"``
choose by memory: the saved tensors of a double backward are counted on a few samples
(:meth:`HessianOperator.cached_bytes_estimate`); the linearisation if it fits, else
the cached vjp, else uncached ``"jvp"`` products, with the batches split into
micro-batches small enough for one product's transient when the model has no batch
statistics (``micro_batch`` sets the split by hand; splitting is exact for a
per-sample mean loss and a model without batch coupling).

The model is read through :mod:`dltheory.finite.model_function`: inputs of any
batch-first shape (token ids stay integer), copies of the buffers (nothing in the
model changes), BatchNorm in train mode measured with the batch's statistics (the
Hessian of the batched loss; a batch is then a unit, so split data only where the
model is meant to see those batches), Dropout in train mode refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch

from .._checks import check_choice, check_int, check_positive, message
from ._data import prepare

__all__ = ["HessianOperator"]

_LINEARIZE_PARAMS = (1 << 16, 1 << 22)  # where "auto" traces (module docstring)
# Peak memory of each product beyond one forward/backward, in units of
# cached_bytes_estimate(), measured on the 0.96M conv net at batch 128
# (benchmarks/resnet18_hessian.py): traced linearisation 7.3x, cached vjp 3.0x,
# uncached forward-over-reverse (per batch) 3.6x.
_HOLD = {"linearize": 7.5, "vjp": 3.0, "jvp": 3.6, "autograd": 3.0}
_FORWARD_MODE = ("linearize", "jvp")  # forward-mode products (not for tied weights)
_UNCACHED = "jvp"  # the product "auto" takes when nothing may be kept between products
_PROBE = 16  # samples used to measure the saved tensors per sample


class HessianOperator:
    """Matrix-free Hessian of a model's mean loss over a data set.

    Args:
        model: any ``torch.nn.Module``; derivatives are taken with respect to its
            parameters with ``requires_grad=True``, flattened in ``named_parameters``
            order (see :attr:`theta`).
        loss_fn: ``(output, target) -> scalar``, the **mean** loss over a batch (e.g.
            ``torch.nn.functional.cross_entropy``, or ``0.5 * ((out - y)**2).sum(1).mean()``
            for the project's MSE 1/(2N) sum ||f - y||^2).
        data: ``(inputs, targets)`` or an iterable of such batches; batch b enters with
            weight n_b / N, so the result is the exact full-batch Hessian.
        cache: keep each batch's linearisation between products (fast; memory grows
            with the number of batches). ``False`` rebuilds it on every product.
        method: "auto", "linearize", "vjp", "jvp" or "autograd" (module docstring).
        memory_budget: bytes the products may hold beyond one forward/backward;
            ``"auto"`` then picks the product and micro-batches by memory (module
            docstring). None: the fastest cached product.
        micro_batch: split every batch into pieces of at most this many samples
            (exact for a mean loss; refused for BatchNorm in train mode).

    The operator: ``H.matvec(v)`` or ``H @ v`` (v of shape (P,) or (P, k)),
    ``H.shape == (P, P)``, ``H.dtype``, ``H.device``, ``H.n_matvecs`` (products so far).

    >>> lin = torch.nn.Linear(2, 1, bias=False).double()
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[0.3, -0.2]]))
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> y = torch.zeros(2, 1, dtype=torch.float64)
    >>> H = HessianOperator(lin, lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean(), (x, y))
    >>> H.dense().tolist()  # X^T X / N for linear least squares
    [[0.5, 0.0], [0.0, 2.0]]
    """

    def __init__(
        self,
        model: Any,
        loss_fn: Callable,
        data: Any,
        *,
        cache: bool = True,
        method: Literal["auto", "linearize", "vjp", "jvp", "autograd"] = "auto",
        memory_budget: float | None = None,
        micro_batch: int | None = None,
    ) -> None:
        self.method = check_choice(
            "method", method, ("auto", "linearize", "vjp", "jvp", "autograd")
        )
        self._flat, self._batches = prepare(model, loss_fn, data)
        if self._flat.tied and self.method in _FORWARD_MODE:
            raise ValueError(
                message(
                    "method",
                    "'auto', 'vjp' or 'autograd' for a model that uses a parameter twice "
                    "(tied weights; torch 2.13's forward-mode products crash or fail there)",
                    method,
                )
            )
        self.loss_fn = loss_fn
        self._cache = bool(cache)
        self.n_samples = sum(x.shape[0] for x, _ in self._batches)
        if memory_budget is not None:
            memory_budget = check_positive("memory_budget", memory_budget)
        self.memory_budget = memory_budget
        if micro_batch is None and memory_budget is not None and self.method == "auto":
            micro_batch = self._plan(model, memory_budget)
        if micro_batch is not None:
            micro_batch = check_int("micro_batch", micro_batch, minimum=1)
            _check_separable(model)
            self._batches = [
                (x[i : i + micro_batch], y[i : i + micro_batch])
                for x, y in self._batches
                for i in range(0, x.shape[0], micro_batch)
            ]
        sizes = torch.tensor([x.shape[0] for x, _ in self._batches], dtype=torch.float64)
        self._weights = (sizes / sizes.sum()).tolist()
        self._vjps: list[Any] = [None] * len(self._batches)
        self._grads: list[torch.Tensor | None] = [None] * len(self._batches)
        self.n_matvecs = 0

    # -- the operator ------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self._flat.dim, self._flat.dim)

    @property
    def dtype(self) -> torch.dtype:
        return self._flat.dtype

    @property
    def device(self) -> torch.device:
        return self._flat.device

    @property
    def theta(self) -> torch.Tensor:
        """The flat parameter vector (P,) at which H is taken (a detached copy)."""
        return self._flat.theta.clone()

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector (P,) -> {parameter name: tensor of that parameter's shape}."""
        v = self._check_vector(v)
        if v.ndim != 1:
            raise ValueError(message("v", f"a flat vector of shape ({self._flat.dim},)", v.shape))
        return self._flat.unflatten(v)

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], Any]:
        f = self._flat.output_fn(x)
        return lambda theta: self.loss_fn(f(theta), y)

    def _plan(self, model: torch.nn.Module, budget: float) -> int | None:
        """``"auto"`` under a memory budget: the fastest product whose memory fits
        (module docstring); returns the micro-batch size when batches must be split."""
        per_sample = self.cached_bytes_estimate() / self.n_samples
        need = per_sample * self.n_samples
        traced = _LINEARIZE_PARAMS[0] <= self._flat.dim <= _LINEARIZE_PARAMS[1]
        traced = traced and not self._flat.tied
        if self._cache and traced and _HOLD["linearize"] * need <= budget:
            self.method = "linearize"
        elif self._cache and _HOLD["vjp"] * need <= budget:
            self.method = "vjp"
        else:
            uncached = "autograd" if self._flat.tied else _UNCACHED
            self.method, self._cache = uncached, False
            largest = max(x.shape[0] for x, _ in self._batches)
            fits = int(budget // (_HOLD[_UNCACHED] * per_sample))
            if fits < largest and _separable(model):
                return max(1, fits)
        return None

    def _resolve(self) -> str:
        """The product actually used (``method``, or the choice of ``"auto"``)."""
        if self.method != "auto":
            return self.method
        # Tracing pays off only when the linearisation is kept between products.
        traced = _LINEARIZE_PARAMS[0] <= self._flat.dim <= _LINEARIZE_PARAMS[1]
        return "linearize" if traced and self._cache and not self._flat.tied else "vjp"

    def cached_bytes_estimate(self) -> int:
        """Bytes that cached products would hold: the tensors saved by the gradient's
        graph for the double backward (reverse mode with ``create_graph``), counted once
        per storage on the first batch by ``torch.autograd.graph.saved_tensors_hooks``,
        scaled to all batches (theta itself excluded)."""
        x, y = self._batches[0]
        x, y = x[:_PROBE], y[:_PROBE]  # a few samples, scaled per sample below
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
            return t

        theta = self._flat.theta.detach().requires_grad_(True)
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self._batch_loss(x, y)(theta)
            (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
        del loss, grad
        seen.pop(theta.untyped_storage().data_ptr(), None)
        per_sample = sum(seen.values()) / x.shape[0]
        return int(per_sample * self.n_samples)

    def _vjp(self, b: int) -> Any:
        """v -> H_b v for batch b (built once when cached)."""
        fn = self._vjps[b]
        if fn is None:
            x, y = self._batches[b]
            g = torch.func.grad(self._batch_loss(x, y))
            use = self._resolve()
            if use == "jvp":  # forward-over-reverse, nothing kept between products

                def fn(v: torch.Tensor, g=g) -> torch.Tensor:
                    return torch.func.jvp(g, (self._flat.theta,), (v,))[1]

                return fn
            if use == "linearize":
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # torch.fx's const-folding chatter
                        grad, fn = torch.func.linearize(g, self._flat.theta)
                        # torch 2.13: the traced product of some models (GroupNorm) works
                        # once and fails on the next call, so it is called twice here
                        for _ in range(2):
                            fn(torch.zeros_like(self._flat.theta))
                    use = "linearize"
                except Exception as err:
                    if self.method == "linearize":
                        raise ValueError(
                            message(
                                "method",
                                "a product torch can trace for this model",
                                "linearize",
                                f"torch.func.linearize failed ({type(err).__name__}); "
                                "use 'vjp' or 'auto'",
                            )
                        ) from err
                    use = self.method = "vjp"
            if use == "autograd":  # double backward through torch.autograd's own graph
                theta = self._flat.theta.detach().requires_grad_(True)
                with torch.enable_grad():
                    loss = self._batch_loss(x, y)(theta)
                    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)

                def fn(v: torch.Tensor, grad=grad, theta=theta) -> torch.Tensor:
                    (hv,) = torch.autograd.grad(grad, theta, v, retain_graph=self._cache)
                    return hv

            if use == "vjp":
                grad, vjp_fn = torch.func.vjp(g, self._flat.theta)

                def fn(v: torch.Tensor, vjp_fn=vjp_fn) -> torch.Tensor:
                    return vjp_fn(v)[0]

            self._grads[b] = grad.detach()
            if self._cache:
                self._vjps[b] = fn
        return fn

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for v of shape (P,), or H V for V of shape (P, k) (column by column)."""
        v = self._check_vector(v)
        if v.ndim == 2:
            return torch.stack([self.matvec(v[:, j]) for j in range(v.shape[1])], dim=1)
        out = torch.zeros_like(v)
        for b, w in enumerate(self._weights):
            out.add_(self._vjp(b)(v), alpha=w)
        self.n_matvecs += 1
        return out.detach()

    __matmul__ = matvec

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v)

    def gradient(self) -> torch.Tensor:
        """The full-batch gradient dL/dtheta (P,) (free once the operator is built)."""
        total = torch.zeros_like(self._flat.theta)
        for b, w in enumerate(self._weights):
            if self._resolve() == "jvp":  # nothing cached: one gradient per batch
                x, y = self._batches[b]
                total.add_(torch.func.grad(self._batch_loss(x, y))(self._flat.theta), alpha=w)
                continue
            if self._grads[b] is None:
                self._vjp(b)
            total.add_(self._grads[b], alpha=w)
            if not self._cache:
                self._grads[b] = None
        return total

    def loss(self) -> float:
        """The full-batch mean loss L(theta)."""
        with torch.no_grad():
            return float(
                sum(
                    w * self._batch_loss(x, y)(self._flat.theta)
                    for w, (x, y) in zip(self._weights, self._batches, strict=True)
                )
            )

    def dense(self) -> torch.Tensor:
        """The full (P, P) matrix by P products (small models and tests only)."""
        return self.matvec(torch.eye(self._flat.dim, dtype=self.dtype, device=self.device))

    def _check_vector(self, v: Any) -> torch.Tensor:
        if not isinstance(v, torch.Tensor):
            raise TypeError(message("v", "a torch.Tensor", type(v).__name__))
        if v.ndim not in (1, 2) or v.shape[0] != self._flat.dim:
            raise ValueError(
                message(
                    "v", f"of shape ({self._flat.dim},) or ({self._flat.dim}, k)", tuple(v.shape)
                )
            )
        if v.is_complex():
            raise TypeError(message("v", "a real tensor", f"dtype {v.dtype}"))
        v = v.detach().to(dtype=self.dtype, device=self.device)
        if not bool(torch.isfinite(v).all()):
            raise ValueError(
                message("v", "finite (no NaN or inf)", "non-finite entries", "Check its source")
            )
        return v

    def __repr__(self) -> str:
        return (
            f"HessianOperator(P={self._flat.dim}, N={self.n_samples}, "
            f"batches={len(self._batches)}, dtype={self.dtype})"
        )


def _separable(model: torch.nn.Module) -> bool:
    return not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules()
    )


def _check_separable(model: torch.nn.Module) -> None:
    """Micro-batches are exact only when samples do not interact (no batch statistics)."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and mod.training:
            raise ValueError(
                message(
                    "micro_batch",
                    "None for a model that normalises with batch statistics",
                    f"{type(mod).__name__} {name or '(model)'} in train mode",
                    "Call model.eval() or pass micro_batch=None",
                )
            )
