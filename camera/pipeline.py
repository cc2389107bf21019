"""A capture as a chain of stages, the NTIRE tracks as named presets, and ``simulate``.

``Pipeline`` holds every parameter of :mod:`hstool.camera.stages`; ``track(name, **overrides)``
returns a preset:

- ``clean`` (NTIRE 2020 track 1, bit-exact): ``rgb = cube @ css / 256`` with the CIE 1964 CSS
  whose columns sum 255; clip to [0, 1], x255, floor to uint8, PNG. No noise, gamma or white
  balance.
- ``realworld`` (NTIRE 2020 track 2 as published by the organisers, with their example D40
  camera; the challenge's own camera and noise were kept secret): RGGB mosaic of
  ``cube @ css`` (columns sum 65535); scale so the mean over the green sites is 5000 e-; Poisson
  shot noise and Gaussian dark noise of 10 e- (the organisers' code uses 10**2 as the standard
  deviation: ``dark_noise_quirk=True``); divide back, round, clip to [0, 65535] uint16;
  OpenCV edge-aware demosaic; /65535; clip, x255, floor to uint8; JPEG quality 80, 4:2:0.
- ``ntire2022`` (ARAD_1K style, for comparison): no mosaic, exposure scaled so the image mean is
  0.18, Poisson shot noise only with 750 e- at the mean green level, JPEG quality 65. The
  organisers' QE camera is not public; the stand-in CSS is the Nikon 5100 measured by NPL
  (colour-science). Their exact noise reference level is not public either: here ``npe`` is the
  mean photo-electron count of the green channel, as in the 2020 code.

``simulate(cube, pipeline, rng)`` returns exactly what decoding the written file gives.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from hstool.hsdata import ARAD_WAVELENGTHS, Cube, HsError, atomic_path
from hstool.hsdata.errors import check_positive

from . import stages
from .sensitivity import CSS, load_css

TRACKS = ("clean", "realworld", "ntire2022")
SUFFIXES = {"clean": "_clean", "realworld": "_RealWorld", "ntire2022": "_ntire2022"}
#: what an image's name may end with to say which track made it (case-insensitive)
TRACK_SUFFIXES = (*SUFFIXES.values(), "_rgb")


def track_suffix(stem: str) -> str:
    """The track suffix a file stem ends with (``ARAD_HS_0451_clean`` -> ``_clean``), else ``""``."""
    low = stem.lower()
    return next((stem[len(stem) - len(s):] for s in TRACK_SUFFIXES if low.endswith(s.lower())), "")


def strip_track_suffix(stem: str) -> str:
    """``ARAD_HS_0451_clean`` -> ``ARAD_HS_0451`` (case-insensitive; other stems unchanged)."""
    return stem[: len(stem) - len(track_suffix(stem))]


#: the first bytes of a JPEG stream (SOI marker, then another marker)
JPEG_MAGIC = b"\xff\xd8\xff"


def image_track(path: str | Path) -> tuple[str, str]:
    """The NTIRE track an RGB image file was captured for, and what said so: ``(track, "name")``
    or ``(track, "encoding")``.

    The rule ``hstool recon`` follows when no ``--track`` is given:

    1. a track suffix at the end of the file's stem decides, in any case: ``_clean`` -> clean,
       ``_RealWorld`` -> realworld, ``_ntire2022`` -> ntire2022 (the names ``simulate`` and the
       challenges give their images: ``ARAD_HS_0451_RealWorld.jpg``);
    2. otherwise the encoding, read from the file's first bytes (not its suffix): a JPEG is taken
       for a real-world capture (the realworld track ends in JPEG, as cameras do), and anything
       lossless (PNG, TIFF, BMP, ...) for the clean track's noise-free rendering.

    >>> image_track("ARAD_HS_0451_RealWorld.png")  # doctest: +SKIP
    ('realworld', 'name')
    """
    path = Path(path)
    suffix = track_suffix(path.stem)
    if suffix and suffix.lower() != "_rgb":  # _rgb names no track
        return next(t for t, s in SUFFIXES.items() if s.lower() == suffix.lower()), "name"
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(JPEG_MAGIC))
    except OSError as exc:
        raise HsError(f"cannot read the image ({exc.strerror or exc})", path) from exc
    return ("realworld" if head == JPEG_MAGIC else "clean"), "encoding"


EXTENSIONS = {"png": ".png", "jpeg": ".jpg"}


@dataclass
class Pipeline:
    """Every parameter of a simulated capture (defaults: the clean track).

    Units: the CSS projection ``cube @ css`` is in *signal units*; ``full_scale`` signal units
    are white (1.0) in the output image. With a raw stage (mosaic, or ``raw_bits``) the signal is
    converted to integer codes ``0 .. 2**raw_bits - 1`` (full scale at the top code), demosaiced
    and divided by the top code. Noise parameters are in electrons (e-).
    """

    name: str = "custom"
    css: CSS | str = "cie1964"
    #: signal units that map to 1.0 in the image (clean: 256 as the organisers divide; d40: 65535)
    full_scale: float = 256.0
    #: multiplier of the projected signal (a brightness / exposure time factor)
    exposure: float = 1.0
    #: if set, the exposure is chosen per image so that the mean of the image is this (ntire2022: 0.18)
    target_mean: float | None = None
    #: clip every negative cube value to 0 (else only those within the noise, see NOISE_NEGATIVE)
    clip_negative: bool = False
    #: Bayer pattern (RGGB, BGGR, GRBG, GBRG) or None for a 3-channel sensor
    pattern: str | None = None
    #: mean photo-electrons over the green sites (organisers' targetNpe); None = no noise
    npe: float | None = None
    shot_noise: bool = True
    #: Gaussian dark noise standard deviation in e-
    dark_noise: float = 0.0
    #: reproduce the organisers' std = dark_noise**2
    dark_noise_quirk: bool = False
    #: Gaussian read noise standard deviation in e-
    read_noise: float = 0.0
    #: photo-response non-uniformity: relative gain spread of the pixels (0 = none)
    prnu: float = 0.0
    prnu_seed: int = 0
    #: ADC bits of the raw mosaic (16 for the organisers); None = no raw quantisation
    raw_bits: int | None = None
    demosaic: str = "ea"
    #: response curve: 1.0 linear, a number for x**(1/gamma), or "srgb"
    gamma: float | str = 1.0
    #: output quantisation bits (8 or 16 fill the container; fewer are stored scaled up)
    bits: int = 8
    rounding: str = "floor"
    encoding: str = "png"
    jpeg_quality: int = 80
    jpeg_sampling: str = "420"
    png_compression: int = 9  # libdeflate at 9 is smaller than the organisers' zlib-9 PNGs, and fast (encode_png)

    def __post_init__(self) -> None:
        self.css = load_css(self.css)
        if self.pattern is not None:
            self.pattern = str(self.pattern).upper()
            stages.channel_layout(self.pattern)
            if self.raw_bits is None:
                self.raw_bits = 16
        self.demosaic = str(self.demosaic).lower()
        if self.demosaic not in stages.DEMOSAIC_METHODS:
            raise HsError(f"unknown demosaic method '{self.demosaic}' (use {', '.join(stages.DEMOSAIC_METHODS)})")
        self.encoding = {"jpg": "jpeg"}.get(str(self.encoding).lower(), str(self.encoding).lower())
        if self.encoding not in stages.ENCODINGS:
            raise HsError(f"unknown encoding '{self.encoding}' (use png or jpeg)")
        if self.rounding not in stages.ROUNDING:
            raise HsError(f"rounding must be one of {', '.join(stages.ROUNDING)}")
        if not 1 <= int(self.bits) <= 16:
            raise HsError(f"output bits must be 1-16, got {self.bits}")
        if self.encoding == "jpeg" and self.bits > 8:
            raise HsError("JPEG holds 8-bit data only; use --bits 8 or PNG")
        if self.raw_bits is not None and not 1 <= int(self.raw_bits) <= 16:
            raise HsError(f"raw bits must be 1-16, got {self.raw_bits}")
        for name in ("full_scale", "exposure", "target_mean", "npe"):
            check_positive(getattr(self, name), name)
        for name in ("dark_noise", "read_noise", "prnu"):
            check_positive(getattr(self, name), name, zero=True)
        if self.target_mean is not None and self.target_mean > 1:
            raise HsError(f"target_mean is an image mean in [0, 1], got {self.target_mean}")
        if not 0 <= self.jpeg_quality <= 100:
            raise HsError(f"JPEG quality must be 0-100, got {self.jpeg_quality}")
        if self.jpeg_sampling not in stages.JPEG_SAMPLING:
            raise HsError(f"JPEG sampling must be one of {', '.join(stages.JPEG_SAMPLING)}")
        self.gamma = stages.curve(self.gamma)

    @property
    def suffix(self) -> str:
        """Output-name suffix: ``_clean``, ``_RealWorld`` (as the challenge named its files), ..."""
        return SUFFIXES.get(self.name, f"_{self.name}")

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.encoding]

    @property
    def raw_max(self) -> int | None:
        return None if self.raw_bits is None else 2 ** int(self.raw_bits) - 1

    def matrix(self, wavelengths: np.ndarray = ARAD_WAVELENGTHS) -> np.ndarray:
        """The linear map spectrum -> ideal camera RGB in [0, 1] image units, ``(B, 3)`` float64,
        before noise, mosaic, quantisation and clipping (at unit exposure when ``target_mean`` is set).
        clean: ``css / 256``; realworld: ``css_d40 / 65535``."""
        exposure = 1.0 if self.target_mean is not None else self.exposure
        return self.css.on(wavelengths) * exposure / self.full_scale

    def replace(self, **changes) -> Pipeline:
        """A copy with some parameters changed (``css`` keeps the exposure convention, see
        :func:`track`)."""
        return _with_overrides(self, changes)

    def describe(self) -> dict:
        """Parameters as a JSON-friendly dict (the CSS by name)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "css"}
        out["css"] = self.css.name
        return out


