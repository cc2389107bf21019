"""RGB images: PNG (8/16-bit), JPEG, TIFF, and anything else imageio reads.

PNG, JPEG and TIFF go through OpenCV because Pillow (imageio's default PNG backend) silently
truncates 16-bit RGB PNGs to 8 bits; OpenCV keeps the bit depth and exposes the PNG compression
level and the JPEG quality and chroma subsampling. Other formats fall back to imageio.
Arrays are RGB order, ``(H, W, 3)``; readers return float32 scaled to [0, 1] by the bit depth.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_path
from ..errors import HsError

#: OpenCV's log level functions: cv2.utils.logging in 5.x, cv2 itself in 4.x
_CV_LOG = getattr(cv2.utils, "logging", cv2)


@contextlib.contextmanager
def _quiet_opencv():
    """Without OpenCV's own C++ error print for a file it cannot decode (a TIFF it cannot rotate):
    read_native answers that by another decoder, or by one line of its own. Only for the call."""
    get, put = getattr(_CV_LOG, "getLogLevel", None), getattr(_CV_LOG, "setLogLevel", None)
    if get is None or put is None:
        yield
        return
    before = get()
    put(0)  # LOG_LEVEL_SILENT
    try:
        yield
    finally:
        put(before)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
CV_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
JPEG_SAMPLING = {
    "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
}


#: EXIF orientation (tag 0x0112) -> the array operation that shows the image upright
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


#: the most pixels an image may declare before hstool decodes it (20,000 x 20,000; far above any
#: camera's photo): a decompression bomb (a few bytes declaring 60000 x 60000) is refused from its
#: header, before the decoder allocates gigabytes. The environment variable raises it.
MAX_PIXELS_ENV = "HSTOOL_MAX_PIXELS"
MAX_PIXELS = 20_000 * 20_000


def max_pixels() -> int:
    """The pixel limit: :data:`MAX_PIXELS_ENV` when set to a positive whole number, else :data:`MAX_PIXELS`."""
    with contextlib.suppress(KeyError, ValueError):
        value = int(os.environ[MAX_PIXELS_ENV])
        if value > 0:
            return value
    return MAX_PIXELS


@contextlib.contextmanager
def _pil_open(path: Path):
    """The image opened by Pillow, which reads its header only; hstool's own pixel limit
    (:func:`check_pixels`) stands in for Pillow's lower one and its warning."""
    from PIL import Image

    before, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as im:
            yield im
    finally:
        Image.MAX_IMAGE_PIXELS = before


def check_pixels(path: str | Path) -> None:
    """Refuse an image whose header declares more pixels than :func:`max_pixels`, before any
    decoding. A file Pillow cannot parse is left to the decoders to read or refuse."""
    try:
        with _pil_open(Path(path)) as im:
            width, height = im.size
    except Exception:  # noqa: BLE001 -- not a header Pillow knows: the decoders say what it is
        return
    limit = max_pixels()
    if width * height > limit:
        raise HsError(f"image declares {width}x{height} pixels, over the limit of {limit:,} ({MAX_PIXELS_ENV} "
                      "raises it): not decoded", path)


