"""Synthetic hyperspectral scenes from measured spectra, shaped like the ARAD cubes.

A scene is a map of regions (warped Voronoi cells under occluding objects: rectangles, window
grids, ellipses, star-shaped polygons, thin poles), each made of a convex mixture of two measured
reflectances (:mod:`hstool.hsdata.materials`) whose mixing weight is modulated by band-limited
noise or a grain pattern. Light follows the dichromatic reflection model (Shafer 1985, "Using
color to separate reflection components", Color Res. Appl. 10(4)):

    radiance = R(x, λ) · [D(x) · E_direct(λ) + F(x) · E_fill(λ)] + S(x) · E_direct(λ)

with ``R`` the reflectance in [0, 1], ``D`` the direct-light factor (smooth global shading,
per-region orientation ramps, vignetting, fine grain, soft-edged cast shadows), ``F`` the
fill light (blue sky, a CIE D series at 12500-25000 K, for daylight scenes; a second lamp
indoors) that lights the shadows, and ``S`` illuminant-coloured specular highlights on glossy
regions. Half of the daylight scenes show a sky above a wavy horizon (behind the objects): its
radiance is the sky light itself (unit "reflectance"), brighter towards the horizon, with clouds
lit by the direct light. The radiance is blurred by a small Gaussian (optics) and normalised as the ARAD cubes
are: divided by its peak (the 99.9th percentile; brighter highlights clip at 1 as they saturate a
camera) times a random exposure in [0.6, 1], the divisor kept as
``meta["norm_factor"]`` (``radiance = cube * norm_factor``), with values floored at 2^-12 (a
12-bit camera's least count) so that MRAE, which divides by the truth, stays finite.

The ``test`` split draws materials and illuminants from groups disjoint from ``train``
(:func:`hstool.hsdata.materials.split_of`). Everything is a function of ``(seed, split, size,
wavelengths)`` and vectorised: about 0.2 s for 482x512x31 on one core.

>>> cube = generate_scene(0, size=(64, 80))  # doctest: +SKIP
>>> cube.shape, cube.data.max() <= 1
((64, 80, 31), True)
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .cube import ARAD_WAVELENGTHS, Cube
from .errors import HsError
from .materials import SPLITS, SpectralSet, illuminant_library, material_library

#: how often a region's material is drawn from each kind (renormalised over kinds present)
MATERIAL_WEIGHTS = {
    "vegetation": 0.24, "built": 0.20, "soil": 0.14, "npv": 0.12, "paint": 0.06,
    "chart": 0.10, "otsu": 0.06, "tcs": 0.04, "cqs": 0.04,
}  # fmt: skip
#: how often the direct light is of each kind
LIGHT_WEIGHTS = {"daylight": 0.5, "incandescent": 0.15, "fluorescent": 0.15, "led": 0.12, "discharge": 0.08}
#: exposure: the PEAK_PERCENTILE-th percentile of a scene's values lands in EXPOSURE; brighter
#: values (highlights) clip at 1 as they saturate a camera
EXPOSURE = (0.6, 1.0)
PEAK_PERCENTILE = 99.9
#: share of daylight scenes with a sky above a horizon
SKY_PROBABILITY = 0.5
#: no value below a 12-bit camera's least count, so MRAE (a division by the truth) stays finite
FLOOR = 2.0**-12


def _pick_kinds(rng: np.random.Generator, lib: SpectralSet, weights: dict[str, float], n: int) -> np.ndarray:
    """``n`` spectrum indices: a kind by ``weights``, then a spectrum of that kind uniformly."""
    groups = lib.by_kind()
    kinds = [k for k in weights if k in groups and groups[k].size]
    if not kinds:
        raise HsError("no spectra of the requested kinds in this split")
    p = np.array([weights[k] for k in kinds])
    choice = rng.choice(len(kinds), size=n, p=p / p.sum())
    return np.array([groups[kinds[c]][rng.integers(groups[kinds[c]].size)] for c in choice], dtype=np.int64)


def _noise(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int = 3) -> np.ndarray:
    """Band-limited fractal noise (H, W), zero mean, unit std: random grids upsampled bicubically,
    amplitude halving per octave (so no detail finer than the finest grid)."""
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    big = max(h, w)
    for o in range(octaves):
        n = min(cells * 2**o, big / 2)
        gh, gw = max(2, round(n * h / big) + 2), max(2, round(n * w / big) + 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= 0.5
    out -= out.mean()
    return out / max(float(out.std()), 1e-6)


def _unit(z: np.ndarray, contrast: float = 1.0) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(contrast * z)


def _layout(rng: np.random.Generator, h: int, w: int, sky: bool) -> tuple[np.ndarray, int, int]:
    """Region labels (H, W) int32, their count and the sky's label (-1: no sky): warped anisotropic
    Voronoi cells, with ``sky`` a region above a wavy horizon, then objects drawn over them
    (occlusion gives straight and curved edges, T-junctions, repeated windows, skylines)."""
    big = max(h, w)
    k = int(rng.integers(6, 20))
    sy, sx = rng.uniform(0, h, k), rng.uniform(0, w, k)
    stretch = float(np.exp(rng.normal(0, 0.5)))  # cells wider than tall or the reverse
    warp = rng.uniform(0.02, 0.12) * big
    yy = np.arange(h, dtype=np.float32)[:, None] + warp * _noise(rng, h, w, 2.5)
    xx = np.arange(w, dtype=np.float32)[None, :] + warp * _noise(rng, h, w, 2.5)
    labels = np.zeros((h, w), np.int32)
    best = np.full((h, w), np.inf, np.float32)
    for i in range(k):
        d = ((xx - sx[i]) / stretch) ** 2 + (yy - sy[i]) ** 2
        closer = d < best
        best = np.where(closer, d, best)
        labels[closer] = i
    n = k
    if sky:
        horizon = h * rng.uniform(0.15, 0.45) + 0.04 * h * _noise(rng, 8, w, 6)[0]
        labels[np.arange(h)[:, None] < horizon[None, :]] = n
        n += 1
    size = min(h, w)
    for _ in range(int(rng.integers(3, 14))):
        shape = rng.choice(["rect", "windows", "ellipse", "polygon", "pole"], p=[0.3, 0.12, 0.2, 0.28, 0.1])
        cx, cy = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        s = float(rng.uniform(0.05, 0.4)) * size
        angle = float(rng.normal(0, 8) if rng.random() < 0.7 else rng.uniform(0, 180))
        if shape == "rect" or shape == "windows":
            box = cv2.boxPoints(((cx, cy), (s * rng.uniform(0.4, 1.6), s * rng.uniform(0.4, 1.6)), angle))
            cv2.fillPoly(labels, [np.round(box).astype(np.int32)], n)
            if shape == "windows":  # a facade: a grid of panes of one more material
                n += 1
                bw, bh = s * rng.uniform(0.06, 0.15), s * rng.uniform(0.06, 0.15)
                step = max(bw, bh) * rng.uniform(1.6, 2.4)
                for gy in np.arange(cy - s / 2 + step / 2, cy + s / 2, step):
                    for gx in np.arange(cx - s / 2 + step / 2, cx + s / 2, step):
                        pane = cv2.boxPoints(((gx, gy), (bw, bh), angle))
                        cv2.fillPoly(labels, [np.round(pane).astype(np.int32)], n)
        elif shape == "ellipse":
            axes = (max(1, int(s * rng.uniform(0.2, 0.6))), max(1, int(s * rng.uniform(0.2, 0.6))))
            cv2.ellipse(labels, (int(cx), int(cy)), axes, angle, 0, 360, n, -1)
        elif shape == "polygon":
            m = int(rng.integers(5, 12))
            t = np.sort(rng.uniform(0, 2 * np.pi, m))
            r = s * rng.uniform(0.3, 0.7, m)
            pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
            cv2.fillPoly(labels, [np.round(pts).astype(np.int32)], n)
        else:
            p0 = (int(cx), int(cy))
            p1 = (int(cx + s * np.sin(np.radians(angle))), int(cy - 2 * s * np.cos(np.radians(angle))))
            cv2.line(labels, p0, p1, n, int(rng.integers(2, 8)))
        n += 1
    return labels, n, (k if sky else -1)


def _soft_shadows(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Cast-shadow mask in [0, 1]: a few polygons with a penumbra (Gaussian-blurred edge)."""
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(0, 4))):
        m = int(rng.integers(3, 8))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        s = rng.uniform(0.1, 0.5) * min(h, w)
        t = np.sort(rng.uniform(0, 2 * np.pi, m))
        pts = np.stack([cx + s * np.cos(t) * rng.uniform(0.5, 1.5), cy + s * np.sin(t)], axis=1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0)
    if mask.any():
        mask = cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(1.0, 6.0)))
    return mask


