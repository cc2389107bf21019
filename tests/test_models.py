"""Deep architectures: they build, match the published parameter counts, run on odd image sizes
through the engine, and their distinctive blocks compute what the papers define.

Kept fast on a 2-core CPU: full-size networks run only at tiny sizes; the ``_s`` configurations
(same topology, fewer features) carry the odd-size runs through the engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hstool.recon.engine import predict
from hstool.recon.registry import build_model, list_models, model_spec
from hstool.recon.weights import create_model

# MST++ toolbox model-zoo table (caiyuanhao1998/MST-plus-plus README), at 3 -> 31 channels.
PUBLISHED_PARAMS = {"hscnnp": 4.65e6, "hrnet": 31.70e6, "awan": 4.04e6, "mstpp": 1.62e6}
SMALL = ["mstpp_s", "hrnet_s", "awan_s", "hscnnp_s"]
DEEP = ["mstpp", "hrnet", "awan", "hscnnp", "hscnnp_r", "basisunet", *SMALL]
# full-size networks cheap enough to run through the engine at 37×53 on a shared CPU
ENGINE_RUN = ["mstpp", "basisunet", "hscnnp_r", *SMALL]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fresh(name: str) -> torch.nn.Module:
    """Untrained model with ``.spec`` and ``.meta``, as ``create_model(name, weights=None)`` gives."""
    torch.manual_seed(0)
    return create_model(name, weights=None)


def test_every_architecture_is_registered_as_deep():
    names = set(list_models())
    assert set(DEEP) <= names
    for name in DEEP:
        spec = model_spec(name)
        assert spec.kind == "deep" and spec.multiple >= 1 and spec.halo >= 0
        assert spec.description and spec.reference


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_count_matches_published(name):
    assert n_params(build_model(name)) == pytest.approx(PUBLISHED_PARAMS[name], rel=0.02)


@pytest.mark.parametrize("name", SMALL)
def test_small_configurations_are_small_and_bundleable(name):
    n = n_params(build_model(name))
    assert 0.2e6 <= n <= 0.7e6
    assert n * 2 < 10e6  # fp16 bytes under 10 MB


def test_awan_challenge_width_is_available():
    # the NTIRE 2020 entry used 200 features: 52·C² per DRAB dominates, ≈ 17.5 M in all
    assert n_params(build_model("awan", channels=200)) == pytest.approx(17.46e6, rel=0.01)


def test_out_bands_changes_only_the_spectral_width():
    for name in ("mstpp_s", "basisunet", "hscnnp_s"):
        model = build_model(name, out_bands=16).eval()
        with torch.no_grad():
            assert model(torch.rand(1, 3, 16, 16)).shape == (1, 16, 16, 16)


@pytest.mark.parametrize("name", ENGINE_RUN)
def test_odd_sized_image_through_engine(name):
    rgb = np.random.default_rng(1).random((37, 53, 3), dtype=np.float32)
    out = predict(fresh(name), rgb, device="cpu")
    assert out.shape == (37, 53, 31)
    assert np.isfinite(out).all() and (out >= 0).all()


@pytest.mark.parametrize("name", SMALL + ["basisunet"])
def test_images_smaller_than_the_network_through_engine(name):
    """Down to one pixel: padded to the side every level needs (8×8 once broke HRNet's deepest
    reflect padding), cropped back."""
    model = fresh(name)
    for size in ((1, 1), (2, 2), (3, 5), (8, 8), (1, 40), (40, 1)):
        rgb = np.random.default_rng(3).random((*size, 3), dtype=np.float32)
        out = predict(model, rgb, device="cpu")
        assert out.shape == (*size, 31) and np.isfinite(out).all(), (name, size)


@pytest.mark.parametrize("name", ["mstpp_s", "hrnet_s"])
def test_odd_sized_image_through_engine_tiles(name):
    """Windows smaller than the image: padding to ``multiple``, ``halo`` context and blending."""
    rgb = np.random.default_rng(2).random((37, 53, 3), dtype=np.float32)
    out = predict(fresh(name), rgb, device="cpu", tile=32, overlap=8)
    assert out.shape == (37, 53, 31) and np.isfinite(out).all()


@pytest.mark.parametrize("name", ["hrnet", "awan", "hscnnp", "hscnnp_r"])
def test_full_size_networks_run_at_tiny_size(name):
    m = model_spec(name).multiple
    size = (2 * max(m, 4), 3 * max(m, 4))  # 16×24 for HRNet's multiple of 8
    with torch.no_grad():
        out = fresh(name)(torch.rand(1, 3, *size))
    assert out.shape == (1, 31, *size) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["mstpp_s", "hrnet_s", "basisunet"])
def test_multiple_is_what_the_network_needs(name):
    """Sizes that are odd multiples of ``spec.multiple`` must work unpadded."""
    m = model_spec(name).multiple
    with torch.no_grad():
        out = fresh(name)(torch.rand(1, 3, 3 * m, 5 * m))
    assert out.shape == (1, 31, 3 * m, 5 * m)


def test_pure_cnn_tiles_exactly_with_its_halo():
    """HSCNN+ is purely convolutional: a crop with ``halo`` context reproduces the whole-image
    output in its interior, which is what the engine's tiling relies on."""
    model = fresh("hscnnp_s")
    halo = model.spec.halo
    x = torch.rand(1, 3, 40, 44)
    with torch.no_grad():
        whole = model(x)
        crop = model(x[:, :, 10 - halo : 26 + halo, 12 - halo : 30 + halo])
    torch.testing.assert_close(
        crop[:, :, halo:-halo, halo:-halo], whole[:, :, 10:26, 12:30], rtol=1e-5, atol=1e-6
    )


