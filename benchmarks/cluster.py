"""Throughput of batches on a Dask cluster (``--cluster local:N``) against the local process pool
(``-j N``): ``hstool simulate`` (clean track) and ``hstool recon`` (rootpoly, mstpp_s) on synthetic
482x512x31 scenes, each command timed end to end as a user runs it (start-up, and the cluster's
start, included), and the per-task overhead of the cluster path against ``-j`` with as many workers.

    python benchmarks/cluster.py [--files 40] [--rounds 2] [--modes "-j 1,-j 2,--cluster local:1,--cluster local:2"]

Rounds are interleaved (every mode once before the next round) and the minimum of each is kept;
the written files are flushed to disk (``sync``) before each command, so that one mode's writeback
does not slow the next.

Each mode also runs the same command on one file: its start-up (imports, the model, the workers'
start); the batch's own time is the end-to-end time less that, what throughput the workers give.
Every mode's outputs are compared byte for byte with those of ``-j N`` for ``--cluster local:N`` (the
same threads per worker), else with the first mode's. Target: ``--cluster local:2`` within 10 % of
``-j 2`` on a 2-core machine.
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
    os.sync()
    t0 = time.perf_counter()
    done = subprocess.run([*HSTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, "HSTOOL_CLUSTER": ""})
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"hstool {shlex.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def counterpart(mode: str, modes: list[str]) -> str:
    """The mode whose outputs ``mode``'s should equal: ``-j N`` for ``--cluster local:N``, else the first."""
    j = mode.replace("--cluster local:", "-j ")
    return j if j != mode and j in modes else modes[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--modes", default=MODES, help="comma list of how to run each batch")
    ap.add_argument("--models", default="rootpoly,mstpp_s")
    ap.add_argument("--rounds", type=int, default=2)
    opts = ap.parse_args()
    modes = [m.strip() for m in opts.modes.split(",")]
    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="hstool-cluster-bench-") as tmp:
        root = Path(tmp)
        cubes, one = root / "cubes", root / "one"
        cubes.mkdir()
        for i in range(opts.files):
            write_cube(generate_scene(i), cubes / f"ARAD_HS_{i + 1:04d}.mat")
        # a clean-track image set for recon, written once; and one file of each, for the start-up
        run(["simulate", str(cubes), str(root / "rgb"), "-t", "clean", "-j", "2"], root)
        for kind in ("cubes", "rgb"):
            (one / kind).mkdir(parents=True)
            first = min((root / kind).iterdir())
            (one / kind / first.name).write_bytes(first.read_bytes())
        batches = {"simulate clean": lambda src, out: ["simulate", str(src / "cubes"), str(out), "-t", "clean"]}
        for model in opts.models.split(","):
            batches[f"recon {model}"] = lambda src, out, m=model: ["recon", str(src / "rgb"), "-m", m, "-o", str(out)]
        seconds: dict[tuple[str, str, int], float] = {}  # (batch, mode, files)
        same: dict[tuple[str, str], str] = {}
        for batch, command in batches.items():
            outs = {mode: root / f"out{i}" for i, mode in enumerate(modes)}
            for _ in range(opts.rounds):
                for mode in modes:
                    for src, n in ((one, 1), (root, opts.files)):
                        subprocess.run(["rm", "-rf", str(outs[mode])], check=True)
                        took = run([*command(src, outs[mode]), *mode.split()], root)
                        seconds[batch, mode, n] = min(took, seconds.get((batch, mode, n), took))
            for mode in modes[1:]:
                other = counterpart(mode, modes)
                same[batch, mode] = f"{other}: " + compare((outs[other], files(outs[other])),
                                                           (outs[mode], files(outs[mode])))
            subprocess.run(["rm", "-rf", *map(str, outs.values())], check=True)
            console.print(f"{batch}: {', '.join(f'{m} {seconds[batch, m, opts.files]:.1f} s' for m in modes)}")
    n = opts.files
    table = Table(title=f"{n} files per batch, wall seconds, best of {opts.rounds}: end to end (start-up, a one-file run "
                  f"of the same command) and the batch's own time (end to end less start-up, files/s)",
                  title_justify="left")
    table.add_column("batch")
    for mode in modes:
        table.add_column(mode, justify="right")
    pairs = [(m, m.replace("--cluster local:", "-j ")) for m in modes if m.startswith("--cluster local:")]
    pairs = [(c, j) for c, j in pairs if j in modes]
    for c, j in pairs:
        table.add_column(f"{c} / {j}: end to end, batch", justify="right")
        table.add_column("overhead: start-up s, ms/file", justify="right")
    table.add_column("outputs")
    for batch in batches:
        t = {m: seconds[batch, m, n] for m in modes}
        up = {m: seconds[batch, m, 1] for m in modes}
        own = {m: t[m] - up[m] for m in modes}
        row = [batch] + [f"{t[m]:.1f} ({up[m]:.1f}); {own[m]:.1f} ({(n - 1) / own[m]:.2f})" for m in modes]
        for c, j in pairs:
            row += [f"{t[c] / t[j]:.2f}, {own[c] / own[j]:.2f}",
                    f"{up[c] - up[j]:+.1f}, {1000 * (own[c] - own[j]) / (n - 1):+.0f}"]
        row.append("; ".join(f"{m} vs {same[batch, m]}" for m in modes[1:]))
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
