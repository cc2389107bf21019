"""ENVI header + binary cubes through Spectral Python (SPy).

Reads BIL/BIP/BSQ, data types 1, 2, 3, 4, 5, 12, 13, 14, 15 (uint8, int16, int32, float32,
float64, uint16, uint32, int64, uint64) in either byte order, memory-mapped: with ``dtype=None``
the cube is a transposed *view* of the file; a ``dtype`` asks for one private in-memory copy.
Writes float32 or uint16 with the wavelength list.

The header's other fields (``fwhm``, ``map info``, ``sensor type``, ``acquisition time``, ...)
travel in ``meta["envi"]`` and are written back into an ENVI copy; per-band lists are dropped
once the band grid changes (:meth:`hstool.hsdata.Cube.with_data`). A floating-point read applies
``data ignore value`` (those values read as NaN) and ``reflectance scale factor`` (divided out:
0-1 reflectance), and the copy no longer carries them; a file that has either is read so (as
float32) even with ``dtype=None``, since its stored numbers are not the cube's values.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..atomic import NO_SPACE, check_writable, disk_full
from ..cube import BAND_FIELDS, FILE_META, Cube, as_type, default_wavelengths, json_value
from ..errors import HsError

DATA_TYPES = {
    1: np.uint8, 2: np.int16, 3: np.int32, 4: np.float32, 5: np.float64,
    12: np.uint16, 13: np.uint32, 14: np.int64, 15: np.uint64,
}
DATA_TYPE_CODES = {np.dtype(v): k for k, v in DATA_TYPES.items()}
INTERLEAVES = ("bil", "bip", "bsq")
DATA_SUFFIXES = ("", ".raw", ".img", ".dat", ".bil", ".bip", ".bsq", ".sli")
META_PREFIX = "hstool "
#: fields that describe the binary's layout, or that hstool reads into the cube itself: never
#: carried in ``meta["envi"]`` (a copy writes its own)
LAYOUT_FIELDS = frozenset({
    "samples", "lines", "bands", "header offset", "file type", "data type", "interleave", "byte order",
    "wavelength", "wavelength units", "tint",
})
#: hstool's metadata keys that a header line keeps as they are; other keys (capitals, spaces)
#: travel together in one field, JSON_KEYS
SNAKE_KEY = re.compile(r"[a-z0-9]+(_[a-z0-9]+)*")  # no leading, trailing or doubled _: a header strips spaces
JSON_KEYS = "json_keys"
JSON_TAG = "json:"
APPLIED_FIELDS = ("data ignore value", "reflectance scale factor")  # applied by a floating-point read


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


@contextlib.contextmanager
def _without_bom(hdr: Path):
    """The header itself, or a copy without the UTF-8 byte-order mark an editor (Notepad) put
    before its "ENVI" (SPy reads a header only from a file)."""
    with open(hdr, "rb") as fh:
        bom = fh.read(3) == b"\xef\xbb\xbf"
    if not bom:
        yield hdr
        return
    with tempfile.TemporaryDirectory(prefix="hstool-hdr-") as folder:
        copy = Path(folder) / "header.hdr"
        copy.write_bytes(hdr.read_bytes()[3:])
        yield copy


def read_header(hdr: Path) -> dict:
    """Parse and validate an ENVI header (sizes, data type, interleave, byte order)."""
    from spectral.io import envi  # here, not at import: a command that reads no ENVI file skips SPy

    try:
        with _quiet_spy(), _without_bom(hdr) as text_file:
            h = envi.read_envi_header(str(text_file))
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
        supported = ", ".join(map(str, DATA_TYPES))
        raise HsError(f"unsupported ENVI data type {h['data type']} (supported: {supported})", hdr)
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
        for key in BAND_FIELDS & h.keys():  # their per-band lists too
            if isinstance(h[key], list) and len(h[key]) == bands and key != "default bands":
                h[key] = h[key][::-1]
        if isinstance(h.get("default bands"), list):  # 1-based band numbers: the same bands, renumbered
            with contextlib.suppress(ValueError):
                h["default bands"] = [str(bands + 1 - int(float(b))) for b in h["default bands"]]
    return view, wl, h, binary


def _number(h: dict, key: str, hdr: Path) -> float:
    try:
        return float(h[key])
    except (TypeError, ValueError):
        raise HsError(f"ENVI '{key}' is not a number: {h[key]!r}", hdr) from None


def read(path: str | Path, dtype=np.float32) -> Cube:
    view, wl, h, binary = open_envi(path)
    if wl is None:
        raise HsError(f"ENVI header has no 'wavelength' list for its {h['bands']} bands", path)
    # dtype given: one private, writable, C-ordered copy (np.asarray would hand back the read-only
    # file mapping itself when the types already match, transposed for BIL/BSQ).
    if dtype is None and any(k in h for k in APPLIED_FIELDS):
        dtype = np.float32  # stored numbers that are the cube's values only once masked or scaled
    data = view if dtype is None else as_type(view, dtype, path, copy=True)
    hdr = header_and_data(path)[0]
    applied = dtype is not None and np.dtype(dtype).kind == "f"
    if applied and "data ignore value" in h:  # before any scaling: the value is the file's own
        ignore = _number(h, "data ignore value", hdr)
        data[np.asarray(view) == ignore] = np.nan  # compared in the file's type, exactly
    if applied and "reflectance scale factor" in h:
        factor = _number(h, "reflectance scale factor", hdr)
        if not np.isfinite(factor) or factor <= 0:
            raise HsError(f"ENVI 'reflectance scale factor' must be positive, got {factor:g}", hdr)
        if factor != 1:
            data /= np.asarray(factor, data.dtype)
    meta = {}
    foreign = {}
    for key, value in h.items():
        if key.startswith(META_PREFIX):
            name = key[len(META_PREFIX) :].replace(" ", "_")
            value = _parse_scalar(value)
            if name == JSON_KEYS and isinstance(value, dict):
                meta.update(value)
            else:
                meta[name] = value
        elif key not in LAYOUT_FIELDS and not (applied and key in APPLIED_FIELDS):
            foreign[key] = value
    if foreign:
        meta["envi"] = foreign
    if applied and "reflectance scale factor" in h:
        meta.setdefault("units", "reflectance")
    if "tint" in h:
        meta["tint_ms"] = _parse_scalar(h["tint"])
    # the file read, whatever a header written by an older hstool says
    meta.update(format="envi", source=str(binary), interleave=h["interleave"],
                file_dtype=str(np.dtype(DATA_TYPES[h["data type"]])))
    return Cube(data, wl, meta)


def _parse_scalar(value):
    """A metadata value as hstool wrote it (JSON), or as an older hstool or another program did
    (a number where it reads as one, else the text)."""
    if isinstance(value, str) and value.startswith(JSON_TAG):
        with contextlib.suppress(ValueError):
            return json.loads(value[len(JSON_TAG):])
    with contextlib.suppress(TypeError, ValueError):
        return json.loads(value)
    with contextlib.suppress(TypeError, ValueError):
        return float(value)
    return value


def _header_json(value) -> str:
    """A metadata value as one header line holds it: typed JSON ("0001" stays a string, false a
    bool, [15, 16] a list), an object behind ``json:`` (a line opening with a brace would read as
    an ENVI list)."""
    text = json.dumps(value, default=json_value)  # ASCII: the header is read in the locale's encoding
    return JSON_TAG + text if text.startswith("{") else text


def _band_numbers(values, bands: int) -> bool:
    """Whether ``values`` are 1-based band numbers of a cube with ``bands`` bands."""
    try:
        return all(1 <= int(str(v)) <= bands for v in values)
    except ValueError:
        return False


def _foreign_fields(cube: Cube) -> dict:
    """The other header fields the cube carries (``meta["envi"]``) that still hold for it: not
    the layout, nor a per-band list of another length (a library caller may have swapped the data)."""
    fields = cube.meta.get("envi")
    if not isinstance(fields, dict):
        return {}
    kept = {}
    for key, value in fields.items():
        key = str(key).strip().lower()
        if key in LAYOUT_FIELDS or key.startswith(META_PREFIX) or not key or "=" in key:
            continue
        if isinstance(value, (list, tuple)):
            if key == "default bands" and not _band_numbers(value, cube.bands):
                continue
            if key in BAND_FIELDS - {"default bands"} and len(value) != cube.bands:
                continue
            value = [str(v) for v in value]
        else:
            value = str(value)
        text = str(value)
        if not any(c in text for c in "{}") and (key == "description" or "\n" not in text):
            kept[key] = value
    return kept


def _storable(cube: Cube, dtype: np.dtype, path: Path) -> tuple[np.ndarray, dict]:
    """The cube's values as ``dtype`` will hold them, and the header fields that say how."""
    data = np.asarray(cube.data)
    if dtype != np.uint16:
        if data.dtype.itemsize > 4 or data.dtype.kind in "iu":
            finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
            if finite.size and np.abs(finite).max() > np.finfo(np.float32).max:
                raise HsError(f"values up to {np.abs(finite).max():.3g} do not fit float32 (3.4e38)", path)
        return data, {}
    fields = {}
    if cube.meta.get("units") == "reflectance":
        data = data * 10000.0
        fields["reflectance scale factor"] = "10000"
    nan = np.isnan(data) if data.dtype.kind == "f" else np.zeros(data.shape, bool)
    counts = np.rint(np.where(nan, 0, data))
    whole = np.where(nan, 0, data)
    # counts with fractions (averaged DN) round harmlessly; values of a few units would lose their digits
    if not fields and counts.size and np.any(counts != whole) and np.median(np.abs(whole[~nan])) < 1000:
        raise HsError(f"values from {np.nanmin(data):.4g} to {np.nanmax(data):.4g} (median {np.median(np.abs(whole[~nan])):.4g})"
                      " would lose their digits as whole counts in uint16: write float32 (or set meta "
                      "units='reflectance' to store them x 10000)", path)
    top = 65534 if nan.any() else 65535
    if counts.size and (counts.min() < 0 or counts.max() > top or not np.isfinite(counts).all()):
        what = "reflectance x 10000" if fields else "values"
        raise HsError(f"{what} from {np.nanmin(data):.4g} to {np.nanmax(data):.4g} do not fit uint16 "
                      f"(whole numbers 0-{top}): write float32", path)
    if nan.any():
        counts[nan] = 65535
        fields["data ignore value"] = "65535"
    return counts, fields


