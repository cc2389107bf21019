"""``--cluster``: batches on a real Dask scheduler with two worker processes on 127.0.0.1, whose
outputs must be the bytes of a ``-j 1`` run, also when a worker is killed mid-batch."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import make_cube

from hstool.cli import cluster as cluster_cli
from hstool.hsdata import write_cube

distributed = pytest.importorskip("distributed")
import dask


@pytest.fixture(scope="module")
def scheduler():
    """A scheduler and two single-threaded worker processes on 127.0.0.1; its address. A task is
    rerun once after its worker died (as ``local:N`` sets it)."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=50)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _cubes(folder: Path, n: int, size: int = 32) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        write_cube(make_cube(size, size + 8, seed=i), folder / f"ARAD_HS_{451 + i:04d}.mat")
    return folder


def test_simulate_recon_score_match_a_local_run(tmp_path, hstool, scheduler):
    gt = _cubes(tmp_path / "gt", 4)
    runs = {}
    base = tmp_path / "run"  # both runs write here (the CSV names the files), the first moved aside after
    for how, args in (("local", ["-j", "1"]), ("cluster", ["--cluster", scheduler])):
        res = hstool("simulate", gt, base / "rgb", "-t", "realworld", "--seed", "3", *args)
        assert res.exit_code == 0, res.stderr
        res = hstool("recon", base / "rgb", "-m", "rootpoly", "-t", "realworld", "-o", base / "rec", "--preview", *args)
        assert res.exit_code == 0, res.stderr
        res = hstool("score", base / "rec", gt, "--csv", base / "score.csv", "--clusters", "20", "--json", *args)
        assert res.exit_code == 0, res.stderr
        runs[how] = (_files(base / "rgb"), _files(base / "rec"), (base / "score.csv").read_bytes(),
                     json.loads(res.stdout)["mean"])
        base.rename(tmp_path / how)
    assert "cluster tcp://127.0.0.1" in res.stderr and "2 worker(s)" in res.stderr
    local, remote = runs["local"], runs["cluster"]
    assert len(local[0]) == 4 and len(local[1]) == 12  # four images; four cubes, their sidecars and previews
    assert local == remote  # the same bytes, file by file


def _simulate_under_way(hstool, gt, out, address):
    """``simulate`` of ``gt`` on the cluster at ``address`` in a thread, returned once its first image
    is written (mid-batch): ``(thread, result)``, ``result["res"]`` set when it ends."""
    result = {}
    batch = threading.Thread(target=lambda: result.update(
        res=hstool("simulate", gt, out, "-t", "realworld", "--cluster", address)))
    batch.start()
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(out.glob("*.jpg"))) and time.monotonic() < deadline:
        time.sleep(0.01)
    return batch, result


def test_a_worker_killed_mid_batch_changes_nothing(tmp_path, hstool, scheduler):
    gt = _cubes(tmp_path / "gt", 16, size=96)
    assert hstool("simulate", gt, tmp_path / "ref", "-t", "realworld", "-j", "1").exit_code == 0
    client = distributed.Client(scheduler)
    try:
        pids = client.run(os.getpid)
    finally:
        client.close()
    out = tmp_path / "out"
    batch, result = _simulate_under_way(hstool, gt, out, scheduler)
    os.kill(next(iter(pids.values())), signal.SIGKILL)  # mid-batch: the other files still to do
    killed_during = batch.is_alive()
    batch.join(120)
    res = result["res"]
    assert killed_during
    assert res.exit_code == 0, res.stderr
    assert _files(out) == _files(tmp_path / "ref")  # all 16, the same bytes; no temporary file left


def test_unreachable_scheduler_is_one_line(tmp_path, hstool, monkeypatch):
    gt = _cubes(tmp_path / "gt", 1)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(cluster_cli, "CONNECT_TIMEOUT", 1)
    res = hstool("simulate", gt, tmp_path / "out", "--cluster", f"127.0.0.1:{port}")
    assert res.exit_code == 1
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    said = (f"error: --cluster: no Dask scheduler answers at tcp://127.0.0.1:{port} within 1 s "
            f"(Timed out trying to connect to tcp://127.0.0.1:{port} after 1 s)")
    assert lines == [said]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_workers_that_cannot_see_the_files_are_said(tmp_path, hstool, scheduler, monkeypatch):
    _cubes(tmp_path / "gt", 1)
    monkeypatch.chdir(tmp_path)  # relative paths: the workers run elsewhere
    res = hstool("simulate", "gt/ARAD_HS_0451.mat", "out", "--cluster", scheduler)
    assert res.exit_code == 1
    assert "cannot see gt/ARAD_HS_0451.mat" in res.stderr and "shared filesystem" in res.stderr
    assert not Path("out").exists()


def test_cluster_and_workers_options(tmp_path, hstool, monkeypatch):
    gt = _cubes(tmp_path / "gt", 2)
    res = hstool("simulate", gt, tmp_path / "a", "--cluster", "tcp://127.0.0.1:9", "-j", "2")
    assert res.exit_code == 1 and "give --cluster or -j N, not both" in res.stderr
    # HSTOOL_CLUSTER is a default: -j N beside it runs here (no scheduler is asked)
    res = hstool("simulate", gt, tmp_path / "b", "-j", "2", env={"HSTOOL_CLUSTER": "tcp://127.0.0.1:9"})
    assert res.exit_code == 0, res.stderr
    assert len(list((tmp_path / "b").iterdir())) == 2
    # without the extra, --cluster names it
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    res = hstool("simulate", gt, tmp_path / "c", "--cluster", "local:1")
    assert res.exit_code == 1 and 'pip install "hstool[cluster]"' in res.stderr


