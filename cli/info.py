"""``hstool info``: what is in a cube or an image file."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata import CUBE_FORMATS, HsError, list_files
from hstool.hsdata.describe import describe
from hstool.hsdata.specim import find_captures, is_capture

from .batch import failure_line, note_broken_links
from .options import Json
from .output import DEBUG, err, error, fmt, print_json, show, table


def _folder(path: Path) -> list[Path]:
    """What a folder stands for: itself when it is a Specim IQ capture, else its cube and image
    files and the captures under it (a stray file beside captures is described too)."""
    if is_capture(path):
        return [path]
    found: list[Path] = []
    with contextlib.suppress(HsError):
        found += list_files(path, (*CUBE_FORMATS, "image"))
    with contextlib.suppress(HsError):
        found += find_captures(path)
    if not found:
        raise HsError("folder holds no cube, image or Specim IQ capture", path)
    return found


def _without_sidecars(paths: list[Path]) -> list[Path]:
    """``paths`` less the JSON sidecars named beside their cubes (a shell glob's ``cal/*``), set aside
    with one note, as the batches do: a cube's record is shown with the cube. A sidecar named on its
    own stays, and is refused as what it is."""
    named = {(p.parent, p.stem) for p in paths if p.suffix.lower() != ".json"}
    sidecars = [p for p in paths if p.suffix.lower() == ".json" and (p.parent, p.stem) in named]
    if sidecars:
        shown = ", ".join(p.name for p in sidecars[:5]) + (f" and {len(sidecars) - 5} more" if len(sidecars) > 5 else "")
        err.print(f"set aside {len(sidecars)} JSON sidecar(s) named beside their cubes (info shows a cube's "
                  f"record with the cube): {shown}", style="yellow")
    return [p for p in paths if p not in sidecars]


def _describe(path: Path, format: str | None) -> dict:
    if path.is_dir() and is_capture(path):
        if format is not None:
            raise HsError("--format applies to files; this is a Specim IQ capture folder", path)
        from hstool.camera.calibration import describe_capture

        return describe_capture(path)
    return describe(path, format)


def _cell(key: str, value) -> str:
    """A field's value for the table: a shape as ``24x32x31`` (as the other commands' tables show
    it), a dict as ``a=1, b=2``, a list as ``1, 2``, numbers by :func:`fmt`."""
    if key.endswith("shape"):
        return "x".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return fmt(value)


def info(
    paths: Annotated[list[Path], typer.Argument(
        help="Cube or image files (.mat, .hdr/.raw, .npy, .npz, .png, .jpg, .tif), folders of them, or Specim IQ "
        "capture folders.")],
    format: Annotated[str | None, typer.Option("--in-format", "--format", "-f", help="Force the input format (mat, envi, npy, npz, image): --in-format as the other commands spell it.")] = None,
    json: Json = False,
) -> None:
    """Show format, shape, type, band grid, value range and metadata of each file (--json: one
    object when there is one file, folders expanded; a list when there are several; a file that
    cannot be read is {"path", "error"}).

    Examples:
    $ hstool info ARAD_HS_0451.mat capture/scene.hdr photo.jpg
    """
    # a folder stands for its cube and image files, a Specim IQ capture folder for itself, and a
    # folder of captures for them
    note_broken_links(paths)
    paths = [f for p in paths for f in (_folder(p) if p.is_dir() else [p])]
    paths = _without_sidecars(paths)
    reports, failed = [], 0
    for p in paths:
        try:
            reports.append(_describe(p, format))
        except Exception as exc:
            if DEBUG["on"]:
                raise
            message = failure_line(exc, str(p))
            error(message)
            reports.append({"path": str(p), "error": message})  # --json lists every file, as it is
            failed += 1
    if json:
        print_json(reports if len(paths) > 1 else reports[0])
    else:
        for r in (r for r in reports if "error" not in r):
            rows = [[k, _cell(k, v)] for k, v in r.items() if k not in ("path", "warnings")]
            show(table(str(r["path"]), ["field", "value"], rows))
            for note in r.get("warnings", []):
                err.print(f"{r['path']}: {note}", style="yellow")
    if failed:
        raise typer.Exit(1)
