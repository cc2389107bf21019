"""Format dispatch: pick a reader/writer by extension or by an explicit format name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import check_writable
from ..cube import Cube
from ..errors import HsError, brief
from . import envi, image, mat, npy

#: format name -> the suffixes that select it
SUFFIXES = {
    "mat": (".mat",),
    "envi": (".hdr", ".raw", ".img", ".dat", ".bil", ".bip", ".bsq"),
    "npy": (".npy",),
    "npz": (".npz",),
    "image": image.IMAGE_SUFFIXES,
}
CUBE_FORMATS = ("mat", "envi", "npy", "npz")
#: the suffix a writer gives a file of each format
DEFAULT_SUFFIX = {"mat": ".mat", "mat5": ".mat", "envi": ".hdr", "npy": ".npy", "npz": ".npz"}


def detect_format(path: str | Path, format: str | None = None) -> str:
    """The format of ``path``: ``format`` when given, else by extension."""
    if format is not None:
        format = format.lower()  # NPZ is npz, as --format takes it
        if format not in SUFFIXES:
            raise HsError(f"unknown format '{format}' (known: {', '.join(SUFFIXES)})", path or None)
        return format
    suffix = Path(path).suffix.lower()
    for name, suffixes in SUFFIXES.items():
        if suffix in suffixes:
            return name
    raise HsError(f"unknown file type '{suffix or '(none)'}' (known: .mat, .hdr/.raw, .npy, .npz, images)", path)


def read_cube(path: str | Path, format: str | None = None, dtype=np.float32) -> Cube:
    """Read a hyperspectral cube from any supported format.

    ``dtype=None`` keeps the stored type (and, for ENVI and .npy, a memory-mapped view), except
    for an ENVI file whose header gives a ``data ignore value`` or ``reflectance scale factor``:
    its values are read as float32 with those applied, as every reader of hstool sees them.

    >>> cube = read_cube("ARAD_HS_0451.mat")  # doctest: +SKIP
    """
    if Path(path).is_dir():
        raise HsError("a folder, not a cube file", path)
    fmt = detect_format(path, format)
    if fmt == "image":
        raise HsError("this is an RGB image, not a hyperspectral cube", path)
    try:
        np.dtype(dtype)
    except TypeError:
        raise HsError(f"dtype {dtype!r} is no numpy type: read cubes as float32, float64 or None (as stored)",
                      path) from None
    if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
        raise HsError(f"cubes are read as a float type (or dtype=None, as stored), not {np.dtype(dtype)}", path)
    if not Path(path).exists():
        raise HsError("no such file", path)
    try:
        if fmt in ("npy", "npz"):
            return npy.read(path, dtype=dtype, archive=fmt == "npz")
        return (mat.read if fmt == "mat" else envi.read)(path, dtype=dtype)
    except (HsError, MemoryError):
        raise
    except Exception as exc:  # whatever a malformed file makes a parser raise
        raise HsError(f"not a readable {fmt} cube ({brief(exc)})", path) from exc


def _suffix_format(path: str | Path) -> str | None:
    """The cube format a path's suffix names, or None (no suffix, or one of no cube format)."""
    try:
        return detect_format(path, None) if Path(path).suffix else None
    except HsError:
        return None


#: the options each format's writer takes (:func:`write_cube` refuses others instead of dropping them)
WRITE_OPTIONS = {"mat": ("version", "compression"), "envi": ("dtype", "interleave"), "npy": (), "npz": ()}


