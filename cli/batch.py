"""Run one library call per file with a progress bar; collect failures and carry on.

Every batch command (calibrate, simulate, recon, ...) goes through :func:`run_batch` so that
progress, per-file error reporting and worker processes behave the same everywhere.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hstool.hsdata import HsError

from .output import err, error


@dataclass
class Failure:
    item: Any
    message: str


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _call(fn: Callable, item: Any) -> tuple[bool, Any]:
    try:
        return True, fn(item)
    except Exception as exc:  # noqa: BLE001 -- reported per file, the batch goes on
        return False, _describe(exc)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=err,
        transient=False,
    )


def _pool_context():
    """Start workers by fork (cheap), unless this process has initialised CUDA, which a forked
    child cannot use ("Cannot re-initialize CUDA in forked subprocess"): then by spawn."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return multiprocessing.get_context("spawn")
    return None


def run_batch(
    items: Sequence[Any],
    fn: Callable[[Any], Any],
    description: str,
    workers: int = 1,
    name: Callable[[Any], str] = lambda item: Path(str(item)).name,
) -> tuple[list[tuple[Any, Any]], list[Failure]]:
    """Apply ``fn`` to each item; return ``(item, result)`` pairs in input order and the failures.

    With ``workers > 1``, ``fn`` must be picklable (a module-level function or a
    ``functools.partial`` of one). Failures are printed as they happen, one line each.
    """
    done: dict[int, tuple[bool, Any]] = {}
    with progress() as bar:
        task = bar.add_task(description, total=len(items), current="")
        if workers <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                bar.update(task, current=name(item))
                done[i] = _call(fn, item)
                if not done[i][0]:
                    error(done[i][1])
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
                futures = {pool.submit(_call, fn, item): i for i, item in enumerate(items)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        done[i] = fut.result()
                    except Exception as exc:  # noqa: BLE001 -- a worker died
                        done[i] = (False, _describe(exc))
                    if not done[i][0]:
                        error(done[i][1])
                    bar.update(task, advance=1, current=name(items[i]))
    results = [(items[i], done[i][1]) for i in range(len(items)) if done[i][0]]
    failures = [Failure(items[i], done[i][1]) for i in range(len(items)) if not done[i][0]]
    return results, failures


def report_failures(failures: list[Failure], total: int) -> int:
    """Print a closing line for the failures; return the exit code (0 when none failed)."""
    if not failures:
        return 0
    err.print(f"[bold red]{len(failures)} of {total} failed[/]; the others were written.")
    return 1