def _nonlocal_by_the_paper(block, x):
    """A_ij = (θ_i − mean_c θ_i)·θ_j / C', softmax over j, x + W(A g), with the M×M matrix held."""
    theta = block.theta(x).flatten(2).transpose(1, 2)
    g = block.g(x).flatten(2).transpose(1, 2)
    affinity = (theta - theta.mean(2, keepdim=True)) @ theta.transpose(1, 2) / theta.shape[2]
    y = (affinity.softmax(-1) @ g).transpose(1, 2).reshape(x.shape[0], -1, *x.shape[2:])
    return x + block.W(y)


def test_second_order_nonlocal_chunked_equals_the_paper_formula():
    """Same result whole or in query chunks (the chunking is what keeps AWAN's memory linear)."""
    from hstool.recon.models.awan import SecondOrderNonLocal

    torch.manual_seed(0)
    block = SecondOrderNonLocal(31)
    torch.nn.init.normal_(block.W.weight)  # the paper zero-initialises W; make it count here
    x = torch.rand(2, 31, 11, 13)
    want = _nonlocal_by_the_paper(block, x)
    with torch.no_grad():
        torch.testing.assert_close(block(x), want, rtol=1e-5, atol=1e-5)
        block.attention_budget = 143 * 37  # 37 query rows per chunk: 4 uneven chunks
        torch.testing.assert_close(block(x), want, rtol=1e-5, atol=1e-5)


def test_series_attention_is_within_its_bound_of_softmax_attention():
    """The Taylor-series attention against softmax(q·kᵀ)·v held whole, in float64: within
    tolerance·max|v| wherever it answers, shift-invariant in the keys, and None where the bound
    would need more terms than allowed."""
    from hstool.recon.models.awan import SERIES_TOLERANCE, series_attention, series_order

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 300, 3, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 400, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 400, 3, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=2).amax()
    k = k - k.mean(dim=1, keepdim=True)
    k = k / k.norm(dim=2).amax()
    for radius in (0.0, 0.1, 1.0, 1.8):
        keys = k * radius + 5.0  # the offset only scales each row of exp(q·kᵀ): the softmax removes it
        want = torch.softmax(q @ keys.transpose(1, 2), dim=-1) @ v
        got = series_attention(q, keys, v, chunk=128)  # uneven chunks on both sides
        assert got is not None and got.dtype == torch.float64
        assert float((got - want).abs().max()) <= SERIES_TOLERANCE * float(v.abs().max())
    assert series_attention(q, k * 4.0, v) is None  # R = 4 needs order 26: 3654 terms > 1024
    assert series_order(0.0, 3) == 0
    for radius in (0.05, 0.5, 1.5):  # the lowest order whose remainder bound is within tolerance
        order = series_order(radius, 3)
        bound = [2 * math.exp(2 * radius) * radius ** (p + 1) / math.factorial(p + 1) for p in (order - 1, order)]
        assert bound[1] <= SERIES_TOLERANCE < bound[0]


def test_fused_second_order_nonlocal_uses_the_series_and_falls_back_exactly(monkeypatch):
    from hstool.recon.models import awan

    torch.manual_seed(0)
    block = awan.SecondOrderNonLocal(31)
    torch.nn.init.normal_(block.W.weight)
    x = torch.rand(2, 31, 11, 13)
    with torch.no_grad():
        want = _nonlocal_by_the_paper(block, x)
        wide = _nonlocal_by_the_paper(block, x * 30.0)  # |q·k| up to ~10^2: no short series
    assert block.fuse_for_inference() == 1
    exact = awan.F.scaled_dot_product_attention
    calls = []
    monkeypatch.setattr(awan.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or exact(*a, **k))
    with torch.no_grad():
        torch.testing.assert_close(block(x), want, rtol=1e-5, atol=1e-5)
        assert not calls  # the series answered
        torch.testing.assert_close(block(x * 30.0), wide, rtol=1e-5, atol=1e-4)
        assert calls  # exact attention answered


