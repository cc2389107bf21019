"""``hstool models``: list the registered models and their bundled weights; export one to ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hstool.hsdata import HsError

from .options import Json, Overwrite
from .output import err, fmt, print_json, table


def _count_parameters(name: str) -> int:
    """Trainable parameters, or fitted buffer values for pixel-wise models (built on the meta
    device, so nothing is allocated)."""
    import torch

    from hstool.recon import build_model, model_spec

    with torch.device("meta"):
        model = build_model(name)
    tensors = list(model.buffers()) if model_spec(name).kind == "pixel" else list(model.parameters())
    return int(sum(t.numel() for t in tensors))


def describe_models(pattern: str = "*") -> list[dict[str, Any]]:
    """One record per registered model matching ``pattern``, with its bundled weights' metadata."""
    from hstool.recon import list_models, model_spec
    from hstool.recon.weights import bundled_weights, read_metadata

    files = bundled_weights()
    rows = []
    for name in list_models(pattern):
        spec = model_spec(name)
        bundled = []
        for f in files:
            if not f.stem.startswith(name + "_"):
                continue
            meta = read_metadata(f)
            if meta.get("architecture") != name:
                continue
            bundled.append({"file": f.name, "track": meta.get("track"), "css": meta.get("css"),
                            "data": meta.get("data"), "data_short": meta.get("data_short"), "val_mrae": meta.get("val_mrae"),
                            "speed": meta.get("speed"), "train_command": meta.get("train_command")})
        rows.append({"name": name, "kind": spec.kind, "parameters": _count_parameters(name),
                     "multiple": spec.multiple, "halo": spec.halo, "description": spec.description,
                     "reference": spec.reference, "bundled": bundled})
    return rows


def _speed(b: dict) -> str:
    s = b.get("speed") or {}
    return f"{s['seconds_per_482x512']:.3g} s" if "seconds_per_482x512" in s else "-"


def models(
    args: Annotated[list[str] | None, typer.Argument(help="[PATTERN] to list, or: export NAME OUT.onnx")] = None,
    track: Annotated[str, typer.Option("--track", help="Bundled weights to export (clean, realworld).")] = "clean",
    weights: Annotated[Path | None, typer.Option("--weights", "-w", help="Export these weights instead of the "
                                                 "bundled ones.", exists=True, dir_okay=False)] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset for export.")] = 17,
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """List registered models (kind, parameters, bundled weights, val MRAE, speed), or export one.

    Examples: [bold]hstool models[/], [bold]hstool models 'hs*' --json[/],
    [bold]hstool models export rootpoly rootpoly.onnx --track realworld[/]
    """
    args = args or []
    if args and args[0] == "export":
        if len(args) != 3:
            raise HsError("usage: hstool models export NAME OUT.onnx [--track T | --weights FILE]")
        from hstool.hsdata import check_writable
        from hstool.recon import create_model
        from hstool.recon.export import export_onnx

        check_writable(args[2], overwrite)
        model = create_model(args[1], weights if weights else "bundled", track)
        path = export_onnx(model, args[2], opset=opset)
        if json:
            print_json({"model": args[1], "output": str(path)})
        else:
            err.print(f"wrote [bold]{path}[/]")
        return
    if len(args) > 1:
        raise HsError("give at most one PATTERN (or: export NAME OUT.onnx)")
    rows = describe_models(args[0] if args else "*")
    if json:
        print_json(rows)
        return
    cells = []
    for r in rows:
        first = [r["name"], r["kind"], f"{r['parameters']:,}"]
        if not r["bundled"]:
            cells.append(first + ["-", "-", "-", "-"])
        for i, b in enumerate(r["bundled"]):
            cells.append((first if i == 0 else ["", "", ""])
                         + [b["track"], b["data_short"] or (b["data"] or "-")[:24], fmt(b["val_mrae"]) if b["val_mrae"] is not None else "-",
                            _speed(b)])
    err.print(table(f"{len(rows)} model(s)", ["model", "kind", "parameters", "bundled track",
                                              "trained on", "val MRAE", "s / 482x512"], cells))
