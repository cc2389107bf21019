"""Run a Python script, module or command (``python peak.py -m hstool.cli ARGS``, ``python peak.py
SCRIPT ARGS``, ``python peak.py -c CODE``) and, at exit, write its peak resident memory in MB to the file ``$HSTOOL_PEAK_FILE``: the
larger of this process's own ``VmHWM`` and the largest of its waited-for children (worker
processes; ``ru_maxrss``).

Why not the parent's ``wait4``/``RUSAGE_CHILDREN`` alone: on Linux a child's ``ru_maxrss`` starts
at its parent's resident set when it is forked and keeps it through ``exec``, so a benchmark
holding 500 MB would see every command it runs at 500 MB or more. ``VmHWM`` belongs to the
process's own address space, made afresh by ``exec``.
"""

from __future__ import annotations

import atexit
import os
import resource
import runpy
import sys


def own_peak_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` (Linux), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux: ru_maxrss (bytes on macOS)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def _peak_mb() -> float:
    own = own_peak_mb()
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    return max(own, workers)


def _write() -> None:
    path = os.environ.get("HSTOOL_PEAK_FILE")
    if path:
        with open(path, "w") as f:
            f.write(f"{_peak_mb():.1f}\n")


if __name__ == "__main__":
    atexit.register(_write)
    if sys.argv[1] == "-c":
        code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 -- python -c, as asked
    elif sys.argv[1] == "-m":
        sys.argv = [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
