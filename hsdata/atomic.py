"""Atomic output: write to a temporary name beside the target, then rename over it.

A crash or a failed write never leaves a half-written file under the final name, and an
existing file is replaced only when the caller says so.
"""

from __future__ import annotations

import contextlib
import os
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
        yield temps
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
