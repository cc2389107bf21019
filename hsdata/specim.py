"""Specim IQ capture folders: find the parts, check they belong together, read them.

A capture as the camera writes it (Specim IQ user manual; the layout every public reader of
IQ data relies on)::

    NAME/capture/NAME.hdr, NAME.raw            raw scene: uint16 (12-bit DN), BIL, 512 x 512 x 204
    NAME/capture/DARKREF_NAME.hdr/.raw         dark reference, a slab of a few lines
    NAME/capture/WHITEREF_NAME.hdr/.raw        white reference slab
    NAME/capture/WHITEDARKREF_NAME.hdr/.raw    only with a preset white reference: the dark
                                               frame taken with that white reference
    NAME/metadata/NAME.xml                     <key field="integration_time">, "datetime", ...
    NAME/manifest.xml                          <file type="raw" extension="hdr">capture/...</file>
    NAME/results/REFLECTANCE_NAME.hdr/.dat     the camera's own float32 reflectance (not used)

Axes. ``open_envi`` gives every part as an ``(lines, samples, bands)`` view in *sensor*
orientation: a line is one exposure of the push-broom slit, a sample is one detector column
(a spatial pixel along the slit). The scene as a person sees it is ``np.rot90(cube, 3)``
(:func:`upright`), so **upright row i is detector column (sample) i** and upright column j is
line ``lines - 1 - j``. Bad detector columns therefore become bad upright *rows*; hstool names
them by their detector-column (sample) index everywhere.

References averaged over their lines give one value per detector column and band, which is
what calibration needs (:meth:`SpecimCapture.reference_stats`).
"""

from __future__ import annotations

import contextlib
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HsError
from .formats.envi import open_envi

#: Band centres (nm) of the Specim IQ's 204 bands, as the camera writes them in every header
#: (``wavelength = {397.32, ..., 1003.58}``; Specim IQ Studio exports). Steps grow from 2.88 to
#: 3.09 nm: the list is a quadratic in the band index to within 0.005 nm.
IQ_WAVELENGTHS = np.array(
    [
    397.32, 400.20, 403.09, 405.97, 408.85, 411.74, 414.63, 417.52, 420.40, 423.29,
    426.19, 429.08, 431.97, 434.87, 437.76, 440.66, 443.56, 446.45, 449.35, 452.25,
    455.16, 458.06, 460.96, 463.87, 466.77, 469.68, 472.59, 475.50, 478.41, 481.32,
    484.23, 487.14, 490.06, 492.97, 495.89, 498.80, 501.72, 504.64, 507.56, 510.48,
    513.40, 516.33, 519.25, 522.18, 525.10, 528.03, 530.96, 533.89, 536.82, 539.75,
    542.68, 545.62, 548.55, 551.49, 554.43, 557.36, 560.30, 563.24, 566.18, 569.12,
    572.07, 575.01, 577.96, 580.90, 583.85, 586.80, 589.75, 592.70, 595.65, 598.60,
    601.55, 604.51, 607.46, 610.42, 613.38, 616.34, 619.30, 622.26, 625.22, 628.18,
    631.15, 634.11, 637.08, 640.04, 643.01, 645.98, 648.95, 651.92, 654.89, 657.87,
    660.84, 663.81, 666.79, 669.77, 672.75, 675.73, 678.71, 681.69, 684.67, 687.65,
    690.64, 693.62, 696.61, 699.60, 702.58, 705.57, 708.57, 711.56, 714.55, 717.54,
    720.54, 723.53, 726.53, 729.53, 732.53, 735.53, 738.53, 741.53, 744.53, 747.54,
    750.54, 753.55, 756.56, 759.56, 762.57, 765.58, 768.60, 771.61, 774.62, 777.64,
    780.65, 783.67, 786.68, 789.70, 792.72, 795.74, 798.77, 801.79, 804.81, 807.84,
    810.86, 813.89, 816.92, 819.95, 822.98, 826.01, 829.04, 832.07, 835.11, 838.14,
    841.18, 844.22, 847.25, 850.29, 853.33, 856.37, 859.42, 862.46, 865.50, 868.55,
    871.60, 874.64, 877.69, 880.74, 883.79, 886.84, 889.90, 892.95, 896.01, 899.06,
    902.12, 905.18, 908.24, 911.30, 914.36, 917.42, 920.48, 923.55, 926.61, 929.68,
    932.74, 935.81, 938.88, 941.95, 945.02, 948.10, 951.17, 954.24, 957.32, 960.40,
    963.47, 966.55, 969.63, 972.71, 975.79, 978.88, 981.96, 985.05, 988.13, 991.22,
    994.31, 997.40, 1000.49, 1003.58,
    ]
)
#: Prefixes of the reference slabs beside the raw scene in ``capture/``.
REFERENCE_PREFIXES = {"dark": "DARKREF_", "white": "WHITEREF_", "whitedark": "WHITEDARKREF_"}
#: 12-bit sensor: the largest DN a pixel can hold (saturation).
IQ_MAX_DN = 4095
#: Largest wavelength disagreement (nm) tolerated between the scene and a reference.
WAVELENGTH_TOLERANCE_NM = 0.01


