"""``-j 2`` against ``-j 1``: ``hstool simulate``, ``calibrate``, ``convert`` and ``recon --model
rootpoly`` on FILES inputs of 482x512, each command a child process (wall time, peak RSS).

    python benchmarks/workers.py [--files 20] [--rounds 3] [--size 482x512]

Rounds are interleaved (every command at -j 1 and -j 2 before the next round) and the minimum of
each is kept, so that other load on the machine hits both alike. "batch" is the time of the run's
own files: the command's wall time less that of the same command on one file at -j 1 (start-up,
imports, model loading, planning): what the workers share. ``-j 2`` writes the same bytes as
``-j 1`` (``tests/test_workers.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from recon import child_process  # benchmarks/recon.py, beside this script

HSTOOL = ["python", "-m", "hstool.cli"]


def inputs(folder: Path, files: int, size: str) -> dict[str, Path]:
    """Cubes (ARAD-style .mat), their clean PNGs and Specim IQ captures, written once."""
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    h, w = (int(v) for v in size.split("x"))
    cubes, rgb, raw = folder / "cubes", folder / "rgb", folder / "raw"
    for cmd in (["synth", cubes, "--n", files, "--size", size, "-j", "2"], ["simulate", cubes, rgb, "-j", "2"]):
        r = child_process([*HSTOOL, *map(str, cmd)])
        assert r["returncode"] == 0, r["stderr"][-500:]
    for i in range(files):  # a capture's detector is 512 wide; calibrate drops 30 columns: 482
        write_synthetic_capture(raw, f"cap{i:02d}", i, samples=w + 30, lines=h, ref_lines=20)
    one = folder / "one"
    for kind, src in (("cubes", cubes), ("rgb", rgb), ("raw", raw)):
        first = min(src.iterdir())
        (one / kind).mkdir(parents=True)
        (shutil.copytree if first.is_dir() else shutil.copy)(first, one / kind / first.name)
    return {"cubes": cubes, "rgb": rgb, "raw": raw, "one": one}


def commands(data: dict[str, Path], out: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (command line on every file, the same on one file), OUT for the output folder."""
    one = data["one"]
    return {
        "simulate (clean)": (["simulate", data["cubes"], "OUT"], ["simulate", one / "cubes", "OUT"]),
        "calibrate": (["calibrate", data["raw"], "OUT"], ["calibrate", one / "raw", "OUT"]),
        "convert (mat -> envi)": (["convert", data["cubes"], "OUT", "-f", "envi"],
                                  ["convert", one / "cubes", "OUT", "-f", "envi"]),
        "recon --model rootpoly": (["recon", data["rgb"], "-m", "rootpoly", "-o", "OUT"],
                                   ["recon", one / "rgb", "-m", "rootpoly", "-o", "OUT"]),
    }


def run(cmd: list, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = child_process([*HSTOOL, *[str(out) if a == "OUT" else str(a) for a in cmd], "-j", str(workers)])
    assert r["returncode"] == 0, r["stderr"][-500:]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", default="482x512")
    args = ap.parse_args()
    console = Console(width=150)
    with tempfile.TemporaryDirectory(prefix="hstool-workers-") as tmp:
        tmp = Path(tmp)
        data = inputs(tmp, args.files, args.size)
        best: dict[tuple[str, str], dict] = {}
        for _ in range(args.rounds):
            for name, (every, one) in commands(data, tmp / "out").items():
                for key, cmd, j in (("1 file", one, 1), ("-j 1", every, 1), ("-j 2", every, 2)):
                    r = run(cmd, tmp / "out", j)
                    old = best.get((name, key))
                    if old is None or r["seconds"] < old["seconds"]:
                        best[(name, key)] = r
                    best[(name, key)]["peak_rss_mb"] = max(r["peak_rss_mb"], best[(name, key)]["peak_rss_mb"])
    cores = len(os.sched_getaffinity(0))
    table = Table(title=f"-j 2 against -j 1, {args.files} files of {args.size}, {cores} cores, "
                        f"min of {args.rounds} interleaved rounds; load average at the end "
                        f"{os.getloadavg()[0]:.1f}")
    for col in ("command", "start-up s", "-j 1 s", "-j 2 s", "× (command)", "-j 1 batch s", "-j 2 batch s",
                "× (batch)", "peak RSS MB -j 1", "-j 2 (largest process)"):
        table.add_column(col, justify="left" if col == "command" else "right")
    for name in commands(data, tmp):
        start, j1, j2 = (best[(name, k)] for k in ("1 file", "-j 1", "-j 2"))
        per_file = (j1["seconds"] - start["seconds"]) / max(1, args.files - 1)
        startup = max(0.0, start["seconds"] - per_file)  # the one-file run less its file
        b1, b2 = j1["seconds"] - startup, j2["seconds"] - startup
        table.add_row(name, f"{startup:.2f}", f"{j1['seconds']:.2f}", f"{j2['seconds']:.2f}",
                      f"{j1['seconds'] / j2['seconds']:.2f}", f"{b1:.2f}", f"{b2:.2f}", f"{b1 / b2:.2f}",
                      f"{j1['peak_rss_mb']:.0f}", f"{j2['peak_rss_mb']:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
