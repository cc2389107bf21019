"""Images per second of ``hstool simulate`` end to end (read cube, simulate, write file) on
482x512x31 cubes, against a straight-line numpy + OpenCV implementation of the NTIRE 2020
organisers' pipeline measured in the same run, and against the floor (read the cube, one
projection, encode at zlib level 1).

    python benchmarks/simulate.py [--images 3] [--rounds 3]

The straight clean track writes its PNG at zlib level 9 as the organisers' files are; hstool
writes level 1 by default (``png_compression``): identical decoded pixels. Decoded outputs of
hstool and the straight implementation are compared pixel for pixel (same seed, same noise).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from hstool.camera import simulate_to_file, stages, track
from hstool.camera.sensitivity import DATA_DIR
from hstool.hsdata import read_cube, write_cube


def straight_clean(src: Path, dst: Path, css: np.ndarray) -> None:
    """Organisers' clean track, written plainly: cube @ css / 256, clip, x255, floor, PNG (level 9)."""
    cube = read_cube(src).data
    rgb = cube @ css / 256
    img = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    cv2.imwrite(str(dst), img[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])


def straight_realworld(src: Path, dst: Path, css: np.ndarray, seed: int) -> None:
    """Organisers' real-world example, written plainly (targetNpe 5000, darkNoise 10 as std)."""
    rng = np.random.default_rng(seed)
    cube = read_cube(src).data
    rgb = cube @ css
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


def floor(src: Path, dst: Path, css: np.ndarray) -> None:
    """The least any implementation must do: read, one projection (the fastest one hstool has),
    encode (PNG level 1)."""
    cube = read_cube(src).data
    img = stages.project_fast(cube, css)[0].astype(np.uint8)
    cv2.imwrite(str(dst), np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 1])


def timed(fns: dict, items: list, rounds: int) -> dict:
    """Median seconds per image of each function. Calls are interleaved (every function on an
    image before the next image) so that a change of machine load hits all of them alike."""
    times: dict = {name: [] for name in fns}
    for name, fn in fns.items():  # warm-up
        fn(items[0])
    for _ in range(rounds):
        for item in items:
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(item)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    console = Console()
    from hstool.hsdata.synth import generate_scene

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = []
        for i in range(args.images):
            path = tmp / f"ARAD_HS_{i:04d}.mat"
            write_cube(generate_scene(i, (482, 512)), path)
            sources.append(path)
        # the organisers' arrays as np.load returns them (Fortran-ordered, like scipy.io.loadmat)
        clean_css, d40 = (np.load(DATA_DIR / f)["filters"] for f in ("cie_1964_w_gain.npz",
                                                                     "example_D40_camera_w_gain.npz"))
        clean, real = track("clean"), track("realworld")
        out = tmp / "out"
        out.mkdir()

        def ours_clean(src):
            simulate_to_file(read_cube(src), out / f"{src.stem}_clean.png", clean, overwrite=True)

        def ours_real(src):
            simulate_to_file(read_cube(src), out / f"{src.stem}_RealWorld.jpg", real, rng=int(src.stem[-4:]),
                             overwrite=True)

        rows = timed({
            "floor (read + projection + PNG level 1)": lambda s: floor(s, out / "floor.png", clean_css),
            "clean: straight (PNG level 9)": lambda s: straight_clean(s, out / f"{s.stem}_s.png", clean_css),
            "clean: hstool": ours_clean,
            "realworld: straight": lambda s: straight_realworld(s, out / f"{s.stem}_s.jpg", d40, int(s.stem[-4:])),
            "realworld: hstool": ours_real,
        }, sources, args.rounds)
        same = []
        for s in sources:
            for ours, theirs in ((f"{s.stem}_clean.png", f"{s.stem}_s.png"), (f"{s.stem}_RealWorld.jpg",
                                                                               f"{s.stem}_s.jpg")):
                a, b = cv2.imread(str(out / ours)), cv2.imread(str(out / theirs))
                same.append(float(np.mean(a == b)))

    base = {"clean": rows["clean: straight (PNG level 9)"], "realworld": rows["realworld: straight"]}
    table = Table(title=f"simulate, 482x512x31 cubes ({args.images} images x {args.rounds} rounds, median)")
    for col in ("pipeline", "s / image", "images / s", "x straight", "x floor time"):
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    f = rows["floor (read + projection + PNG level 1)"]
    for name, sec in rows.items():
        key = "realworld" if name.startswith("realworld") else "clean"
        speedup = f"{base[key] / sec:.1f}x" if name.startswith(("clean", "realworld")) else ""
        table.add_row(name, f"{sec:.4f}", f"{1 / sec:.1f}", speedup, f"{sec / f:.2f}")
    console.print(table)
    console.print(f"identical decoded pixels, hstool vs straight: min {100 * min(same):.4f}% over "
                  f"{len(same)} images")


if __name__ == "__main__":
    main()
