"""Peak memory of a whole reconstruction process: ``hstool recon``'s engine against plain PyTorch.

For each model, two child processes (``recon.child_process``: peak resident set through
``peak.py``, never a Python-heap figure) each load the model and reconstruct ``--images`` random
482×512 images one after the other: ``plain`` the research scripts' way (``recon.plain_forward``,
glibc's default allocator), ``engine`` through a :class:`hstool.recon.Reconstructor` (reuse of
freed memory within an image, the heap handed back after it, the widest blocks in bands of rows).
``--rounds`` alternate the two, and the table shows the smallest peak and the fastest image of each
(the peak moves between runs of the same process by up to 15 % on a 2-core machine), with their
ratios. Target (issue #33): the engine's peak no higher than plain's.

    python benchmarks/recon_memory.py [--models mstpp_s,hscnnp_s,hrnet_s] [--images 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from recon import child_process  # benchmarks/recon.py, beside this script

CHILD = """
import json, sys, time
import numpy as np
import torch
sys.path.insert(0, {here!r})
from recon import plain_forward
from hstool.recon import Reconstructor, create_model, model_spec
from hstool.recon.weights import bundled_path

name, mode, images = sys.argv[1], sys.argv[2], int(sys.argv[3])
weights = "bundled" if bundled_path(name, "clean").exists() else None
if mode == "plain":
    model = create_model(name, weights, "clean").eval()
    run = lambda rgb: plain_forward(model, rgb, max(1, model_spec(name).multiple), torch.device("cpu"))
else:
    rec = Reconstructor(name, weights, "clean")
    run = rec
seconds = []
for i in range(images):
    rgb = np.random.default_rng(i).random((482, 512, 3), dtype=np.float32)
    t0 = time.perf_counter()
    run(rgb)
    seconds.append(time.perf_counter() - t0)
print(json.dumps(seconds))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mstpp_s,hscnnp_s,hrnet_s,mstpp,hrnet")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    opts = ap.parse_args()
    from pathlib import Path

    code = CHILD.format(here=str(Path(__file__).parent))
    best: dict[tuple[str, str], dict] = {}
    console = Console(width=140, stderr=True)
    for name in opts.models.split(","):
        for _ in range(opts.rounds):
            for mode in ("plain", "engine"):
                r = child_process(["python", "-c", code, name, mode, str(opts.images)])
                if r["returncode"]:
                    sys.exit(f"{name} {mode} failed:\n{r['stderr'][-1500:]}")
                seconds = json.loads(r["stdout"].strip().splitlines()[-1])
                kept = best.setdefault((name, mode), {"peak": r["peak_rss_mb"], "image": min(seconds)})
                kept["peak"] = min(kept["peak"], r["peak_rss_mb"])
                kept["image"] = min(kept["image"], min(seconds))
        console.print(f"{name}: plain {best[name, 'plain']['peak']:.0f} MB, engine {best[name, 'engine']['peak']:.0f} MB")
    table = Table(title=f"one process reconstructing {opts.images} images of 482x512 on the CPU: peak RSS (MB) and "
                  f"the fastest image (s), best of {opts.rounds} rounds", title_justify="left")
    for col in ("model", "plain MB", "engine MB", "engine / plain", "plain s", "engine s", "engine / plain s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name in opts.models.split(","):
        p, e = best[name, "plain"], best[name, "engine"]
        table.add_row(name, f"{p['peak']:.0f}", f"{e['peak']:.0f}", f"{e['peak'] / p['peak']:.2f}",
                      f"{p['image']:.2f}", f"{e['image']:.2f}", f"{e['image'] / p['image']:.2f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
