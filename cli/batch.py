"""Run one library call per file with a progress bar; collect failures and carry on.

Every batch command (calibrate, simulate, recon, ...) goes through :func:`run_batch` so that
progress, per-file error reporting and worker processes behave the same everywhere.
"""

from __future__ import annotations

import contextlib
import glob
import json
import multiprocessing
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hstool.hsdata import CUBE_FORMATS, HsError, check_writable, detect_format, input_files, list_files

from . import cluster
from .output import DEBUG, err, error


@dataclass
class Failure:
    item: Any
    message: str


def _describe(exc: BaseException, label: str, debug: bool) -> str:
    """One line naming the file: the error's own path when it has one, else the item's label."""
    if isinstance(exc, HsError) and exc.path is not None:
        text = str(exc)
    else:
        problem = exc.message if isinstance(exc, HsError) else f"{type(exc).__name__}: {exc}"
        text = f"{label}: {problem}"
    text = " ".join(text.split())
    if debug:  # --debug: the traceback too (it is lost across worker processes otherwise)
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return text


def _call(fn: Callable, item: Any, label: str, debug: bool) -> tuple[bool, Any]:
    try:
        return True, fn(item)
    except Exception as exc:  # noqa: BLE001 -- reported per file, the batch goes on
        return False, _describe(exc, label, debug)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", markup=False),  # a file name, as it is
        console=err,
        transient=False,
    )


def _pool_context(spawn: bool):
    """Start workers by fork (cheap), or by spawn when asked (a parent that ran a PyTorch model
    on the CPU: a forked child's first parallel region waits forever on the parent's OpenMP
    pool) or when this process has initialised CUDA, which a forked child cannot use ("Cannot
    re-initialize CUDA in forked subprocess")."""
    torch = sys.modules.get("torch")
    if spawn or (torch is not None and torch.cuda.is_initialized()):
        return multiprocessing.get_context("spawn")
    return None


