"""Measure ``--consistent`` and ``--exposure-invariant`` on held-out synthetic scenes.

For each track and model: MRAE against the ground truth, back-projection MRAE against the input
RGB (entries where the RGB is > 0) and against the ground truth's RGB, physical consistency (the
reconstruction imaged again by the track's camera, same noise seed, MRAE against the input RGB,
as ``hstool score --rgb``) and the share of RGB codes that imaging gives back exactly, MRAE after brightness
x0.5 and x2 (cube scaled, RGB re-simulated), pixels the consistency step corrected and those with
no non-negative solution, and seconds per image. Scenes: ``hsdata.synth`` test split, seeds
100.., 482x512; RGB noise seeded by scene index.

    python benchmarks/consistency.py --models linear rootpoly sparse --scenes 6
    python benchmarks/consistency.py --models mstpp --weights 'w/mstpp_{track}.safetensors'
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def measure(models, weights: str, n_scenes: int, tracks) -> dict:
    from hstool.camera import scale_brightness, simulate, track
    from hstool.hsdata import synth
    from hstool.recon import Reconstructor
    from hstool.recon.evaluate import physical_consistency
    from hstool.recon.metrics import mrae

    scenes = [synth.generate_scene(100 + i, split="test") for i in range(n_scenes)]
    results = {}
    for tr in tracks:
        m = track(tr).matrix(scenes[0].wavelengths)
        for name in models:
            w = weights if weights == "bundled" else weights.format(track=tr)
            for label, kw in (("plain", {}), ("consistent", {"consistent": True}),
                              ("exposure-invariant", {"exposure_invariant": True})):
                rec = Reconstructor(name, w, tr, device="cpu", **kw)
                acc = {"mrae": [], "bp_input": [], "bp_gt": [], "physical": [], "same_codes": [],
                       "mrae_x0.5": [], "mrae_x2": [],
                       "corrected": 0, "infeasible": 0, "seconds": 0.0}
                for i, cube in enumerate(scenes):
                    rgb = simulate(cube, tr, rng=i)
                    t = time.perf_counter()
                    pred = rec(rgb)
                    acc["seconds"] += (time.perf_counter() - t) / n_scenes
                    acc["mrae"].append(mrae(pred, cube.data))
                    back = pred.astype(np.float64) @ m
                    ok = rgb > 0
                    acc["bp_input"].append(float(np.mean(np.abs(back - rgb)[ok] / rgb[ok])))
                    gtb = cube.data.astype(np.float64) @ m
                    ok = gtb > 0
                    acc["bp_gt"].append(float(np.mean(np.abs(back - gtb)[ok] / gtb[ok])))
                    again = simulate(cube.with_data(np.clip(pred, 0, None)), tr, rng=i)
                    acc["physical"].append(physical_consistency(cube.with_data(pred), rgb, tr, i))
                    acc["same_codes"].append(float(np.mean(np.rint(again * 255) == np.rint(rgb * 255))))
                    acc["corrected"] += rec.last_info.get("corrected", 0)
                    acc["infeasible"] += rec.last_info.get("infeasible", 0)
                    if label != "consistent":
                        for k in (0.5, 2.0):
                            ck = scale_brightness(cube, k)
                            acc[f"mrae_x{k:g}"].append(mrae(rec(simulate(ck, tr, rng=i)), ck.data))
                row = {k: (float(np.mean(v)) if v else None) if isinstance(v, list) else v for k, v in acc.items()}
                row["pixels"] = int(n_scenes * scenes[0].height * scenes[0].width)
                results[f"{name}/{tr}/{label}"] = row
                print(json.dumps({f"{name}/{tr}/{label}": row}), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["linear", "rootpoly", "sparse"])
    ap.add_argument("--weights", default="bundled", help="'bundled' or a path with {track}")
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--tracks", nargs="+", default=["clean", "realworld"])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = measure(args.models, args.weights, args.scenes, args.tracks)
    from rich.table import Table

    from hstool.cli.output import out  # a log keeps the table's width

    table = Table(title=f"held-out synthetic scenes ({args.scenes}, test split)", title_justify="left")
    for col in ("model/track/mode", "MRAE", "BP vs RGB", "BP vs GT RGB", "physical", "same codes", "MRAE x0.5",
                "MRAE x2", "infeasible px", "s/img"):
        table.add_column(col, justify="right")

    def f(v, d=4):
        return "-" if v is None else f"{v:.{d}f}"

    for key, r in results.items():
        table.add_row(key, f(r["mrae"]), f"{r['bp_input']:.2e}", f(r["bp_gt"]), f"{r['physical']:.2e}",
                      f"{100 * r['same_codes']:.2f}%", f(r["mrae_x0.5"]), f(r["mrae_x2"]),
                      f"{r['infeasible']} ({100 * r['infeasible'] / r['pixels']:.1f}%)", f(r["seconds"], 2))
    out.print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