def upright(array: np.ndarray) -> np.ndarray:
    """The scene upright: ``np.rot90(array, 3)`` on the first two (lines, samples) axes."""
    return np.rot90(array, 3)


def sensor_orientation(array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`upright`: an upright ``(rows, cols, ...)`` array in sensor axes."""
    return np.rot90(array, 1)


def is_capture(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / "capture").is_dir()


def find_captures(path: str | Path) -> list[Path]:
    """Capture folders at or under ``path`` (a folder holding ``capture/``), sorted.

    ``path`` itself when it is a capture; else every capture folder below it (any depth), leaving
    out hidden folders and the ``__MACOSX`` copies an unzipped archive holds. A path that names
    no folder (``.``, ``..``) is made absolute, so that its captures have their own names."""
    path = Path(path)
    if not path.exists():
        raise HsError("no such folder", path)
    if not path.is_dir():
        raise HsError("expected a Specim IQ capture folder or a folder of them", path)
    if path.name in ("", ".", ".."):
        path = Path(os.path.abspath(path))
    if is_capture(path):
        return [path]

    def hidden(folder: Path) -> bool:
        return any(part.startswith(".") or part == "__MACOSX" for part in folder.relative_to(path).parts)

    found = sorted({p.parent for p in path.rglob("capture") if p.is_dir() and not hidden(p)})
    if not found:
        raise HsError("no Specim IQ capture folders here (a capture holds capture/NAME.hdr)", path)
    return found


#: the folders a Specim IQ capture holds (the camera writes no others)
CAPTURE_PARTS = ("capture", "metadata", "results")


def capture_files(folder: str | Path) -> list[Path]:
    """The camera's files of a capture folder, through symbolic links too: the inputs an output
    must never replace. Those at its top (manifest.xml, the thumbnail, a .cal) and everything under
    capture/, metadata/ and results/; a folder of one's own inside it (an output folder a rerun
    writes to again) is not the camera's."""
    folder = Path(folder)
    top = [p for p in folder.iterdir() if p.is_file() and not _hstool_output_at_top(p)]
    return top + [f for part in CAPTURE_PARTS if (folder / part).is_dir() for f in walk_files(folder / part)]


def _hstool_output_at_top(path: Path) -> bool:
    """Whether a file at a capture folder's top is hstool's output (``calibrate CAP CAP`` writes
    there), not the camera's: the camera writes cubes (ENVI) only inside capture/ and results/ and
    no .mat, .npy, .npz or .json, and a preview PNG carries hstool's note."""
    from .formats import SUFFIXES
    from .formats.envi import DATA_SUFFIXES
    from .formats.image import is_preview

    cube_suffixes = {s for kind in ("mat", "envi", "npy", "npz") for s in SUFFIXES[kind]} | set(DATA_SUFFIXES) - {""}
    return path.suffix.lower() in cube_suffixes | {".json"} or is_preview(path)


