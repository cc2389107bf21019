"""Camera spectral sensitivities (CSS): the library of named responses and user files.

A :class:`CSS` carries its own wavelengths (colour-science's habit: data never guess their band
grid). Its ``values`` are the response of each channel *per sample of its own grid*, so summing
a column gives the response to a flat unit spectrum; :meth:`CSS.on` resamples to a cube's grid
and rescales by the ratio of band widths, so the same physical exposure gives the same RGB
whatever the cube's band spacing.

Library (``list_css()``):

- ``cie1964``: the NTIRE 2020 "Clean" track CSS, ``cie_1964_w_gain.npz`` from the organisers'
  repository (github.com/boazarad/NTIRE2020_spectral, MIT): CIE 1964 10-degree colour-matching
  functions x10, y10, z10 at 400:10:700 nm, each column scaled to sum 255.
- ``d40``: the organisers' example physical camera (Nikon D40-like) of the "Real World" track,
  ``example_D40_camera_w_gain.npz``; each column sums to 65535. The challenge's own camera was
  confidential (Arad et al., "NTIRE 2020 Challenge on Spectral Reconstruction from an RGB
  Image", CVPRW 2020).
- ``cie1931``: CIE 1931 2-degree standard observer (colour-science ``MSDS_CMFS``), 360-830 nm at
  1 nm, each column scaled to sum 255 (the clean track's convention).
- ``nikon5100`` / ``sigma_sd_merrill``: camera sensitivities measured by the UK National Physical
  Laboratory (NPL) as shipped by colour-science (``MSDS_CAMERA_SENSITIVITIES``), each column
  scaled to sum 65535 (the example D40's convention). The Sigma data end at 680 nm where the
  response is < 1 % of its peak (IR-cut filter); 690 and 700 nm are appended as zero so that
  400-700 nm cubes can use it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from hstool.hsdata import HsError
from hstool.hsdata.spectral import resampling_matrix

DATA_DIR = Path(__file__).parent / "css"

#: fraction of a channel's response that may lie outside a cube's band range before it is refused
COVERAGE_TOLERANCE = 0.02


def _band_widths(wavelengths: np.ndarray) -> np.ndarray:
    """Width each sample stands for: half the distance to each neighbour (ends: the one step)."""
    w = np.asarray(wavelengths, dtype=np.float64)
    if w.size < 2:
        return np.ones_like(w)
    d = np.diff(w)
    widths = np.empty_like(w)
    widths[1:-1] = (d[1:] + d[:-1]) / 2
    widths[0], widths[-1] = d[0], d[-1]
    return widths


@dataclass
class CSS:
    """A camera's spectral sensitivities: ``values`` (K, 3) float64, columns R, G, B.

    Example
    -------
    >>> css = load_css("cie1964")
    >>> css.on(np.arange(400.0, 701.0, 10.0)).sum(axis=0)
    array([255., 255., 255.])
    """

    name: str
    wavelengths: np.ndarray
    values: np.ndarray
    description: str = ""
    source: str = ""
    #: column sum of the shipped gain (255 clean-style, 65535 raw-camera style); informative
    white: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.wavelengths = np.asarray(self.wavelengths, dtype=np.float64).reshape(-1)
        self.values = np.asarray(self.values, dtype=np.float64)
        where = self.source or self.name
        if self.values.ndim != 2 or self.values.shape[1] != 3:
            raise HsError(f"a CSS needs 3 columns (R, G, B), got shape {self.values.shape}", where)
        if self.values.shape[0] != self.wavelengths.size:
            raise HsError(
                f"CSS has {self.values.shape[0]} rows but {self.wavelengths.size} wavelengths", where
            )
        if self.wavelengths.size < 2 or np.any(np.diff(self.wavelengths) <= 0):
            raise HsError("CSS wavelengths must be at least two, strictly increasing", where)
        if not np.all(np.isfinite(self.values)):
            raise HsError("CSS has NaN or infinite values", where)
        if np.any(self.values < 0):
            raise HsError("CSS has negative sensitivities", where)
        dead = [c for c, total in zip("RGB", self.values.sum(axis=0)) if not total > 0]
        if dead:
            raise HsError(f"CSS channel(s) {', '.join(dead)} are zero at every wavelength", where)
        if not self.white:
            self.white = float(self.values.sum(axis=0).max())

    @property
    def range(self) -> tuple[float, float]:
        return float(self.wavelengths[0]), float(self.wavelengths[-1])

    def on(self, wavelengths: np.ndarray) -> np.ndarray:
        """The CSS on a cube's band grid, ``(B, 3)`` float64, such that ``cube @ css.on(w)`` is
        the camera's response.

        On the CSS's own grid the values are returned unchanged (bit-exact tracks). Otherwise
        they are interpolated linearly and multiplied by (cube band width / CSS sample width), so
        a flat spectrum gives the same response on any grid. Refused (``HsError``) when a cube
        band lies outside the CSS's range, or when more than 2 % of a channel's response lies
        outside the cube's range (the cube does not cover the CSS).
        """
        w = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
        if w.shape == self.wavelengths.shape and np.array_equal(w, self.wavelengths):
            return self.values.copy()
        lo, hi = self.range
        tol = 1e-6 * hi
        if w.min() < lo - tol or w.max() > hi + tol:
            raise HsError(
                f"cube bands {w.min():g}-{w.max():g} nm reach outside the range of CSS '{self.name}' "
                f"({lo:g}-{hi:g} nm): resample the cube to bands within it first"
            )
        if w.size > 1:
            half = _band_widths(w) / 2
            inside = (self.wavelengths >= w[0] - half[0] - tol) & (self.wavelengths <= w[-1] + half[-1] + tol)
        else:
            inside = np.isclose(self.wavelengths, w[0])
        total = self.values.sum(axis=0)
        lost = self.values[~inside].sum(axis=0) / np.where(total > 0, total, 1)
        if np.any(lost > COVERAGE_TOLERANCE):
            raise HsError(
                f"cube bands {w.min():g}-{w.max():g} nm do not cover CSS '{self.name}' "
                f"({lo:g}-{hi:g} nm): {100 * lost.max():.0f}% of a channel's response would be lost"
            )
        m = resampling_matrix(self.wavelengths, w, "linear")
        scale = _band_widths(w) / float(np.median(_band_widths(self.wavelengths))) if w.size > 1 else 1.0
        return (self.values.T @ m).T * np.reshape(scale, (-1, 1))


def _scaled(values: np.ndarray, column_sum: float) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values * (column_sum / values.sum(axis=0))


def _from_npz(path: Path, name: str, description: str = "", source: str = "") -> CSS:
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise HsError(f"not a readable .npz file ({exc})", path) from exc
    return _from_arrays(arrays, path, name, description, source)


def _from_mat(path: Path, name: str, description: str = "", source: str = "") -> CSS:
    """The organisers' ``.mat`` CSS files (MATLAB v5, as they ship them; v7.3 read with h5py)."""
    import h5py
    import scipy.io

    try:
        if h5py.is_hdf5(path):  # MATLAB v7.3: HDF5, arrays stored transposed
            with h5py.File(path, "r") as f:
                arrays = {k: np.asarray(f[k]).T for k in f if isinstance(f[k], h5py.Dataset)}
        else:
            arrays = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except (OSError, ValueError, TypeError, scipy.io.matlab.MatReadError) as exc:
        raise HsError(f"not a readable .mat file ({exc})", path) from exc
    return _from_arrays(arrays, path, name, description, source)


