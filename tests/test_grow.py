"""Function-preserving growth (``recon.grow``), ``train --init NAME_s --model NAME``, int8 storage
and the full-size bundled weights."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from hstool.hsdata import HsError
from hstool.recon import create_model, list_models
from hstool.recon.grow import grow_state
from hstool.recon.registry import build_model, register_model
from hstool.recon.weights import (
    INT8_SCALE,
    dequantise_int8,
    load_weights,
    quantise_int8,
    save_weights,
)

FULL = ("mstpp", "hscnnp", "awan", "hrnet")


@pytest.mark.parametrize("name", FULL)
def test_grown_full_network_computes_what_the_bundled_small_one_does(name):
    """Every trained ``NAME_s`` grows into ``NAME`` (wider, deeper, or both) with the same outputs,
    while the full network's added channels carry signal (they are not dead zeros)."""
    torch.manual_seed(0)
    small = create_model(f"{name}_s", track="realworld")
    big = build_model(name)
    big.load_state_dict(grow_state(small, big))
    big.eval()
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        a, b = small(x), big(x)
    assert b.shape == a.shape
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in big.parameters()) > 2 * sum(p.numel() for p in small.parameters())
    # the grown network is not the small one in disguise: perturbing its new weights changes outputs
    with torch.no_grad():
        changed = False
        for p_name, p in big.named_parameters():
            if p_name not in small.state_dict() or p.shape != small.state_dict()[p_name].shape:
                p.add_(0.05 * torch.randn_like(p))
                changed = True
        assert changed
        assert (big(x) - a).abs().max() > 1e-4


class Tiny(torch.nn.Module):
    def __init__(self, out_bands: int = 31, width: int = 8):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(width, out_bands, 3, padding=1))

    def forward(self, x):
        return self.net(x)


if "_grow_test" not in list_models():
    register_model("_grow_test", kind="deep", halo=4, description="test only")(
        lambda out_bands=31, width=16: Tiny(out_bands, width))
    register_model("_grow_test_s", kind="deep", halo=4, description="test only")(
        lambda out_bands=31, width=4: Tiny(out_bands, width))

COMMON = ["--data", "synth", "--scenes", "2", "--scene-size", "32", "--val-scenes", "1", "--val-size", "32",
          "--seed", "3", "--device", "cpu", "--no-speed", "--steps-per-epoch", "2", "--batch", "2", "--crop", "16"]


def test_train_grows_a_small_configuration_and_keeps_the_best_start(hstool, tmp_path):
    small, grown, kept = (tmp_path / f"{n}.safetensors" for n in ("small", "grown", "kept"))
    r = hstool("train", "--model", "_grow_test_s", *COMMON, "--epochs", "1", "--lr", "0.01", "--out", small)
    assert r.exit_code == 0, r.output
    # --epochs 0: the small network's weights, grown to the full size, validated and written
    r = hstool("train", "--model", "_grow_test", *COMMON, "--epochs", "0", "--init", small, "--out", grown)
    assert r.exit_code == 0, r.output
    a, b = create_model("_grow_test_s", small), create_model("_grow_test", grown)
    assert b.net[0].out_channels == 16
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), atol=1e-3, rtol=1e-3)  # both stored in fp16
    assert b.meta["init"]["grown"] is True and b.meta["init"]["architecture"] == "_grow_test_s"
    assert b.meta["data_hash"] == a.meta["data_hash"]  # no step taken: the small file's data trained it
    assert b.meta["rgb_mean"] == a.meta["rgb_mean"]
    assert b.meta["val_mrae"] == pytest.approx(a.meta["val_mrae"], rel=1e-3)
    # a run that only makes things worse (a huge learning rate) writes the starting weights back
    r = hstool("train", "--model", "_grow_test", *COMMON, "--epochs", "1", "--lr", "50", "--keep", "best",
               "--init", grown, "--out", kept)
    assert r.exit_code == 0, r.output
    assert "keeping the starting weights (--init)" in r.stderr
    c = create_model("_grow_test", kept)
    assert all(torch.equal(c.state_dict()[k], v) for k, v in b.state_dict().items())
    assert c.meta["kept_epoch"] == 0
    # nothing to start from: --epochs 0 is refused before any work
    r = hstool("train", "--model", "_grow_test", *COMMON, "--epochs", "0", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 1 and "--epochs 0 trains nothing" in r.stderr and "Traceback" not in r.output


def test_growth_refuses_to_shrink():
    small, big = build_model("mstpp_s"), build_model("mstpp")
    with pytest.raises(HsError, match="cannot grow"):
        grow_state(big, small)
    with pytest.raises(HsError, match="cannot grow"):
        grow_state(build_model("hrnet"), build_model("hrnet_s"))


def test_int8_quantisation_is_within_half_a_step_per_channel():
    torch.manual_seed(1)
    w = torch.randn(6, 5, 3, 3) * torch.tensor([1e-3, 0.1, 1.0, 10.0, 0.0, 3.0])[:, None, None, None]
    q, scale = quantise_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (6,) and int(q.abs().max()) == 127
    back = dequantise_int8(q, scale)
    err = (back - w).abs().flatten(1).amax(dim=1)
    assert torch.all(err <= scale / 2 + 1e-12)
    assert torch.all(back[4] == 0)  # an all-zero channel stays exactly zero


def test_int8_weights_round_trip_through_a_file(tmp_path, monkeypatch):
    from hstool.recon import weights

    monkeypatch.setattr(weights, "INT8_MIN_VALUES", 1000)  # hrnet_s's tensors are below the real threshold
    torch.manual_seed(2)
    model = build_model("hrnet_s")
    path = save_weights(model, tmp_path / "q.safetensors", {"architecture": "hrnet_s"}, fp16=True, int8=True)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        assert f.get_tensor("top.1.convs.0.conv.weight").dtype == torch.int8
        assert f.get_tensor("top.1.convs.0.conv.bias").dtype == torch.float16  # biases stay fp16
        assert f.get_tensor("main_in.conv.weight").dtype == torch.float16  # 3x3x3x8 values: below the threshold
    assert "top.1.convs.0.conv.weight" + INT8_SCALE in keys
    state, _ = load_weights(path)
    assert not any(k.endswith(INT8_SCALE) for k in state)
    ref = model.state_dict()
    for k, v in state.items():
        assert v.shape == ref[k].shape
        tol = float(ref[k].abs().max()) / 127 if v.ndim >= 2 and v.numel() >= 1000 else 1e-3 * float(ref[k].abs().max() + 1)
        assert float((v.float() - ref[k]).abs().max()) <= tol
    loaded = create_model(None, path)
    assert isinstance(loaded, type(model))
