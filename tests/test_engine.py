"""Inference engine (padding, tiling, ensembling), weights round trip, consistency and exposure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hstool.hsdata import HsError
from hstool.recon import Reconstructor, create_model, predict, read_metadata, save_weights
from hstool.recon.consistency import project_consistent
from hstool.recon.models.linear import LinearRecon
from hstool.recon.registry import ModelSpec, register_model

WL = np.arange(400.0, 701.0, 10.0)


def conv_model(multiple: int = 1, halo: int = 4, seed: int = 0) -> nn.Module:
    """Two 3x3 convolutions: receptive radius 2, inside a halo of 4. Biased positive so the
    engine's clamp at zero rarely acts (it acts identically on every path anyway)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 31, 3, padding=1))
    with torch.no_grad():
        model[2].bias.add_(1.0)
    model.spec = ModelSpec("conv", lambda: model, kind="deep", multiple=multiple, halo=halo)
    return model.eval()


def reference(model: nn.Module, rgb: np.ndarray, multiple: int = 1) -> np.ndarray:
    """Straight formula: reflect-pad to the multiple, one forward pass, crop, clamp."""
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, -h % multiple), (0, -w % multiple), (0, 0)), mode="reflect")
    with torch.no_grad():
        y = model(torch.from_numpy(padded.transpose(2, 0, 1).copy())[None])[0].numpy().transpose(1, 2, 0)
    return np.maximum(y[:h, :w], 0)


@pytest.fixture
def rgb():
    return np.random.default_rng(1).random((70, 90, 3), dtype=np.float32)


def test_tiled_equals_whole_image(rgb):
    model = conv_model()
    whole = predict(model, rgb, "cpu", tile=0)
    np.testing.assert_allclose(whole, reference(model, rgb), atol=1e-6)
    for tile in (24, 32, 45):
        tiled = predict(model, rgb, "cpu", tile=tile)
        assert np.abs(tiled - whole).max() < 1e-5, tile


def test_tiles_too_small_for_halo_is_an_error(rgb):
    with pytest.raises(HsError, match="too small"):
        predict(conv_model(halo=8), rgb, "cpu", tile=16)


@pytest.mark.parametrize("size", [(37, 53), (5, 5), (1, 1)])
def test_odd_sizes_are_padded_to_the_multiple(size):
    model = conv_model(multiple=8)
    x = np.random.default_rng(2).random((*size, 3), dtype=np.float32)
    y = predict(model, x, "cpu")
    assert y.shape == (*size, 31) and y.dtype == np.float32
    np.testing.assert_allclose(y, reference(model, x, 8), atol=1e-6)
    if size == (37, 53):
        np.testing.assert_allclose(predict(model, x, "cpu", tile=24), y, atol=1e-5)


def test_flip_ensemble_is_the_mean_of_unflipped_flips(rgb):
    model = conv_model()
    flips = [lambda a: a, lambda a: a[:, ::-1], lambda a: a[::-1], lambda a: a[::-1, ::-1]]
    with torch.no_grad():
        outs = []
        for f in flips:
            x = np.ascontiguousarray(f(rgb))
            y = model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0].numpy().transpose(1, 2, 0)
            outs.append(f(y))
    expected = np.maximum(np.mean(outs, axis=0), 0)
    np.testing.assert_allclose(predict(model, rgb, "cpu", ensemble=True), expected, atol=1e-5)
    assert np.abs(predict(model, rgb, "cpu") - expected).max() > 1e-3  # the ensemble does something


def test_pixel_model_strips_match_one_pass(rgb):
    rng = np.random.default_rng(3)
    model = LinearRecon.fit(rng.random((500, 3)), rng.random((500, 31)))
    model.spec = ModelSpec("linear", LinearRecon, kind="pixel", halo=0)
    w = model.weight.numpy().astype(np.float64)
    np.testing.assert_allclose(predict(model, rgb, "cpu"), np.maximum(rgb @ w, 0), rtol=1e-5, atol=1e-6)


