"""ENVI header + binary cubes through Spectral Python (SPy).

Reads BIL/BIP/BSQ, data types 1, 2, 4, 5, 12 (uint8, int16, float32, float64, uint16) in either
byte order, memory-mapped: with ``dtype=None`` the cube is a transposed *view* of the file; a
``dtype`` asks for one private in-memory copy. Writes float32 or uint16 with the wavelength list.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from spectral.io import envi

from ..atomic import check_writable
from ..cube import FILE_META, Cube, default_wavelengths
from ..errors import HsError

DATA_TYPES = {1: np.uint8, 2: np.int16, 4: np.float32, 5: np.float64, 12: np.uint16}
DATA_TYPE_CODES = {np.dtype(v): k for k, v in DATA_TYPES.items()}
INTERLEAVES = ("bil", "bip", "bsq")
DATA_SUFFIXES = ("", ".raw", ".img", ".dat", ".bil", ".bip", ".bsq", ".sli")
META_PREFIX = "hstool "


def header_and_data(path: str | Path) -> tuple[Path, Path]:
    """Given either the ``.hdr`` or the binary of an ENVI pair, return both paths."""
    path = Path(path)
    if path.suffix.lower() == ".hdr":
        hdr = path
        if not hdr.is_file():
            raise HsError("no such file", hdr)
        # hstool writes .raw; then ENVI's usual names, a bare X first
        order = (".raw", *DATA_SUFFIXES, *(s.upper() for s in DATA_SUFFIXES[1:]))
        found = list(dict.fromkeys(c for c in (hdr.with_suffix(s) for s in order) if c != hdr and c.is_file()))
        if not found:
            raise HsError("ENVI header has no binary beside it (.raw, .img, .dat, ...)", hdr)
        if len(found) > 1:  # several candidates (X and X.img): the first of the size the header describes
            with contextlib.suppress(HsError, OSError):
                size = _binary_size(read_header(hdr))
                found = [c for c in found if c.stat().st_size == size] or found
        return hdr, found[0]
    if not path.is_file():
        raise HsError("no such file", path)
    for hdr in (path.with_suffix(".hdr"), path.with_suffix(".HDR"), Path(str(path) + ".hdr")):
        if hdr.is_file():
            return hdr, path
    raise HsError("ENVI binary has no .hdr header beside it", path)


@contextlib.contextmanager
def _quiet_spy():
    """SPy warns about mixed-case header keys (the Specim IQ's "Start Time"), which are valid."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parameters with non-lowercase names", category=UserWarning)
        yield


def read_header(hdr: Path) -> dict:
    """Parse and validate an ENVI header (sizes, data type, interleave, byte order)."""
    try:
        with _quiet_spy():
            h = envi.read_envi_header(str(hdr))
    except Exception as exc:  # SPy raises several types for malformed headers
        raise HsError(f"not a readable ENVI header ({exc})", hdr) from exc
    for key in ("samples", "lines", "bands", "data type", "interleave"):
        if key not in h:
            raise HsError(f"ENVI header lacks '{key}'", hdr)
    try:
        for key in ("samples", "lines", "bands", "data type", "byte order", "header offset"):
            h[key] = int(h.get(key, 0))
    except ValueError as exc:
        raise HsError(f"ENVI header has a non-integer size field ({exc})", hdr) from exc
    if h["data type"] not in DATA_TYPES:
        raise HsError(f"unsupported ENVI data type {h['data type']} (supported: 1, 2, 4, 5, 12)", hdr)
    h["interleave"] = str(h["interleave"]).strip().lower()
    if h["interleave"] not in INTERLEAVES:
        raise HsError(f"unknown interleave '{h['interleave']}' (expected bil, bip or bsq)", hdr)
    if h["byte order"] not in (0, 1):
        raise HsError(f"byte order must be 0 or 1, got {h['byte order']}", hdr)
    if min(h["samples"], h["lines"], h["bands"]) <= 0:
        raise HsError("ENVI header sizes must be positive", hdr)
    return h


def wavelengths_from_header(h: dict, hdr: Path) -> np.ndarray | None:
    if "wavelength" not in h:
        return default_wavelengths(h["bands"])
    try:
        wl = np.array([float(v) for v in h["wavelength"]])
    except ValueError as exc:
        raise HsError("ENVI 'wavelength' list is not numeric", hdr) from exc
    if wl.size != h["bands"]:
        raise HsError(f"ENVI 'wavelength' lists {wl.size} values for {h['bands']} bands", hdr)
    if str(h.get("wavelength units", "nm")).lower() in ("micrometers", "um", "microns"):
        wl = wl * 1000.0
    steps = np.diff(wl)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise HsError("ENVI 'wavelength' list neither increases nor decreases strictly", hdr)
    return wl


def open_envi(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, dict, Path]:
    """Memory-map an ENVI cube: returns an ``(H, W, B)`` view in the file's dtype, wavelengths,
    the parsed header and the binary's path. Nothing is read until the view is used."""
    hdr, binary = header_and_data(path)
    h = read_header(hdr)
    dtype = np.dtype(DATA_TYPES[h["data type"]])
    expected = _binary_size(h)
    actual = binary.stat().st_size
    if actual < expected:
        raise HsError(
            f"binary holds {actual} bytes but the header's sizes ({h['lines']} lines x {h['samples']} "
            f"samples x {h['bands']} bands, {dtype}) need {expected}: truncated or mismatched",
            binary,
        )
    if actual > expected:
        raise HsError(f"binary holds {actual} bytes, more than the header's {expected}: mismatched header", binary)
    # mapped here from the header already parsed (SPy's envi.open would parse it a second time)
    lines, samples, bands = h["lines"], h["samples"], h["bands"]
    shape, to_bip = {
        "bil": ((lines, bands, samples), (0, 2, 1)),
        "bip": ((lines, samples, bands), (0, 1, 2)),
        "bsq": ((bands, lines, samples), (1, 2, 0)),
    }[h["interleave"]]
    try:
        mapped = np.memmap(binary, dtype=dtype.newbyteorder(">" if h["byte order"] else "<"), mode="r",
                           offset=h["header offset"], shape=shape)
    except (OSError, ValueError) as exc:
        raise HsError(f"cannot map the ENVI binary ({exc})", binary) from exc
    view, wl = mapped.transpose(to_bip), wavelengths_from_header(h, hdr)
    if wl is not None and wl.size > 1 and wl[1] < wl[0]:  # bands stored from the red end: read blue first
        view, wl = view[..., ::-1], wl[::-1].copy()
    return view, wl, h, binary


def read(path: str | Path, dtype=np.float32) -> Cube:
    view, wl, h, binary = open_envi(path)
    if wl is None:
        raise HsError(f"ENVI header has no 'wavelength' list for its {h['bands']} bands", path)
    # dtype given: one private, writable, C-ordered copy (np.asarray would hand back the read-only
    # file mapping itself when the types already match, transposed for BIL/BSQ).
    data = view if dtype is None else np.array(view, dtype=dtype, order="C")
    meta = {}
    for key, value in h.items():
        if key.startswith(META_PREFIX):
            meta[key[len(META_PREFIX) :].replace(" ", "_")] = _parse_scalar(value)
    if "tint" in h:
        meta["tint_ms"] = _parse_scalar(h["tint"])
    # the file read, whatever a header written by an older hstool says
    meta.update(format="envi", source=str(binary), interleave=h["interleave"],
                file_dtype=str(np.dtype(DATA_TYPES[h["data type"]])))
    return Cube(data, wl, meta)


def _parse_scalar(value):
    """A metadata value as hstool wrote it (JSON), or as an older hstool or another program did
    (a number where it reads as one, else the text)."""
    with contextlib.suppress(TypeError, ValueError):
        return json.loads(value)
    with contextlib.suppress(TypeError, ValueError):
        return float(value)
    return value


def _plain(value) -> bool:
    """A number, text, bool or a list of those: what a header line holds as JSON."""
    if isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value)


