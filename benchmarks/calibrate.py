"""Throughput and memory of ``calibrate`` on one full-size synthetic Specim IQ capture.

    python benchmarks/calibrate.py                 # 512 x 512 x 204, one core
    python benchmarks/calibrate.py --samples 128 --lines 128 --repeat 3

Measured in the same run, on the same (page-cached) raw file:

- ``raw read``: ``np.fromfile`` of the scene's bytes: the floor any calibration pays.
- ``numpy, straight``: the textbook formula on the whole cube in float32,
  ``((raw - dark) / (white - dark))[:, keep] @ M`` plus the rotation: the baseline to beat.
- ``hstool calibrate``: reflectance, default drop (512 -> 482), 31 bands, the challenge recipe.
- ``hstool calibrate, 204 bands``: the same without resampling.

Speeds are captures/s and MB/s of raw bytes; ``x raw read`` is the speed relative to reading
(target >= 0.8); peak memory is the largest Python/NumPy heap in use during one call
(``tracemalloc``; memory-mapped file pages are page cache, not heap), also as a multiple of one
raw cube (target < 3).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # "on one core": set before NumPy loads its BLAS

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from hstool.camera.calibration import calibrate, challenge_columns
from hstool.cli.output import err, print_json, table
from hstool.hsdata import ARAD_WAVELENGTHS
from hstool.hsdata.specim_synthetic import write_synthetic_capture
from hstool.hsdata.spectral import resampling_matrix


def straight_numpy(folder: Path, name: str, lines: int, samples: int, bands: int, wl: np.ndarray) -> np.ndarray:
    """The formula written plainly over the whole cube (float32), for comparison."""
    cap = folder / "capture"
    raw = np.fromfile(cap / f"{name}.raw", dtype="<u2").reshape(lines, bands, samples).transpose(0, 2, 1)
    dark = np.fromfile(cap / f"DARKREF_{name}.raw", dtype="<u2").reshape(-1, bands, samples).mean(axis=0).T
    white = np.fromfile(cap / f"WHITEREF_{name}.raw", dtype="<u2").reshape(-1, bands, samples).mean(axis=0).T
    refl = (raw.astype(np.float32) - dark.astype(np.float32)) / (white - dark).astype(np.float32)
    keep = np.setdiff1d(np.arange(samples), challenge_columns(samples))
    m = resampling_matrix(wl, ARAD_WAVELENGTHS).astype(np.float32)
    return np.ascontiguousarray(np.rot90(refl[:, keep] @ m, 3))


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak_heap(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--lines", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hstool-bench-") as tmp:
        t0 = time.perf_counter()
        sc = write_synthetic_capture(tmp, "bench", 0, samples=args.samples, lines=args.lines, ref_lines=20)
        gen_s = time.perf_counter() - t0
        wl = sc.reflectance.wavelengths
        del sc.reflectance  # free the ground truth before measuring memory
        raw_path = sc.path / "capture" / "bench.raw"
        raw_bytes = raw_path.stat().st_size
        np.fromfile(raw_path, dtype="<u2")  # warm the page cache
        cases = {
            "raw read (np.fromfile)": lambda: np.fromfile(raw_path, dtype="<u2"),
            "numpy, straight (float32, whole cube)": lambda: straight_numpy(
                sc.path, "bench", args.lines, args.samples, wl.size, wl
            ),
            "hstool calibrate (reflectance, 31 bands)": lambda: calibrate(sc.path),
            "hstool calibrate (reflectance, 204 bands)": lambda: calibrate(sc.path, bands=None),
        }
        rows, report = [], []
        base = None
        for label, fn in cases.items():
            seconds, result = timed(fn, args.repeat)
            shape = getattr(result, "shape", None)
            del result
            peak = peak_heap(fn)
            base = seconds if base is None else base
            entry = {
                "case": label,
                "seconds": seconds,
                "captures_per_s": 1 / seconds,
                "mb_per_s": raw_bytes / seconds / 1e6,
                "x_raw_read": base / seconds,
                "peak_heap_mb": peak / 1e6,
                "peak_x_raw": peak / raw_bytes,
                "shape": list(shape) if shape is not None else None,
            }
            report.append(entry)
            rows.append([label, seconds, entry["captures_per_s"], entry["mb_per_s"], entry["x_raw_read"],
                         entry["peak_heap_mb"], entry["peak_x_raw"]])
    if args.json:
        print_json({"raw_bytes": raw_bytes, "generate_s": gen_s, "threads": os.environ["OMP_NUM_THREADS"],
                    "results": report})
        return
    err.print(f"capture {args.lines} lines x {args.samples} samples x {wl.size} bands, raw {raw_bytes / 1e6:.1f} MB "
              f"(generated in {gen_s:.1f} s); best of {args.repeat}; BLAS threads {os.environ['OMP_NUM_THREADS']}")
    err.print(table("calibrate throughput", ["case", "s", "captures/s", "MB/s", "x raw read", "peak heap MB",
                                             "peak / raw cube"], rows))


if __name__ == "__main__":
    main()
