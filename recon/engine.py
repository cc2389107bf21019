"""The inference engine every model shares: device, padding, tiling, precision, ensembling.

:func:`predict` runs a registered model on one RGB image of any size:

- the image is reflect-padded (numpy's ``reflect``, which also handles pads wider than the
  image) to a multiple of the model's ``spec.multiple``, and a deep model's to at least
  ``MIN_SIDE`` and two multiples (so a 1x1 image runs too);
- a large image is cut into windows of ``tile`` pixels that overlap: each interior window edge
  carries ``overlap`` pixels of context (default ``spec.halo``) that are discarded, and
  neighbouring windows cross-fade over a further ``blend`` pixels with raised-cosine weights.
  When the model's receptive radius is at most ``overlap`` every kept pixel is exactly what the
  whole-image pass gives, so tiling changes nothing; for wider models the cross-fade hides
  seams. Windows are accumulated into the output array one by one, so memory is the output plus
  one window's activations (a 3840x2160 image: 1 GB of float32 output);
- pixel-wise models (``spec.kind == "pixel"``) need no context and run in row strips;
- ``ensemble=True`` averages the outputs for the four flips of each window (each un-flipped),
  the geometric self-ensemble of Lim et al. (EDSR, CVPR-W 2017) used by NTIRE entries;
- fp16/bf16 autocast on CUDA (``precision``); on CPU ``bf16`` autocasts deep models to bfloat16
  where oneDNN has native bf16 kernels (AVX512-BF16/AMX: 2-4x faster convolutions, ~0.5 %
  relative change), everything else computes in fp32;
- the result is clamped at zero (spectra are non-negative).

Speed (see ``benchmarks/recon.py``): inference mode; on CPU a :class:`Reconstructor` keeps freed
memory for reuse (:func:`reuse_freed_memory`: no page faults for each layer's fresh output); a
Reconstructor fuses its own model at every precision (:mod:`hstool.recon.fuse`: BatchNorm folded,
activations as oneDNN post-ops in fp32, MST++'s attention in fewer passes, AWAN's by a series in
linear time); convolutional models run channels-last
(NHWC) on CPU, where oneDNN convolves without reordering to and from its blocked layout
(0.6-0.9x the NCHW time here) and the (H, W, 3) input and (H, W, B) output convert without a
copy; transformer-style models (any ``nn.LayerNorm``: MST++ works tokens-last internally) gain
nothing from it and keep NCHW. :func:`predict` only hands the model NHWC input (it never changes
a caller's weights, which may be in training); :class:`Reconstructor` also stores its own
model's weights NHWC. :data:`CHANNELS_LAST` or a model attribute ``channels_last`` overrides the
choice. Results equal the NCHW ones to float32 rounding (~1e-7).

:class:`Reconstructor` bundles a loaded model with these settings and the optional physical
consistency projection and exposure normalisation: ``rec(rgb) -> (H, W, B)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from typing import Any

import numpy as np
import torch

from hstool.camera.pipeline import track_name
from hstool.hsdata import HsError
from hstool.hsdata.formats.image import unit_float

from .fuse import FusedConv2d, fuse_for_inference
from .registry import ModelSpec

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: How far above 1 a float RGB value may reach (rounding, a resampled image) before the input
#: is refused as not in [0, 1].
RGB_SLACK = 1e-3
#: A deep model's input is padded (reflected) to at least this side and two of its multiples
#: (32 for ``basisunet``), since its reflect-padded layers need a few pixels at every level;
#: the output is cropped back to the image.
MIN_SIDE = 16
#: Default window side when ``tile`` is None and the image is large (see :func:`auto_tile`).
AUTO_TILE = 512
#: Images up to this many pixels run whole when ``tile`` is None; larger ones in AUTO_TILE
#: windows, which bounds the activations' memory at some cost in time. On 2 CPU cores a 768x768
#: image takes hscnnp_s and mstpp_s 2.1 GB whole (3.8 s, 6.9 s) and 1.4 / 1.2 GB tiled (1.8x,
#: 1.5x the time); a 1000x1000 one hscnnp_s 4.3 GB whole and 1.6 GB tiled (in half the time),
#: mstpp_s 3.4 and 1.5 GB (1.2x the time), awan_s 1.9 and 1.0 GB (1.8x the time).
AUTO_WHOLE_PIXELS = 768 * 768
#: What torch's allocators and oneDNN say when memory runs out (under a limit, oneDNN cannot
#: create its primitives).
OUT_OF_MEMORY = ("out of memory", "allocate", "could not create a primitive")
#: Pixels per strip for pixel-wise models.
STRIP_PIXELS = 1 << 16
#: Channels-last convolutions: ``None`` decides per model (:func:`use_channels_last`), ``True`` or
#: ``False`` forces it for every deep model (benchmarks compare both).
CHANNELS_LAST: bool | None = None
#: the keys of :meth:`Reconstructor.provenance` that decide a cube's numbers: outputs whose
#: provenance differs in one of them were made with other settings
PROVENANCE_SETTINGS = ("model", "weights_sha256", "track", "consistent", "exposure_invariant", "gamma", "ensemble",
                       "precision", "tile")


def _known_track(name: str | None) -> str | None:
    """A weights file's track as hstool writes it, or None when it names none hstool knows."""
    try:
        return track_name(name) if name else None
    except HsError:
        return None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""
    if isinstance(device, torch.device):
        return device
    device = (device or "").lower()  # CPU is cpu
    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise HsError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HsError(f"device '{device}' requested but CUDA is not available (use --device cpu)")
    return dev


