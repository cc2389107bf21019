"""Measured reflectance spectra and illuminants for synthetic scenes, with a fixed train/test split.

Materials (reflectance factors, clipped to [0, 1]):

- **earthlib** spectral library (C. Anderson, earthlib, MIT licence; 7,261 spectra, 400-2450 nm,
  10 nm, shipped as the ENVI spectral library ``earthlib/data/spectra.sli`` with ``spectra.csv``
  metadata). Field and laboratory measurements: ICRAF-ISRIC world soil spectral library
  (ICRAF & ISRIC 2021), ASD field spectra of roofs, roads, paint, bark, litter, sand (Santa
  Barbara urban and natural surfaces), SpecEvo; plus 2,000 vegetation canopy spectra that earthlib
  simulates with PROSAIL (Jacquemoud et al. 2009, Remote Sens. Environ. 113:S56) — the only green
  vegetation in the library, marked ``kind="vegetation"``.
- **ColorChecker** charts from colour-science (``colour.SDS_COLOURCHECKERS``): "BabelColor
  Average" (Pascale 2006, BabelColor), "ColorChecker N Ohta" (Ohta 1997), "ISO 17321-1"
  (ISO 17321-1:2012, Table D.1) and the "PMC" skin-tone chart.
- **CIE test colour samples** TCS01-TCS15 (CIE 13.3-1995 and CIE 2024 sets,
  ``colour.quality.datasets.SDS_TCS``).
- **NIST CQS** 15 Munsell-based saturated samples VS1-VS15 (Davis & Ohno 2010, Opt. Eng. 49(3);
  versions 7.4 and 9.0, ``colour.quality.datasets.SDS_VS``).
- **Otsu 2018** reflectances: spectra recovered with the clustered-PCA bases of Otsu, Yamamoto &
  Hachisuka (2018), "Reproducing spectral reflectances from tristimulus colours", Computer
  Graphics Forum 37(6) (``colour.recovery.XYZ_to_sd_Otsu2018``), for a fixed grid of saturated
  sRGB colours: smooth, bounded, physically plausible saturated materials.

Illuminants (``colour.SDS_ILLUMINANTS`` / ``colour.SDS_LIGHT_SOURCES``, CIE 015:2018):
CIE daylight D series at 4000-12000 K (direct light) and 12500-25000 K (blue sky fill,
``colour.sd_CIE_illuminant_D_series``), CIE A and Planckian radiators 2400-3400 K, the CIE
fluorescent FL1-FL12 and FL3.1-FL3.15, high-pressure discharge HP1-HP5, the CIE LED series, and
measured lamps (fluorescent, LED, HPS, metal halide, incandescent; low-pressure sodium excluded).

Split: every spectrum has a *group* (its name; for charts and sample sets the patch/sample name
shared by all versions of the chart, so a patch measured twice cannot land on both sides). A group
goes to the test split when ``sha1(group) mod 100 < 20`` (about 20 %), else to train: stable across
machines, Python versions and library order.
"""

from __future__ import annotations

import colorsys
import hashlib
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .cube import ARAD_WAVELENGTHS
from .errors import HsError
from .spectral import resampling_matrix

SPLITS = ("train", "test")
#: percentage of groups held out for the test split
TEST_PERCENT = 20
#: band range every source covers (earthlib starts at 400 nm: its first value is held below)
RANGE_NM = (380.0, 780.0)


@dataclass(frozen=True)
class SpectralSet:
    """Spectra on one band grid: ``values`` (N, B) float32, with per-spectrum name, group, kind."""

    names: tuple[str, ...]
    groups: tuple[str, ...]
    kinds: tuple[str, ...]
    values: np.ndarray
    wavelengths: np.ndarray

    def __post_init__(self) -> None:
        self.values.flags.writeable = False  # shared through caches: read-only

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, mask: np.ndarray) -> SpectralSet:
        idx = np.flatnonzero(mask)
        return SpectralSet(
            tuple(self.names[i] for i in idx),
            tuple(self.groups[i] for i in idx),
            tuple(self.kinds[i] for i in idx),
            self.values[idx],
            self.wavelengths,
        )

    def by_kind(self) -> dict[str, np.ndarray]:
        """kind -> indices of its spectra."""
        kinds = np.array(self.kinds)
        return {k: np.flatnonzero(kinds == k) for k in sorted(set(self.kinds))}


def split_of(group: str) -> str:
    """'test' or 'train' for a group name (deterministic hash, see module docstring)."""
    h = int.from_bytes(hashlib.sha1(group.encode("utf-8")).digest()[:8], "big")
    return "test" if h % 100 < TEST_PERCENT else "train"


