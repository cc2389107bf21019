"""``hstool info``: what is in a cube or an image file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata.describe import describe

from .options import Json
from .output import err, fmt, print_json, table


def info(
    paths: Annotated[list[Path], typer.Argument(help="Cube or image files (.mat, .hdr/.raw, .npy, .npz, .png, .jpg, .tif).")],
    format: Annotated[str | None, typer.Option("--format", "-f", help="Force the format (mat, envi, npy, npz, image).")] = None,
    json: Json = False,
) -> None:
    """Show format, shape, type, band grid, value range and metadata of each file.

    Example: [bold]hstool info ARAD_HS_0451.mat capture/scene.hdr photo.jpg[/]
    """
    reports = [describe(p, format) for p in paths]
    if json:
        print_json(reports if len(reports) > 1 else reports[0])
        return
    for r in reports:
        rows = [[k, fmt(v) if not isinstance(v, dict) else ", ".join(f"{a}={fmt(b)}" for a, b in v.items())]
                for k, v in r.items() if k != "path"]
        err.print(table(str(r["path"]), ["field", "value"], rows))