def output_pair(path: str | Path) -> tuple[Path, Path]:
    """The header and binary a write to ``path`` produces: ``NAME.hdr`` + ``NAME.raw`` (or the
    binary name given)."""
    path = Path(path)
    binary = path.with_suffix(".raw") if path.suffix.lower() in (".hdr", "") else path
    return path.with_suffix(".hdr"), binary


def _binary_size(h: dict) -> int:
    """The bytes of the binary a parsed header describes."""
    return h["header offset"] + h["samples"] * h["lines"] * h["bands"] * np.dtype(DATA_TYPES[h["data type"]]).itemsize


def _stale_binary(hdr: Path, binary: Path) -> Path | None:
    """The binary the ENVI header about to be replaced reads (:func:`header_and_data`), when it
    is another file than the new ``binary`` (X.img or a bare X beside X.hdr, replaced by X.hdr +
    X.raw) and the one file of the size that header describes: that file and no other (notes in a
    bare X stay, and of two same-size candidates neither goes; the new X.raw is read first)."""
    with contextlib.suppress(HsError, OSError):
        size = _binary_size(read_header(hdr))
        names = (*DATA_SUFFIXES, *(s.upper() for s in DATA_SUFFIXES[1:]))
        fits = {c for c in (hdr.with_suffix(s) for s in names) if c != hdr and c.is_file() and c.stat().st_size == size}
        old = header_and_data(hdr)[1]
        # two files of that size (a bare X and X.img): which one is the cube's is a guess, so neither goes
        if len(fits - {binary}) == 1 and old.resolve() != binary.resolve() and old in fits:
            return old
    return None


