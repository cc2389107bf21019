"""The stages of a capture, each a small function on arrays.

project (CSS) -> exposure -> mosaic -> noise -> raw quantisation -> demosaic -> response
(gamma) -> quantisation -> encoding. :mod:`hstool.camera.pipeline` chains them; each is usable
alone. Formulas and constants of the NTIRE 2020 tracks follow the organisers' published
procedure (Arad et al., "NTIRE 2020 Challenge on Spectral Reconstruction from an RGB Image",
CVPRW 2020, sec. 3, and github.com/boazarad/NTIRE2020_spectral).
"""

from __future__ import annotations

import cv2
import numpy as np

from hstool.hsdata import HsError
from hstool.hsdata.errors import check_positive
from hstool.hsdata.formats.image import JPEG_SAMPLING, encode_png
from hstool.hsdata.render import srgb_decode, srgb_encode

#: Bayer layouts named by the 2x2 tile read row by row from the top-left pixel.
PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
DEMOSAIC_METHODS = ("ea", "bilinear", "vng")
ENCODINGS = ("png", "jpeg")
ROUNDING = ("floor", "round")

# OpenCV names Bayer codes by the 2nd/3rd pixels of the 2nd row ("BayerBG" = an RGGB sensor);
# OpenCV >= 4.5 also has the tile-order aliases used here. The fallback maps tile order to the
# old names. tests/test_camera.py checks the result on a red-only scene for every pattern.
_CV_OLD_NAME = {"RGGB": "BG", "BGGR": "RG", "GRBG": "GB", "GBRG": "GR"}
_CV_SUFFIX = {"bilinear": "", "vng": "_VNG", "ea": "_EA"}


def channel_layout(pattern: str) -> np.ndarray:
    """2x2 array of channel indices (0 R, 1 G, 2 B) of a Bayer ``pattern`` such as ``"RGGB"``."""
    pattern = pattern.upper()
    if pattern not in PATTERNS:
        raise HsError(f"unknown Bayer pattern '{pattern}' (use {', '.join(PATTERNS)})")
    return np.array(["RGB".index(c) for c in pattern]).reshape(2, 2)


def project(data: np.ndarray, matrix: np.ndarray, rows: int = 16) -> np.ndarray:
    """``data @ matrix`` over the last axis in float64: the organisers' ``cube @ css``, bit for bit.

    Computed over blocks of ``rows`` image rows, each converted to a C-ordered float64 block,
    so the float64 copy stays in cache: the same BLAS calls (hence the same sums) as numpy's
    ``cube @ css`` on the whole cube, 2-6x faster. The CSS is used Fortran-ordered, as
    ``np.load`` and ``scipy.io.loadmat`` return the organisers' ``filters``: BLAS sums in
    another order for a C-ordered matrix, which moves values on a rounding tie.
    """
    data = np.asarray(data)
    matrix = np.asfortranarray(matrix, dtype=np.float64)
    if data.ndim != 3:
        return np.matmul(np.asarray(data, dtype=np.float64), matrix)
    out = np.empty(data.shape[:2] + (matrix.shape[1],), dtype=np.float64)
    for i in range(0, data.shape[0], rows):
        block = np.asarray(data[i : i + rows], dtype=np.float64, order="C")
        np.matmul(block, matrix, out=out[i : i + rows])
    return out


def project_fast(data: np.ndarray, matrix: np.ndarray, step: int = 16384) -> tuple[np.ndarray, bool]:
    """``data @ matrix`` in float64 by the fastest route for the cube's memory layout.

    Returns ``(signal, exact)``. A cube stored band-major (ARAD_1K .mat files read through h5py
    are (B, W, H) in memory) is projected as one ``(3, B) @ (B, N)`` product on its band planes
    without transposing it, ``step`` pixels at a time (16384: a 4 MB float64 block, measured
    fastest; 4096 was 1.5x slower): 3-5x faster, and equal to :func:`project` up to the order of the
    float64 sums (a few ulp), so ``exact`` is False; otherwise :func:`project` is used and
    ``exact`` is True. The result may be a transposed view.
    """
    data = np.asarray(data)
    matrix = np.asarray(matrix, dtype=np.float64)
    if data.ndim == 3 and not data.flags.c_contiguous:
        for axes in ((2, 1, 0), (2, 0, 1)):
            base = data.transpose(axes)
            if base.flags.c_contiguous:
                planes = base.reshape(base.shape[0], -1)
                out = np.empty((matrix.shape[1], planes.shape[1]))
                for i in range(0, planes.shape[1], step):
                    np.matmul(matrix.T, np.asarray(planes[:, i : i + step], dtype=np.float64), out=out[:, i : i + step])
                out = out.reshape(matrix.shape[1], *base.shape[1:])
                return out.transpose(np.argsort(axes)), False
    return project(data, matrix), True


