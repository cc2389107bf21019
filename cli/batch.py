"""Run one library call per file with a progress bar; collect failures and carry on.

Every batch command (calibrate, simulate, recon, ...) goes through :func:`run_batch` so that
progress, per-file error reporting and worker processes behave the same everywhere.
"""

from __future__ import annotations

import contextlib
import glob
import json
import multiprocessing
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hstool.hsdata import (
    CUBE_FORMATS,
    HsError,
    broken_links,
    check_writable,
    detect_format,
    input_files,
    list_files,
)
from hstool.hsdata.atomic import job_claim, left_by_a_dead_run
from hstool.hsdata.errors import brief

from . import cluster
from .output import DEBUG, err, error, file_done, verbose


@dataclass
class Failure:
    item: Any
    message: str


def _describe(exc: BaseException, label: str, debug: bool) -> str:
    """One line naming the file: the error's own path when it has one, else the item's label."""
    if isinstance(exc, HsError) and exc.path is not None:
        text = str(exc)
    else:
        problem = exc.message if isinstance(exc, HsError) else f"{type(exc).__name__}: {brief(exc)}"
        text = f"{label}: {problem}"
    text = " ".join(text.split())
    if debug:  # --debug: the traceback too (it is lost across worker processes otherwise)
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return text


def failure_line(exc: BaseException, label: str) -> str:
    """The one line that reports a file's failure (``label`` names it when the error does not):
    for a command that goes through its files itself (``info``), as :func:`run_batch` does."""
    return _describe(exc, label, False)


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
        disable=verbose(),  # -v: a line per file instead (:func:`file_done`)
    )


# ---- worker processes (-j N); the same per-worker initialisation serves any other pool of workers ----

def worker_threads(workers: int) -> int:
    """Threads each of ``workers`` processes may use so that together they fill this machine's cores
    once (at least 1): two workers that each start a thread per core slow one another down."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def limit_threads(threads: int) -> None:
    """Cap this process's thread pools at ``threads``: BLAS and OpenMP (threadpoolctl, when
    installed, else the environment for libraries not loaded yet), OpenCV, and PyTorch if loaded."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # libraries loaded later (a spawned worker's imports)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    import cv2

    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:  # always: a forked child keeps the count its parent set, which threadpoolctl leaves,
        torch.set_num_threads(threads)  # and would wait forever on the parent's OpenMP pool, dead after the fork


def init_worker(threads: int | None, setup: Callable[[], Any] | None = None) -> None:
    """Prepare one worker process before its first job: :func:`limit_threads` (unless ``threads`` is
    None: the worker's own settings), then ``setup()`` once (e.g. load a model, so that each worker
    loads it once, not once per file), then the limits again for what ``setup`` loaded. Picklable
    arguments only (a module-level function or a ``functools.partial`` of one): spawned and remote
    workers receive them."""
    for step in (None, setup):
        if step is not None:
            step()
        if threads is not None:
            limit_threads(threads)


def pool_context(spawn: bool, threads: int):
    """Start workers by fork (cheap: they inherit this process's imports and loaded model), or by
    spawn when this process has initialised CUDA, which a forked child cannot use ("Cannot
    re-initialize CUDA in forked subprocess"), or when ``spawn`` is asked (a parent that ran a
    PyTorch model on the CPU) and the workers run PyTorch on more than one thread: a forked
    child's first parallel region waits forever on the parent's OpenMP pool. On one thread
    PyTorch runs its parallel loops inline, never in that pool, so forking is safe."""
    torch = sys.modules.get("torch")
    if (spawn and threads > 1) or (torch is not None and torch.cuda.is_initialized()):
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None

# ---- end of worker processes ----


