"""Atomic output: write to a temporary name beside the target, then rename over it.

A crash or a failed write never leaves a half-written file under the final name, and an
existing file is replaced only when the caller says so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import HsError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: mode of a newly created file under this process's umask (mkstemp's own 0600 would leave outputs
#: unreadable to the group and other users)
FILE_MODE = 0o666 & ~_umask()


def check_writable(path: str | Path, overwrite: bool = False, inputs: tuple[Path, ...] = ()) -> Path:
    """Refuse an output path that exists (unless ``overwrite``), is a folder, or is one of the ``inputs``."""
    path = Path(path)
    resolved = path.resolve()
    for src in inputs:
        if Path(src).resolve() == resolved:
            raise HsError("output would overwrite an input file", path)
    if path.is_dir():  # --overwrite replaces files, never a folder
        raise HsError("a folder has the output's name: move it, or choose another output", path)
    if path.exists() and not overwrite:
        raise HsError("output exists (use --overwrite to replace it)", path)
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise HsError("output folder is not a directory", parent)
    return path


def check_output_folder(folder: str | Path) -> Path:
    """Create ``folder`` if missing and prove it takes a file (a temporary one, removed), so a
    long run fails before its work, not at its end."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise HsError("output folder is not a directory", folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".hstool-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HsError(f"cannot write here ({exc.strerror or exc})", folder) from exc
    return folder


NO_SPACE = "No space left on device"


def disk_full(exc: OSError, folder: str | Path) -> bool:
    """Whether a failed write (``exc``) into ``folder`` failed for want of space: the system
    said so (ENOSPC, EDQUOT), or the writer said something else (numpy: "N requested and M
    written") and the folder's file system has (almost) nothing left."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 16
    except OSError:
        return False


#: room an HDF5 file takes beyond its arrays' bytes (user block, superblock, object headers)
HDF5_OVERHEAD = 1 << 14


def check_free_space(folder: str | Path, nbytes: int, path: str | Path) -> None:
    """Refuse (``No space left on device``, as the system says it) a write of ``nbytes`` into
    ``folder`` that does not fit. For the writers that cannot fail cleanly mid-write: HDF5 (h5py)
    crashes the process (a segmentation fault) when its objects are freed after a failed write."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if nbytes > free:
        raise HsError(f"{NO_SPACE} (the file needs {nbytes / 1e6:.2f} MB, {free / 1e6:.2f} MB free)", path)


@contextlib.contextmanager
def atomic_paths(*paths: str | Path, overwrite: bool = False) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths``; on success rename each onto its target.

    Several paths are committed together (an ENVI header and its binary). On error the
    temporaries are removed and the targets are untouched.
    """
    targets = [check_writable(p, overwrite) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            except OSError as exc:
                raise HsError(f"cannot write here ({exc.strerror or exc})", target.parent) from exc
            os.close(fd)
            os.chmod(tmp, FILE_MODE)
            temps.append(Path(tmp))
        try:
            yield temps
        except OSError as exc:  # a writer's own words for a full disk vary ("N requested and M written")
            if disk_full(exc, targets[0].parent):
                raise HsError(NO_SPACE, targets[0]) from exc
            raise
        for tmp, target in zip(temps, targets):
            os.chmod(tmp, FILE_MODE)  # again: some writers replace the file (safetensors makes it 0600)
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Single-file form of :func:`atomic_paths`."""
    with atomic_paths(path, overwrite=overwrite) as (tmp,):
        yield tmp


# -- a job's marker: which run is writing a job's files ---------------------------------------------
#
# A job that writes several files (a cube and its sidecar, an image and its cube) cannot rename them
# all at once. While it writes them, a hidden marker beside its first file names the process: another
# run on the same folder leaves the job alone (and never removes its files), and a run that finds the
# marker of a process that is gone (killed between two renames) knows the files there are hstool's
# own half job, removes them and does the job again.

MARKER_SUFFIX = ".hstool-job"


def job_marker(first_output: str | Path) -> Path:
    """The marker of the job whose first output is ``first_output``."""
    first_output = Path(first_output)
    return first_output.parent / f".{first_output.name}{MARKER_SUFFIX}"


def _marker_owner(marker: Path) -> dict | None:
    """What a marker says (``pid``, ``host``, ``outputs``), or None when there is none; {} when it
    cannot be read (written by a run killed while it wrote it)."""
    try:
        data = json.loads(marker.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(owner: dict) -> bool:
    """Whether the process a marker names still runs (a process on another machine sharing the
    folder is taken to run: hstool cannot tell)."""
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def left_by_a_dead_run(outputs: list[Path]) -> bool:
    """Whether the job writing ``outputs`` was left incomplete by an hstool run that is gone."""
    owner = _marker_owner(job_marker(outputs[0]))
    return owner is not None and not _alive(owner)


def writing_run(outputs: list[Path]) -> int | None:
    """The process id of the live hstool run writing the job of ``outputs`` now, if any."""
    owner = _marker_owner(job_marker(outputs[0]))
    return owner.get("pid") if owner and _alive(owner) else None


@contextlib.contextmanager
def job_claim(outputs: list[str | Path]) -> Iterator[None]:
    """Mark the job of ``outputs`` as this process's while it writes them (see above). Refused
    (:class:`HsError`) while another live run holds it; a dead run's marker and the files it names
    (its half job) are removed first. The marker goes when the job ends, written or failed."""
    outputs = [Path(p) for p in outputs]
    marker = job_marker(outputs[0])
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "outputs": [p.name for p in outputs]})
    marker.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{outputs[0].name}.", suffix=".tmp", dir=marker.parent)
        except OSError as exc:
            raise HsError(NO_SPACE if disk_full(exc, marker.parent) else f"cannot write here ({exc.strerror or exc})",
                          outputs[0]) from exc
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.link(tmp, marker)  # atomic, and refused when there is one: two runs never both hold a job
            break
        except FileExistsError:
            owner = _marker_owner(marker)
            if owner is not None and _alive(owner):
                raise HsError(f"another hstool run (pid {owner.get('pid')}) is writing this job's files now: "
                              "left to it", outputs[0]) from None
            for path in outputs:  # a half job of a run that is gone: hstool's own files, redone whole
                if path.name in (owner or {}).get("outputs", [p.name for p in outputs]):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
        except OSError as exc:
            raise HsError(NO_SPACE if disk_full(exc, marker.parent) else f"cannot write here ({exc.strerror or exc})",
                          outputs[0]) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    else:
        raise HsError("another hstool run is writing this job's files now: left to it", outputs[0])
    try:
        yield
    finally:
        if (_marker_owner(marker) or {}).get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