def write(
    cube: Cube,
    path: str | Path,
    overwrite: bool = False,
    dtype: str = "float32",
    interleave: str = "bsq",
) -> list[Path]:
    """Write ``NAME.hdr`` + ``NAME.raw`` atomically (both appear together or not at all)."""
    path = Path(path)
    hdr, binary = output_pair(path)
    for p in (hdr, binary):
        check_writable(p, overwrite)
    np_dtype = np.dtype(dtype)
    if np_dtype not in (np.dtype(np.float32), np.dtype(np.uint16)):
        raise HsError(f"ENVI output dtype must be float32 or uint16, not {dtype}", path)
    if interleave not in INTERLEAVES:
        raise HsError(f"unknown interleave '{interleave}'", path)
    data = cube.data
    if np_dtype == np.uint16:
        data = np.clip(np.rint(np.nan_to_num(data, nan=0.0)), 0, 65535)  # NaN -> 0, +inf -> 65535
    metadata = {
        "wavelength": [repr(float(w)) for w in cube.wavelengths],  # all digits: grids round-trip exactly
        "wavelength units": "Nanometers",
        "description": "written by hstool",
    }
    for key, value in cube.meta.items():
        if key in FILE_META or not _plain(value):
            continue
        text = json.dumps(value)  # typed: "0001" stays a string, false a bool, [15, 16] a list
        if not any(c in text for c in "{}=\n"):  # what an ENVI header line cannot hold
            metadata[META_PREFIX + key.replace("_", " ")] = text
    stale = _stale_binary(hdr, binary) if overwrite and hdr.exists() else None
    try:
        hdr.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=".hstool-", dir=hdr.parent))
    except OSError as exc:  # worded as the other writers word it (atomic_path)
        raise HsError(f"cannot write here ({exc.strerror or exc})", hdr.parent) from exc
    try:
        tmp_hdr = tmpdir / "cube.hdr"
        envi.save_image(
            str(tmp_hdr), data, dtype=np_dtype, interleave=interleave, metadata=metadata, ext=".raw", force=True
        )
        os.replace(tmpdir / "cube.raw", binary)
        os.replace(tmp_hdr, hdr)
        if stale is not None:  # it would sit beside the new pair, mismatched, a candidate for the header
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise HsError(f"cannot write ENVI cube ({exc.strerror or exc})", path) from exc
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return [hdr, binary]