#: OpenCV filters at most this many channels at once (a finer band grid is blurred in parts)
BLUR_CHANNELS = 128


def _blur(cube: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every band; the bands are independent, so parts of the cube give the same."""
    if cube.shape[2] <= BLUR_CHANNELS:
        return cv2.GaussianBlur(cube, (0, 0), sigma)
    parts = [cv2.GaussianBlur(np.ascontiguousarray(cube[..., b : b + BLUR_CHANNELS]), (0, 0), sigma)
             for b in range(0, cube.shape[2], BLUR_CHANNELS)]
    return np.concatenate([p.reshape(*cube.shape[:2], -1) for p in parts], axis=2)


def generate_scene(
    seed: int,
    size: tuple[int, int] = (482, 512),
    wavelengths: np.ndarray = ARAD_WAVELENGTHS,
    split: str = "train",
    return_parts: bool = False,
) -> Cube | tuple[Cube, dict[str, Any]]:
    """A synthetic scene cube (H, W, B) float32 in [0, 1], normalised like ARAD (see module doc).

    Parameters
    ----------
    seed: any non-negative int; the same ``(seed, split, size, wavelengths)`` gives the same cube.
    size: ``(height, width)`` in pixels (at least 8 x 8).
    wavelengths: band centres in nm within 380-780 nm (default ARAD's 400:10:700).
    split: ``"train"`` or ``"test"``: disjoint materials and illuminants.
    return_parts: also return a dict with ``reflectance`` (H, W, B) in [0, 1], ``light`` (H, W, B)
        (the irradiance ``D·E_direct + F·E_fill``), ``specular`` (H, W), ``labels`` (H, W),
        ``sky`` (H, W) bool, ``mix`` (H, W) and ``region_materials`` (regions, 2) — outside the sky,
        reflectance = (1 - mix) · A + mix · B with A, B rows of ``material_library(wavelengths,
        split)``; 1 in the sky —, ``radiance`` (before
        normalisation), ``materials`` (names used) and ``illuminants`` (names used).
    """
    if split not in SPLITS:
        raise HsError(f"unknown split '{split}' (use train or test)")
    h, w = (int(v) for v in size)
    if h < 8 or w < 8:
        raise HsError(f"scene size {h}x{w} is too small (at least 8x8)")
    if seed < 0:
        raise HsError(f"seed must be non-negative, got {seed}")
    mats = material_library(wavelengths, split)
    lights = illuminant_library(wavelengths, split)
    wl = mats.wavelengths
    rng = np.random.default_rng([int(seed), SPLITS.index(split), 0x5CE4E])

    # -- light sources, chosen first: half of the daylight scenes show the sky ---------------------
    direct = int(_pick_kinds(rng, lights, LIGHT_WEIGHTS, 1)[0])
    outdoor = lights.kinds[direct] == "daylight"
    if outdoor:
        fill = int(_pick_kinds(rng, lights, {"sky": 1.0}, 1)[0])
        fill_level = rng.uniform(0.08, 0.3)
    else:
        fill = direct if rng.random() < 0.5 else int(_pick_kinds(rng, lights, LIGHT_WEIGHTS, 1)[0])
        fill_level = rng.uniform(0.1, 0.4)
    show_sky = bool(outdoor and rng.random() < SKY_PROBABILITY)

    # -- regions and their materials ------------------------------------------------------------
    labels, n, sky_label = _layout(rng, h, w, show_sky)
    mat_a = _pick_kinds(rng, mats, MATERIAL_WEIGHTS, n)
    same_kind = _pick_kinds(rng, mats, MATERIAL_WEIGHTS, n)
    kinds = np.array(mats.kinds)
    by_kind = mats.by_kind()
    partner = np.array([by_kind[kinds[a]][rng.integers(by_kind[kinds[a]].size)] for a in mat_a])
    mat_b = np.where(rng.random(n) < 0.7, partner, same_kind)
    base = np.where(rng.random(n) < 0.4, 0.0, rng.uniform(0, 1, n)).astype(np.float32)
    amount = rng.uniform(0.0, 1.0, n).astype(np.float32)
    field = rng.integers(0, 4, n)

    # textures: three noise scales and a grain (wood, bricks, ripples) pattern, all in [0, 1]
    big = max(h, w)
    theta, period = rng.uniform(0, np.pi), rng.uniform(0.02, 0.08) * big
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * (2 * np.pi / period) + 3 * _noise(rng, h, w, 3))
    textures = np.stack(
        [_unit(_noise(rng, h, w, 2, 3), 1.5), _unit(_noise(rng, h, w, 8, 3), 1.5),
         _unit(_noise(rng, h, w, 32, 2), 2.0), 0.5 + 0.5 * grain]
    ).reshape(4, -1)  # fmt: skip
    flat = labels.reshape(-1)
    mix = np.clip(base[flat] + amount[flat] * (textures[field[flat], np.arange(flat.size)] - 0.5) * 2, 0, 1)
    ra = mats.values[mat_a]
    rd = mats.values[mat_b] - ra
    reflectance = ra[flat] + mix[:, None] * rd[flat]  # (1 - mix) A + mix B, convex: stays in [0, 1]
    reflectance = np.clip(reflectance, 0.0, 1.0).reshape(h, w, -1)

    # -- light ------------------------------------------------------------------------------------
    global_shade = 0.55 + 0.45 * _unit(_noise(rng, h, w, 1.5, 2), 1.2)
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.25 * (h * h + w * w))
    vignette = 1.0 - rng.uniform(0.0, 0.3) * r2
    facing = rng.uniform(0.35, 1.0, n).astype(np.float32)  # cos of the angle to the light
    gy, gx = (rng.normal(0, 0.6, n) / big).astype(np.float32), (rng.normal(0, 0.6, n) / big).astype(np.float32)
    ramp = np.clip(facing[labels] * (1 + gx[labels] * (xx - w / 2) + gy[labels] * (yy - h / 2)), 0.1, 1.3)
    fine = 1.0 + rng.uniform(0, 0.25, n).astype(np.float32)[labels] * _noise(rng, h, w, big / 4, 2) * 0.5
    self_shadow = (rng.random(n) < 0.1).astype(np.float32)
    shadow = np.maximum(_soft_shadows(rng, h, w), self_shadow[labels])
    d_factor = global_shade * vignette * ramp * (1.0 - 0.95 * shadow)
    f_factor = fill_level * (0.7 + 0.3 * global_shade) * vignette
    sky = labels == sky_label if sky_label >= 0 else None
    if sky is not None:  # sky light (brighter towards the horizon) and clouds lit by the sun
        glow = rng.uniform(0.2, 0.6) * (0.8 + 0.4 * yy / h)
        clouds = np.clip(_unit(_noise(rng, h, w, 3, 3), 2.0) - 0.35, 0, None) * rng.uniform(0, 1.5)
        d_factor = np.where(sky, clouds * rng.uniform(0.5, 1.0), d_factor)
        f_factor = np.where(sky, glow * (1 - np.minimum(clouds, 1)), f_factor)
        fine = np.where(sky, np.float32(1), fine)
        reflectance[sky] = 1.0  # the sky's radiance is its light: a unit "reflectance" carries it
    e_d, e_f = lights.values[direct], lights.values[fill]
    light = d_factor[..., None] * e_d + f_factor[..., None] * e_f
    radiance = reflectance * light * np.clip(fine, 0.5, 1.5)[..., None]

    # -- specular highlights on glossy regions, coloured like the direct light ---------------------
    gloss = np.where(rng.random(n) < 0.3, rng.uniform(0.3, 1.5, n), 0.0).astype(np.float32)
    if sky_label >= 0:
        gloss[sky_label] = 0.0
    spot = np.clip(_noise(rng, h, w, 6, 2) - 1.8, 0, None) ** 2
    specular = gloss[labels] * spot * global_shade * (1.0 - shadow)
    if specular.any():
        radiance += specular[..., None] * e_d

    # -- optics and ARAD-style normalisation -------------------------------------------------------
    radiance = _blur(radiance.astype(np.float32), float(rng.uniform(0.5, 1.0)))
    peak = float(np.percentile(radiance[::3, ::3], PEAK_PERCENTILE))
    exposure = float(rng.uniform(*EXPOSURE))
    norm_factor = peak / exposure if peak > 0 else 1.0
    data = np.clip(radiance * np.float32(1.0 / norm_factor), FLOOR, 1.0).astype(np.float32)
    meta = {
        "units": "radiance",
        "norm_factor": norm_factor,
        "source": f"hstool synth seed={seed} split={split}",
        "illuminant": lights.names[direct],
        "fill_illuminant": lights.names[fill],
        "split": split,
        "seed": int(seed),
    }
    cube = Cube(data, wl.copy(), meta)
    if not return_parts:
        return cube
    parts = {
        "reflectance": reflectance.astype(np.float32),
        "light": light.astype(np.float32),
        "specular": specular,
        "labels": labels,
        "sky": np.zeros((h, w), bool) if sky is None else sky,
        "mix": mix.reshape(h, w),
        "region_materials": np.stack([mat_a, mat_b], axis=1),
        "radiance": radiance,
        "materials": sorted({mats.names[i] for i in np.concatenate([mat_a, mat_b])}),
        "illuminants": sorted({lights.names[direct], lights.names[fill]}),
    }
    return cube, parts
