"""Worker processes (``-j N``): the same bytes as one process, each worker on its share of the cores,
its setup (a loaded model) run once per worker. Speed is measured in ``benchmarks/workers.py``."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from conftest import make_cube

from hstool.camera import simulate_to_file
from hstool.cli.batch import run_batch, worker_threads
from hstool.hsdata import write_cube
from hstool.hsdata.specim_synthetic import write_synthetic_capture


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def same_bytes(hstool, tmp_path: Path, *args) -> dict[str, bytes]:
    """Run ``hstool *args OUT`` with -j 1 and -j 2; every file written must be byte for byte the same."""
    out = {}
    for j in ("1", "2"):
        r = hstool(*[tmp_path / f"j{j}" if a == "OUT" else a for a in args], "-j", j)
        assert r.exit_code == 0, r.output
        out[j] = files(tmp_path / f"j{j}")
    assert out["1"] and out["1"].keys() == out["2"].keys()
    for name, data in out["1"].items():
        assert data == out["2"][name], name
    return out["1"]


@pytest.fixture
def cubes(tmp_path):
    for i in range(3):
        write_cube(make_cube(18, 22, seed=i), tmp_path / "cubes" / f"ARAD_HS_{451 + i:04d}.mat")
    return tmp_path / "cubes"


@pytest.mark.parametrize("track", ["clean", "realworld"])
def test_simulate_writes_the_same_bytes_with_two_workers(hstool, tmp_path, cubes, track):
    written = same_bytes(hstool, tmp_path, "simulate", cubes, "OUT", "-t", track, "--seed", "3")
    assert len(written) == 3


def test_convert_writes_the_same_bytes_with_two_workers(hstool, tmp_path, cubes):
    written = same_bytes(hstool, tmp_path, "convert", cubes, "OUT", "-f", "envi")
    assert sorted(written) == [f"ARAD_HS_{451 + i:04d}.{ext}" for i in range(3) for ext in ("hdr", "raw")]


def test_calibrate_writes_the_same_bytes_with_two_workers(hstool, tmp_path):
    for i, name in enumerate(("a", "b", "c")):
        write_synthetic_capture(tmp_path / "raw", name, i, samples=32, lines=12, ref_lines=8)
    written = same_bytes(hstool, tmp_path, "calibrate", tmp_path / "raw", "OUT", "--preview")
    assert {"a.mat", "b.mat", "c.mat", "a_preview.png", "a.json"} <= written.keys()


@pytest.mark.parametrize("model", ["rootpoly", "mstpp_s"])
def test_recon_writes_the_same_bytes_with_two_workers(hstool, tmp_path, model):
    for i in range(3):
        simulate_to_file(make_cube(20, 28, seed=i), tmp_path / "rgb" / f"ARAD_HS_{451 + i:04d}_clean.png", "clean")
    written = same_bytes(hstool, tmp_path, "recon", tmp_path / "rgb", "-m", model, "--device", "cpu", "-o", "OUT")
    assert sorted(written) == [f"ARAD_HS_{451 + i:04d}.{ext}" for i in range(3) for ext in ("json", "mat")]


# -- the per-worker initialisation (also what a cluster's workers run) --------------------------

SETUPS: list[int] = []


def _setup() -> None:
    SETUPS.append(os.getpid())


def _report(_item, threads_var: str) -> tuple[int, int, int, str | None]:
    import cv2
    import torch
    from threadpoolctl import threadpool_info

    blas = {pool["num_threads"] for pool in threadpool_info()}
    return os.getpid(), len(SETUPS), max(blas | {cv2.getNumThreads(), torch.get_num_threads()}), \
        os.environ.get(threads_var)


def test_each_worker_runs_its_setup_once_on_its_share_of_the_cores():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as a parent that ran a model on every core
    try:
        results, failures = run_batch(list(range(8)), functools.partial(_report, threads_var="OMP_NUM_THREADS"),
                                      "test", workers=2, setup=_setup)
    finally:
        torch.set_num_threads(before)
    assert not failures and len(results) == 8
    share = worker_threads(2)
    for _, (pid, setups, threads, env) in results:
        assert pid != os.getpid() and setups == 1  # set up once in the worker, not per item, not here
        assert threads <= share and env == str(share)
    assert not SETUPS  # the parent ran no setup
    assert worker_threads(1) >= share >= 1 and worker_threads(10**6) == 1


def test_forked_workers_compute_after_the_parent_set_its_threads(tmp_path):
    """A forked worker inherits PyTorch's thread count and its OpenMP pool, whose threads do not
    survive the fork: after ``torch.set_num_threads(2)`` in the parent, a worker that kept that
    count waited forever in its first parallel operation (seen in the test suite)."""
    import subprocess
    import sys

    script = tmp_path / "fork.py"
    script.write_text(
        "import torch\n"
        "from hstool.cli.batch import run_batch\n"
        "def total(i):\n"
        "    return float(torch.full((1500, 1500), float(i)).sqrt().sum())\n"
        "if __name__ == '__main__':\n"
        "    torch.set_num_threads(2)\n"
        "    float(torch.rand(1500, 1500).sqrt().sum())  # the pool is started here\n"
        "    results, failures = run_batch([1, 4, 9], total, 'x', workers=2, name=str)\n"
        "    print(sorted(r for _, r in results), failures)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("]")[0] == "[2250000.0, 4500000.0, 6750000.0"
