"""The NTIRE 2020 organisers' generation steps written plainly (numpy, h5py, OpenCV; no hstool
import, so that a process running it starts as theirs does): the baseline of ``simulate.py``.

    python benchmarks/organisers.py clean|realworld LEVEL CSS.npz OUT CUBE...

writes OUT/STEM_clean.png (PNG at zlib LEVEL; the organisers' files are level 9) or
OUT/STEM_RealWorld.jpg for each cube (.mat v7.3 through h5py, or .npy).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np


def read(src: Path) -> np.ndarray:
    """(H, W, 31) float32: ``np.load`` of a .npy, or h5py's ``cube`` of an ARAD .mat transposed
    (a view: the organisers' ``cube @ css`` runs on it as MATLAB's layout gives it)."""
    if Path(src).suffix == ".npy":
        return np.load(src)
    import h5py

    with h5py.File(src, "r") as f:
        return f["cube"][()].T


def clean(src: Path, dst: Path, css: np.ndarray, level: int = 9) -> None:
    """Clean track: cube @ css / 256, clip, x255, floor, PNG at zlib ``level``."""
    rgb = read(src) @ css / 256
    img = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    cv2.imwrite(str(dst), img[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, level])


def realworld(src: Path, dst: Path, css: np.ndarray, seed: int) -> None:
    """Real-world example (targetNpe 5000, darkNoise 10 as std), JPEG q80 4:2:0."""
    rng = np.random.default_rng(seed)
    rgb = read(src) @ css
    mosaic = np.zeros(rgb.shape[:2])
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]
    green = np.zeros(mosaic.shape, bool)
    green[0::2, 1::2] = green[1::2, 0::2] = True
    npe = 5000 / mosaic[green].mean()
    noisy = rng.poisson(mosaic * npe).astype(np.float64) + rng.normal(0, 10.0, mosaic.shape)
    raw = np.clip(np.round(noisy / npe), 0, 65535).astype(np.uint16)
    out = cv2.cvtColor(raw, cv2.COLOR_BayerBG2BGR_EA)[..., ::-1] / 65535
    img = (np.clip(out, 0, 1) * 255).astype(np.uint8)
    cv2.imwrite(str(dst), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                           cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])


def main(argv: list[str]) -> None:
    if "OMP_NUM_THREADS" in os.environ:  # simulate.py's one thread
        cv2.setNumThreads(int(os.environ["OMP_NUM_THREADS"]))
    track, level, css_file, out, *cubes = argv
    css = np.load(css_file)["filters"]
    for src in map(Path, cubes):
        if track == "clean":
            clean(src, Path(out) / f"{src.stem}_clean.png", css, int(level))
        else:
            realworld(src, Path(out) / f"{src.stem}_RealWorld.jpg", css, int(src.stem[-4:]))


if __name__ == "__main__":
    main(sys.argv[1:])