def run_batch(
    items: Sequence[Any],
    fn: Callable[[Any], Any],
    description: str,
    workers: int = 1,
    name: Callable[[Any], str] = lambda item: Path(str(item)).name,
    spawn: bool = False,
) -> tuple[list[tuple[Any, Any]], list[Failure]]:
    """Apply ``fn`` to each item; return ``(item, result)`` pairs in input order and the failures.

    With ``workers > 1``, ``fn`` must be picklable (a module-level function or a
    ``functools.partial`` of one); ``spawn`` starts the workers afresh instead of forking this
    process (see :func:`_pool_context`). Failures are printed as they happen, one line each.
    """
    if not items:  # nothing to do (e.g. every output exists): no empty progress bar
        return [], []
    on_cluster = cluster.runs(workers)
    if on_cluster:  # connect, and check that the workers see the files, before the progress bar
        cluster.check_workers(items)
    done: dict[int, tuple[bool, Any]] = {}
    with progress() as bar:
        task = bar.add_task(description, total=len(items), current="")
        if on_cluster:  # --cluster: each item a task of the Dask scheduler

            def finished(i: int, outcome: tuple[bool, Any]) -> None:
                done[i] = outcome
                if not outcome[0]:
                    error(outcome[1])
                bar.update(task, advance=1, current=name(items[i]))

            cluster.run(items, _call, fn, name, DEBUG["on"], finished)
        elif workers <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                bar.update(task, current=name(item))
                done[i] = _call(fn, item, name(item), DEBUG["on"])
                if not done[i][0]:
                    error(done[i][1])
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(spawn)) as pool:
                futures = {pool.submit(_call, fn, item, name(item), DEBUG["on"]): i for i, item in enumerate(items)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        done[i] = fut.result()
                    except Exception as exc:  # noqa: BLE001 -- a worker died
                        done[i] = (False, _describe(exc, name(items[i]), DEBUG["on"]))
                    if not done[i][0]:
                        error(done[i][1])
                    bar.update(task, advance=1, current=name(items[i]))
    results = [(items[i], done[i][1]) for i in range(len(items)) if done[i][0]]
    failures = [Failure(items[i], done[i][1]) for i in range(len(items)) if not done[i][0]]
    return results, failures


def gather_inputs(paths: Sequence[Path], kinds: tuple[str, ...] = CUBE_FORMATS, in_format: str | None = None) -> list[Path]:
    """A batch's input files: each folder's files of ``kinds``, and each file named, except named
    files of another kind (a shell glob's ``cal/*`` brings the sidecars and previews beside the
    cubes), which are set aside with one note; a file named twice (an ENVI pair by its header and
    its binary) counts once. ``in_format`` takes every named file as that format. Nothing left is
    an error."""
    files, other = [], []
    for p in paths:
        if p.is_dir() or not p.exists() or in_format is not None:
            files += list_files(p, kinds)
            continue
        try:
            kind = detect_format(p)
        except HsError:
            kind = None
        (files if kind in kinds else other).append(p)
    if other:
        what = "cube" if "image" not in kinds else "image"
        note = f"set aside {len(other)} file(s) that are not {what}s: {', '.join(p.name for p in other[:5])}"
        err.print(note + (f" and {len(other) - 5} more" if len(other) > 5 else ""), style="yellow")
    if not files:
        raise HsError(f"no {'/'.join(kinds)} files among the inputs", other[0] if other else None)
    unique: dict[frozenset, Path] = {}  # a cube named twice (an ENVI pair by its header and its binary) once
    for f in files:
        unique.setdefault(frozenset(p.resolve() for p in input_files(f, in_format)), f)
    return list(unique.values())


#: ``since``: on a cluster worker's thread, when the task's batch began (:func:`hstool.cli.cluster.run`):
#: a job rerun after its worker died clears what the earlier attempt wrote (:func:`job_outputs`)
RERUN = threading.local()


def _clear_earlier_attempt(paths: list[Path], since: float) -> None:
    """Remove the files an earlier attempt of this job left, on a worker that died: its outputs
    written since the batch began (the plan found them missing, so no other run's) and its
    temporary files."""
    for path in paths:
        for f in [path, *path.parent.glob(f".{glob.escape(path.name)}.*.tmp")]:
            with contextlib.suppress(OSError):
                if f.is_file() and f.stat().st_mtime >= since - 2:  # coarse file times
                    f.unlink()


@contextlib.contextmanager
def job_outputs(paths: Iterable[str | Path], overwrite: bool, inputs: tuple[Path, ...] = ()) -> Iterator[None]:
    """Check every file a job writes (:func:`check_writable`), then let the job write them; if a
    write fails, the files the job had created are removed again, so a job leaves all of its new
    files or none (a file an ``overwrite`` replaced stays replaced)."""
    paths = [Path(p) for p in paths]
    since = getattr(RERUN, "since", None)
    if since is not None and not overwrite:
        _clear_earlier_attempt(paths, since)
    for path in paths:
        check_writable(path, overwrite, inputs)
    before = {p for p in paths if p.exists()}
    try:
        yield
    except BaseException:
        for path in paths:
            if path not in before:
                with contextlib.suppress(OSError):
                    path.unlink()
        raise


def report_failures(failures: list[Failure], total: int, plan: Plan | None = None) -> int:
    """Print a closing line for the failures, and for the jobs of ``plan`` held back by some of
    their files being there already (:attr:`Plan.partial`); return the exit code: 1 when a job
    failed or is incomplete (an output asked for is missing), else 0."""
    held = len(plan.partial) if plan is not None else 0
    if held:
        err.print(f"[bold red]{held} job(s) incomplete[/]: some of their files exist and the others were not "
                  "written (--overwrite writes them all)", markup=True)
    if not failures:
        return 1 if held else 0
    rest = "" if len(failures) == total else "; the others were written"
    err.print(f"[bold red]{len(failures)} of {total} failed[/]{rest}.", markup=True)
    return 1


def incomplete(plan: Plan) -> list[dict[str, list[str]]]:
    """``plan``'s half-present jobs for ``--json``: the files there and the ones missing."""
    return [{"existing": [str(p) for p in there], "missing": [str(p) for p in missing]}
            for there, missing in plan.partial]


def batch_json(plan: Plan, rows: list[dict], skipped: list[str], failed: list[dict], previews: list[str] | None = None,
               preview_failures: Sequence[Failure] = ()) -> dict[str, Any]:
    """What a batch's ``--json`` says, the same keys for every batch: ``written`` rows, the jobs
    ``incomplete`` and ``skipped``, the ``previews`` written from existing cubes (where the batch
    writes previews), and what ``failed``, the previews' failures included."""
    out: dict[str, Any] = {"written": rows, "incomplete": incomplete(plan), "skipped": skipped}
    if previews is not None:
        out["previews"] = previews
    out["failed"] = failed + [{"preview": str(f.item.png), "error": f.message} for f in preview_failures]
    return out


#: how many half-present jobs :func:`finish_skipped` names one by one
PARTIAL_SHOWN = 5


class PreviewJob(NamedTuple):
    """A preview to render from a cube already written. A cube file that keeps no units (``.npy``)
    takes them from the file ``units_of`` (the cube it was converted from, read as
    ``units_of_format``, or the JSON sidecar written with it), or else from ``units``, so that a
    reflectance cube previews as reflectance, as it did when it was written."""

    cube: Path
    png: Path
    units: str | None = None
    units_of: Path | None = None
    units_of_format: str | None = None  # --in-format of ``units_of``
    replace: bool = False  # the png is there, older than its cube (an earlier run's): rendered again


class Plan(NamedTuple):
    """What a batch does: ``todo`` jobs run, ``skipped`` ones keep the outputs they have, and
    ``previews`` lists the :class:`PreviewJob` of each job whose cube exists but whose preview does
    not: the preview is rendered from that cube (:func:`finish_skipped`), so a rerun with
    ``--preview`` adds previews to a finished batch without redoing it."""

    todo: list[Any]
    skipped: list[Any]
    previews: list[PreviewJob]
    #: skipped jobs that have only some of their files (another run's, a format changed): the
    #: files there, and the ones missing
    partial: list[tuple[list[Path], list[Path]]]
    #: previews of an earlier run beside cubes this run replaces without --preview: they will show
    #: the old cubes (said, not deleted; a later --preview run renders them again)
    stale: list[Path]


def plan_outputs(
    jobs: Sequence[Any],
    outputs: Callable[[Any], list[Path]],
    inputs: Iterable[str | Path],
    overwrite: bool,
    name: Callable[[Any], str],
    preview: Callable[[Any], PreviewJob] | None = None,
    with_preview: bool = True,
) -> Plan:
    """Check a batch's outputs before any work and plan it (:class:`Plan`).

    ``outputs(job)`` lists every file a job writes; ``preview(job)``, when given, where its preview
    goes, as a :class:`PreviewJob`, and ``with_preview`` whether this run writes it. The whole batch
    is refused (:class:`HsError`) when an output is one of the batch's ``inputs`` files, or when
    two jobs would write the same file. Unless ``overwrite``, a job any of whose outputs exists is
    skipped, so that a job writes all of its files or none — except that a missing preview of an
    existing cube, or one older than its cube, is planned from that cube.
    """
    protected = {Path(p).resolve() for p in inputs}
    owner: dict[Path, Any] = {}
    plan = Plan([], [], [], [], [])
    for job in jobs:
        files = outputs(job)
        for f in files:
            key = Path(f).resolve()
            if key in protected:
                raise HsError("output would overwrite an input file (choose another output folder)", f)
            if key in owner:
                raise HsError(
                    f"{name(owner[key])} and {name(job)} would both write this output: give them separate runs", f
                )
            owner[key] = job
        missing = [f for f in files if not Path(f).exists()]
        job_preview = preview(job) if preview is not None else None
        if overwrite or len(missing) == len(files):
            plan.todo.append(job)
            if job_preview is not None and not with_preview and job_preview.png.is_file():
                plan.stale.append(job_preview.png)
            continue
        plan.skipped.append(job)
        if not with_preview:
            job_preview = None
        if job_preview is not None and [Path(f) for f in missing] == [Path(job_preview.png)]:
            plan.previews.append(job_preview)
        elif job_preview is not None and not missing and _older(job_preview.png, job_preview.cube):
            plan.previews.append(job_preview._replace(replace=True))
        elif missing:
            plan.partial.append(([Path(f) for f in files if Path(f).exists()], [Path(f) for f in missing]))
    return plan


def _older(path: Path, than: Path) -> bool:
    """Whether ``path`` was last written before ``than`` (both there)."""
    with contextlib.suppress(OSError):
        return path.stat().st_mtime_ns < than.stat().st_mtime_ns
    return False


def _preview_of(job: PreviewJob) -> str:
    from hstool.hsdata import read_cube
    from hstool.hsdata.render import write_preview

    cube = read_cube(job.cube)
    units = cube.meta.get("units")  # the file's own, where it keeps them
    if not units and job.units_of is not None and job.units_of.exists():
        if job.units_of.suffix.lower() == ".json":  # a sidecar: what this run's options say may differ
            with contextlib.suppress(OSError, ValueError, AttributeError):
                units = json.loads(job.units_of.read_text()).get("units")
        else:
            units = read_cube(job.units_of, job.units_of_format).meta.get("units")
    units = units or job.units
    if units:
        cube.meta["units"] = units
    return str(write_preview(cube, job.png, overwrite=job.replace))


def finish_skipped(plan: Plan, what: str, workers: int = 1, spawn: bool = False) -> tuple[list[str], list[Failure]]:
    """Write the previews ``plan`` lists from the cubes already written; say so, and how many of
    the skipped ``what`` (e.g. "image(s)") kept their outputs; ``workers`` and ``spawn`` as in
    :func:`run_batch`. Returns (written, failures)."""
    if len(plan.skipped) > len(plan.previews):
        err.print(f"skipped {len(plan.skipped) - len(plan.previews)} {what} with existing outputs "
                  "(use --overwrite to redo them)")
    for there, missing in plan.partial[:PARTIAL_SHOWN]:  # all or none: say which files hold it back
        err.print(f"{', '.join(map(str, there))} {'exists' if len(there) == 1 else 'exist'} without "
                  f"{', '.join(map(str, missing))}: kept as {'it is' if len(there) == 1 else 'they are'}, "
                  "nothing added (another run's? --overwrite writes them all)", style="yellow")
    if len(plan.partial) > PARTIAL_SHOWN:
        err.print(f"... and {len(plan.partial) - PARTIAL_SHOWN} more with only some of their outputs", style="yellow")
    if plan.stale:
        shown = ", ".join(map(str, plan.stale[:PARTIAL_SHOWN])) + (", ..." if len(plan.stale) > PARTIAL_SHOWN else "")
        err.print(f"{len(plan.stale)} preview(s) of an earlier run stay beside the cubes this run replaces and show "
                  f"the old ones ({shown}): a rerun with --preview renders them again", style="yellow")
    if not plan.previews:
        return [], []
    redo = sum(p.replace for p in plan.previews)
    err.print(f"{len(plan.previews)} {what} already done: writing their "
              + ("missing previews" if not redo else f"missing or outdated previews ({redo} older than their cube)")
              + " from the cubes")
    results, failures = run_batch(plan.previews, _preview_of, "previews", workers, name=lambda p: p.png.name,
                                  spawn=spawn)
    return [r for _, r in results], failures