#: glibc ``mallopt`` parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD and M_ARENA_MAX.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
#: Whether a CPU :class:`Reconstructor` (and CPU training) may tune the process's allocator;
#: see :func:`reuse_freed_memory`.
REUSE_FREED_MEMORY = True
_reusing: bool | None = None


def reuse_freed_memory() -> bool:
    """Have glibc's ``malloc`` keep freed memory for reuse instead of returning it to the kernel.

    A CPU forward pass allocates a fresh buffer for every activation (a 482×512×64 float32 map is
    63 MB), and by default glibc serves such blocks with ``mmap`` and unmaps them when freed, so
    every layer's output is faulted in and zeroed page by page again: on this project's 2-core
    machine that is half to two thirds of HSCNN+'s and MST++'s CPU time. With the mmap and trim
    thresholds raised (1 GiB, 2 GiB) freed blocks stay in the heap and are reused, and with one
    arena (``M_ARENA_MAX``) that holds for every thread: a model called on another thread (a Dask
    worker's task thread) would otherwise allocate from an arena of its own, whose 64 MB heaps
    serve each larger block by a fresh ``mmap`` again (MST++ 1.3 s against 0.65 s a call); results are
    unchanged, and the process keeps its peak resident memory until it exits. It is what PyTorch's
    CPU performance guide gets by preloading jemalloc or tcmalloc, without a preload. Process-wide
    and idempotent; a no-op (False) off glibc or with :data:`REUSE_FREED_MEMORY` false.
    """
    global _reusing
    if _reusing is None:
        _reusing = False
        if REUSE_FREED_MEMORY:
            try:  # Linux with glibc; elsewhere the symbol is missing or mallopt refuses (0)
                libc = ctypes.CDLL(None)
                mallopt = libc.mallopt
                mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                _reusing = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30) and mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
                                and mallopt(_M_ARENA_MAX, 1))
            except (OSError, AttributeError, TypeError):
                pass
    return _reusing


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel (``malloc_trim``), where
    :func:`reuse_freed_memory` keeps them: called after each image, so that a forward pass reuses
    the blocks its own layers freed, while the blocks of one image, in the places they happened to
    free, do not stay to fragment the next image's (a process's peak grew with every image,
    ``mstpp_s`` 515 → 715 MB over 3 images; with this 551). A no-op where nothing is kept."""
    if _reusing:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


def _spec(model: torch.nn.Module) -> ModelSpec:
    spec = getattr(model, "spec", None)
    if spec is None:  # a bare module: treat as a fully convolutional deep model
        return ModelSpec("custom", factory=lambda: model, kind="deep", multiple=1, halo=32)
    return spec


def use_channels_last(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``model`` runs channels-last (NHWC) on ``device``: :data:`CHANNELS_LAST` when set,
    else the model's own ``channels_last`` attribute, else, for a registered model (one with a
    ``spec``), yes when it has 2-D convolutions and no ``LayerNorm``, on CPU, and on CUDA in half
    precision (tensor cores work in NHWC)."""
    if _spec(model).kind == "pixel":
        return False
    if CHANNELS_LAST is not None:
        return CHANNELS_LAST
    own = getattr(model, "channels_last", None)
    if own is not None:
        return bool(own)
    if getattr(model, "spec", None) is None:
        return False  # a bare module, untested here: it may ``view`` its input as NCHW
    if device.type == "cuda" and dtype == torch.float32:
        return False
    if device.type not in ("cpu", "cuda"):
        return False
    mods = list(model.modules())
    return any(isinstance(m, (torch.nn.Conv2d, FusedConv2d)) for m in mods) and not any(
        isinstance(m, torch.nn.LayerNorm) for m in mods)