def test_a_rerun_task_keeps_what_another_run_wrote_and_redoes_its_own(tmp_path, monkeypatch):
    """A task run again after its worker died finds outputs newer than the batch: its own earlier
    attempt's (the same bytes once redone: fine) or another run's written meanwhile (other bytes:
    put back and the job fails; they were once deleted). A dead attempt's marker, half output and
    temporary file are cleared."""
    import json
    import socket
    import subprocess
    import sys

    from hstool.cli import batch
    from hstool.hsdata import HsError
    from hstool.hsdata.atomic import job_marker

    monkeypatch.setattr(batch.RERUN, "since", time.time() - 1, raising=False)
    mine, theirs = tmp_path / "mine.png", tmp_path / "theirs.png"
    mine.write_bytes(b"the job's bytes")
    theirs.write_bytes(b"another run's bytes")
    with batch.job_outputs([mine], overwrite=False):
        assert not mine.exists()
        mine.write_bytes(b"the job's bytes")
    assert mine.read_bytes() == b"the job's bytes" and not list(tmp_path.glob(".*aside"))
    with pytest.raises(HsError, match="another run wrote it"), batch.job_outputs([theirs], overwrite=False):
        theirs.write_bytes(b"this batch's bytes")
    assert theirs.read_bytes() == b"another run's bytes" and not list(tmp_path.glob(".*aside"))
    # a worker killed mid-job: its marker names a process that is gone
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    half, tmp = tmp_path / "x.png", tmp_path / ".x.png.abc123.tmp"
    half.write_bytes(b"half")
    tmp.write_bytes(b"partial")
    job_marker(half).write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(),
                                            "outputs": [half.name]}))
    with batch.job_outputs([half], overwrite=False):
        assert not half.exists() and not tmp.exists()
        half.write_bytes(b"whole")
    assert half.read_bytes() == b"whole" and not job_marker(half).exists()


def test_a_scheduler_that_goes_away_is_one_line(tmp_path, hstool):
    """A real ``dask scheduler`` and ``dask worker`` (subprocesses); the scheduler is killed
    mid-batch: one line, exit 1, and every file written is whole."""
    import subprocess
    import sys

    gt = _cubes(tmp_path / "gt", 24, size=96)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], **quiet)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                               "--no-nanny", "--no-dashboard"], **quiet)
    try:
        client = distributed.Client(address, timeout=60)
        client.wait_for_workers(1, timeout=60)
        client.close()
        out = tmp_path / "out"
        batch, result = _simulate_under_way(hstool, gt, out, address)
        scheduler.kill()
        batch.join(120)
        deadline = time.monotonic() + 60  # the worker finishes the task it had begun (killed in it, it
        while any(out.glob(".*.hstool-job")) and time.monotonic() < deadline:  # would leave its job's marker)
            time.sleep(0.05)
    finally:
        for p in (scheduler, worker):
            p.kill()
            p.wait(30)
    res = result["res"]
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: --cluster: lost the scheduler at {address}")
    written = sorted(out.iterdir())
    assert 0 < len(written) < 24 and all(p.suffix == ".jpg" for p in written)  # no temporary file
    assert hstool("simulate", gt, tmp_path / "ref", "-t", "realworld").exit_code == 0
    for p in written:  # whole: the bytes of a local run
        assert p.read_bytes() == (tmp_path / "ref" / p.name).read_bytes()


@pytest.mark.parametrize("address", ["local:abc", "localhost:xx", "tcp://host:port"])
def test_a_malformed_cluster_address_is_one_line_naming_the_option(tmp_path, hstool, address):
    gt = _cubes(tmp_path / "gt", 1)
    r = hstool("simulate", gt, tmp_path / "out", "--cluster", address)
    assert r.exit_code == 1 and f"--cluster {address}: give local:N" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _mark_setup(folder: Path) -> None:
    (folder / f"setup-{os.getpid()}").touch()


def _threads_here(item: int) -> tuple[int, int, int, int]:
    import cv2
    import torch

    return item, os.getpid(), torch.get_num_threads(), cv2.getNumThreads()


def test_local_workers_start_prepared_with_their_share_of_the_cores(tmp_path):
    """``local:N`` workers are forked (no import afresh), run the batch's setup once each before their
    tasks, and compute on as many threads as a ``-j N`` worker, on Dask's task thread too (OpenMP
    keeps a count per thread): the same bytes as ``-j N`` and no two workers contending for a core."""
    import functools

    import torch

    from hstool.cli.batch import run_batch, worker_threads

    torch.set_num_threads(worker_threads(1))  # this process: every core, set explicitly (as a user may)
    cluster_cli.CLUSTER["address"] = "local:2"
    try:
        results, failures = run_batch(list(range(6)), _threads_here, "probe", name=str,
                                      setup=functools.partial(_mark_setup, tmp_path))
        method = dask.config.get("distributed.worker.multiprocessing-method")
    finally:
        cluster_cli.close()
    assert not failures and [item for item, _ in results] == list(range(6))
    pids = {r[1] for _, r in results}
    assert os.getpid() not in pids
    assert {f"setup-{pid}" for pid in pids} <= {p.name for p in tmp_path.iterdir()}
    assert len(list(tmp_path.iterdir())) == 2  # once per worker, not per task
    assert {(r[2], r[3]) for _, r in results} == {(worker_threads(2), worker_threads(2))}
    assert method == "fork"
    assert torch.get_num_threads() == worker_threads(1)  # this process keeps its own
