"""The ``hstool`` command: assembles one Typer command per module and guards them all.

Every command runs inside :func:`guarded`: a library error (:class:`HsError`, a missing file, a
broken input) becomes one red line naming the file and the problem and a non-zero exit, with no
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from hstool.hsdata import HsError
from hstool.hsdata.errors import brief

from .output import BROKEN_PIPE, DEBUG, error, silence

app = typer.Typer(
    name="hstool",
    help="Hyperspectral imaging from the command line: calibrate Specim IQ captures, simulate cameras, "
    "reconstruct spectra from RGB and score them as the NTIRE challenges did.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        try:
            print(version("hstool"))
        except PackageNotFoundError:
            print("unknown")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """hstool: hyperspectral imaging and spectral reconstruction from RGB."""
    DEBUG["on"] = debug or bool(os.environ.get("HSTOOL_DEBUG"))


def guarded(fn: Callable) -> Callable:
    """Turn library errors into one line and exit code 1 (130 for an interrupted run)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:  # `hstool ... --json | head`: the reader has what it wanted
            silence(sys.stdout)
            raise typer.Exit(BROKEN_PIPE) from None
        except HsError as exc:
            if DEBUG["on"]:
                raise
            error(" ".join(str(exc).split()))  # one line even when a library's message has several
            raise typer.Exit(1) from None
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            if DEBUG["on"]:
                raise
            where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
            problem = brief(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)  # one short line
            problem = problem or type(exc).__name__  # never empty
            error(f"{where}{problem} (run with --debug for the traceback)")
            raise typer.Exit(1) from None

    return wrapper


def reflow(doc: str | None) -> str:
    """A docstring as ``--help`` text: each paragraph one line for rich to wrap to the terminal
    (it keeps a docstring's own line breaks, which then break mid-sentence)."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc or "").split("\n\n"))


def add(command: Callable, name: str, summary: str) -> None:
    """Register ``command``; ``summary`` is its line in ``hstool --help`` (its docstring is its own --help)."""
    app.command(name, short_help=summary, help=reflow(command.__doc__))(guarded(command))


# One module per command, in the order `hstool --help` lists them.
from . import (
    calibrate,
    convert,
    demo,
    evaluate,
    info,
    models,
    recon,
    render,
    score,
    simulate,
    synth,
    train,
)

add(demo.demo, "demo", "Simulate, reconstruct and score the bundled sample scenes.")
add(calibrate.calibrate, "calibrate", "Specim IQ captures -> calibrated 31-band cubes (the ARAD recipe).")
add(simulate.simulate, "simulate", "Hyperspectral cubes -> the RGB a camera records (NTIRE tracks).")
add(recon.recon, "recon", "RGB images -> 31-band cubes, with a bundled model or baseline.")
add(score.score, "score", "Score reconstructions against ground truth, as NTIRE did.")
add(evaluate.evaluate, "evaluate", "The challenge's extended evaluation (its Table 3) of one model.")
add(train.train, "train", "Train or fit a model; its weights record how to redo it.")
add(models.models, "models", "List models and weights, describe a weights file, export to ONNX.")
add(convert.convert, "convert", "Cubes from one format or band grid to another (.mat, ENVI, .npy).")
add(synth.synth, "synth", "Generate synthetic hyperspectral scenes from measured spectra.")
add(render.render, "render", "Render a cube as an sRGB preview, with pixels' spectra (PNG).")
add(info.info, "info", "Describe cubes and images: shape, bands, value range, metadata.")


def run() -> None:
    """Console-script entry point. A usage error (a missing argument, a value out of range, a
    file where a folder belongs) is one line and exit code 2, like every other error, instead
    of click's boxed usage text."""
    try:
        code = app(standalone_mode=False, prog_name="hstool")
    except typer.Abort:
        error("interrupted")
        sys.exit(130)
    except BrokenPipeError:  # `hstool --help | head`: the help is printed outside any command
        silence(sys.stdout)
        sys.exit(BROKEN_PIPE)
    except Exception as exc:  # click's (or typer's vendored click's) ClickException, by its interface
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        message = " ".join(exc.format_message().split())
        if message:  # none when the help was shown for a bare command
            ctx = getattr(exc, "ctx", None)
            error(f"{ctx.command_path + ': ' if ctx is not None else ''}{message} (see --help)")
        sys.exit(exc.exit_code)
    try:
        sys.stdout.flush()  # the last of the output, while a closed pipe can still be told apart
    except BrokenPipeError:
        silence(sys.stdout)
        sys.exit(BROKEN_PIPE)
    sys.exit(code if isinstance(code, int) else 0)