def _write_binary(path: Path, data: np.ndarray, dtype: np.dtype, interleave: str) -> None:
    """The (H, W, B) cube as an ENVI binary, little-endian, a band or a line at a time: no second
    whole copy of the cube (SPy's writer transposes it whole first)."""
    little = dtype.newbyteorder("<")
    with open(path, "wb") as fh:
        if interleave == "bsq":
            for k in range(data.shape[2]):
                np.ascontiguousarray(data[:, :, k], dtype=little).tofile(fh)
        else:
            for y in range(data.shape[0]):
                line = data[y].T if interleave == "bil" else data[y]  # (bands, samples) or (samples, bands)
                np.ascontiguousarray(line, dtype=little).tofile(fh)


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
    """Write ``NAME.hdr`` + ``NAME.raw`` atomically (both appear together or not at all).

    ``dtype`` float32 (default) or uint16. uint16 stores whole counts: a reflectance cube
    (``meta["units"]``) as reflectance x 10000 with ``reflectance scale factor = 10000``, NaN as
    ``data ignore value = 65535`` (a float read gives both back); values that do not fit are
    refused, not clipped. A float64 cube beyond float32's range is refused too."""
    path = Path(path)
    hdr, binary = output_pair(path)
    for p in (hdr, binary):
        check_writable(p, overwrite)
    try:
        np_dtype = np.dtype(dtype.lower() if isinstance(dtype, str) else dtype)
    except TypeError:
        raise HsError(f"ENVI output dtype must be float32 or uint16, not {dtype}", path) from None
    if np_dtype not in (np.dtype(np.float32), np.dtype(np.uint16)):
        raise HsError(f"ENVI output dtype must be float32 or uint16, not {dtype}", path)
    interleave = str(interleave).lower()
    if interleave not in INTERLEAVES:
        raise HsError(f"unknown interleave '{interleave}' (expected bil, bip or bsq)", path)
    data, stored = _storable(cube, np_dtype, path)
    metadata = {"description": "written by hstool"}
    metadata.update(_foreign_fields(cube))
    metadata.update(stored)
    metadata.update({
        "wavelength": [repr(float(w)) for w in cube.wavelengths],  # all digits: grids round-trip exactly
        "wavelength units": "Nanometers",
    })
    odd_keys = {}  # keys a header line would change (case, spaces): kept exactly in one JSON field
    for key, value in cube.meta.items():
        if key in FILE_META or key == "envi":
            continue
        if not SNAKE_KEY.fullmatch(str(key)) or key == JSON_KEYS:
            odd_keys[str(key)] = value
            continue
        metadata[META_PREFIX + key.replace("_", " ")] = _header_json(value)
    if odd_keys:
        metadata[META_PREFIX + JSON_KEYS.replace("_", " ")] = _header_json(odd_keys)
    stale = _stale_binary(hdr, binary) if overwrite and hdr.exists() else None
    try:
        hdr.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=".hstool-", dir=hdr.parent))
    except OSError as exc:  # worded as the other writers word it (atomic_path)
        raise HsError(f"cannot write here ({exc.strerror or exc})", hdr.parent) from exc
    try:
        tmp_hdr = tmpdir / "cube.hdr"
        _write_binary(tmpdir / "cube.raw", data, np_dtype, interleave)
        h, w, b = data.shape
        layout = {"samples": w, "lines": h, "bands": b, "header offset": 0, "file type": "ENVI Standard",
                  "data type": DATA_TYPE_CODES[np_dtype], "interleave": interleave, "byte order": 0}
        from spectral.io import envi

        envi.write_envi_header(str(tmp_hdr), {**layout, **metadata})
        os.replace(tmpdir / "cube.raw", binary)
        os.replace(tmp_hdr, hdr)
        if stale is not None:  # it would sit beside the new pair, mismatched, a candidate for the header
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise HsError(NO_SPACE if disk_full(exc, hdr.parent) else f"cannot write ENVI cube ({exc.strerror or exc})",
                      path) from exc
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return [hdr, binary]
