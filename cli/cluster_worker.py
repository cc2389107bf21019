"""What runs on a ``--cluster`` worker (imported there, and here only when a batch goes to a
cluster: it needs Dask ``distributed``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from . import batch


class Prepare(WorkerPlugin):
    """Each worker's preparation for a batch, as a ``-j`` worker's (:func:`batch.init_worker`): its
    share of the cores (``threads``; ``None`` leaves the worker's own settings) and the batch's
    ``setup`` (e.g. loading the model), before its first task. Dask runs it on every worker there
    and on every worker that joins later, one that replaces a dead worker included."""

    name = "hstool-prepare"

    def __init__(self, threads: int | None, setup: Callable[[], Any] | None) -> None:
        self.threads, self.prepare = threads, setup

    def setup(self, worker: Any) -> None:
        batch.init_worker(self.threads, self.prepare)


#: the thread count each of a worker's task threads has been given
_THREAD = threading.local()


def task(call: Callable, fn: Callable, item: Any, label: str, debug: bool, since: float,
         threads: int | None) -> tuple[bool, Any]:
    """One file's task on a worker: ``call(fn, item, ...)``, where a job that finds some of its
    outputs written since ``since`` (the batch's start) takes them for the leftovers of an earlier
    attempt whose worker died (:data:`hstool.cli.batch.RERUN`). ``threads`` as in :class:`Prepare`,
    for this thread too: OpenMP (PyTorch's pool) keeps a thread count per calling thread, and
    Dask runs tasks on a thread of its own."""
    if threads is not None and getattr(_THREAD, "threads", None) != threads:
        batch.limit_threads(threads)
        _THREAD.threads = threads
    batch.RERUN.since = since
    try:
        return call(fn, item, label, debug)
    finally:
        batch.RERUN.since = None
