"""``--cluster``: a batch's files as tasks of a Dask ``distributed`` scheduler.

:func:`hstool.cli.batch.run_batch` hands its items here when ``--cluster ADDRESS`` (or
``HSTOOL_CLUSTER``) is set: each file is one task submitted to the scheduler at ``ADDRESS``
(``tcp://host:8786``), or to an in-process ``LocalCluster`` of N worker processes for ``local:N``.
Dask's scheduler does the placing, the retries after a worker died and the dashboard; this module
only connects, checks that the workers see the batch's files, submits and collects.

Files travel by path: the workers must see the inputs and the output folders at the same paths
(a shared filesystem, or workers started in this folder for relative paths).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import typer

from hstool.hsdata import HsError

from .output import err

#: what --cluster names for this command run (set by the option's callback, once per command)
CLUSTER: dict[str, Any] = {"address": None, "from_env": False, "client": None, "local": None, "threads": None,
                           "config": None}
#: seconds to wait for a scheduler before saying it cannot be reached
CONNECT_TIMEOUT = 10
#: how many times a worker may die running a task before the task is that file's failure: one rerun
ALLOWED_FAILURES = 1
EXTRA = 'pip install "hstool[cluster]"'
_LOCAL = re.compile(r"local(?::(\d+))?$")


def use(ctx: typer.Context, param: typer.CallbackParam, address: str | None) -> str | None:
    """The ``--cluster`` option's callback: remember the address for this command's batches, and
    close the connection (and a ``local:N`` cluster) when the command ends."""
    close()
    address = (address or "").strip() or None
    source = ctx.get_parameter_source(param.name)
    CLUSTER.update(address=address, from_env=source is not None and source.name == "ENVIRONMENT")
    if address is not None:
        ctx.call_on_close(close)
    return address


def runs(workers: int) -> bool:
    """Whether a batch goes to the cluster: with ``--cluster``, unless ``-j N`` beside an address from
    ``HSTOOL_CLUSTER`` asks for this machine; ``-j N`` beside ``--cluster`` is refused."""
    if CLUSTER["address"] is None:
        return False
    if workers > 1:
        if CLUSTER["from_env"]:
            return False
        raise HsError("give --cluster or -j N, not both: the cluster's workers run the batch")
    return True


def close() -> None:
    """Disconnect, and stop a ``local:N`` cluster this run started."""
    client, local, config = CLUSTER["client"], CLUSTER["local"], CLUSTER["config"]
    CLUSTER.update(client=None, local=None, address=None, threads=None, config=None)
    for stop in (client and client.close, local and local.close, config and (lambda: config.__exit__(None, None, None))):
        with contextlib.suppress(Exception):
            if stop:
                stop()


def _distributed():
    try:
        import distributed
    except ImportError:
        raise HsError(f"--cluster needs Dask distributed: {EXTRA}") from None
    return distributed


def client(spawn: bool = False):
    """The connected ``distributed.Client`` (connecting, or starting ``local:N``, on first use).
    ``local:N`` forks its workers from this process, as ``-j N`` does (they start at once, with the
    batch's modules imported), unless ``spawn`` or CUDA asks for fresh processes
    (:func:`hstool.cli.batch.pool_context`)."""
    if CLUSTER["client"] is not None:
        return CLUSTER["client"]
    distributed = _distributed()
    import dask

    address = CLUSTER["address"]
    local = _LOCAL.match(address)
    for name in ("distributed", "distributed.client", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # hstool says what matters, in its own lines
    port = re.fullmatch(r"(?:[a-z]+://)?[^:/]+:(.*)", address)
    if address.startswith("local:") and not local or port and not port.group(1).isdigit():
        raise HsError(f"--cluster {address}: give local:N (N worker processes here) or a scheduler's "
                      "tcp://HOST:PORT")
    if local:
        n = int(local.group(1) or os.cpu_count() or 1)
        if n < 1:
            raise HsError(f"--cluster {address}: local:N takes N >= 1 worker processes")
        # each worker takes its share of the cores as a -j N worker does (Dask would set OMP_NUM_THREADS=1
        # and the like), and keeps glibc's memory reuse (Dask returns freed memory to the system at once:
        # each large array is then faulted in afresh): it computes as fast as one, and to the same bytes
        from .batch import pool_context, worker_threads

        threads = worker_threads(n)
        environ = {k: str(threads) for k in dask.config.get("distributed.nanny.pre-spawn-environ")
                   if k.endswith("_NUM_THREADS")}
        context = pool_context(spawn, threads)
        # for the cluster's lifetime (until close()): a worker started again after one died starts alike
        CLUSTER["config"] = dask.config.set({
            "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
            "distributed.nanny.pre-spawn-environ": environ,
            "distributed.worker.multiprocessing-method": context.get_start_method() if context else "spawn"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Port 8787 is already in use": the dashboard moves to another
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=_dashboard(), silence_logs=logging.ERROR)
        CLUSTER.update(local=cluster, threads=threads)
        CLUSTER["client"] = distributed.Client(cluster)
    else:
        if "://" not in address:
            address = "tcp://" + address
        try:
            CLUSTER["client"] = distributed.Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise HsError(f"--cluster: no Dask scheduler answers at {address} within {CONNECT_TIMEOUT} s "
                          f"({' '.join(str(exc).split()) or type(exc).__name__})") from None
    link = CLUSTER["client"].dashboard_link if _dashboard() else None
    n = len(CLUSTER["client"].scheduler_info().get("workers", {}))
    err.print(f"cluster {CLUSTER['address']}: {n} worker(s)" + (f", dashboard {link}" if link else ""))
    return CLUSTER["client"]


def _dashboard() -> str | None:
    """A dashboard for ``local:N`` where bokeh is installed (Dask needs it to serve one)."""
    import importlib.util

    return ":0" if importlib.util.find_spec("bokeh") else None


def _paths(item: Any) -> Iterator[Path]:
    """The paths an item names (a path, a tuple or a dataclass of them, a level deep)."""
    if isinstance(item, Path):
        yield item
    elif isinstance(item, (tuple, list)):
        for x in item:
            if isinstance(x, Path):
                yield x
    elif dataclasses.is_dataclass(item):
        for f in dataclasses.fields(item):
            x = getattr(item, f.name)
            if isinstance(x, Path):
                yield x


def _probe(inputs: list[str], folders: list[str]) -> tuple[list[str], list[str]]:
    """On a worker: the inputs it cannot see, the folders it cannot write to."""
    missing = [p for p in inputs if not os.path.exists(p)]
    unwritable = []
    for folder in folders:
        f = Path(folder)
        while not f.exists() and f != f.parent:  # a folder still to be made: its nearest existing parent
            f = f.parent
        try:
            fd, probe = tempfile.mkstemp(prefix=".hstool-probe-", dir=f)
            os.close(fd)
            os.unlink(probe)
        except OSError:
            unwritable.append(folder)
    return missing, unwritable


def check_workers(items: Sequence[Any], spawn: bool = False) -> None:
    """Refuse the batch, in one line, when a worker cannot see its inputs or write its outputs:
    the paths an item names that exist here are inputs, the folders of those that do not are
    output folders. ``spawn`` as in :func:`client`, which this connects."""
    paths = {p for item in items for p in _paths(item)}
    inputs = sorted(str(p) for p in paths if p.exists())
    folders = sorted({str(p.parent) for p in paths if not p.exists()})
    replies = client(spawn).run(_probe, inputs, folders)
    for worker, (missing, unwritable) in sorted(replies.items()):
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise HsError(f"--cluster: worker {worker} cannot see {missing[0]}{more}: the workers need the files "
                          "at the same paths (a shared filesystem; absolute paths unless they run in this folder)")
        if unwritable:
            raise HsError(f"--cluster: worker {worker} cannot write to {unwritable[0]} (a shared, writable "
                          "output folder is needed)")


def run(items: Sequence[Any], call: Callable, fn: Callable, name: Callable[[Any], str], debug: bool,
        finished: Callable[[int, tuple[bool, Any]], None], setup: Callable[[], Any] | None = None) -> None:
    """Submit ``call(fn, item, name(item), debug)`` for each item to the cluster and hand each
    outcome to ``finished(index, (ok, value))`` as it comes. Each worker first runs ``setup()``
    (e.g. loads the model) and, on ``local:N``, takes its share of the cores as a ``-j N`` worker
    does, so that it computes the same bytes (:class:`~hstool.cli.cluster_worker.Prepare`); ``fn``
    travels to each worker once (scattered). A task whose worker died twice is that item's failure;
    a scheduler that goes away stops the batch with one line (the jobs that finished keep their
    outputs)."""
    distributed = _distributed()
    c = client()
    from .cluster_worker import Prepare, task

    try:
        threads = CLUSTER["threads"]  # local:N's share of the cores; a scheduler's workers keep their own
        c.register_plugin(Prepare(threads, setup))
        shared = c.scatter(fn, broadcast=True, hash=False)
        since = time.time()
        futures = {c.submit(task, call, shared, item, name(item), debug, since, threads, pure=False): i
                   for i, item in enumerate(items)}
        for fut in distributed.as_completed(futures):
            i = futures[fut]
            try:
                outcome = fut.result()
            except CancelledError:  # the client cancels every task when it loses the scheduler
                raise OSError("connection lost") from None
            except OSError:  # a result that cannot be fetched (CommClosedError): the cluster went away
                raise
            except distributed.KilledWorker:
                why = f"the workers running it died {ALLOWED_FAILURES + 1} times (out of memory?)"
                outcome = (False, f"{name(items[i])}: {why}")
            except Exception as exc:  # noqa: BLE001 -- reported per file, the batch goes on
                outcome = (False, f"{name(items[i])}: {type(exc).__name__}: {' '.join(str(exc).split())}")
            finished(i, outcome)
    except (OSError, TimeoutError, distributed.comm.CommClosedError) as exc:
        raise HsError(f"--cluster: lost the scheduler at {CLUSTER['address']} "
                      f"({' '.join(str(exc).split()) or type(exc).__name__}); the files finished are kept, "
                      "a rerun does the rest") from None

