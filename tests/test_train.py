"""``hstool train``: tiny deep model on synthetic scenes, checkpoints and resume, pixel fits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from hstool.hsdata import ARAD_WAVELENGTHS, HsError
from hstool.hsdata.atomic import FILE_MODE
from hstool.recon import create_model, list_models
from hstool.recon.registry import register_model
from hstool.recon.train import CubeSource, TrainConfig, checkpoint_path, validate, validation_set


class Tiny(nn.Module):
    """Two convolutions (receptive radius 2)."""

    def __init__(self, out_bands: int = 31, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, out_bands, 3, padding=1))

    def forward(self, x):
        return self.net(x)


if "_tiny_test" not in list_models():
    register_model("_tiny_test", kind="deep", multiple=1, halo=4, description="test only")(
        lambda out_bands=31, width=8: Tiny(out_bands, width))


#: what a pixel fit reads too; TINY adds the options only training uses
COMMON = ["--data", "synth", "--scenes", "2", "--scene-size", "32", "--val-scenes", "1", "--val-size", "32",
          "--seed", "3", "--device", "cpu", "--brightness-aug", "--no-speed"]
TINY = ["--model", "_tiny_test", "--steps-per-epoch", "2", "--batch", "2", "--crop", "16", *COMMON]


def drop(args: list, *flags: str) -> list:
    """``args`` without each of ``flags`` and its value."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        else:
            out.append(a)
    return out


def state(path):
    return {k: v.clone() for k, v in create_model("_tiny_test", path).state_dict().items()}


def test_train_writes_loadable_weights_with_metadata(hstool, tmp_path):
    full = tmp_path / "full.safetensors"
    r = hstool("train", *TINY, "--epochs", "2", "--out", full)
    assert r.exit_code == 0, r.output
    model = create_model("_tiny_test", full)
    meta = model.meta
    assert meta["architecture"] == "_tiny_test" and meta["track"] == "clean" and meta["css"]
    assert meta["config"] == {"out_bands": 31, "width": 8} and meta["dtype"] == "fp16"
    assert meta["train_command"].startswith("hstool train --model _tiny_test --data synth --track clean")
    assert "--brightness-aug" in meta["train_command"] and len(meta["history"]) == 2
    assert np.isfinite(meta["val_mrae"]) and meta["data_hash"] and meta["rgb_mean"] > 0
    # train -> save -> load -> recon: the loaded weights score exactly what training recorded
    pairs = validation_set(TrainConfig(model="_tiny_test", out=full, val_scenes=1, val_size=32),
                           np.asarray(meta["wavelengths"]))
    assert abs(validate(model, pairs, torch.device("cpu")) - meta["val_mrae"]) < 1e-7
    # deterministic for --seed
    again = tmp_path / "again.safetensors"
    assert hstool("train", *TINY, "--epochs", "2", "--out", again).exit_code == 0
    a, b = state(full), state(again)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("ema", [[], ["--ema", "0.5"]], ids=["plain", "ema"])
