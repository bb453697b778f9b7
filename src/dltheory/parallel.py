"""Scale-out in one place: run a sweep of independent tasks serially or on Dask.

A sweep is a function and a list of keyword-argument dicts (one per task:
width, depth, seed, ...). ``backend="serial"`` (the default) runs them here,
in order; ``backend="dask"`` submits them to ``dask.distributed`` — a
``LocalCluster`` started for the sweep, or the scheduler at ``address`` — and
collects them as they finish. Either way:

* results come back in task order, and ``on_result(index, task, result)`` is
  called as each one finishes (write it to disk there: an interrupted sweep
  keeps what finished);
* each task runs with ``threads_per_task`` torch threads (1 by default), so
  the same task gives bitwise the same numbers on both backends — BLAS
  reductions may change order with the thread count;
* tasks carry their own seeds (see :func:`task_seeds`), never a shared generator.

The function must be importable by the workers (a module-level function).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from ._checks import check_bytes, check_choice, check_int, message

__all__ = ["Pool", "configure", "grid", "pool", "sweep", "task_seeds", "torch_threads"]

__fuzz_exempt__ = {"grid:nan": "passes the values it is given through (NaN included)"}

Backend = Literal["serial", "dask"]
OnResult = Callable[[int, Mapping[str, Any], Any], None]


_DEFAULTS: dict[str, Any] = {"backend": "serial", "address": None, "n_workers": 2}


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Within the block torch uses ``n`` intra-op threads (restored afterwards).

    Many small tensor operations (training a small net step by step) run faster on
    one thread than on several that spin against each other, especially on a
    shared machine.

    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(message("n", "an integer >= 1", n))
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def configure(
    backend: Backend = "serial", *, address: str | None = None, n_workers: int = 2
) -> Iterator[None]:
    """Within the block, sweeps that do not name a backend use this one.

    This is how callers that do not expose a backend themselves (the report's
    reproductions, ``dltheory report --backend dask``) are sent to Dask.

    >>> with configure("serial"):
    ...     sweep(pow, [{"base": 2, "exp": 5}])
    [32]
    """
    check_choice("backend", backend, ("serial", "dask"))
    n_workers = check_int("n_workers", n_workers, minimum=1)
    before = dict(_DEFAULTS)
    _DEFAULTS.update(backend=backend, address=address, n_workers=n_workers)
    try:
        yield
    finally:
        _DEFAULTS.clear()
        _DEFAULTS.update(before)


def task_seeds(root: int, n: int) -> list[int]:
    """``n`` independent seeds from one root (``numpy.random.SeedSequence`` spawning).

    >>> task_seeds(0, 3) == task_seeds(0, 3) and len(set(task_seeds(0, 3))) == 3
    True
    """
    root = check_int("root", root, minimum=0)
    n = check_int("n", n, minimum=0)
    check_bytes("n", 256.0 * n, fix="Ask for fewer seeds")  # one SeedSequence per task
    children = np.random.SeedSequence(root).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint64)[0] & ((1 << 63) - 1)) for c in children]


def grid(seed: int | None = None, **axes: Sequence[Any]) -> list[dict[str, Any]]:
    """The Cartesian product of the named axes as task dicts, each with its own seed.

    The values are passed through as given (any objects, NaN included).

    With ``seed`` given, task i gets ``seed=task_seeds(seed, n)[i]``.

    >>> grid(width=[8, 16], depth=[2])
    [{'width': 8, 'depth': 2}, {'width': 16, 'depth': 2}]
    """
    names = list(axes)
    for name in names:
        if isinstance(axes[name], str) or not isinstance(axes[name], Sequence):
            raise TypeError(message(name, "a sequence of values", axes[name]))
    mesh = np.array(np.meshgrid(*[np.arange(len(axes[n])) for n in names], indexing="ij"))
    combos = mesh.reshape(len(names), -1).T if names else np.zeros((1, 0), dtype=int)
    tasks = [{n: axes[n][int(i)] for n, i in zip(names, row, strict=True)} for row in combos]
    if seed is not None:
        for task, s in zip(tasks, task_seeds(seed, len(tasks)), strict=True):
            task["seed"] = s
    return tasks


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_task(fn: Callable[..., Any], task: Mapping[str, Any], threads: int | None) -> Any:
    with _torch_threads(threads):
        try:
            return fn(**task)
        except Exception as err:
            err.add_note(f"in sweep task {dict(task)!r}")  # keeps the type callers catch
            raise


def sweep(
    fn: Callable[..., Any],
    tasks: Iterable[Mapping[str, Any]],
    *,
    backend: Backend | None = None,
    address: str | None = None,
    n_workers: int | None = None,
    threads_per_task: int | None = 1,
    on_result: OnResult | None = None,
) -> list[Any]:
    """Run ``fn(**task)`` for every task; results in task order.

    Args:
        fn: a module-level function (workers import it by name).
        tasks: keyword-argument dicts, e.g. from :func:`grid`.
        backend: ``"serial"`` (here, in order) or ``"dask"``; ``None``: the one set
            by :func:`configure` (serial unless configured).
        address: a running Dask scheduler (``"tcp://host:8786"``); ``None`` with
            ``backend="dask"`` starts a ``LocalCluster`` of ``n_workers``
            single-threaded worker processes for this sweep.
        n_workers: workers of the local cluster (default 2, or as configured).
        threads_per_task: torch threads inside each task (``None``: leave as is).
        on_result: called as ``on_result(index, task, result)`` when a task finishes.

    >>> sweep(pow, [{"base": 2, "exp": 3}, {"base": 3, "exp": 2}])
    [8, 9]
    """
    if not callable(fn):
        raise TypeError(message("fn", "callable", fn))
    tasks = [dict(t) if isinstance(t, Mapping) else t for t in tasks]
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise TypeError(message(f"tasks[{i}]", "a dict of keyword arguments", task))
    if backend is None:
        backend = _DEFAULTS["backend"]
    if backend == "dask" and address is None and _DEFAULTS["backend"] == "dask":
        address = _DEFAULTS["address"]
    n_workers = _DEFAULTS["n_workers"] if n_workers is None else n_workers
    check_choice("backend", backend, ("serial", "dask"))
    if threads_per_task is not None:
        threads_per_task = check_int("threads_per_task", threads_per_task, minimum=1)
    if address is not None and backend != "dask":
        raise ValueError(message("address", "given only with backend='dask'", address))
    if backend == "serial":
        results = []
        for i, task in enumerate(tasks):
            results.append(_run_task(fn, task, threads_per_task))
            if on_result is not None:
                on_result(i, task, results[-1])
        return results
    return _dask_sweep(
        fn,
        tasks,
        address,
        check_int("n_workers", n_workers, minimum=1),
        threads_per_task,
        on_result,
    )


@contextlib.contextmanager
def _dask_client(address: str | None, n_workers: int) -> Iterator[Any]:
    """A ``dask.distributed.Client``: on a new LocalCluster, or on the scheduler at ``address``."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - dask is a declared extra
        raise ImportError(
            "backend='dask' needs dask.distributed: pip install 'dltheory[dask]'"
        ) from err
    with contextlib.ExitStack() as stack:
        if address is None:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(address))
        yield client


