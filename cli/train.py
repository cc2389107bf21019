"""``hstool train``: train a registered model and write a weights file with its metadata."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata import HsError

from .options import Device, Json, Overwrite, Seed
from .output import err, fmt, print_json


def _parse_config(items: list[str] | None) -> dict:
    config = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HsError(f"--config takes KEY=VALUE, got '{item}'")
        try:
            config[key] = jsonlib.loads(value)
        except jsonlib.JSONDecodeError:
            config[key] = value
    return config


def _launch(ctx: typer.Context, nproc: int) -> int:
    """Run this command again under ``torchrun --standalone --nproc-per-node N`` (PyTorch's launcher,
    one machine), with the options given here but --nproc; its exit code."""
    import subprocess
    import sys

    args = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == "nproc" or value is None or value == param.default:
            continue
        if getattr(param, "is_flag", False):
            args.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        for v in value if param.multiple else [value]:
            args += [param.opts[0], str(v)]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.run([*launcher, "-m", "hstool.cli", "train", *args], check=False).returncode


def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name (see `hstool models`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Weights file to write (.safetensors).", dir_okay=False)],
    data: Annotated[str, typer.Option("--data", help="Cube folder (any hsdata format) or 'synth'.")] = "synth",
    track: Annotated[str, typer.Option("--track", "-t", help="Camera track to simulate: clean, realworld, ntire2022.")] = "clean",
    val: Annotated[str, typer.Option("--val", help="Validation: 'synth' (test-split scenes), a cube folder, or 'none'.")] = "synth",
    rgb: Annotated[str | None, typer.Option("--rgb", help="Folder of RGB images paired with --data cubes by stem (ARAD layout: X.mat with X_clean.png for --track clean, X_RealWorld.jpg for realworld; never another track's).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs (deep models).")] = 10,
    steps_per_epoch: Annotated[int, typer.Option("--steps-per-epoch", min=1, help="Optimiser steps per epoch.")] = 200,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Crops per step.")] = 8,
    crop: Annotated[int, typer.Option("--crop", min=8, help="Crop side in pixels.")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (Adam, cosine schedule).")] = 4e-4,
    loss: Annotated[str, typer.Option("--loss", help="mrae, rel-l1 (L1 over each pixel's mean), log-l1 (L1 of log(x + floor)), l1 or mse.")] = "mrae",
    loss_floor: Annotated[float, typer.Option("--loss-floor", help="Floor of the denominator of mrae and rel-l1; the offset of log-l1.")] = 1e-3,
    rel_floor: Annotated[float, typer.Option("--rel-floor", help="mrae: also floor each band's denominator at this "
                                             "fraction of its pixel's mean over bands (0: off).")] = 0.0,
    mrae_mix: Annotated[float, typer.Option("--mrae-mix", help="Add this weight x MRAE to another --loss (e.g. "
                                            "rel-l1), which still charges a black band predicted above zero.")] = 0.0,
    seed: Seed = 0,
    brightness_aug: Annotated[bool, typer.Option("--brightness-aug", help="Scale each training cube by x0.5..x2.")] = False,
    illuminant_aug: Annotated[bool, typer.Option("--illuminant-aug", help="Relight each training cube by a smooth "
                                                 "random spectral curve (an unseen illuminant).")] = False,
    css_loss: Annotated[float, typer.Option("--css-loss", help="Weight TAU of AWAN's camera prior: add TAU x the loss "
                                            "on the RGB that prediction and truth project to (0: off).")] = 0.0,
    ema: Annotated[float, typer.Option("--ema", help="Decay of an exponential moving average of the weights, updated "
                                       "every step; validate, keep and write the average (0: off; e.g. 0.999).")] = 0.0,
    base: Annotated[str | None, typer.Option("--base", help="Pixel-wise model (e.g. linear) fitted first; the network "
                                             "learns a correction to its output, starting as that baseline.")] = None,
    keep: Annotated[str, typer.Option("--keep", help="Weights to write: 'last' epoch or 'best' (lowest validation "
                                      "MRAE).")] = "last",
    resume: Annotated[Path | None, typer.Option("--resume", help="Checkpoint (OUT.ckpt) to continue from.", exists=True, dir_okay=False)] = None,
    init: Annotated[Path | None, typer.Option("--init", help="Weights file (same model and config) to start from: "
                                              "fine-tune it under a fresh schedule.", exists=True, dir_okay=False)] = None,
    config: Annotated[list[str] | None, typer.Option("--config", help="Model option KEY=VALUE (repeatable), e.g. degree=3.")] = None,
    scenes: Annotated[int, typer.Option("--scenes", min=1, help="Synthetic scenes pooled per epoch / sampled for pixel models (cube files at most, for folders).")] = 16,
    scene_size: Annotated[int, typer.Option("--scene-size", min=16, help="Side of generated synthetic scenes.")] = 256,
    pixels: Annotated[int, typer.Option("--pixels", min=100, help="Training pixels for pixel-wise models.")] = 200_000,
    val_scenes: Annotated[int | None, typer.Option("--val-scenes", min=1, help="Validation scenes (default: 4 synthetic "
                                                   "ones; every cube of a --val folder).")] = None,
    val_rgb: Annotated[str | None, typer.Option("--val-rgb", help="With --rgb: the images of the --val cubes (default: "
                                                "looked for in the --rgb folder); validation uses your camera's images "
                                                "too, never the track's.")] = None,
    val_size: Annotated[int, typer.Option("--val-size", min=16, help="Side of synthetic validation scenes.")] = 256,
    fp16: Annotated[bool | None, typer.Option("--fp16/--fp32", help="Store weights in fp16 (default: deep models).")] = None,
    speed: Annotated[bool, typer.Option("--speed/--no-speed", help="Time one 482x512 image after training "
                                        "(pixel models, or on CUDA) and record it.")] = True,
    device: Device = "auto",
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Train a deep model in N processes (N GPUs on CUDA): "
                                       "launches torchrun --nproc-per-node N; --batch is the crops of all N together.")] = 1,
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Train a model on synthetic scenes or cube folders (RGB simulated for the track).
    An option the run would not read is refused, not ignored: training options (--epochs, --ema, ...) for
    the pixel models (linear, rootpoly, sparse, fitted in closed form), --pixels for a deep model without
    --base, --scene-size / --val-size with cube folders, --val-scenes with --val none.

    Example: [bold]hstool train --model rootpoly --data synth --track realworld --out rootpoly_rw.safetensors[/]
    """
    if nproc > 1:
        from hstool.recon.registry import model_spec

        if model_spec(model).kind == "pixel":
            raise HsError(f"--nproc trains deep models: {model} is fitted in closed form in one process")
        raise typer.Exit(_launch(ctx, nproc))
    from hstool.recon.train import TrainConfig
    from hstool.recon.train import train as run_training

    cfg = TrainConfig(
        model=model, out=out, data=data, track=track, val=val, rgb=rgb, epochs=epochs,
        steps_per_epoch=steps_per_epoch, batch=batch, crop=crop, lr=lr, loss=loss, loss_floor=loss_floor, rel_floor=rel_floor,
        mrae_mix=mrae_mix, seed=seed,
        brightness_aug=brightness_aug, illuminant_aug=illuminant_aug, keep=keep, css_loss=css_loss, ema=ema, base=base, device=device,
        resume=resume, init=init, config=_parse_config(config), scenes=scenes, scene_size=scene_size, pixels=pixels,
        val_scenes=val_scenes, val_size=val_size, fp16=fp16, overwrite=overwrite, speed=speed, val_rgb=val_rgb,
    )
    meta = run_training(cfg, console=err)
    if not meta:  # a torchrun process other than the first: that one reports
        return
    if json:
        print_json({"out": str(out), **meta})
        return
    err.print(f"wrote {out} (val MRAE {fmt(meta['val_mrae']) if meta['val_mrae'] is not None else '-'}, "
              f"{meta['train_seconds']} s)")