# --- raw sources: lists of (name, group, kind, wavelengths nm, values) -----------------------------

_Raw = list[tuple[str, str, str, np.ndarray, np.ndarray]]

_EARTHLIB_KIND = {
    "soil": "soil", "dirt": "soil", "sand": "soil", "gravel": "soil",
    "canopy": "vegetation",
    "bark": "npv", "litter": "npv", "npv": "npv", "wood": "npv", "char": "npv",
    "paint": "paint",
}  # fmt: skip


def earthlib_path() -> Path:
    """The ENVI spectral library inside the installed earthlib package."""
    import importlib.util

    spec = importlib.util.find_spec("earthlib")
    if spec is None or not spec.submodule_search_locations:
        raise HsError("the earthlib package is not installed (pip install earthlib)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "spectra.sli"
    if not path.is_file():
        raise HsError("earthlib's spectral library is missing", path)
    return path


def _earthlib() -> _Raw:
    import csv

    from spectral.io import envi

    sli = earthlib_path()
    lib = envi.open(str(sli) + ".hdr", str(sli))
    wl = np.asarray(lib.bands.centers, dtype=np.float64) * 1000.0  # µm -> nm
    keep = wl <= 1000.0
    with open(sli.with_name("spectra.csv"), newline="") as fh:
        rows = {r["NAME"]: r for r in csv.DictReader(fh)}
    out: _Raw = []
    for name, spectrum in zip(lib.names, np.asarray(lib.spectra)):
        row = rows.get(name, {})
        level3 = row.get("LEVEL_3", "")
        kind = _EARTHLIB_KIND.get(level3, "built" if row.get("LEVEL_1") == "impervious" else "soil")
        out.append((f"earthlib:{level3}:{name}", f"earthlib:{name}", kind, wl[keep], spectrum[keep]))
    return out


def _colour_sets() -> _Raw:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
        from colour.quality.datasets import SDS_TCS, SDS_VS

    out: _Raw = []
    for chart in ("BabelColor Average", "ColorChecker N Ohta", "ISO 17321-1", "PMC"):
        for patch, sd in colour.SDS_COLOURCHECKERS[chart].items():
            group = f"chart:{'PMC' if chart == 'PMC' else 'ColorChecker'}:{patch}"
            out.append((f"chart:{chart}:{patch}", group, "chart", sd.wavelengths, sd.values))
    for sets, kind in ((SDS_TCS, "tcs"), (SDS_VS, "cqs")):
        for version, samples in sets.items():
            for sample, sd in samples.items():
                out.append((f"{kind}:{version}:{sample}", f"{kind}:{sample}", kind, sd.wavelengths, sd.values))
    return out


def otsu2018_colours() -> list[tuple[float, float, float]]:
    """The fixed sRGB colours whose Otsu 2018 reflectances join the library (18 hues x 2 x 2)."""
    return [
        colorsys.hsv_to_rgb(h / 18, s, v) for h in range(18) for s in (0.6, 0.9) for v in (0.45, 0.8)
    ]


def _otsu2018() -> _Raw:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
        from colour.recovery import XYZ_to_sd_Otsu2018

        out: _Raw = []
        for rgb in otsu2018_colours():
            sd = XYZ_to_sd_Otsu2018(colour.sRGB_to_XYZ(np.array(rgb)))
            name = "otsu2018:sRGB(" + ",".join(f"{c:.3f}" for c in rgb) + ")"
            out.append((name, name, "otsu", sd.wavelengths, sd.values))
    return out


def _illuminants() -> _Raw:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour

        out: _Raw = []

        def add(name: str, kind: str, sd) -> None:
            out.append((name, name, kind, sd.wavelengths, sd.values))

        for cct in range(4000, 12001, 250):
            add(f"CIE D series {cct} K", "daylight", _d_series(colour, cct))
        for cct in range(12500, 25001, 500):
            add(f"CIE D series {cct} K", "sky", _d_series(colour, cct))
        for cct in range(2400, 3401, 100):
            add(f"Planckian {cct} K", "incandescent", colour.sd_blackbody(cct))
        for name, sd in colour.SDS_ILLUMINANTS.items():
            if name == "A":
                add("CIE A", "incandescent", sd)
            elif name.startswith("FL"):
                add(f"CIE {name}", "fluorescent", sd)
            elif name.startswith("HP"):
                add(f"CIE {name}", "discharge", sd)
            elif name.startswith("LED"):
                add(f"CIE {name}", "led", sd)
        for name, sd in colour.SDS_LIGHT_SOURCES.items():
            kind = _lamp_kind(name)
            if kind:
                add(f"lamp {name}", kind, sd)
    return out


def _d_series(colour, cct: float):
    xy = colour.temperature.CCT_to_xy_CIE_D(cct * 1.4388 / 1.4380)
    return colour.sd_CIE_illuminant_D_series(xy)


def _lamp_kind(name: str) -> str | None:
    low = name.lower()
    if "lps" in low or name in ("SC",):
        return None  # monochromatic sodium; filtered source C
    if "led" in low or "phos" in low or "luxeon" in low:
        return "led"
    if any(k in low for k in ("hps", "mercury", "halide", "mhc", "h38", "sdw")):
        return "discharge"
    if any(k in low for k in ("incandescent", "a/w", "kinoton")) or name == "SA":
        return "incandescent"
    return "fluorescent"


# --- on a band grid -----------------------------------------------------------------------------


def _check_grid(wavelengths: np.ndarray) -> np.ndarray:
    wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    if wl.size < 2 or np.any(np.diff(wl) <= 0):
        raise HsError("a band grid needs at least two increasing wavelengths")
    if wl[0] < RANGE_NM[0] - 1e-6 or wl[-1] > RANGE_NM[1] + 1e-6:
        raise HsError(
            f"synthetic scenes cover {RANGE_NM[0]:g}-{RANGE_NM[1]:g} nm; band grid is {wl[0]:g}-{wl[-1]:g} nm"
        )
    return wl


def _resample(raw: _Raw, wl: np.ndarray, clip: tuple[float, float] | None) -> SpectralSet:
    """Resample each spectrum: band-integrate (triangular, FWHM = target step) where the source is
    finer than the target — spiky lamp lines are not missed — else interpolate linearly; values
    beyond a source's range are held at its edge."""
    step = float(np.median(np.diff(wl)))
    cache: dict[tuple, np.ndarray] = {}
    rows = []
    for _, _, _, src, values in raw:
        src = np.asarray(src, dtype=np.float64)
        key = (src.size, float(src[0]), float(src[-1]))
        if key not in cache:
            finer = float(np.median(np.diff(src))) < step - 1e-9
            cache[key] = resampling_matrix(src, wl, "triangular" if finer else "linear", extrapolate=True)
        rows.append(np.asarray(values, dtype=np.float64) @ cache[key])
    values = np.array(rows)
    if clip is not None:
        values = np.clip(values, *clip)
    return SpectralSet(
        tuple(r[0] for r in raw), tuple(r[1] for r in raw), tuple(r[2] for r in raw),
        values.astype(np.float32), wl,
    )  # fmt: skip


@lru_cache(maxsize=4)
def _raw_materials() -> _Raw:
    return _earthlib() + _colour_sets() + _otsu2018()


@lru_cache(maxsize=4)
def _raw_illuminants() -> _Raw:
    return _illuminants()


def _select(full: SpectralSet, split: str | None) -> SpectralSet:
    if split is None:
        return full
    if split not in SPLITS:
        raise HsError(f"unknown split '{split}' (use train or test)")
    return full.subset(np.array([split_of(g) == split for g in full.groups]))


@lru_cache(maxsize=8)
def _materials_on(grid: tuple[float, ...]) -> SpectralSet:
    return _resample(_raw_materials(), np.array(grid), (0.0, 1.0))


@lru_cache(maxsize=8)
def _illuminants_on(grid: tuple[float, ...]) -> SpectralSet:
    s = _resample(_raw_illuminants(), np.array(grid), (0.0, None))
    values = s.values / s.values.mean(axis=1, keepdims=True)  # unit mean power on the grid
    return SpectralSet(s.names, s.groups, s.kinds, values.astype(np.float32), s.wavelengths)


@lru_cache(maxsize=16)
def _cached(kind: str, grid: tuple[float, ...], split: str | None) -> SpectralSet:
    full = _materials_on(grid) if kind == "materials" else _illuminants_on(grid)
    return _select(full, split)


def material_library(wavelengths: np.ndarray = ARAD_WAVELENGTHS, split: str | None = None) -> SpectralSet:
    """All material reflectances on ``wavelengths`` (values in [0, 1]); ``split`` keeps one side.

    >>> lib = material_library(split="test")  # doctest: +SKIP
    >>> lib.values.shape  # (N, 31)  # doctest: +SKIP
    """
    return _cached("materials", tuple(_check_grid(wavelengths)), split)


def illuminant_library(wavelengths: np.ndarray = ARAD_WAVELENGTHS, split: str | None = None) -> SpectralSet:
    """All illuminant spectral power distributions on ``wavelengths``, each scaled to unit mean."""
    return _cached("illuminants", tuple(_check_grid(wavelengths)), split)
