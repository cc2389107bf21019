"""``hstool demo``: the whole pipeline on the bundled sample, in well under a minute on a laptop CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .batch import progress
from .options import Device, Json, Seed
from .output import HEADERS, err, print_json, show, table

DEFAULT_MODEL = "linear"  # the best bundled model across both tracks on held-out scenes (README, "Models")


def demo(
    out: Annotated[Path, typer.Argument(help="Folder for everything the demo writes.", file_okay=False)] = Path(
        "hstool-demo"
    ),
    model: Annotated[str, typer.Option("--model", "-m", help="Bundled model to reconstruct with.")] = DEFAULT_MODEL,
    seed: Seed = 0,
    device: Device = "auto",
    json: Json = False,
) -> None:
    """Simulate the bundled sample scenes on the NTIRE 2020 clean and real-world tracks, reconstruct
    them with a bundled model, score them and write previews. OUT must be new, empty or an earlier
    demo run's (marked by its .hstool-demo file), whose files are replaced.

    Examples:
    $ hstool demo  # then open hstool-demo/previews/
    """
    from hstool.hsdata.sample import sample_cubes
    from hstool.recon.demo import DEMO_METRICS, claim_folder, demo_reconstructors, run_demo

    recs = demo_reconstructors(model, device=device)  # a bad --model or --device fails before any work
    claim_folder(out)
    total = 2 * len(sample_cubes())
    with progress() as bar:
        task = bar.add_task(f"demo ({model})", total=total, current="")
        rows = run_demo(out, model, seed=seed, device=device, reconstructors=recs,
                        advance=lambda what: bar.update(task, advance=1, current=what))
    if json:
        print_json({"model": model, "seed": seed, "out": out, "rows": rows})
        return
    keys = (*DEMO_METRICS, "backprojection", "physical")
    show(
        table(
            f"hstool demo: {model} on the bundled sample (ground truth: synthetic test-split scenes)",
            ["track", "image", *(HEADERS[k] for k in keys)],
            [[r["track"], r["image"], *(r[k] for k in keys)] for r in rows],
        )
    )
    err.print(f"RGB inputs: {out / 'rgb'}   recovered cubes: {out}/recon_<track>/   previews: {out / 'previews'}")
