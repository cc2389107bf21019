"""``hstool simulate`` against the NTIRE 2020 organisers' generation steps written plainly
(``benchmarks/organisers.py``: numpy, h5py, OpenCV), at equal settings, on 482x512x31 cubes read
from ARAD-style .mat (v7.3, band-major) and from .npy (pixel-major).

    python benchmarks/simulate.py [--images 3] [--rounds 3] [--size 482x512]

- In-process: seconds per image (read, simulate, write) of each, interleaved (every case on an
  image before the next image), minimum over rounds. The clean track at PNG level 9 (the
  organisers' files) and at level 1 (each against the other at the same level), and the
  real-world track. PNG sizes are the mean bytes per image; decoded clean pixels are compared.
- As a process: one process over all images (``python organisers.py ...`` against
  ``hstool simulate``), start-up included, minimum over rounds, with the process's peak RSS.

Everything runs on one thread (BLAS, OpenMP and OpenCV, children included): the organisers'
``cube @ css`` on a transposed view does not use BLAS threads, and threads that wait on one
another under other load would make the comparison one of the machine's load.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy loads its BLAS; children inherit it

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import organisers  # benchmarks/organisers.py, beside this script
from rich.console import Console
from rich.table import Table

from hstool.camera import simulate_to_file, track
from hstool.camera.sensitivity import DATA_DIR
from hstool.hsdata import read_cube, write_cube
from recon import child_process  # benchmarks/recon.py, beside this script

cv2.setNumThreads(1)
CSS = {"clean": DATA_DIR / "cie_1964_w_gain.npz", "realworld": DATA_DIR / "example_D40_camera_w_gain.npz"}


def timed(fns: dict, items: list, rounds: int) -> dict:
    """Seconds per image of each function: (minimum, median). Calls are interleaved (every
    function on an image before the next image) so that a change of machine load hits all alike."""
    times: dict = {name: [] for name in fns}
    for name, fn in fns.items():  # warm-up
        fn(items[0])
    for _ in range(rounds):
        for item in items:
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(item)
                times[name].append(time.perf_counter() - t0)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def in_process(sources: dict[str, list[Path]], out: Path, rounds: int) -> tuple[list, float]:
    clean_css, d40 = (np.load(CSS[k])["filters"] for k in ("clean", "realworld"))
    pipes = {"clean L9": track("clean"), "clean L1": track("clean", png_compression=1), "realworld": track("realworld")}

    def ours(name, ext):
        return lambda s: simulate_to_file(read_cube(s), out / f"{s.stem}_{s.suffix[1:]}_{name[-2:]}_h{ext}",
                                          pipes[name], rng=int(s.stem[-4:]), overwrite=True)

    def theirs(name, ext):
        if name == "realworld":
            return lambda s: organisers.realworld(s, out / f"{s.stem}_{s.suffix[1:]}_{name[-2:]}_o{ext}", d40,
                                                  int(s.stem[-4:]))
        return lambda s: organisers.clean(s, out / f"{s.stem}_{s.suffix[1:]}_{name[-2:]}_o{ext}", clean_css,
                                          int(name[-1]))

    rows, same = [], []
    for kind, files in sources.items():
        fns = {}
        for name in pipes:
            ext = ".jpg" if name == "realworld" else ".png"
            fns[(name, "organisers")], fns[(name, "hstool")] = theirs(name, ext), ours(name, ext)
        got = timed(fns, files, rounds)
        for name in pipes:
            ext = ".jpg" if name == "realworld" else ".png"
            size = {who: np.mean([(out / f"{s.stem}_{kind}_{name[-2:]}_{who[0]}{ext}").stat().st_size
                                  for s in files]) for who in ("organisers", "hstool")}
            if name != "realworld":
                for s in files:
                    a, b = (cv2.imread(str(out / f"{s.stem}_{kind}_{name[-2:]}_{w}.png")) for w in "oh")
                    same.append(float(np.mean(a == b)))
            rows.append((name, kind, got[(name, "organisers")], got[(name, "hstool")], size))
    return rows, min(same)


def as_process(sources: dict[str, list[Path]], out: Path, rounds: int) -> list:
    here = Path(__file__).parent
    best: dict = {}
    for _ in range(rounds):
        for kind, files in sources.items():
            for name, level in (("clean", "9"), ("realworld", "0")):
                cmds = {"organisers": ["python", here / "organisers.py", name, level, CSS[name], out, *files],
                        "hstool": ["python", "-m", "hstool.cli", "simulate", *files, out, "-t", name, "--overwrite"]}
                for who, cmd in cmds.items():
                    r = child_process(cmd)
                    assert r["returncode"] == 0, r["stderr"][-400:]
                    key = (name, kind, who)
                    if key not in best or r["seconds"] < best[key]["seconds"]:
                        best[key] = r
    return [(name, kind, best[(name, kind, "organisers")], best[(name, kind, "hstool")])
            for kind in sources for name in ("clean", "realworld")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", default="482x512")
    args = ap.parse_args()
    console = Console(width=160)
    from hstool.hsdata.synth import generate_scene

    shape = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources: dict[str, list[Path]] = {"mat": [], "npy": []}
        for i in range(args.images):
            cube = generate_scene(i, shape)
            for kind, paths in sources.items():
                path = tmp / kind / f"ARAD_HS_{i:04d}.{kind}"
                path.parent.mkdir(exist_ok=True)
                write_cube(cube, path)
                paths.append(path)
        (tmp / "out").mkdir()
        (tmp / "proc").mkdir()
        rows, same = in_process(sources, tmp / "out", args.rounds)
        procs = as_process(sources, tmp / "proc", args.rounds)

    load = f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f} at the end"
    table = Table(title=f"simulate in-process, {args.size} cubes, s per image, min (median) of {args.images} images x "
                        f"{args.rounds} rounds; {load}")
    for col in ("track", "input", "organisers s", "hstool s", "× organisers (min)", "× (median)", "file bytes organisers",
                "hstool", "hstool / organisers bytes"):
        table.add_column(col, justify="left" if col in ("track", "input") else "right")
    for name, kind, (org_min, org_med), (hs_min, hs_med), size in rows:
        table.add_row(name, kind, f"{org_min:.3f} ({org_med:.3f})", f"{hs_min:.3f} ({hs_med:.3f})",
                      f"{org_min / hs_min:.2f}", f"{org_med / hs_med:.2f}", f"{size['organisers']:,.0f}", f"{size['hstool']:,.0f}",
                      f"{size['hstool'] / size['organisers']:.3f}")
    console.print(table)
    console.print(f"identical decoded clean pixels, hstool vs organisers: min {100 * same:.4f}% over the images")
    table = Table(title=f"simulate as one process over {args.images} images (start-up included), min of {args.rounds}")
    for col in ("track", "input", "organisers s", "hstool s", "× organisers", "peak RSS MB organisers", "hstool"):
        table.add_column(col, justify="left" if col in ("track", "input") else "right")
    for name, kind, theirs, ours in procs:
        table.add_row(name, kind, f"{theirs['seconds']:.2f}", f"{ours['seconds']:.2f}",
                      f"{theirs['seconds'] / ours['seconds']:.2f}", f"{theirs['peak_rss_mb']:.0f}",
                      f"{ours['peak_rss_mb']:.0f}")
    console.print(table)
    console.print("× organisers: the organisers' time over hstool's (above 1: hstool is faster)")


if __name__ == "__main__":
    main()