def walk_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, through symbolic links, but never into a folder the walk is
    already in, ``folder``'s own parents included (a link to a parent would loop: two of them made
    2^40 paths); a looping or dangling link leads nowhere and is left out."""
    seen: set[tuple[int, int]] = set()
    for parent in Path(os.path.realpath(folder)).parents:
        with contextlib.suppress(OSError):
            seen.add((parent.stat().st_dev, parent.stat().st_ino))
    files: list[Path] = []

    def visit(path: Path) -> None:
        try:
            st = path.stat()
        except OSError:  # dangling, or a loop of links
            return
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        for entry in sorted(path.iterdir()):
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if is_dir:
                visit(entry)
            elif entry.is_file():
                files.append(entry)

    visit(Path(folder))
    return files


def _xml_root(path: Path, what: str) -> ET.Element:
    """The root element of an XML file; an unreadable one is an :class:`HsError` naming ``what``."""
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise HsError(f"unreadable {what} ({exc})", path) from exc


def _parse_manifest(path: Path) -> dict[str, Path]:
    """``type -> header path`` from ``manifest.xml`` (entries with extension ``hdr``)."""
    root = _xml_root(path, "manifest")
    parts = {}
    for elem in root.iter("file"):
        if (elem.get("extension") or "").lower() == "hdr" and elem.text:
            parts[(elem.get("type") or "").lower()] = path.parent / elem.text.strip().replace("\\", "/")
    return parts


def parse_metadata_xml(path: Path) -> dict[str, str]:
    """``<key field="NAME">VALUE</key>`` pairs of ``metadata/NAME.xml``."""
    root = _xml_root(path, "capture metadata")
    out = {}
    for elem in root.iter("key"):
        name = elem.get("field")
        if name:
            out[name] = (elem.text or "").strip()
    return out


def parse_header_date(text: str | None) -> str | None:
    """ISO date from a Specim header value ``DATE(dd-mm-yyyy): 05-07-2019`` (or yyyy-mm-dd)."""
    if not text:
        return None
    m = re.search(r"DATE\((\w+)-(\w+)-(\w+)\)\s*:\s*(\d+)-(\d+)-(\d+)", str(text), re.IGNORECASE)
    if not m:
        return str(text).strip() or None
    order = [m.group(i).lower()[0] for i in (1, 2, 3)]
    values = dict(zip(order, (int(m.group(i)) for i in (4, 5, 6))))
    try:
        return date(values["y"], values["m"], values["d"]).isoformat()
    except (KeyError, ValueError):
        return str(text).strip()


def _float(value: Any) -> float | None:
    try:
        return float(str(value).strip().split()[0])
    except (TypeError, ValueError, IndexError):
        return None


@dataclass
class Part:
    """One ENVI part of a capture, memory-mapped: ``view`` is (lines, samples, bands)."""

    kind: str
    path: Path
    view: np.ndarray
    wavelengths: np.ndarray | None
    header: dict

    @property
    def lines(self) -> int:
        return self.view.shape[0]

    @property
    def tint_ms(self) -> float | None:
        return _float(self.header.get("tint"))


@dataclass
class SpecimCapture:
    """A Specim IQ capture folder, checked for completeness and consistency.

    >>> cap = SpecimCapture.open("captures/444")          # doctest: +SKIP
    >>> cap.scene.view.shape, cap.tint_ms, cap.preset_white  # doctest: +SKIP
    ((512, 512, 204), 40.0, False)
    """

    root: Path
    name: str
    scene: Part
    dark: Part
    white: Part
    whitedark: Part | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    tint_ms: float | None = None
    date: str | None = None
    gain_path: Path | None = None

    # -- discovery -------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path) -> SpecimCapture:
        """Find and check the parts of the capture in ``folder`` (see the module docstring).

        Raises :class:`HsError` naming the file for a missing part, a header that does not match
        its binary, or references whose samples, bands or wavelengths differ from the scene's."""
        root = Path(folder)
        capdir = root / "capture"
        if not capdir.is_dir():
            raise HsError("not a Specim IQ capture folder (no capture/ subfolder)", root)
        manifest = _parse_manifest(root / "manifest.xml") if (root / "manifest.xml").is_file() else {}
        scene_hdr = manifest.get("raw")
        if scene_hdr is None:
            candidates = [
                p for p in sorted(capdir.glob("*.hdr"))
                if not p.name.upper().startswith(tuple(REFERENCE_PREFIXES.values()))
            ]
            preferred = [p for p in candidates if p.stem == root.name]
            if preferred:
                candidates = preferred
            if not candidates:
                raise HsError("no raw scene header (capture/NAME.hdr)", capdir)
            if len(candidates) > 1:
                raise HsError(f"several raw scene headers: {', '.join(p.name for p in candidates)}", capdir)
            scene_hdr = candidates[0]
        name = scene_hdr.stem
        paths = {"raw": scene_hdr}
        for kind, prefix in REFERENCE_PREFIXES.items():
            paths[kind] = manifest.get(kind + "ref", capdir / f"{prefix}{name}.hdr")
        for kind in ("raw", "dark", "white"):
            if not paths[kind].is_file():
                what = {"raw": "raw scene", "dark": "dark reference", "white": "white reference"}[kind]
                raise HsError(f"{what} is missing (a capture needs {paths[kind].name})", paths[kind])
        if "whitedarkref" in manifest and not paths["whitedark"].is_file():  # else the scene's dark would do, wrongly
            raise HsError("white-dark reference listed in manifest.xml is missing (a preset white reference "
                          "pairs with its own dark frame)", paths["whitedark"])
        scene = _open_part("raw", paths["raw"])
        dark = _open_part("dark", paths["dark"])
        white = _open_part("white", paths["white"])
        whitedark = _open_part("whitedark", paths["whitedark"]) if paths["whitedark"].is_file() else None
        for part in (dark, white, whitedark):
            if part is not None:
                _check_matches(scene, part)
        xml_path = root / "metadata" / f"{name}.xml"
        metadata = parse_metadata_xml(xml_path) if xml_path.is_file() else {}
        tint = scene.tint_ms
        xml_tint = _float(metadata.get("integration_time"))
        if tint is not None and xml_tint is not None and abs(tint - xml_tint) > 0.01 * max(tint, xml_tint):
            raise HsError(
                f"integration time disagrees: header tint {tint:g} ms, metadata {xml_tint:g} ms", xml_path
            )
        tint = tint if tint is not None else xml_tint
        when = parse_header_date(scene.header.get("acquisition date")) or metadata.get("datetime")
        gains = sorted(capdir.glob("*.cal")) + sorted(root.glob("*.cal"))
        return cls(root, name, scene, dark, white, whitedark, metadata, tint, when, gains[0] if gains else None)

    # -- data ------------------------------------------------------------------------------
    @property
    def samples(self) -> int:
        return self.scene.view.shape[1]

    @property
    def lines(self) -> int:
        return self.scene.view.shape[0]

    @property
    def bands(self) -> int:
        return self.scene.view.shape[2]

    @property
    def wavelengths(self) -> np.ndarray:
        return self.scene.wavelengths

    @property
    def white_tint_ms(self) -> float | None:
        """Integration time of the white reference: its header's ``tint``, else that of its
        white-dark frame (taken at the same exposure)."""
        tint = self.white.tint_ms
        if tint is None and self.whitedark is not None:
            tint = self.whitedark.tint_ms
        return tint

    @property
    def datacube_angle(self) -> float | None:
        """The rotation the camera recorded for the cube (metadata ``datacube_angle`` or the
        header's ``datacube angle``), in degrees; hstool does not apply it."""
        return _float(self.metadata.get("datacube_angle", self.scene.header.get("datacube angle")))

    def warnings(self) -> list[str]:
        """What about the capture makes a calibration doubtful, one sentence each: parts whose
        integration times disagree, and a recorded rotation that is not applied."""
        notes = []
        pairs = [("dark reference", self.dark.tint_ms, "scene", self.tint_ms)]
        if self.whitedark is not None:
            pairs.append(("white-dark reference", self.whitedark.tint_ms, "white reference", self.white.tint_ms))
        for what, tint, other, expected in pairs:
            if tint is not None and expected is not None and abs(tint - expected) > 0.01 * max(tint, expected):
                notes.append(f"{what} was taken at {tint:g} ms, the {other} at {expected:g} ms: its offset "
                             "may not fit")
        if self.datacube_angle:
            notes.append(f"the camera recorded datacube_angle {self.datacube_angle:g}, which is not applied: the "
                         "cube is written in the upright orientation of an unrotated capture")
        return notes

    @property
    def preset_white(self) -> bool:
        """True when a preset white reference was used (``WHITEDARKREF_`` present): the white
        reference then pairs with its own dark frame, not with the scene's."""
        return self.whitedark is not None

    def reference_stats(self, kind: str, std: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean and standard deviation over the lines of a reference slab, each (samples, bands)
        float64; the deviation is None for a one-line slab or when ``std`` is False.
        ``kind``: dark, white, whitedark."""
        part = {"dark": self.dark, "white": self.white, "whitedark": self.whitedark}[kind]
        if part is None:
            raise HsError(f"capture has no {kind} reference", self.root)
        n = part.lines
        bil = part.view.transpose(0, 2, 1)  # (lines, bands, samples): contiguous in a BIL file
        total = np.zeros(bil.shape[1:])
        # exact integer sums of <= 16-bit counts (3x faster than summing in float64)
        acc = np.uint32 if bil.dtype.kind == "u" and bil.dtype.itemsize <= 2 else np.float64
        for start in range(0, n, 16):  # blockwise: a float64 copy of a long slab is never made
            total += bil[start : start + 16].sum(axis=0, dtype=acc)
        mean = total / n
        if n < 2 or not std:
            return mean.T, None
        sq = np.zeros_like(mean)
        for start in range(0, n, 16):
            sq += ((bil[start : start + 16] - mean) ** 2).sum(axis=0)
        return mean.T, np.sqrt(sq / (n - 1)).T

    def saturated_cells(self, kind: str) -> np.ndarray:
        """(samples, bands) bool: the cells of a reference slab where some line reads the sensor's
        top code (:data:`IQ_MAX_DN`), whose mean is then too low. ``kind``: dark, white, whitedark."""
        part = {"dark": self.dark, "white": self.white, "whitedark": self.whitedark}[kind]
        if part is None:
            raise HsError(f"capture has no {kind} reference", self.root)
        bil = part.view.transpose(0, 2, 1)
        top = np.zeros(bil.shape[1:], dtype=bil.dtype)
        for start in range(0, part.lines, 16):
            np.maximum(top, bil[start : start + 16].max(axis=0), out=top)
        return (top >= IQ_MAX_DN).T

    def describe(self) -> dict[str, Any]:
        """Plain metadata of the capture (for the output cube's ``meta``)."""
        return {
            "source": str(self.root),
            "capture": self.name,
            "sensor_shape": [self.lines, self.samples, self.bands],
            "tint_ms": self.tint_ms,
            "white_tint_ms": self.white_tint_ms,
            "date": self.date,
            "preset_white": self.preset_white,
            "reference_lines": {"dark": self.dark.lines, "white": self.white.lines},
            **({"datacube_angle": self.datacube_angle} if self.datacube_angle is not None else {}),
        }


def _open_part(kind: str, hdr: Path) -> Part:
    view, wl, header, _ = open_envi(hdr)
    return Part(kind, hdr, view, wl, header)


def _check_matches(scene: Part, ref: Part) -> None:
    what = {"dark": "dark reference", "white": "white reference", "whitedark": "white-dark reference"}[ref.kind]
    if ref.view.shape[2] != scene.view.shape[2]:
        raise HsError(f"{what} has {ref.view.shape[2]} bands, the scene {scene.view.shape[2]}", ref.path)
    if ref.view.shape[1] != scene.view.shape[1]:
        raise HsError(f"{what} has {ref.view.shape[1]} samples, the scene {scene.view.shape[1]}", ref.path)
    if scene.wavelengths is not None and ref.wavelengths is not None:
        diff = np.abs(np.asarray(scene.wavelengths) - np.asarray(ref.wavelengths))
        if diff.max() > WAVELENGTH_TOLERANCE_NM:
            band = int(diff.argmax())
            raise HsError(
                f"{what} wavelengths differ from the scene's (band {band}: {ref.wavelengths[band]:g} vs "
                f"{scene.wavelengths[band]:g} nm)",
                ref.path,
            )