def test_create_model_round_trip_through_safetensors(tmp_path):
    rng = np.random.default_rng(4)
    fitted = LinearRecon.fit(rng.random((200, 3)), rng.random((200, 31)))
    meta = {"architecture": "linear", "config": {"out_bands": 31}, "wavelengths": WL.tolist(),
            "track": "clean", "train_command": "hstool train --model linear", "val_mrae": 0.125}
    path = save_weights(fitted, tmp_path / "w.safetensors", meta)
    model = create_model("linear", path)
    assert torch.equal(model.weight, fitted.weight)
    assert not model.training and model.spec.kind == "pixel"
    assert model.meta["config"] == {"out_bands": 31} and model.meta["val_mrae"] == 0.125
    assert read_metadata(path)["hstool_version"]
    assert create_model(None, path).meta["architecture"] == "linear"  # name from the file
    with pytest.raises(HsError, match="not 'rootpoly'"):
        create_model("rootpoly", path)
    with pytest.raises(HsError, match="safetensors"):
        (tmp_path / "bad.safetensors").write_text("nope")
        create_model("linear", tmp_path / "bad.safetensors")
    with pytest.raises(HsError, match="no bundled weights"):
        create_model("linear", "bundled", track="nonexistent")


# ---------------------------------------------------------------- consistency


def camera_matrix() -> np.ndarray:
    return np.stack([np.exp(-0.5 * ((WL - c) / 35) ** 2) for c in (600, 540, 450)], 1) / 12


def test_consistent_reprojects_exactly_and_stays_non_negative():
    rng = np.random.default_rng(5)
    m = camera_matrix()
    truth = 0.05 + rng.random((40, 50, 31)) * 0.5
    rgb = (truth @ m).astype(np.float32)
    pred = (truth + rng.normal(0, 0.2, truth.shape)).astype(np.float32)  # many negatives after correction
    out, info = project_consistent(pred, rgb, m)
    assert out.min() >= 0 and info["corrected"] > 100 and info["infeasible"] == 0
    back = out.astype(np.float64) @ m
    assert np.abs(back - rgb).max() < 1e-5
    assert np.mean(np.abs(back - rgb) / rgb) < 1e-6  # back-projection MRAE
    # KKT of min ||x - s||^2 s.t. x @ M = rgb, x >= 0: x - s = M lam + mu, mu >= 0, mu x = 0
    x, s = out.reshape(-1, 31).astype(np.float64), pred.reshape(-1, 31).astype(np.float64)
    for i in rng.choice(len(x), 50, replace=False):
        on = x[i] > 1e-7
        lam, *_ = np.linalg.lstsq(m[on], (x[i] - s[i])[on], rcond=None)
        mu = x[i] - s[i] - m @ lam
        assert np.abs(mu[on]).max() < 1e-4 and mu[~on].min() > -1e-4


def test_consistent_is_the_closed_form_minimal_change_when_nothing_clips():
    rng = np.random.default_rng(6)
    m = camera_matrix()
    pred = 0.3 + rng.random((100, 31)) * 0.2
    rgb = (0.3 + rng.random((100, 31)) * 0.2) @ m
    closed = pred + (rgb - pred @ m) @ np.linalg.inv(m.T @ m) @ m.T
    assert closed.min() > 0
    out, info = project_consistent(pred, rgb, m)
    np.testing.assert_allclose(out, closed, atol=1e-6)
    assert info == {"corrected": 0, "infeasible": 0}


def test_rgb_outside_the_cone_is_reported_and_fitted():
    m = camera_matrix()
    rgb = np.array([[0.0, 0.0, 1.0], [0.2, 0.3, 0.1]])  # pure blue: no non-negative spectrum gives it
    out, info = project_consistent(np.full((2, 31), 0.1), rgb, m)
    assert info["infeasible"] == 1 and out.min() >= 0
    assert np.abs(out[1] @ m - rgb[1]).max() < 1e-6


# ---------------------------------------------------------------- exposure invariance


class Affine(nn.Module):
    """Deliberately not exposure invariant: a 1x1 conv with a bias, squared."""

    def __init__(self, out_bands: int = 31):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, out_bands, 1)

    def forward(self, x):
        return self.conv(x) ** 2 + 0.01


register_model("_test_affine", kind="deep", multiple=1, halo=0)(Affine)


def test_exposure_invariant_wrapper_flattens_relative_error():
    rgb = np.random.default_rng(7).random((20, 24, 3), dtype=np.float32) * 0.4
    for invariant, flat in ((False, False), (True, True)):
        rec = Reconstructor("_test_affine", weights=None, device="cpu", exposure_invariant=invariant)
        base = rec(rgb)
        for k in (0.5, 2.0):
            rel = np.abs(rec(rgb * np.float32(k)) / k - base) / base
            assert (rel.max() < 1e-5) == flat, (invariant, k, rel.max())
