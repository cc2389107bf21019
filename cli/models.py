"""``hstool models``: list the registered models and their bundled weights; export one to ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata import HsError

from .options import Json, Overwrite
from .output import err, fmt, print_json, table

ONNX_TOLERANCE = 1e-4  # issue 7: the exported model matches PyTorch to 1e-4


def _speed(b: dict) -> str:
    """Measured seconds per 482x512 image and where: ``0.221 s GPU`` or ``0.0481 s CPU``."""
    s = b.get("speed") or {}
    if "seconds_per_482x512" not in s:
        return "-"
    where = "CPU" if str(s.get("device", "cpu")).lower().startswith("cpu") else "GPU"
    return f"{s['seconds_per_482x512']:.3g} s {where}"


def models(
    args: Annotated[list[str] | None, typer.Argument(help="\\[list] \\[PATTERN] to list, or: export NAME OUT.onnx")] = None,
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
        from hstool.recon.export import check_onnx, export_onnx

        if Path(args[2]).suffix.lower() != ".onnx":
            raise HsError("the exported model is ONNX: give a path ending in .onnx", args[2])
        check_writable(args[2], overwrite)  # an .onnx path: never the weights read
        model = create_model(args[1], weights if weights else "bundled", track)
        path = export_onnx(model, args[2], opset=opset, overwrite=overwrite)
        diff = check_onnx(model, path)
        if diff > ONNX_TOLERANCE:
            raise HsError(f"onnxruntime differs from PyTorch by {diff:.2e} (> {ONNX_TOLERANCE:g})", path)
        if json:
            print_json({"model": args[1], "output": str(path), "max_abs_diff": diff, "multiple": max(1, model.spec.multiple)})
        else:
            m = max(1, model.spec.multiple)
            err.print(f"wrote {path} (onnxruntime matches PyTorch: max difference {diff:.1e}); input (N, 3, H, W) "
                      f"linear RGB in [0, 1], H and W multiples of {m} (pad, then crop)")
        return
    if args and args[0] == "list":  # `hstool models list [PATTERN]` reads as the bare command
        args = args[1:]
    if len(args) > 1:
        raise HsError("give at most one PATTERN (or: export NAME OUT.onnx)")
    from hstool.recon.weights import describe_models

    rows = describe_models(args[0] if args else "*")
    if args and not rows:
        raise HsError(f"no model matches '{args[0]}' (hstool models lists them all)")
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
