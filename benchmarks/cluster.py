"""Throughput of batches on a Dask cluster (``--cluster local:N``) against the local process pool
(``-j N``): ``hstool simulate`` (clean track) and ``hstool recon`` (rootpoly, mstpp_s) on synthetic
482x512x31 scenes, each command timed end to end as a user runs it (start-up, and the cluster's
start, included), and the per-task overhead of the cluster path against ``-j`` with as many workers.

    python benchmarks/cluster.py [--files 40] [--modes "-j 1,-j 2,--cluster local:1,--cluster local:2"]

Every mode's outputs are compared byte for byte with the first mode's. Target: ``--cluster local:2``
within 10 % of ``-j 2`` on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hstool.hsdata import write_cube
from hstool.hsdata.synth import generate_scene

HSTOOL = [sys.executable, "-m", "hstool.cli"]
MODES = "-j 1,-j 2,--cluster local:1,--cluster local:2"


def compare(a: tuple[Path, dict], b: tuple[Path, dict]) -> str:
    """'identical', or how far apart two runs' outputs are: their largest cube difference (a worker
    on one thread rounds a deep model's matrix products differently from a process on two)."""
    (out_a, files_a), (out_b, files_b) = a, b
    if files_a == files_b:
        return "identical"
    if files_a.keys() != files_b.keys():
        return "other files"
    from hstool.hsdata import read_cube

    worst = 0.0
    for name in files_a:
        if files_a[name] != files_b[name] and name.endswith(".mat"):
            worst = max(worst, float(abs(read_cube(out_a / name).data - read_cube(out_b / name).data).max()))
    return f"max |diff| {worst:.1e}"


def run(args: list[str], cwd: Path) -> float:
    """Seconds of one hstool command (it must succeed)."""
    t0 = time.perf_counter()
    done = subprocess.run([*HSTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, "HSTOOL_CLUSTER": ""})
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"hstool {shlex.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--modes", default=MODES, help="comma list of how to run each batch")
    ap.add_argument("--models", default="rootpoly,mstpp_s")
    opts = ap.parse_args()
    modes = [m.strip() for m in opts.modes.split(",")]
    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="hstool-cluster-bench-") as tmp:
        root = Path(tmp)
        cubes = root / "cubes"
        cubes.mkdir()
        for i in range(opts.files):
            write_cube(generate_scene(i), cubes / f"ARAD_HS_{i + 1:04d}.mat")
        # a clean-track image set for recon, written once
        run(["simulate", str(cubes), str(root / "rgb"), "-t", "clean", "-j", "2"], root)
        batches = {"simulate clean": lambda out: ["simulate", str(cubes), str(out), "-t", "clean"]}
        for model in opts.models.split(","):
            batches[f"recon {model}"] = lambda out, m=model: ["recon", str(root / "rgb"), "-m", m, "-o", str(out)]
        seconds: dict[tuple[str, str], float] = {}
        same: dict[tuple[str, str], str] = {}
        for batch, command in batches.items():
            reference, out, ref = None, root / "out", root / "ref"
            for mode in modes:
                seconds[batch, mode] = run([*command(out), *mode.split()], root)
                if reference is None:  # kept aside: every mode writes into the same folder
                    out.rename(ref)
                    reference = (ref, files(ref))
                    continue
                same[batch, mode] = compare(reference, (out, files(out)))
                subprocess.run(["rm", "-rf", str(out)], check=True)
            subprocess.run(["rm", "-rf", str(ref)], check=True)
            console.print(f"{batch}: {', '.join(f'{m} {seconds[batch, m]:.1f} s' for m in modes)}")
    table = Table(title=f"{opts.files} files per batch, wall seconds end to end (files/s); outputs against "
                  f"{modes[0]}'s", title_justify="left")
    table.add_column("batch")
    for mode in modes:
        table.add_column(mode, justify="right")
    pairs = [(m, m.replace("--cluster local:", "-j ")) for m in modes if m.startswith("--cluster local:")]
    pairs = [(c, j) for c, j in pairs if j in modes]
    for c, j in pairs:
        table.add_column(f"{c} / {j}", justify="right")
        table.add_column("overhead ms/file", justify="right")
    table.add_column(f"outputs vs {modes[0]}")
    for batch in batches:
        row = [batch] + [f"{seconds[batch, m]:.1f} ({opts.files / seconds[batch, m]:.2f})" for m in modes]
        for c, j in pairs:
            row += [f"{seconds[batch, c] / seconds[batch, j]:.2f}",
                    f"{1000 * (seconds[batch, c] - seconds[batch, j]) / opts.files:+.0f}"]
        row.append("; ".join(f"{m}: {same[batch, m]}" for m in modes[1:]))
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
