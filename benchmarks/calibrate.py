"""Throughput and memory of ``calibrate`` on one full-size synthetic Specim IQ capture.

    python benchmarks/calibrate.py                 # 512 x 512 x 204, one core
    python benchmarks/calibrate.py --samples 128 --lines 128 --repeat 3

Measured in the same run, on the same (page-cached) raw file:

- ``raw read``: ``np.fromfile`` of the scene's bytes: the floor any calibration pays.
- ``numpy, straight``: the textbook formula on the whole cube in float32,
  ``((raw - dark) / (white - dark))[:, keep] @ M`` plus the rotation: the baseline to beat.
- ``hstool calibrate``: reflectance, default drop (512 -> 482), 31 bands, the challenge recipe.
- ``hstool calibrate, 204 bands``: the same without resampling.

Each case runs in its own child process (imports, then ``--repeat`` calls). Speeds are
captures/s and MB/s of raw bytes; ``x raw read`` is the speed relative to reading (target >= 0.8);
peak RSS is the child process's peak resident memory (``VmHWM``, ``benchmarks/peak.py``: interpreter,
libraries, arrays and the file pages it mapped), also as a multiple of one raw cube, and the
same above the child's resident memory once it has imported everything (the case's own share).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # "on one core": set before NumPy loads its BLAS

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from peak import own_peak_mb  # benchmarks/peak.py, beside this script

from hstool.camera.calibration import calibrate, challenge_columns
from hstool.cli.output import err, print_json, table
from hstool.hsdata import ARAD_WAVELENGTHS
from hstool.hsdata.specim_synthetic import write_synthetic_capture
from hstool.hsdata.spectral import resampling_matrix
from recon import child_process  # benchmarks/recon.py, beside this script


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


CASES = {
    "raw read (np.fromfile)": lambda path, a, wl: np.fromfile(path / "capture" / "bench.raw", dtype="<u2"),
    "numpy, straight (float32, whole cube)": lambda path, a, wl: straight_numpy(
        path, "bench", a.lines, a.samples, wl.size, wl),
    "hstool calibrate (reflectance, 31 bands)": lambda path, a, wl: calibrate(path),
    "hstool calibrate (reflectance, 204 bands)": lambda path, a, wl: calibrate(path, bands=None),
}


def child(args) -> None:
    """One case in this (child) process: best of ``--repeat`` calls, and the RSS before the first."""
    path = Path(args.child_folder)
    wl = np.array(json.loads((path / "wavelengths.json").read_text()))
    fn = CASES[args.child]
    base = own_peak_mb()
    seconds, result = timed(lambda: fn(path, args, wl), args.repeat)
    print(json.dumps({"seconds": seconds, "base_mb": base, "shape": list(getattr(result, "shape", []))}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--lines", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(prefix="hstool-bench-") as tmp:
        t0 = time.perf_counter()
        sc = write_synthetic_capture(tmp, "bench", 0, samples=args.samples, lines=args.lines, ref_lines=20)
        gen_s = time.perf_counter() - t0
        wl = sc.reflectance.wavelengths
        del sc.reflectance  # free the ground truth before measuring memory
        raw_path = sc.path / "capture" / "bench.raw"
        raw_bytes = raw_path.stat().st_size
        np.fromfile(raw_path, dtype="<u2")  # warm the page cache
        (sc.path / "wavelengths.json").write_text(json.dumps(wl.tolist()))
        rows, report = [], []
        base = None
        for label in CASES:
            r = child_process(["python", __file__, "--child", label, "--child-folder", sc.path, "--repeat",
                               args.repeat, "--lines", args.lines, "--samples", args.samples])
            if r["returncode"] != 0:
                raise SystemExit(f"{label}: {r['stderr'].strip().splitlines()[-1]}")
            got = json.loads(r["stdout"].strip().splitlines()[-1])
            seconds, peak = got["seconds"], r["peak_rss_mb"] * 2**20
            base = seconds if base is None else base
            entry = {
                "case": label,
                "seconds": seconds,
                "captures_per_s": 1 / seconds,
                "mb_per_s": raw_bytes / seconds / 1e6,
                "x_raw_read": base / seconds,
                "peak_rss_mb": peak / 2**20,
                "peak_x_raw": peak / raw_bytes,
                "above_imports_mb": peak / 2**20 - got["base_mb"],
                "shape": got["shape"],
            }
            report.append(entry)
            rows.append([label, seconds, entry["captures_per_s"], entry["mb_per_s"], entry["x_raw_read"],
                         entry["peak_rss_mb"], entry["peak_x_raw"], entry["above_imports_mb"]])
    if args.json:
        print_json({"raw_bytes": raw_bytes, "generate_s": gen_s, "threads": os.environ["OMP_NUM_THREADS"],
                    "load_average": os.getloadavg()[0], "results": report})
        return
    err.print(f"capture {args.lines} lines x {args.samples} samples x {wl.size} bands, raw {raw_bytes / 1e6:.1f} MB "
              f"(generated in {gen_s:.1f} s); best of {args.repeat}; BLAS threads {os.environ['OMP_NUM_THREADS']}")
    err.print(table("calibrate throughput (each case a child process)", ["case", "s", "captures/s", "MB/s",
                    "x raw read", "peak RSS MB", "peak RSS / raw cube", "RSS above imports MB"], rows))
    err.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