def _exif_upright(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` as read without its EXIF orientation, turned upright (Pillow reads the tag)."""
    try:
        with _pil_open(path) as im:
            if im.format == "PNG" and "exif" not in im.info:
                return arr  # no eXIf chunk before the pixels; getexif() would decode them all to look after
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 -- no EXIF to read: as stored
        return arr
    return np.ascontiguousarray(_UPRIGHT[orientation](arr)) if orientation in _UPRIGHT else arr


def check_jpeg_complete(path: Path) -> None:
    """Refuse a JPEG that ends before its image does (an interrupted copy or download): libjpeg
    decodes it anyway, filling the missing rows in grey, and says so only on the C stderr. The
    last scan (SOS marker) must be followed by the end-of-image marker; inside a scan's data a
    0xFF byte is always stuffed (0xFF00), so that marker cannot appear by chance. (Bytes damaged
    in place are not detected: the decoder only warns of them.)"""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return  # not a JPEG stream (whatever its name says): the decoders say what it is
    data = path.read_bytes()
    last_scan = data.rfind(b"\xff\xda")
    if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
        raise HsError("damaged JPEG: it ends before its image does (truncated file)", path)


def read_native(path: str | Path) -> np.ndarray:
    """The image's pixels in their stored integer type, RGB(A) channel order or 2-D for grey.

    An image is turned upright by its EXIF orientation, as viewers show it (a phone's portrait
    photo is stored sideways): a JPEG or TIFF by OpenCV (a JPEG has no alpha to lose), a PNG
    (eXIf chunk) or anything OpenCV cannot read by the tag, as Pillow reads it.
    """
    path = Path(path)
    if not path.is_file():
        raise HsError("no such file", path)
    arr = None
    suffix = path.suffix.lower()
    check_pixels(path)  # a decompression bomb, from its header
    if suffix in CV_SUFFIXES:
        upright = suffix in (".jpg", ".jpeg")  # IMREAD_UNCHANGED ignores EXIF orientation
        check_jpeg_complete(path)  # a JPEG by its bytes, whatever its name
        with _quiet_opencv(), contextlib.suppress(cv2.error):  # OpenCV's refusal: the next decoder's turn
            arr = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if upright else cv2.IMREAD_UNCHANGED)
        if arr is not None and arr.ndim == 3:
            arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]] if arr.shape[2] in (3, 4) else arr
        if arr is not None and suffix == ".png":  # OpenCV turns a TIFF upright itself, not a PNG's eXIf
            arr = _exif_upright(arr, path)
    if arr is None:
        try:
            with warnings.catch_warnings():  # imageio's notes on its own legacy plugins, tried in turn
                warnings.simplefilter("ignore", DeprecationWarning)
                import imageio.v3 as iio  # the fallback only

                arr = iio.imread(path)
        except Exception as exc:
            raise HsError("not a readable image (the decoder cannot read it)", path) from exc
        arr = _exif_upright(np.asarray(arr), path)
    return np.asarray(arr)


def scale_of(dtype: np.dtype) -> float:
    """Full-scale value of an image type: 255 for 8-bit, 65535 for 16-bit, 1 for float."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0


def unit_float(arr: np.ndarray) -> np.ndarray:
    """An image array as float32 in its own units: integers divided by their type's full scale."""
    arr = np.asarray(arr)
    return arr.astype(np.float32) / np.float32(scale_of(arr.dtype))


def _png_colour_type(path: str | Path) -> int | None:
    """A PNG's colour type from its header (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), else None."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    return head[25] if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" else None


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an RGB image as float32 ``(H, W, 3)`` in [0, 1], keeping its bit depth's precision.

    An alpha channel is dropped; a grey or multi-channel image is refused with a clear error.
    """
    arr = read_native(path)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1) or _png_colour_type(path) in (0, 4):
        raise HsError("image is greyscale; an RGB image is needed", path)  # (OpenCV gives grey+alpha as 4 channels)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise HsError(f"expected an RGB image, got shape {arr.shape}", path)
    return unit_float(arr[..., :3])


#: the PNG text chunk (keyword, text) that marks hstool's sRGB previews: they show a cube, they
#: are not a camera's RGB, and ``hstool recon`` refuses them (beside calibrate's NAME.mat, a
#: preview NAME.png would otherwise be reconstructed over the cube it shows)
PREVIEW_NOTE = ("hstool", "sRGB preview of a hyperspectral cube, not camera RGB")


def _png_text(png: bytes, keyword: str, text: str) -> bytes:
    """``png`` with a tEXt chunk added before its IEND chunk (the last 12 bytes)."""
    body = keyword.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return png[:-12] + chunk + png[-12:]


def is_preview(path: str | Path) -> bool:
    """Whether ``path`` is a PNG preview hstool wrote (:data:`PREVIEW_NOTE`)."""
    path = Path(path)
    if path.suffix.lower() != ".png" or not path.is_file():
        return False
    keyword, text = PREVIEW_NOTE
    note = b"tEXt" + f"{keyword}\0{text}".encode("latin-1")
    with open(path, "rb") as fh:  # the note is the chunk before IEND: the file's tail, not all of it
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - len(note) - 64))
        return note in fh.read()


try:  # libdeflate: zlib streams as small as zlib's at the same level in a fraction of the time
    from deflate import zlib_compress as _deflate
except ImportError:  # pragma: no cover -- the wheel is a dependency; OpenCV's encoder then
    _deflate = None

_PNG_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_rows(rgb: np.ndarray) -> bytes:
    """The image's scanlines, each filtered by the PNG filter (none, sub, up or average) that gives
    the smallest sum of absolute (signed) bytes: libpng's heuristic, without Paeth."""
    h = rgb.shape[0]
    channels = 1 if rgb.ndim == 2 else rgb.shape[2]
    data = rgb.astype(">u2") if rgb.dtype == np.uint16 else rgb
    a = np.ascontiguousarray(data).view(np.uint8).reshape(h, -1).astype(np.int16)
    bpp = channels * rgb.dtype.itemsize
    left = np.zeros_like(a)
    left[:, bpp:] = a[:, :-bpp]
    up = np.zeros_like(a)
    up[1:] = a[:-1]
    candidates = np.stack([a, a - left, a - up, a - ((left + up) >> 1)]).astype(np.uint8)  # mod 256
    cost = np.minimum(candidates, 256 - candidates.astype(np.int16)).sum(axis=2, dtype=np.int64)  # (4, h)
    best = np.argmin(cost, axis=0)
    rows = np.empty((h, a.shape[1] + 1), np.uint8)
    rows[:, 0] = best
    rows[:, 1:] = candidates[best, np.arange(h)]
    return rows.tobytes()


def encode_png(rgb: np.ndarray, level: int = 6) -> bytes:
    """PNG bytes of an integer image (H, W) or (H, W, 1/3/4) in RGB(A) order, uint8 or uint16, at
    deflate ``level`` 0-9 (the decoded pixels do not depend on it). Rows are filtered as libpng
    does (:func:`_png_rows`) and compressed by libdeflate (``deflate``), whose levels run to 12:
    level 9 runs its 10, the first with near-optimal parsing, so the file is smaller than OpenCV's
    (libpng + zlib) at level 9 (by 3-11 % on clean-track images) in about a third of the time.
    Without ``deflate``, OpenCV's encoder at ``level``."""
    rgb = np.asarray(rgb)
    if rgb.dtype not in (np.uint8, np.uint16):
        raise HsError(f"PNG holds uint8 or uint16 images, got {rgb.dtype}")
    channels = 1 if rgb.ndim == 2 else rgb.shape[2]
    if _deflate is None or level == 0:
        if channels == 4:  # RGBA -> BGRA: alpha stays last
            bgr = rgb[..., [2, 1, 0, 3]]
        else:
            bgr = rgb[..., ::-1] if channels == 3 else rgb
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
        if not ok:
            raise HsError("OpenCV could not encode the image as PNG")
        return buf.tobytes()
    head = struct.pack(">IIBBBBB", rgb.shape[1], rgb.shape[0], 8 * rgb.dtype.itemsize, _PNG_COLOUR[channels], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", head)
            + _png_chunk(b"IDAT", _deflate(_png_rows(rgb), int(level) + (level == 9))) + _png_chunk(b"IEND", b""))


def write_rgb(
    path: str | Path,
    rgb: np.ndarray,
    overwrite: bool = False,
    png_compression: int = 6,
    jpeg_quality: int = 95,
    jpeg_sampling: str = "420",
    preview: bool = False,
) -> Path:
    """Write an integer RGB array (uint8, or uint16 for PNG/TIFF) atomically.

    ``png_compression`` is the deflate level 0-9 (:func:`encode_png`; the decoded pixels do not depend on it);
    ``jpeg_quality`` 0-100 and ``jpeg_sampling`` '444', '422' or '420' set the JPEG encoder;
    ``preview`` marks a PNG as a preview of a cube (:data:`PREVIEW_NOTE`).
    """
    if not isinstance(path, (str, Path)):
        raise HsError(f"write_rgb takes the path first, then the image (got a {type(path).__name__} path)")
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype not in (np.uint8, np.uint16):
        raise HsError(f"image data must be uint8 or uint16, got {rgb.dtype}", path)
    if not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] in (1, 3, 4))) or rgb.size == 0:
        raise HsError(f"an image is (H, W), (H, W, 3) or (H, W, 4) and not empty, got shape {rgb.shape}", path)
    if not 0 <= png_compression <= 9 or not 0 <= jpeg_quality <= 100:
        raise HsError(f"png_compression is 0-9 and jpeg_quality 0-100, got {png_compression} and {jpeg_quality}", path)
    suffix = path.suffix.lower()
    if suffix not in CV_SUFFIXES:
        raise HsError(f"unsupported image extension '{suffix}' (use .png, .jpg or .tif)", path)
    if suffix in (".jpg", ".jpeg") and rgb.dtype != np.uint8:
        raise HsError("JPEG holds 8-bit data only; use PNG or TIFF for 16-bit", path)
    if jpeg_sampling not in JPEG_SAMPLING:
        raise HsError(f"JPEG sampling must be one of {', '.join(JPEG_SAMPLING)}", path)
    if suffix == ".png":
        data = encode_png(rgb, png_compression)
    else:
        bgr = rgb[..., [2, 1, 0, 3]] if rgb.ndim == 3 and rgb.shape[2] == 4 else rgb[..., ::-1] if rgb.ndim == 3 else rgb
        params: list[int] = []
        if suffix in (".jpg", ".jpeg"):
            params = [
                cv2.IMWRITE_JPEG_QUALITY,
                int(jpeg_quality),
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                JPEG_SAMPLING[jpeg_sampling],
            ]
        ok, buf = cv2.imencode(suffix, np.ascontiguousarray(bgr), params)
        if not ok:
            raise HsError("OpenCV could not encode the image", path)
        data = buf.tobytes()
    if preview and suffix == ".png":
        data = _png_text(data, *PREVIEW_NOTE)
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return path


def check_png(path: str | Path) -> Path:
    """Refuse a plot path that does not end in .png (plots are written as PNG only)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise HsError("plots are written as PNG: give a path ending in .png", path)
    return path


def save_figure(fig, path: str | Path, overwrite: bool = False, dpi: float | None = None) -> Path:
    """Write a matplotlib figure to a .png path atomically, then close it."""
    import matplotlib.pyplot as plt

    path = check_png(path)
    try:
        with atomic_path(path, overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi or "figure")
    finally:
        plt.close(fig)
    return path
