"""The command line as people expect it: results (tables) on stdout and nothing else there, notes
and progress on stderr; ``--json`` on stdout; short help; the user's own lines as written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_cube

from hstool.hsdata import read_rgb, write_cube
from hstool.hsdata.specim_synthetic import write_synthetic_capture
from hstool.recon.catalog import BUNDLED_DIR, build_catalog, catalog, describe_models, read_metadata

BOX = tuple("┏┃┡│└")


def only_tables(text: str) -> bool:
    """Whether ``text`` holds one or more rich tables and nothing else (each with its title line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not any(line.startswith("┏") for line in lines):
        return False
    for i, line in enumerate(lines):
        if not line.startswith(BOX) and not (i + 1 < len(lines) and lines[i + 1].startswith("┏")):
            return False  # neither a table row nor a table's title
    return True


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A small realistic set: a Specim IQ capture, two cubes and their clean RGB, weights."""
    root = tmp_path_factory.mktemp("streams")
    write_synthetic_capture(root / "raw", "cap", lines=16, samples=40)
    for i, name in enumerate(("ARAD_HS_0001", "ARAD_HS_0002")):
        write_cube(make_cube(24, 32, seed=i), root / "gt" / f"{name}.mat")
    return root


def run(hstool, *args):
    r = hstool(*args)
    assert r.exit_code == 0, r.output
    return r


def test_every_command_prints_its_table_on_stdout_and_nothing_else_there(hstool, work):
    out = work / "out"
    checks = {
        "calibrate": ("calibrate", work / "raw", out / "cal"),
        "simulate": ("simulate", work / "gt", out / "rgb"),
        "recon": ("recon", out / "rgb", "--model", "linear", "--out", out / "rec"),
        "score": ("score", out / "rec", work / "gt"),
        "evaluate": ("evaluate", work / "gt", "--model", "linear", "--clusters", "20"),
        "models": ("models",),
        "models -w": ("models", "-w", "linear:clean"),
        "convert": ("convert", work / "gt", out / "npy", "-f", "npy"),
        "synth": ("synth", out / "synth", "-n", "1", "--size", "32x32"),
        "info": ("info", work / "gt"),
        "list-css": ("simulate", "--list-css"),
    }
    for what, args in checks.items():
        r = run(hstool, *args)
        assert only_tables(r.stdout), (what, r.stdout)
        assert "┏" not in r.stderr, (what, r.stderr)  # no table left on stderr
    # notes and progress stay on stderr
    assert "simulate clean" in hstool("simulate", work / "gt", out / "rgb2").stderr
    # a command without a result table prints nothing on stdout
    r = run(hstool, "render", work / "gt" / "ARAD_HS_0001.mat", out / "one.png")
    assert r.stdout == "" and "wrote" in r.stderr


def test_json_is_the_only_thing_on_stdout_and_quiet_silences_stderr_but_errors(hstool, work):
    out = work / "json"
    r = run(hstool, "simulate", work / "gt", out, "--json")
    report = json.loads(r.stdout)
    assert sorted(report) == ["failed", "incomplete", "pipeline", "skipped", "written"]
    assert len(report["written"]) == 2 and "━" in r.stderr  # the progress bar on stderr
    (work / "pred").mkdir()
    for name in ("ARAD_HS_0001.mat", "Z.mat"):
        (work / "pred" / name).write_bytes((work / "gt" / "ARAD_HS_0001.mat").read_bytes())
    r = run(hstool, "score", work / "pred", work / "gt")
    assert "unpaired" in r.stderr and "━" in r.stderr and "unpaired" not in r.stdout
    r = run(hstool, "score", work / "pred", work / "gt", "--json", "-q")  # unpaired files: said, but quietly
    report = json.loads(r.stdout)
    assert [i["image"] for i in report["images"]] == ["ARAD_HS_0001"] and report["images"][0]["mrae"] == 0
    assert report["unpaired"]["pred"] == [str(work / "pred" / "Z.mat")] and r.stderr == ""
    r = hstool("info", work / "nosuch.mat", "-q")
    assert r.exit_code == 1 and r.stdout == "" and "nosuch.mat: no such file" in r.stderr
    r = run(hstool, "simulate", work / "gt", out / "v", "-v")
    assert "━" not in r.stderr and "ARAD_HS_0001.mat" in r.stderr and "ARAD_HS_0002.mat" in r.stderr


def test_simulate_in_a_folder_of_cubes_writes_a_folder_named_for_the_track(hstool, work, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = hstool("simulate", "--track", "realworld")  # nothing here
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "no cubes in this folder" in r.stderr
    assert not (tmp_path / "realworld").exists()
    for f in (work / "gt").iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    r = run(hstool, "simulate", "--track", "realworld")
    assert "writing to realworld" in r.stderr
    written = sorted(p.name for p in (tmp_path / "realworld").iterdir())
    assert written == ["ARAD_HS_0001_RealWorld.jpg", "ARAD_HS_0002_RealWorld.jpg"]
    assert read_rgb(tmp_path / "realworld" / written[0]).shape == (24, 32, 3)
    # the other forms: OUT last, or --out; one path alone is refused (inputs, or an output folder?)
    run(hstool, "simulate", "ARAD_HS_0001.mat", "a")
    run(hstool, "simulate", "ARAD_HS_0001.mat", "--out", "b")
    assert (tmp_path / "a" / "ARAD_HS_0001_clean.png").read_bytes() == \
        (tmp_path / "b" / "ARAD_HS_0001_clean.png").read_bytes()
    r = hstool("simulate", "ARAD_HS_0001.mat", env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "then the output folder (or --out)" in r.stderr and not (tmp_path / "clean").exists()
    r = hstool("calibrate", work / "raw", tmp_path / "c1", "--out", tmp_path / "c2")
    assert r.exit_code == 2 and "once" in r.stderr and not (tmp_path / "c1").exists()
    run(hstool, "convert", "ARAD_HS_0001.mat", "--out", "conv", "-f", "npy")
    run(hstool, "synth", "--out", "scenes", "-n", "1", "--size", "16x16")
    assert (tmp_path / "conv" / "ARAD_HS_0001.npy").is_file() and (tmp_path / "scenes" / "SYNTH_train_0000.mat").is_file()


def test_init_and_weights_take_bundled_weights_by_name_and_track(hstool, tmp_path):
    w = tmp_path / "mine.safetensors"
    args = ["train", "-m", "mstpp_s", "--init", "mstpp_s:clean", "--data", "synth", "--val", "none", "--epochs", "1",
            "--steps-per-epoch", "1", "--batch", "1", "--crop", "16", "--scenes", "1", "--scene-size", "32",
            "--no-speed", "--device", "cpu"]
    r = run(hstool, *args, "-o", w)
    assert r.stdout == "" and "epoch 1/1" in r.stderr and "wrote" in r.stderr  # no table: notes only, on stderr
    meta = read_metadata(w)
    assert meta["init"]["file"] == "mstpp_s_clean.safetensors"
    assert "--init mstpp_s:clean" in meta["train_command"]  # a line that works wherever hstool is installed
    assert not w.with_suffix(".ckpt").exists()  # the weights hold the finished run
    kept = tmp_path / "kept.safetensors"
    run(hstool, *args, "-o", kept, "--keep-checkpoint")
    assert kept.with_suffix(".ckpt").is_file()
    r = hstool("train", *args[:4], "nosuch:clean", *args[5:], "-o", tmp_path / "x.safetensors", env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "no bundled weights nosuch:clean" in r.stderr and "Traceback" not in r.output
    r = run(hstool, "models", "-w", "mstpp_s:Real-World", "--json")
    assert json.loads(r.stdout)["file"] == str(BUNDLED_DIR / "mstpp_s_realworld.safetensors")


def test_every_help_fits_60_lines_of_100_columns_with_no_flag_metavar(hstool):
    from hstool.cli.main import COMMANDS

    for name in ["", *COMMANDS]:
        r = hstool(*([name] if name else []), "--help", env={"COLUMNS": "100"})
        lines = r.stdout.splitlines()
        assert r.exit_code == 0 and len(lines) <= 60, (name, len(lines))
        assert max(map(len, lines)) <= 100 and "…" not in r.stdout and "<bool>" not in r.stdout, name
        if name:
            assert "--quiet" in r.stdout and "Examples:" in r.stdout and "$ hstool " + name in r.stdout, name


def test_models_lists_from_the_catalogue_as_the_registry_says_without_torch(hstool, work, tmp_path):
    assert {k: v for k, v in build_catalog().items() if not k.startswith("_")} == catalog()  # else rewrite it:
    # python -m hstool.recon.catalog
    rows = describe_models("mstpp*")
    assert [r["name"] for r in rows] == ["mstpp", "mstpp_s"]
    assert all({b["track"] for b in row["bundled"]} == {"clean", "realworld"} for row in rows)
    gt = str(work / "gt" / "ARAD_HS_0001.mat")
    for command in (["models"], ["models", "--json"], ["--help"], ["info", "--help"], ["info", gt],
                    ["score", gt, gt], ["simulate", gt, str(tmp_path / "sim")]):
        code = f"import sys\nfrom hstool.cli.main import app\napp({command!r}, standalone_mode=False)\n" \
               "print('torch' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.splitlines()[-1] == "False", command


def test_benchmark_startup_runs_and_compares_against_bare_python():
    out = subprocess.run([sys.executable, "benchmarks/startup.py", "--repeat", "1", "--json", "--size", "16x16"], capture_output=True,
                         text=True, check=True, timeout=300, cwd=__import__("pathlib").Path(__file__).parents[1])
    report = json.loads(out.stdout)
    assert [r["command"] for r in report["rows"]][:2] == ["python -c pass", "hstool --help"]
    assert all(np.isfinite(r["median_s"]) and r["median_s"] > 0 for r in report["rows"])


def test_a_missing_extra_is_named_once_per_run_before_any_work(hstool, work, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if scikit-learn were not installed
    r = hstool("score", work / "gt", work / "gt", "-m", "weighted", "--clustering", "organisers")
    assert r.exit_code == 1 and r.stdout == "" and r.stderr.count("\n") == 1
    assert 'pip install "hstool[organisers]"' in r.stderr and "━" not in r.stderr  # refused before the batch
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    r = hstool("models", "export", "linear", tmp_path / "m.onnx")
    assert r.exit_code == 1 and 'pip install "hstool[onnx]"' in r.stderr and not (tmp_path / "m.onnx").exists()


def test_hsdata_names_resolve_on_first_use_and_the_cli_starts_without_the_file_libraries():
    from hstool import hsdata

    assert sorted(hsdata.__all__) == sorted(["HsError", *hsdata._LAZY])
    assert all(getattr(hsdata, name).__name__ == name for name in hsdata.__all__ if name[0].islower())
    assert hsdata.formats.read_cube is hsdata.read_cube  # a submodule after a bare import, as before
    code = "import sys, hstool.cli.main\nprint(sorted(m for m in ('h5py', 'cv2', 'numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_format_library_is_imported_by_the_first_file_of_its_format(tmp_path):
    """h5py, SPy and imageio load when a .mat, ENVI or exotic image is read, not with the readers:
    a real-world simulate of .npy cubes starts without them (the organisers' script is the bar)."""
    np.save(tmp_path / "c.npy", np.ones((4, 5, 31), np.float32))
    code = ("import sys\nimport hstool.camera.pipeline, hstool.hsdata.formats as f\n"
            "libs = lambda: [m for m in ('h5py', 'spectral', 'imageio') if m in sys.modules]\n"
            f"before = libs(); cube = f.read_cube({str(tmp_path / 'c.npy')!r}); npy = libs()\n"
            f"f.write_cube(cube, {str(tmp_path / 'c.mat')!r}); f.read_cube({str(tmp_path / 'c.mat')!r})\n"
            f"f.write_cube(cube, {str(tmp_path / 'c.hdr')!r}); print(before, npy, libs())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] [] ['h5py', 'spectral']"


def test_shell_completion_knows_the_commands_and_their_options():
    import os

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_HSTOOL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        return subprocess.run([sys.executable, "-m", "hstool.cli"], env=env, capture_output=True, text=True, check=True,
                              timeout=120).stdout.split()

    assert complete("hstool sim", 1) == ["simulate"]
    assert complete("hstool simulate --tr", 2) == ["--track"]
    assert "--keep-checkpoint" in complete("hstool train --keep", 2)
