"""`hstool demo`: the README's first command, end to end on the bundled sample."""

import json
from pathlib import Path

import numpy as np

from hstool.hsdata import read_cube, read_rgb
from hstool.hsdata.sample import sample_cubes


def test_demo_simulates_reconstructs_scores_and_writes_previews(hstool, tmp_path):
    out = tmp_path / "demo"
    r = hstool("demo", out, "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    stems = [p.stem for p in sample_cubes()]
    assert [(row["track"], row["image"]) for row in rows] == [(t, s) for t in ("clean", "realworld") for s in stems]
    for row in rows:
        pred, gt = read_cube(row["cube"]), read_cube(next(p for p in sample_cubes() if p.stem == row["image"]))
        assert pred.shape == gt.shape
        # the reported score is the score of the written cube
        assert np.isclose(row["mrae"], np.mean(np.abs(pred.data - gt.data) / gt.data), rtol=1e-4)
        assert 0 < row["mrae"] < 1 and row["physical"] < 0.1
        assert read_rgb(row["rgb"]).shape == (*gt.shape[:2], 3)
    assert (out / "previews" / f"{stems[0]}_gt.png").stat().st_size > 0
    assert len(list((out / "previews").glob("*_mrae.png"))) == len(rows)
    # its real-world RGB is the one `hstool simulate` makes with the same --seed
    real = next(row for row in rows if row["track"] == "realworld")
    cube = next(p for p in sample_cubes() if p.stem == real["image"])
    assert hstool("simulate", cube, tmp_path / "sim", "--track", "realworld", "--seed", "0").exit_code == 0
    assert (tmp_path / "sim" / Path(real["rgb"]).name).read_bytes() == Path(real["rgb"]).read_bytes()
    # a second run replaces its own outputs; a folder of somebody else's files is refused, untouched
    assert hstool("demo", out).exit_code == 0
    mine = tmp_path / "mine"
    (mine / "rgb").mkdir(parents=True)
    (mine / "rgb" / f"{stems[0]}_clean.png").write_text("keep")
    r = hstool("demo", mine)
    assert r.exit_code == 1 and "holds files no demo run wrote" in r.stderr
    assert (mine / "rgb" / f"{stems[0]}_clean.png").read_text() == "keep" and not (mine / ".hstool-demo").exists()
    r = hstool("demo", out)
    assert r.exit_code == 0 and "Back-proj." in r.stdout and "PSNR dB" in r.stdout  # score's headers
    r = hstool("demo", tmp_path / "never", "--model", "hscnnp_r")  # no bundled weights: refused before any file
    assert r.exit_code == 1 and "no bundled weights for model 'hscnnp_r'" in r.stderr and not (tmp_path / "never").exists()


def test_the_readme_python_example_runs_as_written(capsys):
    """The README's library example, on a bundled cube instead of ARAD_HS_0451.mat: it prints the
    MRAE and RMSE of a real-world-track reconstruction, which must be those of a good model."""
    import re

    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 1 and '"ARAD_HS_0451.mat"' in blocks[0]
    cube = next(p for p in sample_cubes() if p.stem == "SYNTH_test_0000")
    exec(compile(blocks[0].replace('"ARAD_HS_0451.mat"', repr(str(cube))), "README.md", "exec"), {})  # noqa: S102 (our own README)
    mrae, rmse = map(float, capsys.readouterr().out.split())
    assert 0 < mrae < 0.5 and 0 < rmse < 0.1
