"""Every bundled model on held-out synthetic scenes: the extended evaluation (Table 3 of the
NTIRE 2020 report) per model and track, printed as a table and as the Markdown the README shows.

The scenes come from the synthetic generator's *test* split (materials and illuminants disjoint
from the training split), so the numbers measure generalisation to spectra no model saw.

    python benchmarks/heldout.py                       # every bundled model, 8 scenes of 256x320
    python benchmarks/heldout.py --models rootpoly,mstpp_s --scenes 4 --size 482x512
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hstool.cli.output import err, print_json, table
from hstool.hsdata import synth, write_cube
from hstool.recon import Reconstructor, evaluate
from hstool.recon.weights import bundled_weights

KEYS = evaluate.TABLE3


def bundled() -> list[tuple[str, str]]:
    """(model, track) of every bundled weights file."""
    pairs = []
    for path in bundled_weights():
        name, _, track = path.stem.rpartition("_")
        pairs.append((name, track))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma list (default: every bundled model)")
    ap.add_argument("--tracks", default="clean,realworld")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--size", default="256x320")
    ap.add_argument("--seed", type=int, default=1000, help="first scene seed (test split)")
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    wanted = set(filter(None, args.models.split(",")))
    tracks = args.tracks.split(",")
    jobs = [(m, t) for m, t in bundled() if t in tracks and (not wanted or m in wanted)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.scenes):
            cube = synth.generate_scene(args.seed + i, size=(h, w), split="test")
            paths += write_cube(cube, Path(tmp) / f"HELDOUT_{i:03d}.mat")
        for name, track in jobs:
            rec = Reconstructor(name, "bundled", track, device="cpu")
            t0 = time.perf_counter()
            res = evaluate.evaluate(paths, rec, track, seed=0, clusters=args.clusters)
            seconds = (time.perf_counter() - t0) / len(paths)
            rows.append({"model": name, "track": track, **res["mean"], "seconds_per_scene": seconds})
            err.print(f"{name} {track}: MRAE {res['mean']['mrae']:.4f}")
    if args.json:
        print_json(rows)
        return
    headers = ["model", "track", *evaluate.TABLE3_HEADERS]
    err.print(table(f"held-out synthetic scenes ({args.scenes} × {args.size})", headers,
                    [[r["model"], r["track"], *(r[k] for k in KEYS)] for r in rows]))
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for r in rows:
        print("| " + " | ".join([r["model"], r["track"], *(f"{r[k]:.4f}" for k in KEYS)]) + " |")


if __name__ == "__main__":
    main()