def run_batch(
    items: Sequence[Any],
    fn: Callable[[Any], Any],
    description: str,
    workers: int = 1,
    name: Callable[[Any], str] = lambda item: Path(str(item)).name,
    spawn: bool = False,
    setup: Callable[[], Any] | None = None,
) -> tuple[list[tuple[Any, Any]], list[Failure]]:
    """Apply ``fn`` to each item; return ``(item, result)`` pairs in input order and the failures.

    With ``workers > 1``, ``fn`` must be picklable (a module-level function or a
    ``functools.partial`` of one); ``spawn`` starts the workers afresh instead of forking this
    process (see :func:`pool_context`). Each worker runs :func:`init_worker` first: its share of
    the cores, and ``setup()`` (e.g. load the model once per worker). Failures are printed as they
    happen, one line each.
    """
    if not items:  # nothing to do (e.g. every output exists): no empty progress bar
        return [], []
    on_cluster = cluster.runs(workers)
    if on_cluster:  # connect, and check that the workers see the files, before the progress bar
        cluster.check_workers(items, spawn)
    done: dict[int, tuple[bool, Any]] = {}
    with progress() as bar:
        task = bar.add_task(description, total=len(items), current="")
        if on_cluster:  # --cluster: each item a task of the Dask scheduler

            def finished(i: int, outcome: tuple[bool, Any]) -> None:
                done[i] = outcome
                if not outcome[0]:
                    error(outcome[1])
                else:
                    file_done(name(items[i]))
                bar.update(task, advance=1, current=name(items[i]))

            cluster.run(items, _call, fn, name, DEBUG["on"], finished, setup)
        elif workers <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                bar.update(task, current=name(item))
                done[i] = _call(fn, item, name(item), DEBUG["on"])
                if not done[i][0]:
                    error(done[i][1])
                else:
                    file_done(name(item))
                bar.advance(task)
        else:
            workers = min(workers, len(items))
            threads = worker_threads(workers)
            with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(spawn, threads),
                                     initializer=init_worker, initargs=(threads, setup)) as pool:
                futures = {pool.submit(_call, fn, item, name(item), DEBUG["on"]): i for i, item in enumerate(items)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        done[i] = fut.result()
                    except Exception as exc:  # noqa: BLE001 -- a worker died
                        done[i] = (False, _describe(exc, name(items[i]), DEBUG["on"]))
                    if not done[i][0]:
                        error(done[i][1])
                    else:
                        file_done(name(items[i]))
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
    note_broken_links(paths)
    for p in paths:
        if p.is_dir() or not p.exists() or in_format is not None:
            files += _not_previews(list_files(p, kinds)) if p.is_dir() else list_files(p, kinds)
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


def _not_previews(files: list[Path]) -> list[Path]:
    """A folder's files less the previews hstool wrote there (``recon D --out D --preview``): a
    rerun's inputs are the camera's images, not its own outputs (a preview named is refused by name)."""
    from hstool.hsdata.formats.image import is_preview

    kept = [f for f in files if not is_preview(f)]
    if len(kept) < len(files):
        left = [f.name for f in files if f not in kept]
        err.print(f"left out {len(left)} sRGB preview(s) hstool wrote of cubes, not camera RGB: "
                  f"{', '.join(left[:5])}{', ...' if len(left) > 5 else ''}", style="yellow")
    return kept


def note_broken_links(paths: Sequence[Path]) -> None:
    """One note for the looping or dangling links in the folders among ``paths``, which the batch
    leaves out (:func:`~hstool.hsdata.broken_links`)."""
    links = [link for p in paths for link in broken_links(p)]
    if links:
        shown = ", ".join(p.name for p in links[:5]) + (f" and {len(links) - 5} more" if len(links) > 5 else "")
        err.print(f"skipped {len(links)} looping or dangling link(s): {shown}", style="yellow")


#: ``since``: on a cluster worker's thread, when the task's batch began (:func:`hstool.cli.cluster.run`)
RERUN = threading.local()


def _clear_stale_temporaries(paths: list[Path]) -> None:
    """Remove the temporary files (``.NAME.*.tmp``) a dead attempt at this job left, a cluster task
    whose worker was killed, say: called while the job is claimed, when no live run writes them."""
    for path in paths:
        for f in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                f.unlink()


def _set_aside(paths: list[Path], overwrite: bool) -> dict[Path, Path]:
    """On a cluster, a task is run again when its worker died, also after the job had finished (its
    result died with the worker): outputs newer than the batch's start are then this batch's own, or
    another run's written meanwhile. They are moved aside while the job runs again and compared with
    what it writes (:func:`_settle`)."""
    since = getattr(RERUN, "since", None)
    aside = {}
    if since is None or overwrite:
        return aside
    for path in paths:
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mtime >= since - 2:  # coarse file times
                aside[path] = path.with_name(f".{path.name}.{os.getpid()}.aside")
                os.replace(path, aside[path])
    return aside


def _settle(aside: dict[Path, Path], written: bool) -> None:
    """Outputs set aside by :func:`_set_aside`: the same bytes as the job wrote again (its own earlier
    attempt) are dropped; others (another run's), or any when the job failed, are put back, and a
    difference fails the job: nothing another run wrote is lost."""
    differ = []
    for path, kept in aside.items():
        if written and path.is_file() and path.read_bytes() == kept.read_bytes():
            kept.unlink()
            continue
        os.replace(kept, path)
        differ.append(path)
    if written and differ:
        raise HsError("output exists: another run wrote it while this batch ran (kept; --overwrite replaces it)",
                      differ[0])


@contextlib.contextmanager
def job_outputs(paths: Iterable[str | Path], overwrite: bool, inputs: tuple[Path, ...] = ()) -> Iterator[None]:
    """Claim the job's files (:func:`~hstool.hsdata.atomic.job_claim`: no other run writes or
    removes them meanwhile, and a killed run's half job is redone), check every file it writes
    (:func:`check_writable`), then let the job write them; if a write fails, the files the job had
    created are removed again, so a job leaves all of its new files or none (a file an
    ``overwrite`` replaced stays replaced). Files another run wrote are never removed."""
    paths = [Path(p) for p in paths]
    with job_claim(paths):  # a dead attempt's marker: its half job's files are removed here
        _clear_stale_temporaries(paths)
        aside = _set_aside(paths, overwrite)
        try:
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
        except BaseException:
            _settle(aside, written=False)
            raise
        _settle(aside, written=True)


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
        if overwrite or len(missing) == len(files) or (missing and left_by_a_dead_run(files)):
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


def refuse_other_settings(plan: Plan, differences: Callable[[Any], list[str]], output: Callable[[Any], Path]) -> list[Failure]:
    """The skipped jobs of ``plan`` whose outputs were made with other settings than this run's:
    ``differences(job)`` says what differs (:func:`hstool.hsdata.provenance.settings_differ`; empty
    when nothing does, or the outputs keep no record). Each is said in one line, taken out of
    ``plan`` (neither skipped in silence nor given a preview) and returned as a failure, so that
    the batch exits 1; ``output(job)`` is the file named."""
    refused = []
    for job in list(plan.skipped):
        differ = differences(job)
        if not differ:
            continue
        message = (f"{output(job)}: made with other settings ({'; '.join(differ)}); kept as it is "
                   "(--overwrite replaces it, or choose another output folder)")
        error(message)
        refused.append(Failure(job, message))
        plan.skipped.remove(job)
        plan.previews[:] = [p for p in plan.previews if Path(p.cube) != Path(output(job))]
    return refused


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