def test_resume_after_an_interruption_equals_the_straight_run(hstool, tmp_path, monkeypatch, ema):
    straight = tmp_path / "straight.safetensors"
    assert hstool("train", *TINY, *ema, "--epochs", "2", "--out", straight).exit_code == 0
    # interrupt the same run during epoch 2 (epoch 1 = 2 steps x 2 crops)
    from hstool.recon.train import CubeSource

    calls = {"n": 0}
    crop = CubeSource.crop

    def interrupted(self, rng, size):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return crop(self, rng, size)

    monkeypatch.setattr(CubeSource, "crop", interrupted)
    cut = tmp_path / "cut.safetensors"
    r = hstool("train", *TINY, *ema, "--epochs", "2", "--out", cut)
    assert r.exit_code == 130 and not cut.exists() and checkpoint_path(cut).exists()
    monkeypatch.setattr(CubeSource, "crop", crop)
    r = hstool("train", *TINY, *ema, "--epochs", "2", "--out", cut, "--resume", checkpoint_path(cut))
    assert r.exit_code == 0, r.output
    a, b = state(straight), state(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(create_model("_tiny_test", cut).meta["history"]) == 2
    r = hstool("train", *TINY, "--epochs", "2", "--out", tmp_path / "x.safetensors", "--resume", straight)
    assert r.exit_code == 1 and "not a training checkpoint" in r.output and "with --init" in r.output
    (tmp_path / "other.ckpt").write_bytes(b"not a checkpoint")
    r = hstool("train", *TINY, "--epochs", "2", "--out", tmp_path / "y.safetensors", "--resume", tmp_path / "other.ckpt")
    assert r.exit_code == 1 and "not a training checkpoint" in r.output and "Traceback" not in r.output


def test_pixel_model_train_is_closed_form_and_deterministic(hstool, tmp_path):
    args = ["--model", "rootpoly", "--data", "synth", "--pixels", "3000", "--scenes", "2", "--scene-size", "32",
            "--val-scenes", "1", "--val-size", "32", "--config", "degree=3"]
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert hstool("train", *args, "--out", a).exit_code == 0
    assert hstool("train", *args, "--out", b, "--json", "--no-speed").exit_code == 0
    ma, mb = create_model("rootpoly", a), create_model("rootpoly", b)
    assert torch.equal(ma.weight, mb.weight) and ma.weight.shape == (13, 31)
    assert ma.meta["config"] == {"out_bands": 31, "degree": 3} and "--config degree=3" in ma.meta["train_command"]
    assert "seconds_per_482x512" in ma.meta["speed"]
    r = hstool("train", *args, "--out", a)  # exists
    assert r.exit_code == 1 and "exists" in r.output
    r = hstool("train", *args[:-2], "--config", "bogus=1", "--out", tmp_path / "c.safetensors")
    assert r.exit_code == 1 and "no option bogus" in r.output


def test_train_on_cube_folders_and_arad_rgb_pairs(hstool, tmp_cube, tmp_path):
    from hstool.camera import simulate_to_file
    from hstool.hsdata import write_cube

    cubes, rgbs, held_out = tmp_path / "cubes", tmp_path / "rgb", tmp_path / "val"
    for i in range(3):
        cube = tmp_cube(24, 32, seed=i)
        write_cube(cube, (cubes if i < 2 else held_out) / f"ARAD_HS_{i:04d}.npy")
        simulate_to_file(cube, rgbs / f"ARAD_HS_{i:04d}_clean.png", "clean", rng=i)
    common = ["--val", held_out, "--no-speed", "--seed", "1"]
    w = tmp_path / "lin.safetensors"
    write_cube(tmp_cube(24, 32, seed=9), cubes / "ARAD_HS_0009.npy")  # no RGB: left out, and said so
    r = hstool("train", "--model", "linear", "--data", cubes, "--rgb", rgbs, "--pixels", "500", *common, "--out", w)
    assert r.exit_code == 0, r.output
    assert "1 cube(s) have no RGB image" in r.stderr and "ARAD_HS_0009.npy" in r.stderr
    meta = create_model("linear", w).meta
    assert "2 cubes" in meta["data"] and "paired with RGB" in meta["data"] and meta["val_mrae"] < 1
    broken = tmp_cube(24, 32, seed=10)
    broken.data[0, 0, 0] = np.nan
    write_cube(broken, cubes / "ARAD_HS_0010.npy")  # no RGB either: not checked, since not trained on
    r = hstool("train", "--model", "linear", "--data", cubes, "--rgb", rgbs, "--pixels", "500", *common[2:],
               "--val", "none", "--out", tmp_path / "lin2.safetensors")
    assert r.exit_code == 0, r.output
    (cubes / "ARAD_HS_0010.npy").unlink()
    deep = tmp_path / "tiny.safetensors"
    r = hstool("train", "--model", "_tiny_test", "--data", cubes, "--epochs", "1", "--steps-per-epoch", "1",
               "--batch", "2", "--crop", "16", "--loss", "l1", *common, "--out", deep)
    assert r.exit_code == 0, r.output
    assert "RGB simulated" in create_model("_tiny_test", deep).meta["data"]
    r = hstool("train", "--model", "linear", "--data", cubes, "--rgb", cubes, *common, "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 1 and "holds no image files" in r.output
    r = hstool("train", "--model", "linear", "--data", cubes, "--rgb", rgbs, "--pixels", "500", "--illuminant-aug",
               *common, "--out", tmp_path / "relit.safetensors")
    assert r.exit_code == 1 and "cannot relight an existing RGB image" in r.output and "ARAD_HS_" in r.output

    # the rgb folder holds both tracks' images: each track pairs its own, never the other's
    for i in range(2):
        simulate_to_file(tmp_cube(24, 32, seed=i), rgbs / f"ARAD_HS_{i:04d}_RealWorld.jpg", "realworld", rng=i)
    for track, suffix in (("clean", "_clean.png"), ("realworld", "_RealWorld.jpg")):
        source = CubeSource(TrainConfig(model="linear", out=w, data=str(cubes), rgb=str(rgbs), track=track),
                            ARAD_WAVELENGTHS)
        assert {f.name: p.name for f, p in source.pairs.items()} == {
            f"ARAD_HS_{i:04d}.npy": f"ARAD_HS_{i:04d}{suffix}" for i in range(2)}, track
    for p in rgbs.glob("*_RealWorld.jpg"):
        p.unlink()
    r = hstool("train", "--model", "linear", "--data", cubes, "--rgb", rgbs, "--track", "realworld", "--pixels", "500",
               *common, "--out", tmp_path / "rw.safetensors")
    assert r.exit_code == 1 and "only images named for another track (ARAD_HS_0000_clean.png)" in r.output, r.output
    assert not (tmp_path / "rw.safetensors").exists()


def test_relight_curve_is_a_smooth_unit_mean_illuminant_change():
    from hstool.recon.train import RELIGHT_SIGMA, relight_curve

    wl = np.arange(400, 701, 10.0)
    curves = np.array([relight_curve(np.random.default_rng(i), wl) for i in range(400)])
    assert curves.dtype == np.float32 and (curves > 0).all()
    assert np.allclose(curves.mean(axis=1), 1, atol=1e-6)
    # the log curve is exactly a cubic in wavelength: a change of illuminant, not of texture
    x = np.linspace(-1, 1, wl.size)
    for c in curves[:20]:
        resid = np.log(c) - np.polynomial.legendre.legval(x, np.polynomial.legendre.legfit(x, np.log(c), 3))
        assert np.abs(resid).max() < 1e-5
    # the tilt (P1 coefficient) has the documented spread
    tilt = np.array([np.polynomial.legendre.legfit(x, np.log(c), 3)[1] for c in curves])
    assert abs(tilt.std() - RELIGHT_SIGMA[0]) < 0.05
    assert np.array_equal(relight_curve(np.random.default_rng(7), wl), relight_curve(np.random.default_rng(7), wl))


def test_illuminant_aug_relights_crops_per_band_and_enters_the_command(tmp_path):
    from hstool.recon.train import CubeSource, relight_curve

    wl = np.arange(400, 701, 10.0)
    plain = TrainConfig(model="_tiny_test", out=tmp_path / "a.safetensors", scenes=1, scene_size=32)
    relit = TrainConfig(model="_tiny_test", out=tmp_path / "a.safetensors", scenes=1, scene_size=32,
                        illuminant_aug=True, brightness_aug=True)
    assert "--illuminant-aug" in relit.command() and "--illuminant-aug" not in plain.command()
    k_plain = CubeSource(plain, wl)._gain(np.random.default_rng(0), wl)
    assert np.array_equal(k_plain, np.ones(wl.size, np.float32))  # disabled: nothing drawn, factor 1
    rng = np.random.default_rng(5)
    k = CubeSource(relit, wl)._gain(rng, wl)
    ref = np.random.default_rng(5)
    bright = np.exp(ref.uniform(np.log(0.5), np.log(2.0)))
    assert np.allclose(k, bright * relight_curve(ref, wl), rtol=1e-6)


def test_keep_best_writes_the_epoch_with_the_lowest_validation_mrae(hstool, tmp_path):
    args = [*TINY, "--epochs", "4", "--lr", "0.2", "--loss", "mse"]
    last, best = tmp_path / "last.safetensors", tmp_path / "best.safetensors"
    assert hstool("train", *args, "--out", last).exit_code == 0
    r = hstool("train", *args, "--keep", "best", "--out", best)
    assert r.exit_code == 0, r.output
    m_last, m_best = create_model("_tiny_test", last).meta, create_model("_tiny_test", best).meta
    vals = [h["val_mrae"] for h in m_best["history"]]
    assert vals == [h["val_mrae"] for h in m_last["history"]]  # same training, only the pick differs
    k = int(np.argmin(vals))
    assert k < len(vals) - 1, vals  # the test needs a run whose last epoch is not its best
    assert m_best["kept_epoch"] == k + 1 and m_last["kept_epoch"] == len(vals)
    assert "--keep best" in m_best["train_command"] and "--keep" not in m_last["train_command"]
    assert abs(m_best["val_mrae"] - vals[k]) < 0.02 * vals[k] and m_best["val_mrae"] < m_last["val_mrae"]
    r = hstool("train", *args, "--keep", "best", "--val", "none", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 1 and "--keep best needs validation data" in r.output


def test_ema_writes_the_moving_average_of_the_step_weights(hstool, tmp_path):
    # The first step is the same in a 1-step and a 2-step run (the cosine schedule starts at its peak
    # either way), so the two runs give the weights after step 1 and step 2; the average starts at
    # step 1's weights and moves 1 - decay of the way to step 2's.
    w1, w2, avg = (tmp_path / f"{n}.safetensors" for n in ("w1", "w2", "avg"))
    args = [*TINY, "--epochs", "1", "--lr", "0.05", "--fp32"]
    assert hstool("train", *args, "--steps-per-epoch", "1", "--out", w1).exit_code == 0
    assert hstool("train", *args, "--out", w2, "--keep-checkpoint").exit_code == 0  # resumed below
    r = hstool("train", *args, "--ema", "0.75", "--out", avg)
    assert r.exit_code == 0, r.output
    a, b, got = state(w1), state(w2), state(avg)
    assert any(not torch.allclose(a[k], b[k]) for k in a)  # the second step moved the weights
    for k in a:
        assert torch.allclose(got[k], 0.75 * a[k] + 0.25 * b[k], atol=1e-7), k
    meta = create_model("_tiny_test", avg).meta
    assert "--ema 0.75" in meta["train_command"]
    assert abs(meta["val_mrae"] - meta["history"][-1]["val_mrae"]) < 1e-6  # validated the average
    r = hstool("train", *args, "--ema", "1", "--out", tmp_path / "bad.safetensors")
    assert r.exit_code == 1 and "--ema must be in [0, 1)" in r.output
    r = hstool("train", *args, "--ema", "0.75", "--out", tmp_path / "r.safetensors", "--resume", checkpoint_path(w2))
    assert r.exit_code == 1 and "the checkpoint's run, which used no --ema" in r.output
    # every option must be the checkpoint's: the optimiser and its schedule come back with it
    r = hstool("train", *args, "--lr", "0.01", "--out", tmp_path / "s.safetensors", "--resume", checkpoint_path(w2))
    assert r.exit_code == 1 and "which used --lr 0.05" in r.output


def test_css_loss_adds_the_loss_of_the_projected_rgb():
    from hstool.camera import track
    from hstool.recon.train import loss_fn, with_css_loss

    wl = np.arange(400, 701, 10.0)
    m = track("clean").matrix(wl)
    rng = np.random.default_rng(0)
    g = rng.uniform(0.05, 1, (2, 31, 4, 5)).astype(np.float32)
    p = (g * rng.uniform(0.8, 1.2, g.shape)).astype(np.float32)
    base = loss_fn("mrae")
    assert with_css_loss(base, m, 0.0) is base
    got = float(with_css_loss(base, m, 3.0)(torch.from_numpy(p), torch.from_numpy(g)))
    proj = lambda x: np.einsum("nbhw,bc->nchw", x.astype(np.float64), m)
    want = np.mean(np.abs(p - g) / g) + 3.0 * np.mean(np.abs(proj(p) - proj(g)) / proj(g))
    assert got == pytest.approx(want, rel=1e-5)
    # a metamer (a change in the camera's null space) costs nothing in the RGB term
    null = np.linalg.svd(m.T)[2][-1].astype(np.float32)  # (31,) with m.T @ null = 0
    meta = g + 0.01 * null[None, :, None, None]
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x, np.float32))
    extra = float(with_css_loss(base, m, 3.0)(t(meta), t(g))) - float(base(t(meta), t(g)))
    assert abs(extra) < 1e-5


def test_train_with_css_loss_records_it(hstool, tmp_path):
    out = tmp_path / "css.safetensors"
    r = hstool("train", *TINY, "--epochs", "1", "--css-loss", "2", "--out", out)
    assert r.exit_code == 0, r.output
    assert "--css-loss 2" in create_model("_tiny_test", out).meta["train_command"]
    for flag, value in (("--css-loss", "-1"), ("--css-loss", "nan"), ("--lr", "inf"), ("--lr", "-1")):
        r = hstool("train", *TINY, "--epochs", "1", flag, value, "--out", tmp_path / "neg.safetensors")
        assert r.exit_code == 1 and f"{flag} must be a number >= 0" in r.output, (flag, value, r.output)
        assert "epoch" not in r.output  # refused before training


def test_relative_losses_match_their_formulas():
    from hstool.recon.train import loss_fn

    rng = np.random.default_rng(1)
    g = rng.uniform(0.0, 0.5, (2, 31, 3, 4)).astype(np.float32)
    g[0, -3:] = 1e-4  # a black red end: below both floors
    p = (g + rng.normal(0, 0.05, g.shape)).astype(np.float32)
    t = torch.from_numpy
    for floor in (1e-3, 0.02):
        want = np.mean(np.abs(p - g) / np.maximum(g, floor))
        assert float(loss_fn("mrae", floor)(t(p), t(g))) == pytest.approx(want, rel=1e-5)
        want = np.mean(np.abs(p - g) / np.maximum(g.mean(axis=1, keepdims=True), floor))
        assert float(loss_fn("rel-l1", floor)(t(p), t(g))) == pytest.approx(want, rel=1e-5)
        want = np.mean(np.abs(p - g) / np.maximum(np.maximum(g, 0.05 * g.mean(axis=1, keepdims=True)), floor))
        assert float(loss_fn("mrae", floor, 0.05)(t(p), t(g))) == pytest.approx(want, rel=1e-5)
        want = (np.mean(np.abs(p - g) / np.maximum(g.mean(axis=1, keepdims=True), floor))
                + 0.1 * np.mean(np.abs(p - g) / np.maximum(g, floor)))
        assert float(loss_fn("rel-l1", floor, mrae_mix=0.1)(t(p), t(g))) == pytest.approx(want, rel=1e-5)
        want = np.mean(np.abs(np.log(np.maximum(p, 0) + floor) - np.log(g + floor)))
        assert float(loss_fn("log-l1", floor)(t(p), t(g))) == pytest.approx(want, rel=1e-5)
    # rel-l1 is exposure-free, and its pixels' bands weigh alike: one dark band does not dominate
    assert float(loss_fn("rel-l1")(t(3 * p), t(3 * g))) == pytest.approx(float(loss_fn("rel-l1")(t(p), t(g))), rel=1e-5)
    over = g.copy()
    over[0, -1] += 0.01  # 0.01 too high on a band at 1e-4: MRAE charges 10 per entry, rel-l1 a fraction of it
    mrae_cost = float(loss_fn("mrae")(t(over), t(g)))
    rel_cost = float(loss_fn("rel-l1")(t(over), t(g)))
    assert mrae_cost > 50 * rel_cost > 0
    assert mrae_cost > float(loss_fn("mrae", rel_floor=0.05)(t(over), t(g))) > 5 * rel_cost  # the middle way
    assert float(loss_fn("rel-l1", mrae_mix=0.1)(t(over), t(g))) > 5 * rel_cost  # the other one


def test_log_l1_keeps_a_collapsed_band_moving():
    """A band predicted 10x too low through an exponential output: MRAE's pull on the log-output
    is p / g = 0.1 and shrinks as the band sinks; log-l1's stays near 1. Ten times too high costs
    log-l1 the same as ten times too low."""
    from hstool.recon.train import loss_fn

    g = torch.full((1, 31, 2, 2), 0.2)
    for name, want in (("mrae", 0.1), ("log-l1", 0.02 / (0.02 + 1e-3))):
        y = torch.log(g / 10).requires_grad_()
        loss_fn(name)(torch.exp(y), g).backward()
        assert float(-y.grad.sum()) == pytest.approx(want, rel=1e-4)
    low, high = (float(loss_fn("log-l1", 1e-9)(g * k, g)) for k in (0.1, 10.0))
    assert low == pytest.approx(high, rel=1e-6) and low == pytest.approx(np.log(10), rel=1e-6)


def test_train_with_loss_floors_records_them(hstool, tmp_path):
    out = tmp_path / "floor.safetensors"
    r = hstool("train", *TINY, "--epochs", "1", "--loss", "rel-l1", "--loss-floor", "0.02", "--out", out)
    assert r.exit_code == 0, r.output
    cmd = create_model("_tiny_test", out).meta["train_command"]
    assert "--loss rel-l1 --loss-floor 0.02" in cmd
    r = hstool("train", *TINY, "--epochs", "1", "--out", tmp_path / "d.safetensors")
    assert r.exit_code == 0, r.output
    assert "--loss-floor" not in create_model("_tiny_test", tmp_path / "d.safetensors").meta["train_command"]
    r = hstool("train", *TINY, "--epochs", "1", "--loss-floor", "0", "--out", tmp_path / "zero.safetensors")
    assert r.exit_code == 1 and "--loss-floor must be > 0" in r.output
    r = hstool("train", *TINY, "--epochs", "1", "--rel-floor", "0.05", "--out", tmp_path / "rf.safetensors")
    assert r.exit_code == 0, r.output
    assert "--loss mrae --rel-floor 0.05" in create_model("_tiny_test", tmp_path / "rf.safetensors").meta["train_command"]
    r = hstool("train", *TINY, "--epochs", "1", "--loss", "l1", "--rel-floor", "0.05", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 1 and "--rel-floor must be in [0, 1] and needs --loss mrae" in r.output
    r = hstool("train", *TINY, "--epochs", "1", "--loss", "rel-l1", "--mrae-mix", "0.1", "--out", tmp_path / "mix.safetensors")
    assert r.exit_code == 0, r.output
    assert "--loss rel-l1 --mrae-mix 0.1" in create_model("_tiny_test", tmp_path / "mix.safetensors").meta["train_command"]
    r = hstool("train", *TINY, "--epochs", "1", "--mrae-mix", "0.1", "--out", tmp_path / "y.safetensors")
    assert r.exit_code == 1 and "--mrae-mix must be >= 0 and needs a loss other than mrae" in r.output


def test_base_model_starts_as_the_baseline():
    from hstool.recon.registry import build_model
    from hstool.recon.residual import ResidualOnBase

    model = build_model("_tiny_test", base="linear", out_bands=31).eval()
    assert isinstance(model, ResidualOnBase) and float(model.gain.detach()) == 0.0
    w = torch.from_numpy(np.random.default_rng(1).random((3, 31), dtype=np.float32))
    model.base.weight.copy_(w)
    x = torch.from_numpy(np.random.default_rng(2).random((1, 3, 5, 7), dtype=np.float32))
    with torch.no_grad():
        y = model(x)
    assert torch.allclose(y, torch.einsum("nchw,cb->nbhw", x, w), atol=1e-6)  # gain 0: exactly the baseline
    with pytest.raises(Exception, match="pixel-wise model under a deep one"):
        build_model("_tiny_test", base="_tiny_test")


def test_train_with_base_fits_the_baseline_first_and_records_it(hstool, tmp_path):
    px = ["--pixels", "3000"]
    deep, lin = tmp_path / "deep.safetensors", tmp_path / "lin.safetensors"
    r = hstool("train", *TINY, *px, "--epochs", "2", "--lr", "0.01", "--base", "linear", "--out", deep)
    assert r.exit_code == 0, r.output
    assert hstool("train", *COMMON, *px, "--model", "linear", "--out", lin).exit_code == 0
    model, fitted = create_model("_tiny_test", deep), create_model("linear", lin)
    assert model.meta["config"] == {"out_bands": 31, "width": 8, "base": "linear"}
    assert "--base linear --pixels 3000" in model.meta["train_command"]
    # the deep file's baseline is the closed-form fit a plain `--model linear` run makes on the same pixels
    assert torch.equal(model.base.weight, fitted.weight)
    assert float(model.gain.detach()) != 0.0  # training moved off the baseline
    pairs = validation_set(TrainConfig(model="_tiny_test", out=deep, val_scenes=1, val_size=32),
                           np.asarray(model.meta["wavelengths"]))
    assert abs(validate(model, pairs, torch.device("cpu")) - model.meta["val_mrae"]) < 1e-7
    r = hstool("train", *COMMON, "--model", "linear", "--base", "linear", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 1 and "--base does nothing for pixel model 'linear'" in r.output
    r = hstool("train", *TINY, "--base", "_tiny_test", "--out", tmp_path / "y.safetensors")
    assert r.exit_code == 1 and "--base must be a pixel-wise model" in r.output


def test_init_starts_from_a_weights_file_and_records_it(hstool, tmp_path):
    first, same, tuned = (tmp_path / f"{n}.safetensors" for n in ("first", "same", "tuned"))
    assert hstool("train", *TINY, "--epochs", "1", "--lr", "0.01", "--out", first).exit_code == 0
    # at learning rate 0 the run keeps the starting weights exactly: they were loaded, not drawn afresh
    r = hstool("train", *TINY, "--epochs", "1", "--lr", "0", "--init", first, "--out", same)
    assert r.exit_code == 0, r.output
    a, b = state(first), state(same)
    assert all(torch.equal(a[k], b[k]) for k in a)
    r = hstool("train", *TINY, "--epochs", "1", "--lr", "0.01", "--init", first, "--out", tuned)
    assert r.exit_code == 0, r.output
    meta = create_model("_tiny_test", tuned).meta
    assert meta["init"]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    start = create_model("_tiny_test", first).meta
    assert meta["init"]["file"] == "first.safetensors" and meta["init"]["train_seconds"] == start["train_seconds"]
    assert meta["init"]["train_command"] == start["train_command"] and meta["init"]["val_mrae"] == start["val_mrae"]
    assert f"--init {first}" in meta["train_command"]
    assert any(not torch.equal(a[k], v) for k, v in state(tuned).items())  # and it trained on from there
    assert oct(first.stat().st_mode & 0o777) == oct(FILE_MODE)  # like every output, not 0600
    # the starting file is an input: never the output, --overwrite or not
    before = first.read_bytes()
    r = hstool("train", *TINY, "--epochs", "1", "--init", first, "--out", first, "--overwrite")
    assert r.exit_code == 1 and "output would overwrite an input file" in r.stderr
    assert first.read_bytes() == before
    # another run's checkpoint is not replaced, nor is a checkpoint name taken for the weights
    (tmp_path / "other.ckpt").write_bytes(b"precious")
    r = hstool("train", *TINY, "--epochs", "1", "--out", tmp_path / "other.safetensors")
    assert r.exit_code == 1 and "continue it with --resume" in r.stderr
    assert (tmp_path / "other.ckpt").read_bytes() == b"precious"
    r = hstool("train", *TINY, "--epochs", "1", "--out", tmp_path / "w.ckpt")
    assert r.exit_code == 1 and "ending in .safetensors" in r.stderr
    # an output folder that cannot take the file fails before any training
    (tmp_path / "file").write_text("x")
    r = hstool("train", *TINY, "--epochs", "1", "--out", tmp_path / "file" / "w.safetensors")
    assert r.exit_code == 1 and "output folder is not a directory" in r.stderr and "epoch" not in r.stderr
    # a network on a baseline takes the baseline from the file too (another --seed would refit a different one)
    px = ["--pixels", "3000"]
    based, kept = tmp_path / "based.safetensors", tmp_path / "kept.safetensors"
    assert hstool("train", *TINY, *px, "--epochs", "1", "--lr", "0.01", "--base", "linear", "--out", based).exit_code == 0
    r = hstool("train", *TINY, *px, "--epochs", "1", "--lr", "0", "--base", "linear", "--init", based,
               "--seed", "4", "--out", kept)
    assert r.exit_code == 0, r.output
    a, b = state(based), state(kept)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_rejects_weights_that_do_not_fit(hstool, tmp_path):
    first = tmp_path / "first.safetensors"
    assert hstool("train", *TINY, "--epochs", "1", "--out", first).exit_code == 0
    r = hstool("train", *TINY, "--init", first, "--config", "width=4", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 1 and "weights were trained with config" in r.output and "Traceback" not in r.output
    r = hstool("train", *COMMON, "--model", "linear", "--init", first, "--out", tmp_path / "y.safetensors")
    assert r.exit_code == 1 and "--init does nothing for pixel model 'linear'" in r.output


def test_init_rejects_another_architectures_weights(hstool, tmp_path):
    from hstool.recon.weights import bundled_path

    other = bundled_path("hscnnp_s", "clean")
    r = hstool("train", *TINY, "--init", other, "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 1 and "weights are for model 'hscnnp_s', not '_tiny_test'" in r.output
    assert str(other) in r.output


def test_data_and_validation_grids_are_checked_before_training(hstool, tmp_path, tmp_cube):
    from hstool.hsdata import write_cube

    fine, narrow = tmp_path / "fine", tmp_path / "narrow"
    write_cube(tmp_cube(32, 32, wavelengths=np.arange(400.0, 701.0, 5.0)), fine / "a.npz")
    write_cube(tmp_cube(32, 32, wavelengths=np.arange(420.0, 681.0, 10.0)), narrow / "b.npz")
    r = hstool("train", *drop(TINY, "--val-size"), "--epochs", "1", "--val", fine, "--out", tmp_path / "v.safetensors")
    assert r.exit_code == 1 and "a.npz: validation cube has 61 bands" in r.output and "epoch" not in r.output
    r = hstool("train", *drop(TINY, "--scenes", "--scene-size"), "--epochs", "1", "--data", narrow, "--out", tmp_path / "w.safetensors")
    assert r.exit_code == 1 and "b.npz: cube bands 420-680 nm do not cover CSS" in r.output


def test_unusable_training_cubes_are_named_together_before_any_step(hstool, tmp_path, tmp_cube):
    """Every cube is read once first: another grid (the one odd cube, not the one that sorts first),
    negative values beyond the noise, NaN: all named in one refusal, before the first step."""
    from hstool.hsdata import write_cube

    data = tmp_path / "data"
    write_cube(tmp_cube(32, 32, wavelengths=np.arange(400.0, 691.0, 10.0)), data / "a.npz")  # 30 bands, sorts first
    for name in ("b", "c", "d"):
        write_cube(tmp_cube(32, 32, seed=ord(name)), data / f"{name}.npz")
    bad = tmp_cube(32, 32, seed=5)
    bad.data[3, 4, :] = -0.5
    write_cube(bad, data / "e.npz")
    nan = tmp_cube(32, 32, seed=6)
    nan.data[0, 0, 0] = np.nan
    write_cube(nan, data / "f.npz")
    r = hstool("train", *drop(TINY, "--scenes", "--scene-size", "--val-scenes", "--val-size"), "--epochs", "1", "--data", data, "--val", "none",
               "--out", tmp_path / "w.safetensors")
    one_line_error(r, "3 of 6 training cubes cannot be used (fix or move them)")
    assert f"{data / 'a.npz'}: 30 bands 400-690 nm; the other cubes have 31 (400-700 nm)" in r.output
    assert f"{data / 'e.npz'}: negative values down to -0.5" in r.output
    assert f"{data / 'f.npz'}: holds NaN or infinite values" in r.output
    assert not (tmp_path / "w.safetensors").exists()
    r = hstool("train", *drop(TINY, "--scenes", "--scene-size", "--val-scenes", "--val-size", "--crop"), "--crop", "48",
               "--epochs", "1", "--data", data, "--val", "none", "--out", tmp_path / "w.safetensors")
    one_line_error(r, "6 of 6 training cubes cannot be used")  # all 32x32: each named, smaller than the crop
    assert r.output.count("smaller than --crop 48") == 5 and "and 1 more" in r.output



def test_config_values_of_the_wrong_kind_are_one_line_errors(hstool, tmp_path):
    for item, message in (("width=abc", "takes int values there"), ("width=1.5", "takes int values there"),
                          ("out_bands=10", "the band count is the training data's")):
        r = hstool("train", *TINY, "--epochs", "1", "--config", item, "--out", tmp_path / "c.safetensors")
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, (item, r.output)


def one_line_error(r, message):
    """A refusal as the CLI prints it: exit 1, one line holding ``message``, no traceback."""
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and message in lines[0] and "Traceback" not in r.output, r.output


def test_pixel_model_refuses_training_options_before_any_work(hstool, tmp_path):
    from hstool.hsdata import HsError
    from hstool.recon.train import train

    start = tmp_path / "start.safetensors"
    start.write_bytes(b"never read")  # --init and --resume must name a file
    for flag, value in (("--ema", "0.999"), ("--epochs", "3"), ("--steps-per-epoch", "5"), ("--batch", "4"),
                        ("--crop", "32"), ("--lr", "0.01"), ("--loss", "l1"), ("--loss-floor", "0.02"),
                        ("--rel-floor", "0.05"), ("--mrae-mix", "0.1"), ("--keep", "best"), ("--css-loss", "1"),
                        ("--base", "linear"), ("--init", start), ("--resume", start)):
        r = hstool("train", "--model", "rootpoly", *COMMON, flag, value, "--out", tmp_path / "w.safetensors")
        one_line_error(r, f"{flag} does nothing for pixel model 'rootpoly' (it is fitted in closed form, "
                          "not trained); drop it")
        assert sorted(tmp_path.iterdir()) == [start], flag  # no weights, no checkpoint
    r = hstool("train", "--model", "rootpoly", *drop(COMMON, "--val-scenes", "--val-size"), "--val", "none",
               "--keep", "best", "--out", tmp_path / "w.safetensors")
    one_line_error(r, "--keep does nothing for pixel model 'rootpoly'")  # not "needs validation data"
    # library callers get the same refusal
    with pytest.raises(HsError, match="--ema does nothing for pixel model 'linear'"):
        train(TrainConfig(model="linear", out=tmp_path / "w.safetensors", ema=0.5, val=None))
    # the check compares with TrainConfig's defaults: the CLI's must be the same, or every pixel run is refused
    import inspect

    from hstool.cli.train import train as cli_train
    from hstool.recon.train import DEEP_ONLY

    cli, lib = inspect.signature(cli_train).parameters, TrainConfig(model="x", out="x")
    compared = (*DEEP_ONLY, "pixels", "scene_size", "val_scenes", "val_size")  # what _check_read compares
    assert {k: cli[k].default for k in compared} == {k: getattr(lib, k) for k in compared}


def test_pixel_fit_takes_every_option_it_uses(hstool, tmp_path):
    out = tmp_path / "rp.safetensors"
    out.write_bytes(b"old")
    r = hstool("train", "--model", "rootpoly", *COMMON, "--track", "realworld", "--pixels", "2000",
               "--illuminant-aug", "--config", "degree=3", "--overwrite", "--out", out)
    assert r.exit_code == 0, r.output
    model = create_model("rootpoly", out)
    cmd = model.meta["train_command"]
    for part in ("--track realworld", "--pixels 2000", "--scenes 2 --scene-size 32", "--seed 3",
                 "--brightness-aug --illuminant-aug", "--config degree=3"):
        assert part in cmd, (part, cmd)
    assert model.meta["dtype"] == "fp32" and model.weight.dtype == torch.float32
    assert model.weight.shape == (13, 31) and np.isfinite(model.meta["val_mrae"])


@pytest.mark.parametrize(("model", "item", "message"), [
    ("mstpp", "stages=-1", "--config stages=-1: must be a positive integer for model 'mstpp'"),
    ("mstpp_s", "stages=0", "--config stages=0: must be a positive integer for model 'mstpp_s'"),
    ("hscnnp_r", "width=0", "--config width=0: must be a positive integer for model 'hscnnp_r'"),
    ("basisunet", "n_basis=-2", "--config n_basis=-2: must be a positive integer for model 'basisunet'"),
    ("sparse", "atoms=0", "--config atoms=0: must be a positive integer for model 'sparse'"),
    # in range, but the constructor (rootpoly) or the layers (hrnet: channels halved, then pixel-shuffled) refuse
    ("rootpoly", "degree=5", "model 'rootpoly' cannot be built with config degree=5: root-polynomial degree"),
    ("hrnet_s", "start=3", "model 'hrnet_s' cannot be built with config start=3: pixel_shuffle expects"),
], ids=lambda v: "" if " " in v else v)
def test_model_config_out_of_range_is_refused_before_training(hstool, tmp_path, model, item, message):
    # a deep model gets a one-step run, so that a check that let it through would still end quickly
    pixel = model in ("sparse", "rootpoly")
    bounded = [] if pixel else ["--epochs", "1", "--steps-per-epoch", "1", "--crop", "32"]
    r = hstool("train", "--model", model, *COMMON, *bounded, "--config", item, "--out", tmp_path / "w.safetensors")
    one_line_error(r, message)
    assert list(tmp_path.iterdir()) == []


def test_a_configuration_the_data_cannot_fit_is_one_line(hstool, tmp_path):
    # 2 scenes of 32 x 32 give 2048 pixels: too few for a dictionary of 5000 atoms
    r = hstool("train", "--model", "sparse", *COMMON, "--pixels", "2048", "--config", "atoms=5000", "--out", tmp_path / "w.safetensors")
    one_line_error(r, "model 'sparse' cannot be fitted with config atoms=5000 sparsity=2: need at least 5000")
    assert list(tmp_path.iterdir()) == []


def test_valid_configs_still_train(hstool, tmp_path):
    tiny, real = tmp_path / "tiny.safetensors", tmp_path / "real.safetensors"
    r = hstool("train", *TINY, "--epochs", "1", "--config", "width=4", "--out", tiny)
    assert r.exit_code == 0, r.output
    model = create_model("_tiny_test", tiny)
    assert model.meta["config"] == {"out_bands": 31, "width": 4} and model.net[0].weight.shape[0] == 4
    r = hstool("train", *TINY, "--model", "hscnnp_r", "--epochs", "1", "--steps-per-epoch", "1",
               "--config", "width=4", "--config", "blocks=1", "--out", real)
    assert r.exit_code == 0, r.output
    model = create_model("hscnnp_r", real)
    assert model.meta["config"] == {"out_bands": 31, "width": 4, "blocks": 1} and len(model.blocks) == 1


def test_options_the_run_would_not_read_are_refused(hstool, tmp_path, tmp_cube):
    from hstool.hsdata import write_cube

    cubes = tmp_path / "cubes"
    write_cube(tmp_cube(32, 32), cubes / "a.npz")
    out = tmp_path / "out" / "w.safetensors"
    for args, message in (
        ([*TINY, "--pixels", "5000"], "--pixels does nothing for deep model '_tiny_test' without --base"),
        ([*drop(TINY, "--scenes", "--scene-size"), "--data", cubes, "--scene-size", "64"],
         "--scene-size does nothing for a cube folder as --data"),
        ([*drop(TINY, "--val-size"), "--val", cubes, "--val-size", "64"],
         "--val-size does nothing for a cube folder as --val"),
        ([*drop(TINY, "--val-scenes", "--val-size"), "--val", "none", "--val-scenes", "2"],
         "--val-scenes does nothing for --val none"),
    ):
        one_line_error(hstool("train", *args, "--out", out), message)
        assert not out.parent.exists()
    # the same folders, with only what they read: trains (validating on every held-out cube)
    write_cube(tmp_cube(32, 32, seed=5), tmp_path / "val" / "b.npz")
    write_cube(tmp_cube(32, 32, seed=6), tmp_path / "val" / "c.npz")
    r = hstool("train", *drop(TINY, "--scenes", "--scene-size", "--val-size", "--val-scenes"), "--epochs", "1", "--data", cubes,
               "--val", tmp_path / "val", "--out", out)
    assert r.exit_code == 0, r.output
    meta = create_model("_tiny_test", out).meta
    assert meta["val_data"] == f"2 cubes from {tmp_path / 'val'}" and meta["data_short"] == "cubes"
    assert np.isfinite(meta["val_mrae"])


def test_validation_cubes_with_calibration_noise_below_zero(hstool, tmp_path, tmp_cube):
    """Calibrated cubes read 0 +- noise: validation clips what simulate's 5 % rule clips (and skips
    those zeros), and refuses more, naming the file, before any training."""
    from hstool.hsdata import write_cube

    cube = tmp_cube(32, 32)
    noisy = cube.data.copy()
    noisy[3, 4, :5] = -0.01 * noisy.max()
    write_cube(cube.with_data(noisy), tmp_path / "val" / "a.npz")
    args = [*drop(TINY, "--val-size", "--val-scenes"), "--epochs", "1", "--val", tmp_path / "val"]
    r = hstool("train", *args, "--out", tmp_path / "w.safetensors")
    assert r.exit_code == 0, r.output
    assert np.isfinite(create_model("_tiny_test", tmp_path / "w.safetensors").meta["val_mrae"])
    noisy[3, 4, :5] = -0.2 * noisy.max()
    write_cube(cube.with_data(noisy), tmp_path / "bad" / "b.npz")
    r = hstool("train", *args, "--val", tmp_path / "bad", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 1 and "b.npz: cube has negative values" in r.output and "epoch" not in r.output


def test_data_and_val_keywords_take_any_case(tmp_path):
    """--data SYNTH is the synthetic scenes, not a folder named SYNTH; --val NONE is no validation."""
    from hstool.recon.train import TrainConfig

    cfg = TrainConfig(model="rootpoly", out=str(tmp_path / "w.safetensors"), data="SYNTH", val="NONE")
    assert cfg.data == "synth" and cfg.val is None
    assert TrainConfig(model="rootpoly", out="w.safetensors", val="Synth").val == "synth"


def test_validation_is_held_out_and_uses_the_users_camera_with_rgb(hstool, tmp_path, tmp_cube):
    """Validation cubes that are training cubes (the same scene in another format) are refused;
    with --rgb, validation uses the images of the --val cubes (their camera is the user's, here
    Nikon D5100-like), not the track's simulation, and the file says whose camera it learnt."""
    from hstool.camera import simulate_to_file, track
    from hstool.hsdata import write_cube
    from hstool.recon import Reconstructor
    from hstool.recon.metrics import mrae

    cubes, val, rgbs = tmp_path / "cubes", tmp_path / "val", tmp_path / "rgb"
    nikon = track("clean", css="nikon5100")
    for i in range(3):
        cube = tmp_cube(24, 32, seed=i)
        write_cube(cube, (cubes if i < 2 else val) / f"S{i}.npy")
        simulate_to_file(cube, rgbs / f"S{i}_clean.png", nikon, rng=i)
    args = ["--model", "linear", "--data", cubes, "--rgb", rgbs, "--pixels", "500", "--no-speed"]
    write_cube(tmp_cube(24, 32, seed=0), tmp_path / "dup" / "S0.mat")
    r = hstool("train", *args, "--val", tmp_path / "dup", "--out", tmp_path / "d.safetensors")
    assert r.exit_code == 1 and "validation cubes are training cubes too (S0.mat)" in r.stderr
    r = hstool("train", *args, "--out", tmp_path / "s.safetensors")  # --val synth: the track's camera
    assert r.exit_code == 1 and "synthetic validation would be imaged by the track's camera" in r.stderr
    out = tmp_path / "w.safetensors"
    r = hstool("train", *args, "--val", val, "--out", out)
    assert r.exit_code == 0, r.output
    meta = create_model("linear", out).meta
    from hstool.hsdata import read_cube, read_rgb

    want = mrae(Reconstructor("linear", weights=out)(read_rgb(rgbs / "S2_clean.png")), read_cube(val / "S2.npy").data,
                ignore_zeros=True)
    assert meta["val_mrae"] == pytest.approx(want, rel=1e-5) and meta["css"] == f"the camera of the images in {rgbs}"
    (rgbs / "S2_clean.png").unlink()
    r = hstool("train", *args, "--val", val, "--out", tmp_path / "m.safetensors")
    assert r.exit_code == 1 and "validation needs theirs too: no image for S2.npy" in r.stderr


def test_training_options_that_would_mislead_are_refused(hstool, tmp_path):
    """A crop the model cannot take, --fp16 for a pixel model and --brightness-aug on a track whose
    automatic exposure undoes it: one line each, before any work; keywords take any case."""
    for args, message in (
        (["--model", "basisunet", "--crop", "40"], "--crop 40: model 'basisunet' takes sides that are multiples of 16"),
        (["--model", "linear", "--fp16"], "--fp16 does nothing for pixel model 'linear'"),
        (["--model", "linear", "--track", "ntire2022", "--brightness-aug"], "--brightness-aug is undone by the ntire2022"),
    ):
        r = hstool("train", *args, "--out", tmp_path / "w.safetensors")
        assert r.exit_code == 1 and message in r.stderr, (args, r.stderr)
    r = hstool("train", *TINY, "--epochs", "1", "--loss", "L1", "--keep", "LAST", "--out", tmp_path / "k.safetensors")
    assert r.exit_code == 0, r.output


def test_crops_on_an_auto_exposed_track_keep_the_whole_scenes_exposure(tmp_cube):
    """ntire2022 sets the exposure from the image's mean: a training crop is exposed as it is in
    the image of its scene, not brought to the same mean on its own."""
    from hstool.camera import simulate, track
    from hstool.camera.pipeline import exposed_like

    cube = tmp_cube(64, 64, seed=2)
    cube.data[:32] *= 0.2  # a dark half
    pipe = track("ntire2022").replace(npe=None)
    whole = simulate(cube, pipe, 0)
    dark = cube.with_data(cube.data[:32, :32])
    np.testing.assert_allclose(simulate(dark, exposed_like(pipe, cube), 0)[4:-4, 4:-4], whole[4:28, 4:28], atol=1e-6)
    assert abs(simulate(dark, pipe, 0).mean() - 0.18) < 0.02 < abs(whole[:32, :32].mean() - 0.18)


def test_init_from_a_file_written_before_an_option_existed(tmp_path):
    """The bundled basisunet_realworld predates basisunet's `scale` option: it was trained with its
    default, so fine-tuning it with the same --config is accepted (it was refused, unfixably)."""
    from pathlib import Path

    from hstool import recon
    from hstool.recon.train import _model_config, _read_init
    from hstool.recon.weights import read_metadata

    bundled = Path(recon.__file__).parent / "weights" / "basisunet_realworld.safetensors"
    assert "scale" not in read_metadata(bundled)["config"]
    cfg = TrainConfig(model="basisunet", out=tmp_path / "w.safetensors", track="realworld", init=bundled,
                      config={"norm": "batch", "space": "log"})
    state, provenance = _read_init(cfg, _model_config("basisunet", cfg.config, 31), ARAD_WAVELENGTHS)
    assert provenance["file"] == bundled.name and state
    with pytest.raises(HsError, match="weights were trained with config"):
        _read_init(cfg, _model_config("basisunet", {"norm": "instance", "space": "log"}, 31), ARAD_WAVELENGTHS)


def test_options_a_run_would_ignore_are_refused_and_a_short_pixel_supply_said(hstool, tmp_path, tmp_cube):
    from hstool.hsdata import write_cube

    write_cube(tmp_cube(16, 16), tmp_path / "cubes" / "a.npz")
    for args, message in (
        ([*drop(TINY, "--scene-size"), "--data", tmp_path / "cubes"], "--scenes does nothing for deep model '_tiny_test'"),
        ([*TINY, "--loss", "l1", "--loss-floor", "0.01"], "--loss-floor does nothing for --loss l1"),
    ):
        r = hstool("train", *args, "--out", tmp_path / "w.safetensors")
        assert r.exit_code == 1 and message in r.stderr, (args, r.stderr)
    r = hstool("train", "--model", "linear", "--data", tmp_path / "cubes", "--val", "none", "--pixels", "5000",
               "--no-speed", "--out", tmp_path / "l.safetensors")
    assert r.exit_code == 0 and "--pixels 5000: the cubes sampled hold 256; fitting on those" in r.stderr, r.output


@pytest.mark.slow  # two torchrun processes start and import torch
def test_two_gloo_processes_reach_the_weights_of_one(hstool, tmp_path):
    """``--nproc 2`` (torchrun, DistributedDataParallel over gloo) with the same --batch and seed
    trains to the one-process weights; process 0 writes them, with the world size."""
    from hstool.recon import read_metadata

    args = ["--model", "hscnnp_r", "--config", "width=8", "--config", "blocks=1", *COMMON, "--epochs", "2",
            "--steps-per-epoch", "2", "--batch", "4", "--crop", "16", "--fp32"]
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    assert hstool("train", *args, "--out", one).exit_code == 0
    r = hstool("train", *args, "--nproc", "2", "--out", two)
    assert r.exit_code == 0, r.output
    a, b = create_model("hscnnp_r", one).state_dict(), create_model("hscnnp_r", two).state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    meta_one, meta_two = read_metadata(one), read_metadata(two)
    assert meta_one["world_size"] == 1 and meta_two["world_size"] == 2
    for h1, h2 in zip(meta_one["history"], meta_two["history"], strict=True):  # the mean loss of the same crops
        assert h2 == {**h1, "loss": pytest.approx(h1["loss"], rel=1e-5), "val_mrae": pytest.approx(h1["val_mrae"], rel=1e-5)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.safetensors", "two.safetensors"]  # no checkpoint left


def test_nproc_refuses_what_it_cannot_split(hstool, tmp_path):
    r = hstool("train", "--model", "rootpoly", *COMMON, "--nproc", "2", "--out", tmp_path / "w.safetensors")
    assert r.exit_code == 1 and "fitted in closed form" in r.stderr


def test_your_cameras_images_pair_by_stem_whatever_track_their_names_say(hstool, tmp_cube, tmp_path):
    """`train --rgb photos/` without --track: real-world photos named X_RealWorld.jpg are your camera's
    images of X, paired by stem; an explicit --track keeps the strict rule (never another track's)."""
    from hstool.camera import simulate_to_file
    from hstool.hsdata import write_cube

    cubes, photos = tmp_path / "cubes", tmp_path / "photos"
    for i in range(2):
        cube = tmp_cube(24, 32, seed=i)
        write_cube(cube, cubes / f"scene{i}.npy")
        simulate_to_file(cube, photos / f"scene{i}_RealWorld.jpg", "realworld", rng=i)
    w = tmp_path / "mine.safetensors"
    r = hstool("train", "--model", "linear", "--data", cubes, "--rgb", photos, "--val", "none", "--pixels", "500",
               "--no-speed", "--out", w)
    assert r.exit_code == 0, r.output
    meta = create_model("linear", w).meta
    assert "2 cubes" in meta["data"] and "paired with RGB" in meta["data"]
    assert "--track" not in meta["train_command"]  # the command, rerun, pairs the same way
    r = hstool("train", "--model", "linear", "--data", cubes, "--rgb", photos, "--track", "clean", "--val", "none",
               "--pixels", "500", "--no-speed", "--out", tmp_path / "strict.safetensors")
    assert r.exit_code == 1 and "only images named for another track" in r.output
