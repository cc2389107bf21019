"""Cube I/O speed and memory: hstool's readers and writers against plain NumPy, h5py and spectral.

Run by hand (not by pytest):

    python benchmarks/io.py [--repeat 3] [--dir /fast/scratch]

Table 1 writes and reads a 482 x 512 x 31 float32 cube (ARAD_1K's size) in each format and gives
the time relative to ``.npy`` measured in the same run. Table 2 reads a 512 x 512 x 204 uint16 BIL
cube (a Specim IQ capture) and a 482 x 512 x 31 float32 MATLAB v7.3 cube both through hstool and
through the plain library call a user would write (``spectral.envi.open(...).load()``,
``h5py`` + transpose), and reports time and the peak resident memory of a child process that
makes the one read (``child_process``), less that of a child that only imports the same
libraries, in units of the float32 cube's size: 1.0 is one copy of the cube held, 2.0 two copies
at once (file pages the process mapped count as resident). Files are read from the page cache
(warm), since every candidate is measured the same way.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import spectral.io.envi as spy_envi
from rich.console import Console
from rich.table import Table

from hstool.hsdata import ARAD_WAVELENGTHS, Cube, read_cube, write_cube
from recon import child_process  # benchmarks/recon.py, beside this script


def best_time(fn, repeat: int) -> float:
    """Minimum wall time of ``repeat`` calls (the least disturbed by other load on the machine)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return min(times)


def best_times(fns, repeat: int) -> list[float]:
    """Like :func:`best_time` for several candidates, run in turn so that they share the
    machine's slow and quiet moments alike."""
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, store in zip(fns, times):
            gc.collect()
            t0 = time.perf_counter()
            result = fn()
            store.append(time.perf_counter() - t0)
            del result
    return [min(t) for t in times]


def peak_rss_above_imports(imports: str, read: str) -> int:
    """Bytes of peak RSS a fresh process spends on ``read`` beyond ``imports`` (each in its own child)."""
    base, peak = (child_process(["python", "-c", code]) for code in (imports, f"{imports}\n{read}"))
    for r in (base, peak):
        assert r["returncode"] == 0, r["stderr"][-300:]
    return int((peak["peak_rss_mb"] - base["peak_rss_mb"]) * 2**20)


def arad_cube() -> Cube:
    rng = np.random.default_rng(0)
    data = rng.random((482, 512, 31), dtype=np.float32)
    return Cube(data, ARAD_WAVELENGTHS, {"units": "reflectance", "norm_factor": 4095.0})


def format_table(folder: Path, repeat: int) -> Table:
    cube = arad_cube()
    cases = {
        "npy": ("c.npy", {}),
        "mat v7.3 (HDF5)": ("c73.mat", {}),
        "mat v5 (scipy)": ("c5.mat", {"version": "5"}),
        "ENVI BIL float32": ("c.hdr", {"interleave": "bil"}),
        "npz": ("c.npz", {}),
    }
    rows = {}
    for label, (name, opts) in cases.items():
        path = folder / name
        write = best_time(lambda p=path, o=opts: write_cube(cube, p, overwrite=True, **o), repeat)
        read = best_time(lambda p=path: read_cube(p), repeat)
        size = sum(f.stat().st_size for f in write_cube(cube, path, overwrite=True, **opts))
        back = read_cube(path)
        assert np.array_equal(back.data, cube.data), label  # a benchmark of a wrong reader is worthless
        rows[label] = (write, read, size)
    base_w, base_r, _ = rows["npy"]
    t = Table(title=f"482 x 512 x 31 float32 cube ({cube.data.nbytes / 2**20:.0f} MiB), best of {repeat}")
    for col in ("format", "write s", "write / npy", "read s", "read / npy", "file MiB"):
        t.add_column(col, justify="left" if col == "format" else "right")
    for label, (w, r, size) in rows.items():
        t.add_row(label, f"{w:.3f}", f"{w / base_w:.2f}", f"{r:.3f}", f"{r / base_r:.2f}", f"{size / 2**20:.1f}")
    return t


def overhead_table(folder: Path, repeat: int) -> Table:
    # A Specim IQ-like capture: 512 x 512 x 204 uint16, BIL, as the camera writes it.
    rng = np.random.default_rng(1)
    dn = rng.integers(0, 4096, (512, 512, 204), dtype=np.uint16)
    wl = np.linspace(397.32, 1003.58, 204)
    write_cube(Cube(dn, wl), folder / "iq.hdr", dtype="uint16", interleave="bil", overwrite=True)
    del dn
    arad = arad_cube()
    write_cube(arad, folder / "arad.mat", overwrite=True)
    del arad

    def plain_spectral():
        return spy_envi.open(str(folder / "iq.hdr"), str(folder / "iq.raw")).load(dtype=np.float32)

    def plain_h5py():
        with h5py.File(folder / "arad.mat", "r") as f:
            return f["cube"][()].T.astype(np.float32, copy=False)

    iq, mat = str(folder / "iq.hdr"), str(folder / "arad.mat")
    cases = [
        ("512x512x204 uint16 BIL", "spectral .load()", plain_spectral, lambda: read_cube(folder / "iq.hdr").data,
         ("import numpy as np, spectral.io.envi as e", f"e.open({iq!r}, {iq[:-4] + '.raw'!r}).load(dtype=np.float32)"),
         ("from hstool.hsdata import read_cube", f"read_cube({iq!r}).data")),
        ("482x512x31 float32 v7.3", "h5py [()] .T", plain_h5py, lambda: read_cube(folder / "arad.mat").data,
         ("import numpy as np, h5py", f"f = h5py.File({mat!r}, 'r'); f['cube'][()].T.astype(np.float32, copy=False)"),
         ("from hstool.hsdata import read_cube", f"read_cube({mat!r}).data")),
    ]
    t = Table(title=f"hstool read_cube against the plain library call, best of {repeat}")
    for col in ("cube", "plain call", "plain s", "hstool s", "ratio", "extra ms", "plain peak", "hstool peak"):
        t.add_column(col, justify="left" if col in ("cube", "plain call") else "right")
    for label, plain_name, plain, ours, plain_code, ours_code in cases:
        ref = plain()
        got = ours()
        assert np.array_equal(np.asarray(ref), got), label
        nbytes = got.nbytes
        del ref, got
        tp, th = best_times([plain, ours], repeat)
        mp, mh = peak_rss_above_imports(*plain_code) / nbytes, peak_rss_above_imports(*ours_code) / nbytes
        t.add_row(
            label, plain_name, f"{tp:.3f}", f"{th:.3f}", f"{th / tp:.2f}", f"{(th - tp) * 1e3:+.1f}",
            f"{mp:.2f} x", f"{mh:.2f} x",
        )
    t.caption = (
        "peak = a child process's peak RSS for the read beyond its imports, in copies of the float32 cube; "
        "extra ms = hstool's fixed cost (format checks, band list, norm_factor)"
    )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case (the best is kept)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    args = parser.parse_args()
    console = Console()
    console.width = max(console.width, 120)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="hstool-bench-") as tmp:
        console.print(format_table(Path(tmp), args.repeat))
        console.print(overhead_table(Path(tmp), args.repeat))


if __name__ == "__main__":
    main()