def test_psnl_attends_within_quadrants_only():
    from hstool.recon.models.awan import PSNL

    torch.manual_seed(0)
    psnl = PSNL(31)
    torch.nn.init.normal_(psnl.non_local.W.weight)
    x = torch.rand(1, 31, 12, 14)
    x2 = x.clone()
    x2[:, :, 6:, 7:] += 1.0  # change only the bottom-right quadrant
    with torch.no_grad():
        a, b = psnl(x), psnl(x2)
    torch.testing.assert_close(a[:, :, :6], b[:, :, :6])
    torch.testing.assert_close(a[:, :, 6:, :7], b[:, :, 6:, :7])
    assert not torch.allclose(a[:, :, 6:, 7:], b[:, :, 6:, 7:])


def test_basisunet_spectra_lie_in_the_span_of_its_basis():
    torch.manual_seed(0)
    model = build_model("basisunet", space="linear", norm="none").eval()  # the paper's plain design
    assert tuple(model.basis.shape) == (10, 31) and isinstance(model.basis, torch.nn.Parameter)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))[0].reshape(31, -1)  # (B, pixels)
        basis = model.basis.double()
        projector = basis.T @ torch.linalg.pinv(basis.T)  # onto the 10-dim row space of the basis
        residual = out.double() - projector @ out.double()
    assert out.abs().max() > 0
    assert residual.abs().max() < 1e-4 * out.abs().max()


def test_basisunet_log_space_sums_log_spectra():
    model = fresh("basisunet")  # the default: log space
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))[0].reshape(31, -1)
        log_out = out.double().log()
        basis = model.basis.double()
        projector = basis.T @ torch.linalg.pinv(basis.T)
        residual = log_out - projector @ log_out
    assert (out > 0).all()
    assert residual.abs().max() < 1e-4 * log_out.abs().max()  # the log-spectrum is in the span
    assert torch.exp(log_out.mean()) == pytest.approx(0.1, rel=0.2)  # the flat start
    with pytest.raises(ValueError, match="space"):
        build_model("basisunet", space="sqrt")


def test_basisunet_batchnorm_option_normalises_every_convolution():
    plain, normed = build_model("basisunet", norm="none"), build_model("basisunet")  # BatchNorm by default
    convs = [m for m in normed.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    norms = [m for m in normed.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == len(norms) == 18 and all(c.bias is None for c in convs)
    # a bias per 3×3 convolution traded for a BatchNorm scale and shift per channel
    assert n_params(normed) - n_params(plain) == sum(n.num_features for n in norms)
    normed.train()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        normed(x)
        y = normed.enc[0][:2](x)  # first conv + BN in training mode: per-channel zero mean, unit var
    assert y.mean((0, 2, 3)).abs().max() < 1e-5 and (y.var((0, 2, 3), unbiased=False) - 1).abs().max() < 1e-3
    with pytest.raises(ValueError, match="norm"):
        build_model("basisunet", norm="layer")


def test_basisunet_pixel_scale_sees_chromaticity_and_scales_the_spectrum():
    """``scale="pixel"``: the U-Net sees each pixel's RGB over its intensity s (plus log s) and the
    spectrum is multiplied by s, so with the log-s input cut the model is exactly exposure-equivariant
    per pixel, as a linear map is; a black pixel gives a black spectrum."""
    torch.manual_seed(0)
    for space in ("log", "linear"):
        model = build_model("basisunet", space=space, scale="pixel").eval()
        assert model.enc[0][0].in_channels == 4
        with torch.no_grad():
            model.enc[0][0].weight[:, 3] = 0  # cut the log-intensity input
            x = torch.rand(1, 3, 32, 32) + 0.05
            k = torch.rand(1, 1, 32, 32) * 4 + 0.1  # a different exposure for every pixel
            a, b = model(x), model(x * k)
            assert torch.allclose(b, a * k, rtol=1e-4, atol=1e-6)
            x[..., :4, :4] = 0
            assert model(x)[..., :4, :4].abs().max() < 1e-3 * a.abs().max()
    with pytest.raises(ValueError, match="scale"):
        build_model("basisunet", scale="image")


def test_mstpp_attention_is_over_channels():
    """S-MSA's attention map is heads × d × d (d = 31), independent of the pixel count."""
    from hstool.recon.models.mstpp import SpectralMSA

    msa = SpectralMSA(62, 31, 2)
    seen = []
    handle = msa.proj.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape))
    with torch.no_grad():
        for h, w in ((4, 4), (8, 12)):
            out = msa(torch.rand(1, h, w, 62))
            assert out.shape == (1, h, w, 62)
    handle.remove()
    assert seen == [torch.Size([1, 16, 62]), torch.Size([1, 96, 62])]
