"""Start-up cost of the command line: wall time of ``hstool --help``, ``hstool models``,
``hstool info X.mat`` and ``hstool score`` on one pair, median of N runs each, printed against
``python -c pass`` measured in the same run (the floor no command can go under).

Run by hand (not by pytest; the test suite runs it once with ``--repeat 1`` to see that it works):

    python benchmarks/startup.py [--repeat 5] [--json]

Targets on this project's 2-core machine: ``--help`` <= 0.5 s and ``models`` <= 1 s. Every command
runs as a user runs it, in a fresh process (``python -m hstool.cli``, the console script's code), on
a 482x512x31 cube and its copy written to a temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: the targets of issue #31, seconds
TARGETS = {"hstool --help": 0.5, "hstool models": 1.0}


def wall(argv: list[str], repeat: int) -> float:
    """Median wall time of ``repeat`` runs of ``argv`` (each must exit 0)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (the median is reported)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--size", default="482x512", help="HEIGHTxWIDTH of the 31-band cubes info and score read")
    args = parser.parse_args()

    from hstool.hsdata import ARAD_WAVELENGTHS, Cube, write_cube

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        height, width = (int(v) for v in args.size.lower().split("x"))
        data = rng.uniform(0.05, 1.0, (height, width, 31)).astype(np.float32)
        write_cube(Cube(data, ARAD_WAVELENGTHS, {"units": "reflectance"}), tmp / "gt" / "X.mat")
        write_cube(Cube(data * 1.01, ARAD_WAVELENGTHS, {"units": "reflectance"}), tmp / "pred" / "X.mat")
        hstool = [sys.executable, "-m", "hstool.cli"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "hstool --help": [*hstool, "--help"],
            "hstool models": [*hstool, "models"],
            "hstool info X.mat": [*hstool, "info", str(tmp / "gt" / "X.mat")],
            "hstool score (one pair)": [*hstool, "score", str(tmp / "pred" / "X.mat"), str(tmp / "gt" / "X.mat")],
        }
        rows = []
        for name, argv in commands.items():
            seconds = wall(argv, args.repeat)
            rows.append({"command": name, "median_s": seconds, "target_s": TARGETS.get(name)})
    floor = rows[0]["median_s"]
    for r in rows:
        r["over_python_s"] = r["median_s"] - floor
        r["met"] = None if r["target_s"] is None else r["median_s"] <= r["target_s"]
    if args.json:
        print(json.dumps({"repeat": args.repeat, "rows": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"start-up, median of {args.repeat} runs each (seconds)", title_justify="left")
    for column in ("command", "s", "over python -c pass", "target", "met"):
        table.add_column(column)
    for r in rows:
        target = "-" if r["target_s"] is None else f"<= {r['target_s']:g}"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        table.add_row(r["command"], f"{r['median_s']:.3f}", f"{r['over_python_s']:+.3f}", target, met)
    Console().print(table)


if __name__ == "__main__":
    main()