def _with_overrides(base: Pipeline, overrides: dict) -> Pipeline:
    known = {f.name for f in fields(Pipeline)}
    unknown = set(overrides) - known
    if unknown:
        raise HsError(f"unknown pipeline parameter(s): {', '.join(sorted(unknown))}")
    if "css" in overrides and "full_scale" not in overrides:
        new = load_css(overrides["css"])
        old = base.css
        if new.name != old.name or not np.array_equal(new.values, old.values):
            # keep the track's convention: a flat unit spectrum gives the same image level
            overrides["full_scale"] = base.full_scale * new.white / old.white
        overrides["css"] = new
    return dataclasses.replace(base, **overrides)


def track_name(name: str) -> str:
    """A track's name as hstool writes it (``clean``, ``realworld``, ``ntire2022``) from any
    spelling of it (``RealWorld``, ``real-world``, ``Real_World``)."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in TRACKS:
        raise HsError(f"unknown track '{name}' (use {', '.join(TRACKS)})")
    return key


def track(name: str = "clean", **overrides) -> Pipeline:
    """The preset of a challenge track, with any parameter overridden.

    Overriding ``css`` without ``full_scale`` rescales ``full_scale`` by the ratio of the CSS's
    column sums, so the track's exposure convention is kept.

    >>> track("realworld", npe=2000).pattern
    'RGGB'
    """
    key = track_name(name)
    if key == "realworld":
        base = Pipeline(
            name="realworld", css="d40", full_scale=65535.0, pattern="RGGB", npe=5000.0, dark_noise=10.0,
            raw_bits=16, demosaic="ea", encoding="jpeg", jpeg_quality=80, jpeg_sampling="420",
        )
    elif key == "clean":
        base = Pipeline(name="clean", css="cie1964", full_scale=256.0, encoding="png", bits=8)
    else:
        base = Pipeline(
            name="ntire2022", css="nikon5100", full_scale=65535.0, target_mean=0.18, npe=750.0,
            encoding="jpeg", jpeg_quality=65, jpeg_sampling="420",
        )
    return _with_overrides(base, overrides) if overrides else base


def file_seed(seed: int | np.random.SeedSequence, stem: str) -> np.random.SeedSequence:
    """The seed sequence of one file from the run's seed and the file's stem, so a file's output
    does not depend on the worker count, the order or the other files of a batch. Its children
    (:func:`capture_seeds`) are, everywhere: the capture noise (``hstool simulate``), the patch
    shuffle, the noise of the re-simulation that physical consistency compares with the
    input image (``hstool score --rgb``, evaluate, demo), and the k-means of the weighted MRAE."""
    key = int.from_bytes(hashlib.sha256(stem.encode()).digest()[:8], "little")
    if isinstance(seed, np.random.SeedSequence):  # a run's own sequence: the file's child of it
        return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, key), pool_size=seed.pool_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise HsError(f"seed must be an integer >= 0 or a numpy SeedSequence, not {seed!r}")
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(key,))


def capture_seeds(file: np.random.SeedSequence) -> tuple[np.random.SeedSequence, ...]:
    """A file's seed children, the same everywhere: ``(noise, shuffle, re-simulation, clusters)``.
    They are the first four children ``file.spawn`` would give, but built directly, so asking twice
    gives the same four (``spawn`` counts the children it has handed out)."""
    return tuple(
        np.random.SeedSequence(file.entropy, spawn_key=(*file.spawn_key, i), pool_size=file.pool_size)
        for i in range(4)
    )


def _as_pipeline(pipeline: str | Pipeline) -> Pipeline:
    return pipeline if isinstance(pipeline, Pipeline) else track(pipeline)


def _as_rng(rng: int | np.random.Generator | np.random.SeedSequence | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError):
        raise HsError(f"rng must be a seed (an integer >= 0), a SeedSequence or a Generator, not {rng!r}") from None


def _as_cube(cube: Cube | np.ndarray) -> Cube:
    if isinstance(cube, Cube):
        return cube
    arr = np.asarray(cube)
    if arr.ndim != 3 or arr.shape[2] != ARAD_WAVELENGTHS.size:
        raise HsError(f"an array cube must be (H, W, 31) on the ARAD grid, got {arr.shape}; pass a Cube")
    return Cube(arr, ARAD_WAVELENGTHS)


#: negative values down to this fraction of a cube's maximum are noise (a calibrated dark pixel
#: reads 0 +- noise) and clipped to 0; larger ones mean the data is not light, and are refused
NOISE_NEGATIVE = 0.05


def _check_values(data: np.ndarray, clip_negative: bool, source) -> np.ndarray:
    """Clip negative values to 0 when ``clip_negative`` or when they lie within the noise
    (``NOISE_NEGATIVE`` of the maximum); refuse larger ones. NaN and inf are caught after the
    projection, where they surface in every channel (NaN * 0 and inf * 0 are NaN), at a tenth
    of the cost."""
    lo = float(np.min(data)) if data.size else 0.0
    if lo < 0:
        hi = float(np.nanmax(data))
        if not clip_negative and not lo >= -NOISE_NEGATIVE * hi:
            raise HsError(
                f"cube has negative values (min {lo:.4g}, more than {100 * NOISE_NEGATIVE:g}% of its maximum "
                f"{hi:.4g}): not light; clip them with clip_negative / --clip-negative",
                source,
            )
        data = np.clip(data, 0, None)
    return data


@dataclass
class _Projection:
    """``cube @ css`` times the exposure, and how to redo image rows exactly."""

    signal: np.ndarray  # (H, W, 3) float64 in signal units, possibly a transposed view
    approximate: bool  # summed in another order than numpy's cube @ css (a few ulp off)
    data: np.ndarray
    css: np.ndarray
    exposure: float

    def exact_rows(self, rows: np.ndarray) -> np.ndarray:
        out = stages.project(self.data[rows], self.css)
        return out * self.exposure if self.exposure != 1.0 else out


def exposed_like(p: Pipeline, cube: Cube, gain: np.ndarray | None = None,
                 mean_spectrum: np.ndarray | None = None) -> Pipeline:
    """``p`` with its automatic exposure (``target_mean``) fixed at the one it sets for the whole
    ``cube`` (times ``gain`` per band), so that a part of the cube images as it does within the
    whole image; ``p`` itself when it has none. ``mean_spectrum``: the cube's (negatives as 0),
    when the caller keeps it."""
    if p.target_mean is None:
        return p
    spectrum = (np.clip(np.asarray(cube.data, np.float64), 0, None).mean(axis=(0, 1)) if mean_spectrum is None
                else np.asarray(mean_spectrum, np.float64))
    if gain is not None:
        spectrum = spectrum * gain
    mean = float((spectrum @ p.css.on(cube.wavelengths)).mean()) / p.full_scale
    if mean <= 0:
        raise HsError("cannot set the exposure: the scene is black", cube.meta.get("source"))
    return p.replace(target_mean=None, exposure=p.exposure * p.target_mean / mean)


def _project(cube: Cube | np.ndarray, p: Pipeline) -> _Projection:
    cube = _as_cube(cube)
    source = cube.meta.get("source")
    if cube.height < 1 or cube.width < 1:
        raise HsError(f"cube is empty, shape {cube.shape}", source)
    data = _check_values(np.asarray(cube.data), p.clip_negative, source)
    try:
        css = p.css.on(cube.wavelengths)
    except HsError as exc:
        raise HsError(exc.message, source) from None
    signal, exact = stages.project_fast(data, css)
    if not np.isfinite(signal).all():
        raise HsError("cube has NaN or infinite values", source)
    exposure = p.exposure
    if p.target_mean is not None:
        mean = float(signal.mean()) / p.full_scale
        if mean <= 0:
            raise HsError("cannot set the exposure: the scene is black", source)
        exposure = exposure * p.target_mean / mean
    if exposure != 1.0:
        signal = signal * exposure
    # with an automatic exposure the factor itself depends on the sums: nothing to settle
    return _Projection(signal, not exact and p.target_mean is None, data, css, exposure)


def _settle_ties(z: np.ndarray, proj: _Projection, to_z, half: bool, top: float) -> np.ndarray:
    """Make a noise-free output bit-identical to numpy's ``cube @ css``.

    ``z`` are the values about to be rounded (floor: boundaries at integers; ``half``: at
    k + 0.5, numpy's ``rint``), computed from the fast projection, whose sums differ from
    numpy's by a few ulp. That matters only for a value on a boundary (a flat 0.5 cube through
    the D40's 65535 sums gives exactly 32767.5): image rows holding one are projected again
    exactly and ``to_z`` maps them to values. Natural images have none. ``top``: the largest
    value that matters (the top code), which sets the tolerance.
    """
    if not proj.approximate:
        return z
    d = np.floor(z) if half else np.rint(z)
    np.subtract(z, d, out=d)
    if half:
        d -= 0.5
    np.abs(d, out=d)
    near = (d <= 1e-9 * max(1.0, top)).any(axis=(1, 2))
    if near.any():
        rows = np.flatnonzero(near)
        z = np.array(z)
        z[rows] = to_z(proj.exact_rows(rows))
    return z


def capture_raw(cube: Cube | np.ndarray, pipeline: str | Pipeline = "clean", rng=None) -> np.ndarray:
    """The sensor's output before demosaicing: the mosaic ``(H, W)`` (or ``(H, W, 3)`` without a
    pattern), noise included; integer codes ``0 .. 2**raw_bits - 1`` when the pipeline has a raw
    ADC, else float64 in signal units (``full_scale`` is white)."""
    p = _as_pipeline(pipeline)
    proj = _project(cube, p)
    raw_max = p.raw_max
    scale = raw_max / p.full_scale if raw_max is not None and raw_max != p.full_scale else None

    def to_raw(s: np.ndarray) -> np.ndarray:
        return s * scale if scale is not None else s

    signal = to_raw(proj.signal)
    if p.pattern is not None and min(signal.shape[:2]) < 2:  # said before the noise's "black scene" could be
        raise HsError(f"a Bayer mosaic needs at least 2x2 pixels, got {signal.shape[0]}x{signal.shape[1]}")
    if p.npe is None and raw_max is not None:
        signal = _settle_ties(signal, proj, to_raw, half=True, top=raw_max)
    if p.pattern is not None:
        signal = stages.mosaic(signal, p.pattern)
    if p.npe is not None:
        green = stages.site_mask(signal.shape, p.pattern, 1) if p.pattern else None
        ref = signal if p.pattern else signal[..., 1]
        gain = stages.electrons_per_unit(ref, p.npe, green)
        prnu = stages.prnu_map(signal.shape, p.prnu, p.prnu_seed) if p.prnu > 0 else None
        signal = stages.add_noise(
            signal, _as_rng(rng), gain, p.shot_noise, p.dark_noise, p.read_noise, prnu, p.dark_noise_quirk
        )
    return signal if raw_max is None else stages.quantise_raw(signal, raw_max)


def capture(cube: Cube | np.ndarray, pipeline: str | Pipeline = "clean", rng=None) -> np.ndarray:
    """Run every stage up to (not including) encoding: the integer RGB image ``(H, W, 3)``
    (uint8 for 8 bits, else uint16) that the encoder receives. A stage's error names the cube's
    file (``meta["source"]``) when it has one."""
    p = _as_pipeline(pipeline)  # a bad pipeline is not the cube's fault
    try:
        return _capture(cube, p, rng)
    except HsError as exc:
        source = cube.meta.get("source") if isinstance(cube, Cube) else None
        if exc.path is not None or not source:
            raise
        raise HsError(exc.message, source) from None


def _capture(cube: Cube | np.ndarray, p: Pipeline, rng) -> np.ndarray:
    if p.pattern is None and p.raw_bits is None and p.npe is None:
        # clean: floor(clip(cube @ css / 256, 0, 1) * 255)
        proj = _project(cube, p)

        def to_levels(s: np.ndarray) -> np.ndarray:
            return _levels(s / p.full_scale, p)

        top = 2 ** int(p.bits) - 1
        z = _settle_ties(to_levels(proj.signal), proj, to_levels, half=p.rounding == "round", top=top)
        return _codes(z, p)
    raw = capture_raw(cube, p, rng)
    if p.raw_max is None:
        return _finish(raw / p.full_scale, p)
    if p.pattern is not None:
        raw = stages.demosaic(raw, p.pattern, p.demosaic)
    # integer codes -> output codes through a lookup table: the same float operations as
    # (raw / raw_max -> response -> clip -> x(2**bits - 1) -> floor), evaluated once per code
    lut = _finish(np.arange(p.raw_max + 1, dtype=np.float64) / p.raw_max, p)
    return np.take(lut, raw)


def _levels(rgb: np.ndarray, p: Pipeline) -> np.ndarray:
    """Response curve, clip to [0, 1], times the top code: the values that are then floored
    (the same operations as :func:`stages.quantise`). ``rgb`` is a temporary and is reused."""
    z = stages.response(rgb, p.gamma)
    np.clip(z, 0, 1, out=z)
    z *= 2 ** int(p.bits) - 1
    return z


def _codes(z: np.ndarray, p: Pipeline) -> np.ndarray:
    bits = int(p.bits)
    if p.rounding == "round":
        z = np.rint(z)
    codes = z.astype(np.uint8 if bits <= 8 else np.uint16)
    if bits not in (8, 16):  # store fewer bits scaled to the container's full range
        container = 255 if bits < 8 else 65535
        codes = np.rint(codes.astype(np.float64) * (container / (2**bits - 1))).astype(
            np.uint8 if bits < 8 else np.uint16
        )
    return codes


def _finish(rgb: np.ndarray, p: Pipeline) -> np.ndarray:
    return _codes(_levels(rgb, p), p)


def _encode(image: np.ndarray, p: Pipeline) -> bytes:
    return stages.encode(image, p.encoding, p.jpeg_quality, p.jpeg_sampling, p.png_compression)


def simulate(
    cube: Cube | np.ndarray,
    pipeline: str | Pipeline = "clean",
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Simulate the camera: ``(H, W, 3)`` float32 in [0, 1], exactly what decoding the file that
    :func:`simulate_to_file` writes gives (JPEG is encoded and decoded in memory).

    ``rng``: a seed or a ``numpy.random.Generator`` for the noise (ignored by noise-free tracks).

    >>> rgb = simulate(cube, "realworld", rng=0)  # doctest: +SKIP
    """
    p = _as_pipeline(pipeline)
    image = capture(cube, p, rng)
    if p.encoding == "jpeg":
        image = stages.decode(_encode(image, p))
    return stages.to_float(image)


