"""What made a cube: the ``provenance`` record hstool keeps with the cubes it computes.

A command that computes a cube (``hstool recon``: the model, its weights' SHA-256, the track and
every setting that changes the numbers, the hstool version and the input's name) puts the
record in ``cube.meta["provenance"]``, which every cube format keeps (:mod:`.formats`: a
``provenance`` char variable of JSON in ``.mat``, an ``hstool provenance`` header field in ENVI,
an entry of the ``meta`` JSON in ``.npz``), and writes a JSON sidecar beside the cube with the
whole of its metadata (:func:`write_sidecar`), which a ``.npy`` file (the array alone) relies on.
:func:`read_provenance` reads it back from either; ``hstool info`` shows it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .cube import Cube, json_value

#: the metadata key of the record
PROVENANCE = "provenance"


def hstool_version() -> str:
    """The installed hstool's version ("unknown" when it runs uninstalled)."""
    try:
        return version("hstool")
    except PackageNotFoundError:
        return "unknown"


def provenance_record(command: str, input: str | Path, settings: dict[str, Any],
                      made_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of one output: the ``command`` that wrote it, the ``settings`` that decide its
    numbers, the name of its ``input`` and the hstool version; ``made_from``, the input's own
    record, where it had one (a converted cube keeps what made it)."""
    record = {"command": command, **settings, "input": Path(input).name, "hstool_version": hstool_version()}
    if made_from:
        record["made_from"] = made_from
    return record


def sidecar_path(cube_path: str | Path) -> Path:
    """The JSON sidecar of a cube file: ``OUT/NAME.mat`` (or ``NAME.hdr``, ``.npy``) -> ``OUT/NAME.json``."""
    return Path(cube_path).with_suffix(".json")


def write_sidecar(cube: Cube, cube_path: str | Path, overwrite: bool = False) -> Path:
    """Write the sidecar of ``cube``, written at ``cube_path``: its metadata and band grid as JSON,
    atomically. Returns its path."""
    path = sidecar_path(cube_path)
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(json.dumps({**cube.meta, "wavelengths": cube.wavelengths.tolist()}, indent=2,
                                  default=json_value))
    return path


def read_sidecar(cube_path: str | Path) -> dict[str, Any] | None:
    """The metadata in the sidecar of ``cube_path``, or None (none there, or not a JSON object)."""
    path = sidecar_path(cube_path)
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None
    return None


def read_provenance(cube_path: str | Path, format: str | None = None) -> dict[str, Any] | None:
    """The provenance record of a cube file: its sidecar's (read without the cube), else the
    file's own; None when neither holds one (a cube another program, or an older hstool, wrote)."""
    record = (read_sidecar(cube_path) or {}).get(PROVENANCE)
    if isinstance(record, dict):
        return record
    from .formats import read_cube

    with contextlib.suppress(Exception):  # an unreadable cube holds no record; its run says why if it reads it
        record = read_cube(cube_path, format, dtype=None).meta.get(PROVENANCE)
    return record if isinstance(record, dict) else None


def settings_differ(made: dict[str, Any], wanted: dict[str, Any], keys: Sequence[str]) -> list[str]:
    """Which of ``keys`` an existing output's record ``made`` has otherwise than ``wanted``, as
    ``"model hrnet_s, not mstpp_s"`` (what was made, then what is asked for)."""
    def shown(value: Any) -> Any:  # a SHA-256 by its first 12 digits, as git shortens hashes
        return value[:12] if isinstance(value, str) and len(value) == 64 else value

    return [f"{k.replace('_', ' ')} {shown(made.get(k))}, not {shown(wanted.get(k))}" for k in keys
            if made.get(k) != wanted.get(k)]
