"""Synthetic scene generation speed on one core.

Run by hand (not by pytest):

    python benchmarks/synth.py [--n 10] [--size 482x512]

Table 1: scenes per second of :func:`hstool.hsdata.synth.generate_scene` at the given size and 31
bands (the first call, which loads the spectral libraries, is timed apart), for both splits;
the issue's target is >= 2 scenes/s at 482x512x31 so that training can generate on the fly.

Table 2: two steps done as ``generate_scene`` does them against a naive baseline measured in the
same run: (a) composing the reflectance cube from region labels, two materials per region and a
mixing field with one gather over all pixels vs a per-region loop (a boolean mask per region), on
inputs taken from generated scenes (the two must agree to float rounding); (b) a smooth random
field (one noise octave) as a small random grid upsampled bicubically vs full-resolution white
noise low-pass filtered (``scipy.ndimage.gaussian_filter``); a scene uses about 20 such fields.
BLAS and OpenCV are held to one thread; times are CPU seconds of this process
(``time.process_time``), so other load on a shared machine does not inflate them.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse
import time

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import ndimage

from hstool.hsdata import ARAD_WAVELENGTHS
from hstool.hsdata.materials import material_library
from hstool.hsdata.synth import generate_scene


def compose_vectorised(labels, pairs, mix, values):
    flat = labels.reshape(-1)
    a = values[pairs[:, 0]]
    d = values[pairs[:, 1]] - a
    r = a[flat] + mix.reshape(-1, 1) * d[flat]
    return np.clip(r, 0, 1).reshape(*labels.shape, -1)


def compose_per_region(labels, pairs, mix, values):
    out = np.empty((*labels.shape, values.shape[1]), np.float32)
    for region in np.unique(labels):
        mask = labels == region
        m = mix[mask][:, None]
        out[mask] = np.clip((1 - m) * values[pairs[region, 0]] + m * values[pairs[region, 1]], 0, 1)
    return out


def smooth_upsampled(h, w, cells):
    """One octave of generate_scene's noise: a random grid of ~cells per side, bicubic upsampling."""
    grid = np.random.default_rng(0).standard_normal((cells + 2, cells + 2)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def smooth_full_res(h, w, cells):
    """The same bandwidth the naive way: full-resolution white noise, Gaussian low-pass filter."""
    noise = np.random.default_rng(0).standard_normal((h, w)).astype(np.float32)
    return ndimage.gaussian_filter(noise, sigma=max(h, w) / cells / 2)


def best(fn, *args, repeat: int = 3):
    return min((timed(fn, *args) for _ in range(repeat)), key=lambda x: x[0])


def timed(fn, *args):
    """CPU seconds of one call (this process, one thread): robust to other load on a shared machine."""
    t0 = time.process_time()
    result = fn(*args)
    return time.process_time() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10, help="scenes per split")
    parser.add_argument("--size", default="482x512", help="HEIGHTxWIDTH")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    h, w = (int(v) for v in args.size.split("x"))
    console = Console()

    t_first, _ = timed(generate_scene, 10_000, (h, w))
    table = Table(title=f"generate_scene, {h}x{w}x31, one core (first call incl. library load: {t_first:.2f} s)")
    for col in ("split", "scenes", "mean s/scene", "max s", "scenes/s", "target >= 2/s"):
        table.add_column(col)
    for split in ("train", "test"):
        generate_scene(0, (h, w), split=split)  # warm the split's library
        times = [timed(generate_scene, seed, (h, w), ARAD_WAVELENGTHS, split)[0] for seed in range(args.n)]
        rate = 1 / np.mean(times)
        table.add_row(split, str(args.n), f"{np.mean(times):.3f}", f"{max(times):.3f}", f"{rate:.2f}",
                      "yes" if rate >= 2 else "NO")  # fmt: skip
    console.print(table)

    table = Table(title="steps as generate_scene does them vs a naive baseline (same run). Reflectance: "
                  "one gather vs a per-region loop; smooth field: upsampled grid vs full-res Gaussian filter")
    for col in ("step", "scene", "generate_scene s", "baseline s", "speed-up", "max |diff|"):
        table.add_column(col)
    values = material_library(ARAD_WAVELENGTHS, "train").values
    for seed in range(3):
        _, parts = generate_scene(seed, (h, w), return_parts=True)
        inputs = (parts["labels"], parts["region_materials"], parts["mix"], values)
        t_vec, r_vec = best(compose_vectorised, *inputs)
        t_loop, r_loop = best(compose_per_region, *inputs)
        diff = float(np.abs(r_vec - r_loop).max())
        ground = ~parts["sky"]  # the sky's unit "reflectance" is set apart from the materials
        assert diff < 1e-5 and np.allclose(r_vec[ground], parts["reflectance"][ground], atol=1e-6)
        table.add_row(f"reflectance, {len(np.unique(parts['labels']))} regions",
                      str(seed), f"{t_vec:.4f}", f"{t_loop:.4f}", f"{t_loop / t_vec:.1f}x", f"{diff:.1e}")  # fmt: skip
    for cells in (2, 8, 32):
        t_up, _ = best(smooth_upsampled, h, w, cells)
        t_full, _ = best(smooth_full_res, h, w, cells)
        table.add_row(f"smooth field, {cells} cells", "-",
                      f"{t_up:.4f}", f"{t_full:.4f}", f"{t_full / t_up:.1f}x", "-")  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