def compute_dtype(device: torch.device, precision: str, kind: str = "deep") -> torch.dtype:
    """The autocast dtype for ``precision`` on ``device`` (float32 = no autocast): fp16 and bf16
    on CUDA; bf16 on CPU only where oneDNN has native bf16 kernels, and for deep models only
    (pixel models are cheap there, and bf16 would break rootpoly's exact scaling)."""
    if precision not in PRECISIONS:
        raise HsError(f"unknown precision '{precision}' (use {', '.join(PRECISIONS)})")
    if device.type == "cpu" and kind == "pixel":
        return torch.float32
    dtype = PRECISIONS[precision]
    if device.type == "cuda" or dtype == torch.float32:
        return dtype
    if device.type == "cpu" and dtype == torch.bfloat16 and _cpu_bf16():
        return dtype
    return torch.float32


def _cpu_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _ramp(length: int, lo_margin: int, lo_blend: int, hi_margin: int, hi_blend: int) -> np.ndarray:
    """1-D window weight: 0 over the discarded margins, raised-cosine ramps, 1 in the middle."""
    w = np.ones(length, np.float64)
    if lo_margin or lo_blend:
        w[:lo_margin] = 0.0
        i = np.arange(lo_blend)
        w[lo_margin:lo_margin + lo_blend] = 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / lo_blend)
    if hi_margin or hi_blend:
        if hi_margin:
            w[length - hi_margin:] = 0.0
        i = np.arange(hi_blend)[::-1]
        end = length - hi_margin
        w[end - hi_blend:end] = np.minimum(w[end - hi_blend:end],
                                           0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / hi_blend))
    return w