def render(cube: Cube | np.ndarray, pipeline: str | Pipeline = "clean", rng=None) -> bytes:
    """The encoded image file (PNG or JPEG bytes) of the simulated capture."""
    p = _as_pipeline(pipeline)
    return _encode(capture(cube, p, rng), p)


def encode_capture(image: np.ndarray, pipeline: str | Pipeline = "clean") -> bytes:
    """The file bytes (PNG or JPEG, as the pipeline encodes) of codes from :func:`capture`:
    ``render(cube, p, rng) == encode_capture(capture(cube, p, rng), p)``."""
    return _encode(image, _as_pipeline(pipeline))


def clipped_fraction(image: np.ndarray) -> float:
    """The share of pixels with a channel at the top code of ``image``'s integer type: where the
    camera clipped (a cube brighter than its full scale), or a white that reached it exactly."""
    image = np.asarray(image)
    return float(np.mean(np.any(image >= np.iinfo(image.dtype).max, axis=-1))) if image.size else 0.0


def shuffle_capture(
    cube: Cube | np.ndarray, image: np.ndarray, pipeline: str | Pipeline = "clean", block: int = 4, rng=None
) -> tuple[Cube, bytes]:
    """The spatial test of the NTIRE 2020 report (Sec. 4.2: "each 4 x 4 patch in the original test
    images is randomly relocated") on a capture ``image`` of ``cube`` (codes from :func:`capture`):
    the image as the camera's file holds it (JPEG-compressed on the real-world track), then its
    ``block x block`` patches and the cube's relocated by one permutation (``rng``,
    :func:`shuffle_patches`). Returns the permuted cube and the permuted image as PNG bytes,
    lossless: JPEG-compressing the relocated image again would add artefacts the test images do
    not have. Decoded, the image is what :func:`shuffle_patches` makes of :func:`simulate`'s RGB
    with the same generators."""
    from .transforms import shuffle_patches

    p = _as_pipeline(pipeline)
    cube = _as_cube(cube)
    h, w = cube.data.shape[:2]
    if block < 1 or (h // block) * (w // block) < 2:
        raise HsError(f"a {h}x{w} image holds fewer than two {block}x{block} patches: nothing to relocate")
    if p.encoding == "jpeg":
        image = stages.decode(_encode(image, p))
    data, image = shuffle_patches(np.asarray(cube.data), image, block=block, rng=rng)
    return cube.with_data(data, shuffle=block), stages.encode(image, "png", png_compression=p.png_compression)


def simulate_to_file(
    cube: Cube | np.ndarray,
    path: str | Path,
    pipeline: str | Pipeline = "clean",
    rng: int | np.random.Generator | None = None,
    overwrite: bool = False,
) -> Path:
    """Simulate and write the encoded image atomically (temporary file, then rename)."""
    p = _as_pipeline(pipeline)
    path = Path(path)
    allowed = (".png",) if p.encoding == "png" else (".jpg", ".jpeg")
    if path.suffix.lower() not in allowed:
        raise HsError(f"the {p.encoding.upper()} pipeline writes {p.extension} files, not '{path.suffix}'", path)
    data = render(cube, p, rng)
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return path
