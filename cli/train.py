"""``hstool train``: train a registered model and write a weights file with its metadata."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata import HsError

from .options import WEIGHTS_METAVAR, Json, Overwrite, weights_file
from .output import err, fmt, print_json

Opt = typer.Option


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


M = D = "Model and data"
T, IO = "Training", "Input/output"


def train(
    ctx: typer.Context,
    model: Annotated[str, Opt("--model", "-m", help="Model name (see hstool models).", rich_help_panel=M)],
    out: Annotated[Path, Opt("--out", "-o", help="Weights file to write (.safetensors).", dir_okay=False,
                             rich_help_panel=IO)],
    data: Annotated[str, Opt("--data", help="'synth' or a folder of cubes.", rich_help_panel=D)] = "synth",
    track: Annotated[str | None, Opt("--track", "-t", help="Camera: clean (default), realworld, ntire2022.",
                                     rich_help_panel=D)] = None,
    val: Annotated[str, Opt("--val", help="'synth', a cube folder or 'none'.", rich_help_panel=D)] = "synth",
    rgb: Annotated[str | None, Opt("--rgb", help="Your camera's images of the --data cubes.",
                                   rich_help_panel=D)] = None,
    epochs: Annotated[int, Opt("--epochs", min=0, help="Epochs (0: write --init grown).",
                               rich_help_panel=T)] = 10,
    steps_per_epoch: Annotated[int, Opt("--steps-per-epoch", min=1, help="Optimiser steps per epoch.",
                                        rich_help_panel=T)] = 200,
    batch: Annotated[int, Opt("--batch", min=1, help="Crops per step.", rich_help_panel=T)] = 8,
    crop: Annotated[int, Opt("--crop", min=8, help="Crop side (px).", rich_help_panel=T)] = 64,
    lr: Annotated[float, Opt("--lr", help="Peak learning rate (Adam, cosine).", rich_help_panel=T)] = 4e-4,
    loss: Annotated[str, Opt("--loss", help="mrae, rel-l1, log-l1, l1 or mse.", rich_help_panel=T)] = "mrae",
    loss_floor: Annotated[float, Opt("--loss-floor", help="Floor of the loss denominator.",
                                     rich_help_panel=T)] = 1e-3,
    rel_floor: Annotated[float, Opt("--rel-floor", help="mrae: floor at this share of the pixel's mean.",
                                    rich_help_panel=T)] = 0.0,
    mrae_mix: Annotated[float, Opt("--mrae-mix", help="Add this weight x MRAE to another --loss.",
                                   rich_help_panel=T)] = 0.0,
    seed: Annotated[int, Opt("--seed", min=0, help="Seed of every random step.", rich_help_panel=T)] = 0,
    brightness_aug: Annotated[bool, Opt("--brightness-aug", help="Scale training cubes by x0.5..x2.",
                                        rich_help_panel=T)] = False,
    illuminant_aug: Annotated[bool, Opt("--illuminant-aug", help="Relight training cubes at random.",
                                        rich_help_panel=T)] = False,
    css_loss: Annotated[float, Opt("--css-loss", help="Weight of AWAN's camera (RGB) loss.", rich_help_panel=T)] = 0.0,
    ema: Annotated[float, Opt("--ema", help="Decay of a weights average kept (e.g. 0.999).", rich_help_panel=T)] = 0.0,
    base: Annotated[str | None, Opt("--base", help="Pixel model the network corrects.", rich_help_panel=M)] = None,
    keep: Annotated[str, Opt("--keep", help="Weights written: 'last' or 'best' epoch.", rich_help_panel=T)] = "last",
    resume: Annotated[Path | None, Opt("--resume", help="Continue from OUT.ckpt (see --keep-checkpoint).", exists=True,
                                       dir_okay=False, rich_help_panel=M)] = None,
    init: Annotated[Path | None, Opt("--init", help="Weights to fine-tune.", parser=weights_file,
                                     metavar=WEIGHTS_METAVAR, rich_help_panel=M)] = None,
    config: Annotated[list[str] | None, Opt("--config", help="Model option KEY=VALUE (repeatable).",
                                            rich_help_panel=M)] = None,
    scenes: Annotated[int, Opt("--scenes", min=1, help="Scenes (or cubes) per epoch / pixel fit.",
                               rich_help_panel=D)] = 16,
    scene_size: Annotated[int, Opt("--scene-size", min=16, help="Side of synthetic scenes.", rich_help_panel=D)] = 256,
    pixels: Annotated[int, Opt("--pixels", min=100, help="Pixels sampled for a pixel model.", rich_help_panel=D)] = 200_000,
    val_scenes: Annotated[int | None, Opt("--val-scenes", min=1, help="Validation scenes (default 4 / all).",
                                          rich_help_panel=D)] = None,
    val_rgb: Annotated[str | None, Opt("--val-rgb", help="Your camera's images of the --val cubes.",
                                       rich_help_panel=D)] = None,
    val_size: Annotated[int, Opt("--val-size", min=16, help="Side of synthetic validation scenes.",
                                 rich_help_panel=D)] = 256,
    fp16: Annotated[bool | None, Opt("--fp16/--fp32", help="Storage (default: fp16 for deep models).",
                                     show_default=False, rich_help_panel=IO)] = None,
    int8: Annotated[bool, Opt("--int8", help="Large weight matrices as int8 (half of fp16).", rich_help_panel=IO)] = False,
    speed: Annotated[bool, Opt("--speed/--no-speed", help="Time one image and record it.", rich_help_panel=IO)] = True,
    keep_checkpoint: Annotated[bool, Opt("--keep-checkpoint", help="Keep OUT.ckpt after a finished run.",
                                         rich_help_panel=IO)] = False,
    device: Annotated[str, Opt("--device", help="auto (CUDA if present), cpu, cuda, cuda:N.",
                               rich_help_panel=T)] = "auto",
    nproc: Annotated[int, Opt("--nproc", min=1, help="Processes or GPUs (torchrun).",
                              rich_help_panel=T)] = 1,
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Train on synthetic scenes or cubes, RGB simulated or your camera's (--rgb); see docs/options.md.

    Examples:
    $ hstool train -m rootpoly -t realworld -o rootpoly_rw.safetensors
    $ hstool train -m mstpp_s --init mstpp_s:clean --data cubes/ --rgb photos/ -o mine.safetensors
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
        val_scenes=val_scenes, val_size=val_size, fp16=fp16, int8=int8, overwrite=overwrite, speed=speed, val_rgb=val_rgb,
        keep_checkpoint=keep_checkpoint,
    )
    meta = run_training(cfg, console=err)
    if not meta:  # a torchrun process other than the first: that one reports
        return
    if json:
        print_json({"out": str(out), **meta})
        return
    err.print(f"wrote {out} (val MRAE {fmt(meta['val_mrae']) if meta['val_mrae'] is not None else '-'}, "
              f"{meta['train_seconds']} s)")