def _starts(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


def _run(model: torch.nn.Module, x: np.ndarray, device: torch.device, dtype: torch.dtype,
         ensemble: bool, channels_last: bool = False) -> np.ndarray:
    """(h, w, 3) float32 -> (h, w, B) float32, one forward pass (or four with ``ensemble``).

    With ``channels_last`` the (h, w, 3) array is handed to the model as an NHWC-strided view
    (no copy), and an NHWC output comes back as a contiguous (h, w, B) array (no copy either).
    """
    if channels_last:
        if not x.flags.writeable or any(step < 0 for step in x.strides):  # torch takes neither (a BGR flip view)
            x = x.copy()
        t = torch.from_numpy(x).permute(2, 0, 1)[None].to(device)
        t = t.contiguous(memory_format=torch.channels_last)  # no-op for a contiguous image
    else:
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(device)
    flips = [(), (3,), (2,), (2, 3)] if ensemble else [()]
    acc = None
    with torch.inference_mode():
        for dims in flips:
            inp = torch.flip(t, dims) if dims else t
            if dtype != torch.float32:
                with torch.autocast(device.type, dtype=dtype):
                    y = model(inp)
            else:
                y = model(inp)
            y = y.float()
            if dims:
                y = torch.flip(y, dims)
            acc = y if acc is None else acc + y
        if len(flips) > 1:
            acc = acc / len(flips)
    return _to_host(acc[0])


def _to_host(y: torch.Tensor) -> np.ndarray:
    """(B, h, w) model output -> (h, w, B) float32 array. On CUDA it is clamped at zero and laid
    out (h, w, B) on the GPU, so the host only receives a contiguous, final array (a CPU transpose
    of the 31-band image would cost more than the copy), copied into page-locked memory from
    PyTorch's caching host allocator, which the GPU writes faster than pageable memory. Elsewhere
    it is a view of the model's buffer, clamped by the caller."""
    if y.device.type != "cuda":
        return y.permute(1, 2, 0).cpu().numpy()
    hwb = y.clamp(min=0).permute(1, 2, 0).contiguous()
    host = torch.empty(hwb.shape, dtype=hwb.dtype, pin_memory=True)
    host.copy_(hwb)
    return host.numpy()


def least_side(multiple: int) -> int:
    """The smallest side a deep model with this ``multiple`` takes: at least :data:`MIN_SIDE` and
    two multiples (its deepest level keeps >= 2 pixels for its padding), rounded to the multiple."""
    m = max(1, multiple)
    return -(-max(MIN_SIDE, 2 * m) // m) * m


def predict(
    model: torch.nn.Module,
    rgb: np.ndarray,
    device: str | torch.device = "auto",
    tile: int | None = None,
    overlap: int | None = None,
    precision: str = "fp32",
    ensemble: bool = False,
    blend: int | None = None,
) -> np.ndarray:
    """Reconstruct ``rgb`` (H, W, 3) in [0, 1] with ``model`` -> (H, W, B) float32, >= 0.

    Parameters
    ----------
    device: ``auto``/``cpu``/``cuda``/``cuda:N``; the model is moved there.
    tile: window side in pixels (rounded down to the model's multiple); ``0`` never tiles;
        ``None`` runs images up to 768x768 whole and tiles larger ones with 512.
    overlap: context pixels discarded at each interior window edge (default ``spec.halo``).
    precision: ``fp32``, ``fp16`` or ``bf16`` (autocast on CUDA; on CPU ``bf16`` autocasts where
        the CPU has native bf16 kernels, see :func:`compute_dtype`, and anything else runs fp32).
    ensemble: average over the four flips.
    blend: width of the raised-cosine cross-fade between windows (default ``max(8, overlap // 2)``).
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise HsError(f"expected an RGB image shaped (H, W, 3), got {rgb.shape}")
    try:
        return _predict(model, rgb, device, tile, overlap, precision, ensemble, blend)
    except (RuntimeError, MemoryError) as exc:  # torch's allocators (CPU and CUDA) and oneDNN raise RuntimeErrors
        text = str(exc).lower()
        if not isinstance(exc, MemoryError) and not any(t in text for t in OUT_OF_MEMORY):
            raise
        smaller = f"a tile smaller than {tile}" if tile else "a smaller tile (--tile 256)"
        raise HsError(f"out of memory for a {rgb.shape[0]}x{rgb.shape[1]} image on {resolve_device(device)}: "
                      f"{smaller} bounds what one window needs") from exc


def _predict(model, rgb, device, tile, overlap, precision, ensemble, blend) -> np.ndarray:
    """:func:`predict` on a checked (H, W, 3) float32 image."""
    spec = _spec(model)
    dev = resolve_device(device)
    dtype = compute_dtype(dev, precision, spec.kind)
    nhwc = use_channels_last(model, dev, dtype)
    model.to(dev).eval()  # the weights' layout is left alone (Reconstructor converts its own model)
    h, w, _ = rgb.shape

    if spec.kind == "pixel":  # no context: row strips, no padding, flips change nothing
        rows = max(1, STRIP_PIXELS // max(w, 1))
        out = None
        for r0 in range(0, h, rows):
            y = _run(model, rgb[r0:r0 + rows], dev, dtype, False)
            if out is None:
                out = np.empty((h, w, y.shape[2]), np.float32)
            _clamp_into(y, out[r0:r0 + rows])
        return out

    m = max(1, spec.multiple)
    least = least_side(m)
    ph, pw = max(-h % m, least - h), max(-w % m, least - w)
    # numpy's reflect repeats the reflection past the image's own size (a 1-pixel side: its value)
    padded = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect") if (ph or pw) else rgb
    H, W = padded.shape[:2]
    if tile is None:
        tile = 0 if H * W <= AUTO_WHOLE_PIXELS else AUTO_TILE
    if tile and tile < max(H, W):
        side, stride, margin, fade = tile_geometry(spec, tile, overlap, blend)
        return _predict_tiled(model, padded, (h, w), side, stride, margin, fade, dev, dtype, ensemble, nhwc)
    y = _run(model, padded, dev, dtype, ensemble, nhwc)
    if y.shape[:2] == (h, w) and y.flags.c_contiguous and y.flags.writeable and not np.may_share_memory(y, rgb):
        # the model's own (h, w, B) output buffer: no further copy (clamped already on CUDA)
        return y if dev.type == "cuda" else np.maximum(y, 0, out=y)
    out = np.empty((h, w, y.shape[2]), np.float32)
    _clamp_into(y[:h, :w], out)
    return out


def tile_geometry(spec, tile: int, overlap: int | None = None, blend: int | None = None) -> tuple[int, int, int, int]:
    """``(side, stride, margin, fade)`` of the windows for ``tile``; an error when the windows
    would not advance (the model's context and the blend take the whole tile)."""
    m = max(1, spec.multiple)
    margin = spec.halo if overlap is None else int(overlap)
    fade = max(8, margin // 2) if blend is None else int(blend)
    if margin < 0 or fade < 0:
        raise HsError(f"tile overlap and blend must be >= 0, got {margin} and {fade}")
    side = max(m, (int(tile) // m) * m)
    stride = side - 2 * margin - fade
    if stride < 1:
        raise HsError(f"tile {tile} too small for overlap {margin} and blend {fade}: "
                      f"use --tile of at least {2 * margin + fade + m}")
    return side, stride, margin, fade


def _clamp_into(y: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = max(y, 0)``: torch's multi-threaded strided copy, which transposes an NCHW
    model's (h, w, B) view into ``out`` faster than numpy's single-threaded ufunc."""
    torch.clamp_min(torch.from_numpy(y), 0, out=torch.from_numpy(out))


def _predict_tiled(model, padded, size, side, stride, margin, fade, dev, dtype, ensemble,
                   nhwc=False) -> np.ndarray:
    h, w = size
    H, W = padded.shape[:2]
    wy, wx = min(side, H), min(side, W)
    ys, xs = _starts(H, wy, stride), _starts(W, wx, stride)
    out = None
    weight = np.zeros((h, w), np.float32)
    for y0 in ys:
        ry = _ramp(wy, margin if y0 > 0 else 0, fade if y0 > 0 else 0,
                   margin if y0 + wy < H else 0, fade if y0 + wy < H else 0)
        for x0 in xs:
            rx = _ramp(wx, margin if x0 > 0 else 0, fade if x0 > 0 else 0,
                       margin if x0 + wx < W else 0, fade if x0 + wx < W else 0)
            y1, x1 = min(y0 + wy, h), min(x0 + wx, w)
            if y1 <= y0 or x1 <= x0:
                continue  # a window entirely in the padding
            pred = _run(model, padded[y0:y0 + wy, x0:x0 + wx], dev, dtype, ensemble, nhwc)
            if np.may_share_memory(pred, padded):  # a model that hands back its (zero-copy) input
                pred = pred.copy()
            if out is None:
                out = np.zeros((h, w, pred.shape[2]), np.float32)
            wt = np.outer(ry[:y1 - y0], rx[:x1 - x0]).astype(np.float32)
            np.maximum(pred, 0, out=pred)
            out[y0:y1, x0:x1] += pred[:y1 - y0, :x1 - x0] * wt[..., None]
            weight[y0:y1, x0:x1] += wt
    out /= weight[..., None]
    return out


def robust_intensity(rgb: np.ndarray) -> float:
    """Per-image intensity for exposure normalisation: the mean of all RGB values (scales
    exactly with exposure)."""
    return float(np.mean(rgb, dtype=np.float64))


class Reconstructor:
    """A model plus engine settings: ``rec(rgb (H, W, 3)) -> (H, W, B) float32``.

    Parameters
    ----------
    name, weights, track: as :func:`hstool.recon.create_model` (``name=None`` with a weights path
        takes the architecture from the file).
    device, precision, ensemble, tile: as :func:`predict`.
    consistent: ``None``/``False`` (off), ``True`` (the camera of ``track``), a CSS name, a
        ``CSS``, a ``Pipeline`` or a (B, 3) matrix: project every spectrum onto the non-negative
        spectra that re-project exactly to the input RGB (:mod:`hstool.recon.consistency`). When
        that camera floors to integer codes (the NTIRE tracks) and the input holds 8- or 16-bit
        codes, the target is the middle of each code's cell (:func:`hstool.camera.stages.dequantise`),
        so the spectra re-image to the same codes; a bare matrix or a float image: the values.
    exposure_invariant: divide the input by its intensity (per pixel RGB sum for pixel-wise models,
        the image mean for deep ones), scaled to the training data's mean level, run the model,
        and multiply back.
    gamma: the response curve the RGB was encoded with (:func:`hstool.camera.stages.response`),
        undone first: ``1`` linear (the NTIRE tracks, raw-derived images), ``"srgb"`` for ordinary
        photos and screenshots, or a number. The models and ``consistent`` expect linear RGB.

    After each call ``last_info`` holds ``{"infeasible": n, "corrected": m}`` when consistent.

    The model is prepared for inference only: it is fused (:func:`fuse_for_inference`; in fp32
    results equal the unfused model to float32 rounding), and a CPU Reconstructor calls
    :func:`reuse_freed_memory`, which changes glibc's allocator for the whole process (set
    :data:`REUSE_FREED_MEMORY` false before creating one to keep the default).
    """

    def __init__(self, name: str | None, weights: Any = "bundled", track: str = "clean", device: str = "auto",
                 precision: str = "fp32", ensemble: bool = False, tile: int | None = None,
                 consistent: Any = None, exposure_invariant: bool = False, gamma: float | str = 1.0):
        from hstool.camera.stages import curve

        from .weights import create_model, file_sha256, model_wavelengths

        self.gamma = curve(gamma)  # a bad curve fails before the model loads

        self.model = create_model(name, weights, track)
        self.spec = self.model.spec
        self.meta = self.model.meta
        own = self.meta.get("track") if weights not in (None, "bundled") else None
        self.track = _known_track(own) or track_name(track)
        self.device = resolve_device(device)
        self.model.to(self.device)
        dtype = compute_dtype(self.device, precision, self.spec.kind)
        #: the precision the model computes in here (fp32 where ``precision`` is not available)
        self.effective_precision = next(k for k, v in PRECISIONS.items() if v == dtype)
        if self.device.type == "cpu":
            reuse_freed_memory()
        if self.spec.kind == "deep":
            # BatchNorm folding, activations as convolution post-ops (fp32 only; under autocast
            # the convolution and its activation run apart), a model's own exact rewrites
            fuse_for_inference(self.model)
        if use_channels_last(self.model, self.device, dtype):
            # 4-D weights NHWC too: saves oneDNN a reorder per convolution (a few % more)
            self.model.to(memory_format=torch.channels_last)
        if tile and self.spec.kind == "deep":
            tile_geometry(self.spec, tile)  # a tile too small fails here, not on the first large image
        self.precision, self.ensemble, self.tile = precision, ensemble, tile
        self.wavelengths = model_wavelengths(self.model)
        self.exposure_invariant = exposure_invariant
        self.matrix = None
        #: the camera's quantiser: with ``floor`` (the NTIRE tracks) code k stands for [k, k + 1)
        self.rounding: str | None = None
        if consistent is not None and consistent is not False:
            from .consistency import consistency_camera, consistency_matrix

            pipeline = consistency_camera(consistent, self.track)  # None for a bare matrix
            self.matrix = consistency_matrix(consistent if pipeline is None else pipeline, self.wavelengths)
            self.rounding = pipeline.rounding if pipeline is not None else None
            self.consistent_css = pipeline.css.name if pipeline is not None else "matrix"
        else:
            self.consistent_css = None
        path = self.model.weights_path
        #: the SHA-256 of the weights file loaded (None: untrained)
        self.weights_sha256 = file_sha256(path) if path is not None else None
        self.last_info: dict[str, int] = {}

    def provenance(self) -> dict[str, Any]:
        """What makes this Reconstructor's cubes, for the files they are written to
        (:func:`hstool.hsdata.provenance.provenance_record` adds the input's name and the hstool
        version): the model, its weights (the file's name and SHA-256), the track, and every
        setting that changes the numbers (``consistent``: the CSS projected onto, or None;
        ``exposure_invariant``, ``gamma``, ``ensemble``, the precision computed in, ``tile``:
        None for the automatic choice). :data:`PROVENANCE_SETTINGS` names the keys two runs
        must share to make the same cubes."""
        path = self.model.weights_path
        return {
            "model": self.spec.name, "weights": path.name if path is not None else None,
            "weights_sha256": self.weights_sha256, "track": self.track, "consistent": self.consistent_css,
            "exposure_invariant": bool(self.exposure_invariant), "gamma": self.gamma,
            "ensemble": bool(self.ensemble), "precision": self.effective_precision, "tile": self.tile,
        }

    def _model_rgb(self, rgb: np.ndarray) -> np.ndarray:
        spectra = predict(self.model, rgb, self.device, self.tile, None, self.precision, self.ensemble)
        release_freed_memory()
        return spectra

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Spectra ``(H, W, B)`` of an RGB image ``(H, W, 3)``: floats in [0, 1] (as
        :func:`read_rgb` gives; any non-negative scale with ``exposure_invariant`` and a linear
        ``gamma``), or a uint8 or uint16 array, scaled by its type's full scale."""
        rgb = np.asarray(rgb)
        if rgb.dtype.kind in "iub" and rgb.dtype not in (np.uint8, np.uint16):
            raise HsError(f"integer RGB arrays must be uint8 or uint16 (scaled by 255 or 65535), not {rgb.dtype}; "
                          "or pass floats in [0, 1]")
        rgb = unit_float(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise HsError(f"expected an RGB image shaped (H, W, 3), got {rgb.shape}")
        if rgb.size == 0:
            raise HsError(f"RGB image is empty, shape {rgb.shape}")
        if not np.all(np.isfinite(rgb)):
            raise HsError("RGB input holds NaN or infinite values")
        low, top = float(rgb.min()), float(rgb.max())
        if low < -RGB_SLACK:
            raise HsError(f"RGB values go down to {low:g}; light is not negative")
        if top > 1 + RGB_SLACK and (not self.exposure_invariant or self.gamma != 1.0):  # 8-bit values as floats
            raise HsError(f"RGB values reach {top:g}; expected [0, 1] (divide 8-bit values by 255, or pass "
                          "the uint8 array)")
        target = rgb  # what the spectra re-project to with ``consistent``
        if self.matrix is not None and self.rounding == "floor":
            from hstool.camera.stages import dequantise

            # a floored code k stands for [k, k + 1): aim at its middle, not its lower edge, which
            # biases every spectrum half a step dark and re-images a few % of the codes one lower
            target = dequantise(rgb, "floor")
        if self.gamma != 1.0:
            from hstool.camera.stages import linearise

            rgb = linearise(rgb, self.gamma)
            target = rgb if target is rgb else linearise(target, self.gamma)
        if self.exposure_invariant:
            spectra = self._exposure_normalised(rgb)
        else:
            spectra = self._model_rgb(rgb)
        if self.matrix is not None:
            from .consistency import project_consistent

            spectra, info = project_consistent(spectra, target, self.matrix)
            self.last_info = info
        return spectra

    def _exposure_normalised(self, rgb: np.ndarray) -> np.ndarray:
        ref = float(self.meta.get("rgb_mean") or 0.2)
        if self.spec.kind == "pixel":
            k = rgb.sum(axis=2, keepdims=True, dtype=np.float32)  # per-pixel intensity
            safe = np.where(k > 0, k, 1).astype(np.float32)
            out = self._model_rgb(rgb * (3 * ref / safe))
            out *= safe / np.float32(3 * ref)
            out[k[..., 0] <= 0] = 0
            return out
        k = robust_intensity(rgb)
        if not k > 0 or not math.isfinite(k):
            return self._model_rgb(rgb)
        out = self._model_rgb(rgb * np.float32(ref / k))
        out *= np.float32(k / ref)
        return out