def write_cube(
    cube: Cube, path: str | Path, format: str | None = None, overwrite: bool = False, **options
) -> list[Path]:
    """Write ``cube`` atomically; returns the files written. Options go to the format's writer
    (``version='5'`` for .mat, ``dtype``/``interleave`` for ENVI); ``format='mat5'`` is short for
    ``format='mat', version='5'``. The file the cube was read from is never overwritten."""
    if not isinstance(cube, Cube):  # an array alone does not say its band centres
        raise HsError(f"write_cube takes a Cube (data and wavelengths), not {type(cube).__name__}", path)
    if isinstance(format, str) and format.lower() == "mat5":
        format, options = "mat", {**options, "version": "5"}
    fmt = detect_format(path, format)
    if fmt == "image":
        raise HsError("cannot write a cube as an image; use `hstool render` for a preview", path)
    named = _suffix_format(path)
    if format is not None and named is not None and named != fmt:  # a file its own name would misread
        raise HsError(f"format {fmt} contradicts the file name, which reads as {named}: give it a {fmt} name", path)
    unknown = sorted(set(options) - set(WRITE_OPTIONS[fmt]))
    if unknown:
        takes = ", ".join(WRITE_OPTIONS[fmt]) or "none"
        raise HsError(f"{fmt} output takes no option {', '.join(unknown)} (its options: {takes})", path)
    targets = output_files(path, fmt)
    source = cube.meta.get("source")
    # a file the cube was read from (a capture folder's files are its command's to protect)
    inputs = input_files(source, cube.meta.get("format")) if source and not Path(source).is_dir() else ()
    for target in targets:  # inputs are never overwritten, --overwrite or not
        check_writable(target, overwrite=True, inputs=inputs)
    if fmt in ("npy", "npz"):
        return npy.write(cube, targets[0], overwrite)
    return (mat.write if fmt == "mat" else envi.write)(cube, path, overwrite, **options)


def output_files(path: str | Path, format: str | None = None) -> list[Path]:
    """Every file :func:`write_cube` writes for ``path`` (an ENVI header and its binary; .npy
    and .npz get their suffix)."""
    fmt = detect_format(path, "mat" if format == "mat5" else format)
    if fmt == "envi":
        return list(envi.output_pair(path))
    if fmt in ("npy", "npz"):
        return [Path(path).with_suffix("." + fmt)]
    return [Path(path)]


def input_files(path: str | Path, format: str | None = None) -> tuple[Path, ...]:
    """The file(s) a cube is read from: the file, and for ENVI (by ``format`` or by a suffix an
    ENVI header or binary may have, none included) both the header and the binary (the
    candidates when only one exists)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if format != "envi" and suffix not in SUFFIXES["envi"] and suffix not in envi.DATA_SUFFIXES:
        return (path,)
    try:
        return envi.header_and_data(path)
    except HsError:
        return (path, path.with_suffix(".hdr"), path.with_suffix(".HDR"), Path(str(path) + ".hdr"))


def output_path(folder: str | Path, stem: str, format: str) -> Path:
    """``folder/stem`` with the suffix of ``format``."""
    return Path(folder) / (stem + DEFAULT_SUFFIX[format])


def list_files(path: str | Path, kinds: tuple[str, ...] = CUBE_FORMATS) -> list[Path]:
    """Files of the given formats in a folder (sorted; an ENVI pair counted once, by its header),
    or the path itself when it is a file. A missing path or an empty folder is an error."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise HsError("no such file or folder", path)
    wanted = {s for k in kinds for s in SUFFIXES[k] if k != "envi"}
    files = []
    for p in sorted(path.iterdir()):
        if p.name.startswith(".") or _leads_nowhere(p):  # a looping or dangling link: broken_links names them
            continue
        suffix = p.suffix.lower()
        if suffix in wanted or ("envi" in kinds and suffix == ".hdr"):
            files.append(p)
    if not files:
        raise HsError(f"folder holds no {'/'.join(kinds)} files", path)
    return files


def _leads_nowhere(path: Path) -> bool:
    """Whether ``path`` is a symbolic link that loops or dangles."""
    return path.is_symlink() and not os.path.exists(path)


def broken_links(folder: str | Path) -> list[Path]:
    """The looping or dangling links in ``folder`` (not below it), which :func:`list_files` leaves out."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and _leads_nowhere(p))