def _from_arrays(arrays: dict, path: Path, name: str, description: str, source: str) -> CSS:
    """A CSS from the organisers' ``filters`` (K, 3) and ``bands`` (K,) or (1, K), or ``values`` and
    ``wavelengths``."""
    keys = set(arrays)
    if {"filters", "bands"} <= keys:
        values, bands = arrays["filters"], arrays["bands"]
    elif {"values", "wavelengths"} <= keys:
        values, bands = arrays["values"], arrays["wavelengths"]
    else:
        raise HsError(
            f"CSS file needs arrays 'filters' and 'bands' (or 'values' and 'wavelengths'); found "
            f"{', '.join(sorted(keys)) or 'none'}",
            path,
        )
    try:
        values = np.asarray(values, dtype=np.float64)
        bands = np.asarray(bands, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise HsError(f"CSS arrays are not numbers ({exc})", path) from exc
    if values.ndim == 2 and values.shape[0] == 3 and values.shape[1] == bands.size != 3:
        values = values.T
    return CSS(name, bands, values, description, source or str(path))


def _from_csv(path: Path) -> CSS:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        dialect = csv.Sniffer().sniff(text[:2048], delimiters=",;\t ")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    order = [0, 1, 2]
    if rows and not _is_number(rows[0][0]):
        order = _channel_order([c for c in rows[0] if c.strip()], path)
        rows = rows[1:]  # header
    if not rows:
        raise HsError("CSV has no data rows (expected wavelength,R,G,B)", path)
    data = []
    for i, r in enumerate(rows, 1):
        cells = [c.strip() for c in r if c.strip()]
        if len(cells) != 4:
            raise HsError(f"row {i} has {len(cells)} columns; a CSS CSV needs 4: wavelength,R,G,B", path)
        try:
            data.append([float(c) for c in cells])
        except ValueError:
            raise HsError(f"row {i} is not numeric: {','.join(cells)}", path) from None
    arr = np.array(data)
    return CSS(path.stem, arr[:, 0], arr[:, 1:][:, order], f"user CSS from {path.name}", str(path))


CHANNEL_NAMES = {"r": 0, "red": 0, "g": 1, "g1": 1, "g2": 1, "green": 1, "b": 2, "blue": 2}


def _channel(name: str) -> int | None:
    """The channel a column name says (``R``, ``red``, ``b_bar``, ``Blue sensitivity``), or None."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    if not words:
        return None
    colour = next((CHANNEL_NAMES[w] for w in words if w in ("red", "green", "blue")), None)
    return colour if colour is not None else CHANNEL_NAMES.get(words[0])


def _channel_order(header: list[str], path: Path) -> list[int]:
    """The columns to take for R, G and B from a header naming the three after the wavelength
    (``wavelength,B,G,R`` gives [2, 1, 0]); names that are no channel's (x, y, z) keep their order."""
    names = header[1:]
    known = [_channel(n) for n in names]
    if len(names) != 3 or all(k is None for k in known):  # (a row of another width is refused after)
        return [0, 1, 2]
    if sorted(k for k in known if k is not None) != [0, 1, 2]:
        raise HsError(f"CSV header names the columns {', '.join(header)}: expected wavelength and R, G, B in any "
                      "order (or no header)", path)
    return [known.index(c) for c in range(3)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_css(path: str | Path) -> CSS:
    """A user CSS from a CSV (``wavelength,R,G,B`` rows; a header is optional, and one naming R, G
    and B in another order is followed), or an ``.npz`` or ``.mat`` with the organisers' arrays
    ``filters`` (K, 3) and ``bands`` (K,) or (1, K)."""
    path = Path(path)
    if not path.is_file():
        raise HsError("no such CSS file", path)
    suffix = path.suffix.lower()
    if suffix in (".npz", ".mat"):
        return (_from_npz if suffix == ".npz" else _from_mat)(path, path.stem, f"user CSS from {path.name}")
    if suffix in (".csv", ".txt", ".tsv"):
        return _from_csv(path)
    raise HsError(f"unknown CSS file type '{suffix}' (use .csv, .npz or .mat)", path)


def write_css_csv(css: CSS, path: str | Path) -> Path:
    """Write ``css`` as CSV with a ``wavelength,R,G,B`` header (full float precision)."""
    path = Path(path)
    lines = ["wavelength,R,G,B"]
    lines += [",".join(repr(float(v)) for v in (w, *row)) for w, row in zip(css.wavelengths, css.values)]
    path.write_text("\n".join(lines) + "\n")
    return path


NTIRE_SOURCE = "github.com/boazarad/NTIRE2020_spectral@7c7712a (MIT), resources/"


def _colour_camera(key: str) -> tuple[np.ndarray, np.ndarray]:
    import colour

    s = colour.MSDS_CAMERA_SENSITIVITIES[key]
    return np.asarray(s.wavelengths, dtype=np.float64), np.asarray(s.values, dtype=np.float64)


def _cie1964() -> CSS:
    return _from_npz(
        DATA_DIR / "cie_1964_w_gain.npz",
        "cie1964",
        "CIE 1964 10-deg CMFs, columns sum 255 (NTIRE 2020 Clean track)",
        NTIRE_SOURCE + "cie_1964_w_gain.npz",
    )


def _d40() -> CSS:
    return _from_npz(
        DATA_DIR / "example_D40_camera_w_gain.npz",
        "d40",
        "organisers' example D40 camera, columns sum 65535 (NTIRE 2020 Real World example)",
        NTIRE_SOURCE + "example_D40_camera_w_gain.npz",
    )


def _cie1931() -> CSS:
    import colour

    c = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    return CSS(
        "cie1931",
        c.wavelengths,
        _scaled(c.values, 255.0),
        "CIE 1931 2-deg standard observer, 1 nm, columns sum 255",
        "colour-science MSDS_CMFS['CIE 1931 2 Degree Standard Observer'] (CIE 015:2018)",
    )


def _nikon() -> CSS:
    w, v = _colour_camera("Nikon 5100 (NPL)")
    return CSS(
        "nikon5100",
        w,
        _scaled(v, 65535.0),
        "Nikon 5100 measured by NPL, 380-780 nm at 5 nm, columns sum 65535",
        "colour-science MSDS_CAMERA_SENSITIVITIES['Nikon 5100 (NPL)'] (UK National Physical Laboratory)",
    )


def _sigma() -> CSS:
    w, v = _colour_camera("Sigma SDMerill (NPL)")
    step = w[-1] - w[-2]
    extra = w[-1] + step * np.arange(1, round((700.0 - w[-1]) / step) + 1)
    w = np.concatenate([w, extra])
    v = np.concatenate([v, np.zeros((extra.size, 3))])
    return CSS(
        "sigma_sd_merrill",
        w,
        _scaled(v, 65535.0),
        "Sigma SD Merrill (Foveon) measured by NPL, 400-680 nm (+zero to 700), columns sum 65535",
        "colour-science MSDS_CAMERA_SENSITIVITIES['Sigma SDMerill (NPL)'] (UK National Physical Laboratory)",
    )


LIBRARY = {
    "cie1964": _cie1964,
    "d40": _d40,
    "cie1931": _cie1931,
    "nikon5100": _nikon,
    "sigma_sd_merrill": _sigma,
}


@cache
def _library_css(name: str) -> CSS:
    return LIBRARY[name]()


def load_css(name_or_path: str | Path | CSS) -> CSS:
    """A library CSS by name (see :data:`LIBRARY`) or a user file (.csv / .npz / .mat) by path."""
    if isinstance(name_or_path, CSS):
        return name_or_path
    key = str(name_or_path)
    if key.lower() in LIBRARY:
        css = _library_css(key.lower())
        return CSS(css.name, css.wavelengths.copy(), css.values.copy(), css.description, css.source, css.white)
    path = Path(key)
    if path.suffix.lower() in (".csv", ".txt", ".tsv", ".npz", ".mat") or path.exists():
        return read_css(path)
    raise HsError(f"unknown CSS '{key}' (library: {', '.join(LIBRARY)}; or a .csv/.npz/.mat file)")


def list_css() -> list[CSS]:
    """Every library CSS, in :data:`LIBRARY` order."""
    return [load_css(name) for name in LIBRARY]


def plot_css(css: CSS, path: str | Path, overwrite: bool = False) -> Path:
    """Plot the three sensitivity curves to a PNG (matplotlib, Agg backend), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hstool.hsdata.formats.image import check_png, save_figure

    check_png(path)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for i, (label, colour) in enumerate(zip("RGB", ("tab:red", "tab:green", "tab:blue"))):
        ax.plot(css.wavelengths, css.values[:, i], color=colour, label=label)
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("sensitivity (per sample)")
    ax.set_title(f"{css.name}: {css.description}"[:80], fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, overwrite)
