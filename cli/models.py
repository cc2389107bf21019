"""``hstool models``: list the registered models and their bundled weights; export one to ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata import HsError

from .options import WEIGHTS_METAVAR, Json, Overwrite, require_extra, weights_file, weights_track
from .output import err, fmt, print_json, show, table

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
    track: Annotated[str | None, typer.Option("--track", "-t", help="Bundled weights of this track (clean, realworld): to "
                                              "export (default clean), or the only ones listed.")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", "-w", help="Describe (or export) this weights file.",
                                                 parser=weights_file, metavar=WEIGHTS_METAVAR)] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset for export (default 17).")] = None,
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """List registered models (kind, parameters, bundled weights, val MRAE, speed), describe a
    weights file, or export a model to ONNX.

    Bundled weights are named NAME:TRACK (mstpp_s:clean) by --weights here, in recon and in train's --init.

    Examples:
    $ hstool models | grep mstpp
    $ hstool models 'hs*' --track realworld --json
    $ hstool models -w mine.safetensors
    $ hstool models export rootpoly rootpoly.onnx --track realworld
    """
    args = args or []
    if args and args[0] == "export":
        _export(args, weights_track(weights, track), weights, 17 if opset is None else opset, overwrite, json)
        return
    if args and args[0] == "list":  # `hstool models list [PATTERN]` reads as the bare command
        args = args[1:]
    if len(args) > 1:
        raise HsError("give at most one PATTERN (or: export NAME OUT.onnx)")
    idle = [name for name, given in (("--opset", opset is not None), ("--overwrite", overwrite)) if given]
    if idle:
        verb = "act" if len(idle) > 1 else "acts"
        raise HsError(f"{' and '.join(idle)} {verb} on export (hstool models export NAME OUT.onnx), not on a listing")
    if weights is not None:
        if args or track is not None:
            raise HsError("--weights describes one file: give no PATTERN or --track with it")
        _describe(weights, json)
        return
    _list(args[0] if args else None, track, json)


def _export(args: list[str], track: str, weights: Path | None, opset: int, overwrite: bool, json: bool) -> None:
    from hstool.hsdata import check_writable
    from hstool.recon import create_model
    from hstool.recon.export import check_onnx, export_onnx, model_metadata, size_rule

    if len(args) == 2 and weights is not None:  # a weights file names its model
        from hstool.recon.weights import describe_weights

        args = [args[0], describe_weights(weights)["name"], args[1]]
    if len(args) != 3:
        raise typer.BadParameter("export takes NAME OUT.onnx [--track T | --weights FILE], or OUT.onnx --weights FILE",
                                 param_hint="ARGS")

    if Path(args[2]).suffix.lower() != ".onnx":
        raise HsError("the exported model is ONNX: give a path ending in .onnx", args[2])
    require_extra("models export", "onnx", "onnx", "onnxruntime")
    check_writable(args[2], overwrite)  # an .onnx path: never the weights read
    model = create_model(args[1], weights if weights else "bundled", track)
    path = export_onnx(model, args[2], opset=opset, overwrite=overwrite)
    diff = check_onnx(model, path)
    if diff > ONNX_TOLERANCE:
        raise HsError(f"onnxruntime differs from PyTorch by {diff:.2e} (> {ONNX_TOLERANCE:g})", path)
    m, least = size_rule(model)
    note = model_metadata(model).get("hstool.note")
    if json:
        print_json({"model": args[1], "output": str(path), "max_abs_diff": diff, "multiple": m, "min_side": least,
                    "note": note})
    else:
        rule = f"H and W multiples of {m}, at least {least} (pad, then crop)" if least > 1 else "any H and W"
        err.print(f"wrote {path} (onnxruntime matches PyTorch: max difference {diff:.1e}); input (N, 3, H, W) "
                  f"linear RGB in [0, 1], {rule}; output clamped at 0")
        if note:
            err.print(f"{args[1]}: {note}", style="yellow")


def _describe(path: Path, json: bool) -> None:
    """One weights file: its model and how it was trained."""
    from hstool.recon.weights import describe_weights

    record = describe_weights(path)
    if json:
        print_json(record)
        return
    init = record["init"] or {}
    rows = [["model", record["name"]], ["kind", record["kind"]], ["parameters", f"{record['parameters']:,}"],
            ["config", ", ".join(f"{k}={v}" for k, v in record["config"].items()) or "-"],
            ["track", record["track"] or "-"], ["camera (CSS)", record["css"] or "-"],
            ["bands", record["bands"] or "-"],
            ["trained on", record["data"] or "-"], ["data hash", record["data_hash"] or "-"],
            ["validated on", record["val_data"] or "-"],
            ["val MRAE", fmt(record["val_mrae"]) if record["val_mrae"] is not None else "-"],
            ["epochs (kept)", f"{record['epochs_run']} ({record['kept_epoch'] or '-'})" if record["epochs_run"] else "-"],
            ["stored as", record["dtype"] or "-"],
            ["trained", f"{record['created'] or '-'}, {record['train_seconds']} s" if record["train_seconds"] is not None
             else record["created"] or "-"],
            ["s / 482x512", _speed(record)], ["train command", record["train_command"] or "-"],
            ["initialised from", init.get("file", "-")]]
    show(table(str(path), ["field", "value"], rows))


def _list(pattern: str | None, track: str | None, json: bool) -> None:
    from hstool.recon.catalog import describe_models

    rows = describe_models(pattern or "*")
    if pattern and not rows:
        raise HsError(f"no model matches '{pattern}' (hstool models lists them all)")
    if track is not None:
        from hstool.camera import track_name

        track = track_name(track)
        for r in rows:
            r["bundled"] = [b for b in r["bundled"] if (b["track"] or "").lower() == track]
        rows = [r for r in rows if r["bundled"]]
        if not rows:
            raise HsError(f"no model{f' matching {pattern!r}' if pattern else ''} has bundled weights for the {track} track")
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
    show(table(f"{len(rows)} model(s)", ["model", "kind", "parameters", "bundled track",
                                              "trained on", "val MRAE", "s / 482x512"], cells))
