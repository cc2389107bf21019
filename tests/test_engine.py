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
    with pytest.raises(HsError, match="no bundled weights for model 'linear' on track 'ntire2022'"):
        create_model("linear", "bundled", track="ntire2022")
    with pytest.raises(HsError, match="unknown track 'nonexistent'"):
        create_model("linear", "bundled", track="nonexistent")
    assert create_model("linear", "bundled", track="Real-World").meta["track"] == "realworld"  # any spelling
    alien = save_weights(fitted, tmp_path / "alien.safetensors", {**meta, "config": {"out_bands": 31, "degree": 9}})
    with pytest.raises(HsError, match="alien.safetensors.*does not fit model 'linear'.*degree"):
        create_model(None, alien)  # an option this version's model lacks: one clear line, not a TypeError


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


# ---------------------------------------------------------------- speed paths (channels-last, CPU bf16)


def test_channels_last_gives_the_nchw_result_and_is_chosen_per_model(rgb):
    from hstool.recon import engine

    cpu, f32 = torch.device("cpu"), torch.float32
    nchw_model, nhwc_model = conv_model(multiple=8), conv_model(multiple=8)
    engine.CHANNELS_LAST = False
    try:
        nchw = predict(nchw_model, rgb, "cpu")
    finally:
        engine.CHANNELS_LAST = None
    nhwc = predict(nhwc_model, rgb, "cpu")
    assert nhwc_model[0].weight.is_contiguous()  # predict leaves a caller's weights alone
    assert nhwc.flags.c_contiguous and nhwc.shape == (70, 90, 31)
    np.testing.assert_allclose(nhwc, nchw, atol=1e-6)
    np.testing.assert_allclose(nhwc, reference(conv_model(multiple=8), rgb, 8), atol=1e-6)
    assert engine.use_channels_last(conv_model(), cpu, f32)
    transformer = conv_model()
    transformer.norm = nn.LayerNorm(8)  # tokens-last models keep NCHW
    assert not engine.use_channels_last(transformer, cpu, f32)
    opted_out = conv_model()
    opted_out.channels_last = False
    assert not engine.use_channels_last(opted_out, cpu, f32)
    assert not engine.use_channels_last(nn.Conv2d(3, 31, 1), cpu, f32)  # bare module: NCHW, to be safe
    bgr = np.ascontiguousarray(rgb[..., ::-1])  # OpenCV's order: a flipped view is how it is undone
    np.testing.assert_array_equal(predict(nhwc_model, bgr[..., ::-1], "cpu"), nhwc)
    np.testing.assert_array_equal(predict(nhwc_model, rgb[::-1, ::-1], "cpu"), predict(nhwc_model, rgb[::-1, ::-1].copy(), "cpu"))
    rec = Reconstructor("_test_affine", weights=None, device="cpu")  # its own model: NHWC weights
    assert rec.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(rec(rgb), np.maximum(reference(Affine(), rgb), 0), atol=1e-6)


class Echo(nn.Module):
    """Returns its input tensor itself: the engine's zero-copy paths must not clamp the caller's array."""

    channels_last = True

    def forward(self, x):
        return x


def test_zero_copy_output_never_writes_into_the_input():
    rgb = np.random.default_rng(8).random((40, 16, 3), dtype=np.float32) - 0.5
    before = rgb.copy()
    model = Echo()
    model.spec = ModelSpec("echo", Echo, kind="deep", multiple=1, halo=2)
    out = predict(model, rgb, "cpu")
    np.testing.assert_array_equal(rgb, before)
    np.testing.assert_array_equal(out, np.maximum(before, 0))
    tiled = predict(model, rgb, "cpu", tile=16, overlap=2, blend=2)  # full-width windows: views of rgb
    np.testing.assert_array_equal(rgb, before)
    np.testing.assert_allclose(tiled, np.maximum(before, 0), atol=1e-6)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="CPU without native bf16 kernels: bf16 runs fp32")
def test_cpu_bf16_is_close_for_deep_models_and_off_for_pixel_models(rgb):
    model = conv_model()
    fp32, bf16 = predict(model, rgb, "cpu"), predict(model, rgb, "cpu", precision="bf16")
    rel = np.abs(bf16 - fp32).mean() / np.abs(fp32).mean()
    assert 1e-5 < rel < 2e-2, rel  # bf16 keeps 8 bits of mantissa: ~0.4 % per rounding
    linear = LinearRecon.fit(np.random.default_rng(3).random((500, 3)), np.random.default_rng(4).random((500, 31)))
    linear.spec = ModelSpec("linear", LinearRecon, kind="pixel", halo=0)
    np.testing.assert_array_equal(predict(linear, rgb, "cpu", precision="bf16"), predict(linear, rgb, "cpu"))


def test_reconstructor_takes_integer_images_and_refuses_other_scales():
    """uint8/uint16 arrays are scaled by their type (as read_rgb does); floats must lie in [0, 1]."""
    from hstool.hsdata import HsError
    from hstool.recon import Reconstructor

    rec = Reconstructor("linear", "bundled", "clean", device="cpu")
    u8 = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    want = rec(u8.astype(np.float32) / 255)
    np.testing.assert_array_equal(rec(u8), want)
    u16 = u8.astype(np.uint16) * 257  # the same levels in 16 bits
    np.testing.assert_allclose(rec(u16), want, rtol=1e-6, atol=1e-7)
    with pytest.raises(HsError, match=r"RGB values reach 2\d\d; expected \[0, 1\]"):
        rec(u8.astype(np.float32))  # 0-255 floats: the usual slip
    with pytest.raises(HsError, match="empty"):
        rec(np.zeros((0, 4, 3), np.float32))
    for wide in (u8.astype(np.int64), u8.astype(np.int16), u8.tolist()):  # no full scale to divide by
        with pytest.raises(HsError, match="must be uint8 or uint16"):
            rec(wide)
    with pytest.raises(HsError, match="light is not negative"):
        rec(-u8.astype(np.float32) / 255)
    # exposure-invariant reconstruction normalises the intensity itself: any scale is fine
    inv = Reconstructor("linear", "bundled", "clean", device="cpu", exposure_invariant=True)
    np.testing.assert_allclose(inv(u8.astype(np.float32)), inv(u8.astype(np.float32) / 255) * 255, rtol=1e-4)


