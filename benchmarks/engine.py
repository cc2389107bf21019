"""Engine benchmark: tiled vs whole-image inference time and peak host memory.

Each configuration runs in its own child process (so peak RSS, ``VmHWM``, belongs to that run
alone, with an address-space limit guarding the machine); the table gives time and peak memory
with their ratios to the untiled run of the same model measured in the same invocation.

    python benchmarks/engine.py                       # 2048x2048, linear + a small conv model
    python benchmarks/engine.py --size 2160 3840      # a 4K frame
    python benchmarks/engine.py --tiles 0 256 512 --limit-gb 6

Models: ``linear`` (bundled clean weights, pixel-wise: strips) and ``conv`` (3 -> 32 -> 32 -> 31,
3x3, receptive radius 3, halo 8: untrained, only its cost matters).
"""

from __future__ import annotations

import argparse
import resource
import time

from recon import run_capped  # benchmarks/recon.py, beside this script

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from torch import nn
from hstool.recon import create_model, predict
from hstool.recon.registry import ModelSpec
name, h, w, tile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1 if sys.argv[5] == "1" else torch.get_num_threads())
if name == "linear":
    model = create_model("linear", "bundled", "clean")
else:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(32, 31, 3, padding=1))
    model.spec = ModelSpec("conv", lambda: model, kind="deep", multiple=1, halo=8)
rgb = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
def hwm():  # VmHWM, KB: ru_maxrss would carry the parent's resident set (Linux)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
base = hwm()
t = time.perf_counter()
out = predict(model, rgb, "cpu", tile=tile)
sec = time.perf_counter() - t
peak = hwm()
print(json.dumps({"seconds": sec, "peak_mb": peak / 1024, "before_mb": base / 1024,
                  "checksum": float(out[::97, ::89].sum())}))
"""


def run_child(name: str, h: int, w: int, tile: int, limit_gb: float, one_thread: bool) -> dict:
    """One configuration in a fresh interpreter capped at ``limit_gb`` of address space."""
    r = run_capped(["-c", CHILD, name, str(h), str(w), str(tile), "1" if one_thread else "0"], limit_gb)
    if "error" in r:
        r["error"] = r["error"][:80]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(2048, 2048), metavar=("H", "W"))
    ap.add_argument("--tiles", type=int, nargs="+", default=[0, 256, 512])
    ap.add_argument("--models", nargs="+", default=["linear", "conv"])
    ap.add_argument("--limit-gb", type=float, default=8.0, help="address-space limit per child (0: none)")
    ap.add_argument("--one-thread", action="store_true", help="torch.set_num_threads(1) in the child")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    h, w = args.size
    table = Table(title=f"engine: {h}x{w} RGB -> 31 bands on CPU (child process per row)", title_justify="left")
    for col in ("model", "tile", "seconds", "x untiled", "peak RSS MB", "x untiled", "output MB", "checksum"):
        table.add_column(col, justify="right")
    out_mb = h * w * 31 * 4 / 2**20
    for name in args.models:
        ref = None
        for tile in args.tiles:
            r = run_child(name, h, w, tile, args.limit_gb, args.one_thread)
            if "error" in r:
                table.add_row(name, str(tile or "whole"), r["error"], "", "", "", f"{out_mb:.0f}", "")
                continue
            if tile == 0:
                ref = r
            ratio_t = f"{r['seconds'] / ref['seconds']:.2f}" if ref else "-"
            ratio_m = f"{r['peak_mb'] / ref['peak_mb']:.2f}" if ref else "-"
            table.add_row(name, "whole" if tile == 0 else str(tile), f"{r['seconds']:.2f}", ratio_t,
                          f"{r['peak_mb']:.0f}", ratio_m, f"{out_mb:.0f}", f"{r['checksum']:.3f}")
    Console().print(table)
    print(f"(parent peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"started {time.strftime('%H:%M:%S')})")


if __name__ == "__main__":
    main()