def _dask_sweep(fn, tasks, address, n_workers, threads, on_result) -> list[Any]:
    from dask.distributed import as_completed

    with _dask_client(address, n_workers) as client:
        futures = [client.submit(_run_task, fn, task, threads, pure=False) for task in tasks]
        index = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(tasks)
        try:
            for future in as_completed(futures):
                i = index[future.key]
                results[i] = future.result()
                if on_result is not None:
                    on_result(i, tasks[i], results[i])
        except BaseException:
            client.cancel(futures)
            raise
        return results


class Pool:
    """Many rounds of tasks on one backend (an iterative solver's block products).

    ``sweep`` starts a cluster per call; a ``Pool`` (from :func:`pool`) keeps one
    Dask client for all its rounds and lets large arguments be sent to the
    workers once (:meth:`scatter`). The serial pool runs tasks here, in order.

    Attributes:
        backend: ``"serial"`` or ``"dask"``.
        threads_per_task: torch threads inside each task (``None``: as is).
    """

    def __init__(self, backend: Backend, client: Any = None, threads_per_task: int | None = 1):
        self.backend = backend
        self.threads_per_task = threads_per_task
        self._client = client

    def scatter(self, value: Any) -> Any:
        """``value`` itself (serial) or a future of it held by every worker (Dask)."""
        if self._client is None:
            return value
        # hash=False: equal data scattered twice must not share (and free) one key.
        return self._client.scatter(value, broadcast=True, hash=False)

    def map(
        self,
        fn: Callable[..., Any],
        tasks: Iterable[Mapping[str, Any]],
        *,
        workers: Sequence[str | None] | None = None,
    ) -> list[Any]:
        """``[fn(**task) for task in tasks]``, in task order (futures in tasks are resolved).

        ``workers`` (Dask): the worker address each task must run on (from
        :meth:`placement`; None: anywhere), so that kept data is not copied.
        """
        tasks = [dict(t) for t in tasks]
        if self._client is None:
            return [_run_task(fn, task, self.threads_per_task) for task in tasks]
        return self._client.gather(self._submit(fn, tasks, workers))

    def persist(
        self,
        fn: Callable[..., Any],
        tasks: Iterable[Mapping[str, Any]],
        *,
        workers: Sequence[str | None] | None = None,
    ) -> list[Any]:
        """Like :meth:`map`, but each result stays where it was computed.

        Serial: the results. Dask: futures whose data the workers keep (until the
        futures are dropped); pass them inside later tasks, with ``workers`` from
        :meth:`placement` so that each runs where its data is.
        """
        tasks = [dict(t) for t in tasks]
        if self._client is None:
            return [_run_task(fn, task, self.threads_per_task) for task in tasks]
        return self._submit(fn, tasks, workers)

    def workers(self) -> list[str | None]:
        """The Dask workers' addresses, sorted; serial: ``[None]``."""
        if self._client is None:
            return [None]
        return sorted(self._client.scheduler_info()["workers"])

    def placement(self, futures: Sequence[Any]) -> list[str | None]:
        """The worker holding each of ``futures`` (after waiting for them); serial: None."""
        if self._client is None:
            return [None] * len(futures)
        from dask.distributed import wait

        wait(list(futures))
        holders = self._client.who_has(list(futures))
        return [sorted(holders[f.key])[0] for f in futures]

    def _submit(self, fn, tasks, workers) -> list[Any]:
        where = [None] * len(tasks) if workers is None else list(workers)
        if len(where) != len(tasks):
            raise ValueError(message("workers", f"one address per task ({len(tasks)})", where))
        return [
            self._client.submit(
                _run_task,
                fn,
                task,
                self.threads_per_task,
                pure=False,
                workers=None if w is None else [w],
                allow_other_workers=False,
            )
            for task, w in zip(tasks, where, strict=True)
        ]


@contextlib.contextmanager
def pool(
    backend: Backend | None = None,
    *,
    address: str | None = None,
    n_workers: int | None = None,
    threads_per_task: int | None = 1,
) -> Iterator[Pool]:
    """A :class:`Pool` for the block: serial, or one Dask client for every round.

    Arguments as in :func:`sweep` (``None``: as set by :func:`configure`).

    >>> with pool("serial") as p:
    ...     p.map(pow, [{"base": 2, "exp": 3}, {"base": 3, "exp": 2}])
    [8, 9]
    """
    if backend is None:
        backend = _DEFAULTS["backend"]
        if backend == "dask" and address is None:
            address = _DEFAULTS["address"]
    check_choice("backend", backend, ("serial", "dask"))
    n_workers = check_int(
        "n_workers", _DEFAULTS["n_workers"] if n_workers is None else n_workers, minimum=1
    )
    if threads_per_task is not None:
        threads_per_task = check_int("threads_per_task", threads_per_task, minimum=1)
    if address is not None and backend != "dask":
        raise ValueError(message("address", "given only with backend='dask'", address))
    if backend == "serial":
        yield Pool("serial", None, threads_per_task)
        return
    with _dask_client(address, n_workers) as client:
        yield Pool("dask", client, threads_per_task)