def test_gamma_undoes_the_encoding_before_the_model():
    """An sRGB-encoded image reconstructs as its linear original does (pixel and deep models), and
    --consistent re-projects to the linear values."""
    from hstool.hsdata.render import srgb_encode

    lin = np.random.default_rng(1).uniform(0.02, 0.9, (16, 20, 3)).astype(np.float32)
    enc = srgb_encode(lin).astype(np.float32)
    for name in ("rootpoly", "mstpp_s"):
        plain = Reconstructor(name, "bundled", "clean", device="cpu")(lin)
        undone = Reconstructor(name, "bundled", "clean", device="cpu", gamma="srgb")(enc)
        assert np.abs(undone - plain).max() <= 1e-5 * np.abs(plain).max(), name
        assert np.abs(Reconstructor(name, "bundled", "clean", device="cpu")(enc) - plain).max() > 0.05 * plain.max()
    rec = Reconstructor("rootpoly", "bundled", "clean", device="cpu", gamma="srgb", consistent=True)
    truth = 0.05 + np.random.default_rng(2).random((12, 14, 31)) * 0.5
    lin = truth @ rec.matrix
    lin = (lin / (1.1 * lin.max())).astype(np.float32)  # RGB of non-negative spectra: inside the cone
    spectra = rec(srgb_encode(lin).astype(np.float32))
    assert rec.last_info["infeasible"] == 0
    np.testing.assert_allclose(spectra @ rec.matrix, lin, rtol=1e-4, atol=1e-6)
    with pytest.raises(HsError, match="RGB values reach 2"):  # encoded values above 1 mean nothing
        Reconstructor("rootpoly", "bundled", "clean", device="cpu", gamma="srgb", exposure_invariant=True)(enc * 2.5)
    with pytest.raises(HsError, match="gamma must be a number or 'srgb'"):
        Reconstructor("rootpoly", "bundled", "clean", device="cpu", gamma="sRGB-ish")


def test_consistent_takes_a_matrix_as_nested_lists_and_refuses_a_degenerate_one():
    from hstool.camera import track

    m = track("clean").matrix(np.arange(400, 701, 10.0))
    rec = Reconstructor("linear", consistent=m.tolist(), device="cpu")
    np.testing.assert_array_equal(rec.matrix, m)
    for bad, rank in ((np.zeros((31, 3)), 0), (np.ones((31, 3)) / 31, 1)):
        with pytest.raises(HsError, match=f"response matrix has rank {rank}, not 3"):
            Reconstructor("linear", consistent=bad, device="cpu")
    with pytest.raises(HsError, match="response matrix holds NaN or infinite values"):
        Reconstructor("linear", consistent=np.full((31, 3), np.nan), device="cpu")
    for scale in (1e-160, 1e160):  # full rank, but its square under- or overflows
        with pytest.raises(HsError, match="too badly scaled or conditioned"):
            Reconstructor("linear", consistent=m * scale, device="cpu")
    from hstool.camera import CSS, load_css

    cie = load_css("cie1964")
    values = cie.values.copy()
    values[:, 2] = values[:, 1]  # blue a copy of green: a camera file, refused when given, not per image
    with pytest.raises(HsError, match="rank 2, not 3"):
        Reconstructor("linear", consistent=CSS("twin", cie.wavelengths, values), device="cpu")
    spelt = Reconstructor("linear", consistent="Real-World", device="cpu")  # a track, however spelt
    np.testing.assert_array_equal(spelt.matrix, track("realworld").matrix(np.arange(400, 701, 10.0)))


def test_images_over_768x768_run_in_tiles_by_default_and_a_vga_image_whole(monkeypatch):
    """The default bounds the memory: a 480x640 image runs whole, a 770x770 one in tiles."""
    from hstool.recon import engine

    tiled = []
    real = engine._predict_tiled
    monkeypatch.setattr(engine, "_predict_tiled", lambda *a, **k: tiled.append(a[1].shape) or real(*a, **k))
    model = conv_model(multiple=8)
    for h, w in ((480, 640), (770, 770)):
        out = predict(model, np.random.default_rng(0).random((h, w, 3), dtype=np.float32), "cpu")
        assert out.shape == (h, w, 31)
    assert tiled == [(776, 776, 3)]  # padded to the multiple of 8


def test_running_out_of_memory_is_one_line_with_a_hint():
    class Greedy(nn.Module):
        channels_last = False

        def forward(self, x):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] . DefaultCPUAllocator: can't allocate memory")

    model = Greedy()
    model.spec = ModelSpec("greedy", Greedy, kind="deep", multiple=1, halo=0)
    with pytest.raises(HsError, match="out of memory for a 20x30 image on cpu: a smaller tile"):
        predict(model, np.zeros((20, 30, 3), np.float32), "cpu")
    with pytest.raises(HsError, match="a tile smaller than 16 bounds"):  # the user's own tile, not one it already is
        predict(model, np.zeros((20, 30, 3), np.float32), "cpu", tile=16)