def mosaic(rgb: np.ndarray, pattern: str = "RGGB") -> np.ndarray:
    """Keep one channel per pixel as a Bayer sensor does: ``(H, W, 3) -> (H, W)``.

    RGGB: R at ``[0::2, 0::2]``, G at ``[0::2, 1::2]`` and ``[1::2, 0::2]``, B at ``[1::2, 1::2]``.
    """
    layout = channel_layout(pattern)
    out = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            out[dy::2, dx::2] = rgb[dy::2, dx::2, layout[dy, dx]]
    return out


def site_mask(shape: tuple[int, int], pattern: str, channel: int) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the sites of ``channel`` in a Bayer mosaic."""
    layout = channel_layout(pattern)
    mask = np.zeros(shape, dtype=bool)
    for dy in (0, 1):
        for dx in (0, 1):
            if layout[dy, dx] == channel:
                mask[dy::2, dx::2] = True
    return mask


def electrons_per_unit(signal: np.ndarray, npe: float, reference: np.ndarray | None = None) -> float:
    """Conversion gain (electrons per signal unit) that puts the mean of ``signal`` over the
    ``reference`` sites (all when ``None``) at ``npe`` photo-electrons (organisers' ``targetNpe``)."""
    ref = signal[reference] if reference is not None else signal
    mean = float(np.mean(ref)) if ref.size else 0.0
    if not np.isfinite(mean) or mean <= 0:
        raise HsError("cannot set the noise level: the reference channel of the scene is black")
    return npe / mean


def prnu_map(shape: tuple[int, ...], prnu: float, seed: int = 0) -> np.ndarray:
    """Photo-response non-uniformity: a fixed per-pixel gain ``1 + prnu * N(0, 1)`` (clipped at 0).

    It is a property of the sensor, so it comes from its own ``seed`` and is the same for every
    image simulated with the same camera (EMVA 1288, sec. 4: PRNU as relative gain spread).
    """
    g = np.random.default_rng(seed).standard_normal(shape)
    return np.clip(1.0 + prnu * g, 0.0, None)


def add_noise(
    signal: np.ndarray,
    rng: np.random.Generator,
    gain: float,
    shot: bool = True,
    dark: float = 0.0,
    read: float = 0.0,
    prnu: np.ndarray | None = None,
    dark_quirk: bool = False,
) -> np.ndarray:
    """Sensor noise in electrons, returned in the units of ``signal`` (float64).

    ``electrons = signal * gain`` (times the PRNU map); Poisson shot noise on them; Gaussian
    dark noise of standard deviation ``dark`` e- and read noise ``read`` e-; divided back by
    ``gain``. The NTIRE 2020 organisers' code passes ``dark**2`` as the standard deviation;
    ``dark_quirk=True`` reproduces that (100 e- instead of 10 e- for their ``darkNoise = 10``).
    """
    electrons = np.asarray(signal, dtype=np.float64) * gain
    if prnu is not None:
        electrons *= prnu
    if shot:
        electrons = rng.poisson(np.clip(electrons, 0, None, out=electrons)).astype(np.float64)
    sigma = float(np.hypot(dark**2 if dark_quirk else dark, read))
    if sigma > 0:  # the draws of rng.normal(0, sigma), which is 0 + sigma * standard_normal
        noise = rng.standard_normal(electrons.shape)
        noise *= sigma
        electrons += noise
    electrons /= gain
    return electrons


def quantise_raw(signal: np.ndarray, max_value: int) -> np.ndarray:
    """Round to integer codes and clip to ``[0, max_value]`` (uint16 up to 65535, as the
    organisers' 16-bit raw)."""
    out = np.clip(np.rint(signal), 0, max_value)
    return out.astype(np.uint16 if max_value > 255 else np.uint8)


def demosaic(raw: np.ndarray, pattern: str = "RGGB", method: str = "ea") -> np.ndarray:
    """Interpolate a Bayer mosaic (uint8 or uint16) to RGB ``(H, W, 3)`` of the same type with OpenCV.

    ``ea`` edge-aware (the organisers' ``COLOR_BayerBG2BGR_EA`` for RGGB), ``bilinear``, ``vng``
    (variable number of gradients). OpenCV's VNG works on 8-bit data only, so a 16-bit mosaic is
    reduced to 8 bits for it (``round(raw / 257)``) and expanded back (``x 257``): VNG output
    carries 8-bit precision.
    """
    method = method.lower()
    if method not in DEMOSAIC_METHODS:
        raise HsError(f"unknown demosaic method '{method}' (use {', '.join(DEMOSAIC_METHODS)})")
    pattern = pattern.upper()
    channel_layout(pattern)
    if raw.dtype not in (np.uint8, np.uint16):
        raise HsError(f"demosaic needs a uint8 or uint16 mosaic, got {raw.dtype}")
    if raw.shape[0] < 2 or raw.shape[1] < 2:
        raise HsError(f"a Bayer mosaic needs at least 2x2 pixels, got {raw.shape}")
    suffix = _CV_SUFFIX[method]
    code = getattr(cv2, f"COLOR_Bayer{pattern}2BGR{suffix}", None)
    if code is None:
        code = getattr(cv2, f"COLOR_Bayer{_CV_OLD_NAME[pattern]}2BGR{suffix}")
    raw = np.ascontiguousarray(raw)
    if method == "vng" and raw.dtype == np.uint16:
        small = np.rint(raw / 257.0).astype(np.uint8)
        bgr = cv2.cvtColor(small, code).astype(np.uint16) * np.uint16(257)
    else:
        bgr = cv2.cvtColor(raw, code)
    return bgr[..., ::-1]


def curve(gamma: float | str) -> float | str:
    """A response curve as given (``--gamma``): ``"srgb"``, or a positive number (``1``: linear)."""
    if isinstance(gamma, str) and gamma.strip().lower() == "srgb":
        return "srgb"
    if isinstance(gamma, bool):  # float(True) is 1: a slip, not a curve
        raise HsError(f"gamma must be a number or 'srgb', got {gamma}")
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise HsError(f"gamma must be a number or 'srgb', got '{gamma}'") from None
    check_positive(gamma, "gamma")
    return float(gamma)


def response(rgb: np.ndarray, gamma: float | str = 1.0) -> np.ndarray:
    """Camera response curve: identity for ``gamma == 1`` (the NTIRE tracks), ``x ** (1/gamma)``
    for a number, or the sRGB curve (IEC 61966-2-1) for ``"srgb"``. Negative values are clipped first."""
    gamma = curve(gamma)
    if gamma == "srgb":
        return srgb_encode(rgb)
    if gamma == 1.0:
        return rgb
    return np.power(np.clip(rgb, 0.0, None), 1.0 / gamma)


def linearise(rgb: np.ndarray, gamma: float | str = 1.0) -> np.ndarray:
    """The inverse of :func:`response`: linear values of an image encoded with ``gamma`` (``"srgb"``
    for ordinary photos, whose pixel values are not proportional to light). Clipped to [0, 1]
    first, except for ``gamma == 1``, which returns ``rgb`` itself."""
    gamma = curve(gamma)
    if gamma == "srgb":
        return srgb_decode(rgb)
    if gamma == 1.0:
        return rgb
    return np.power(np.clip(rgb, 0.0, 1.0), gamma)


def quantise(rgb: np.ndarray, bits: int = 8, rounding: str = "floor") -> np.ndarray:
    """``[0, 1]`` -> integer codes: clip, ``x (2**bits - 1)``, then floor (the organisers' ``astype``
    after ``*255``) or round to nearest. Returns uint8 for 8 bits, uint16 up to 16 bits."""
    if not 1 <= bits <= 16:
        raise HsError(f"quantisation bits must be 1-16, got {bits}")
    if rounding not in ROUNDING:
        raise HsError(f"rounding must be one of {', '.join(ROUNDING)}")
    scaled = np.clip(rgb, 0, 1) * (2**bits - 1)
    if rounding == "round":
        scaled = np.rint(scaled)
    return scaled.astype(np.uint8 if bits <= 8 else np.uint16)


def code_bits(rgb: np.ndarray, depths: tuple[int, ...] = (8, 16)) -> int | None:
    """The bit depth whose codes ``rgb`` in [0, 1] holds (``k / (2**bits - 1)``, as images read),
    the smallest of ``depths`` that fits every value; None for values between codes (a float
    image, a resampled one)."""
    values = np.asarray(rgb, np.float64)
    for bits in depths:
        top = 2**bits - 1
        scaled = values * top
        if np.all(np.abs(scaled - np.rint(scaled)) <= max(1e-3, 4 * top * np.finfo(np.float32).eps)):
            return bits
    return None


def dequantise(rgb: np.ndarray, rounding: str = "floor", bits: int | None = None) -> np.ndarray:
    """The middle of each code's quantisation cell: the value a camera most likely saw, given the
    code it wrote (the inverse of :func:`quantise` in expectation). Under ``floor`` code ``k``
    holds values in ``[k, k + 1) / (2**bits - 1)``, so ``(k + 0.5) / (2**bits - 1)``; the top code
    (clipped: any value at or above full scale) and rounding to nearest (cells centred on the
    codes) keep ``k / (2**bits - 1)``. ``bits`` None: :func:`code_bits`; values that are not codes
    come back unchanged. Returns float32."""
    if rounding not in ROUNDING:
        raise HsError(f"rounding must be one of {', '.join(ROUNDING)}")
    rgb = np.asarray(rgb, np.float32)
    bits = code_bits(rgb) if bits is None else bits
    if bits is None or rounding == "round":
        return rgb
    top = 2**bits - 1
    return np.where(rgb * top < top - 0.5, rgb + np.float32(0.5 / top), rgb).astype(np.float32)


def encode(
    image: np.ndarray,
    encoding: str = "png",
    jpeg_quality: int = 95,
    jpeg_sampling: str = "420",
    png_compression: int = 9,
) -> bytes:
    """Encode an RGB integer image to PNG (8/16-bit, deflate level ``png_compression``:
    :func:`hstool.hsdata.formats.image.encode_png`; the pixels do not depend on it) or JPEG
    (8-bit, ``jpeg_quality`` 0-100, chroma ``jpeg_sampling`` '444', '422' or '420') with OpenCV's
    encoder."""
    if encoding not in ENCODINGS:
        raise HsError(f"unknown encoding '{encoding}' (use {', '.join(ENCODINGS)})")
    if encoding == "png":
        return encode_png(image, png_compression)
    if image.dtype != np.uint8:
        raise HsError("JPEG holds 8-bit data only; use 8 bits or PNG")
    if jpeg_sampling not in JPEG_SAMPLING:
        raise HsError(f"JPEG sampling must be one of {', '.join(JPEG_SAMPLING)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, JPEG_SAMPLING[jpeg_sampling]]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), params)
    if not ok:
        raise HsError(f"OpenCV could not encode the image as {encoding}")
    return buf.tobytes()


def decode(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG bytes to an RGB integer array (bit depth kept)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise HsError("OpenCV could not decode the image")
    return arr[..., ::-1] if arr.ndim == 3 else arr


def to_float(image: np.ndarray) -> np.ndarray:
    """Integer image -> float32 in [0, 1] exactly as :func:`hstool.hsdata.read_rgb` scales it."""
    scale = np.float32(np.iinfo(image.dtype).max)
    return (image.astype(np.float32) / scale).astype(np.float32)
