"""Inference fusion: BatchNorm folding, activations as oneDNN post-ops, MST++'s fused attention —
each against the unfused module, and every deep model through the Reconstructor against predict."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hstool.recon import Reconstructor, create_model, predict
from hstool.recon.engine import compute_dtype, use_channels_last
from hstool.recon.fuse import FusedConv2d, fold_batchnorm, fuse_for_inference, onednn_fusion_available
from hstool.recon.models.awan import SecondOrderNonLocal
from hstool.recon.models.mstpp import SpectralMSA
from hstool.recon.registry import build_model

ONEDNN = onednn_fusion_available()
needs_onednn = pytest.mark.skipif(not ONEDNN, reason="no oneDNN pointwise convolution in this torch build")


def _randomise_bn(bn: nn.BatchNorm2d, seed: int) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.2)
        bn.weight.copy_(torch.randn(bn.num_features, generator=g))
        bn.bias.copy_(torch.randn(bn.num_features, generator=g))
    return bn


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> None:
    scale = float(b.abs().max())
    assert float((a - b).abs().max()) <= rel * scale + 1e-7, float((a - b).abs().max()) / scale


def test_batchnorm_folds_into_the_convolution():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(5, 7, 3, padding=1, bias=False), _randomise_bn(nn.BatchNorm2d(7), 1).eval()
    x = torch.randn(2, 5, 11, 13)
    with torch.no_grad():
        want = bn(conv(x))
        fold_batchnorm(conv, bn)
        got = conv(x)
    _close(got, want)
    # by hand, for one output channel: γ (w * x + 0 − μ) / σ + β
    sigma = torch.sqrt(bn.running_var[3] + bn.eps)
    want_bias = bn.bias[3] - bn.running_mean[3] * bn.weight[3] / sigma
    assert conv.bias[3].item() == pytest.approx(want_bias.item(), rel=1e-5)


ACTIVATIONS = [nn.ReLU(), nn.GELU(), nn.GELU(approximate="tanh"), nn.LeakyReLU(0.2), nn.PReLU(init=0.3),
               nn.SiLU(), nn.Sigmoid(), nn.Tanh(), nn.Hardtanh(-0.5, 0.7)]


@needs_onednn
@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__ + getattr(a, "approximate", ""))
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_activation_pairs_fuse_exactly(act, channels_last):
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(4, 12, 3, padding=1), copy.deepcopy(act),
        nn.Conv2d(12, 12, 3, padding=2, dilation=2, groups=12, bias=False), copy.deepcopy(act),  # depth-wise
        nn.Conv2d(12, 6, 4, stride=2, padding=1), copy.deepcopy(act),
    ).eval()
    x = torch.randn(1, 4, 19, 26)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = model(x)
    fused = copy.deepcopy(model)
    assert fuse_for_inference(fused) == 3
    assert [type(m) for m in fused] == [FusedConv2d, nn.Identity] * 3
    with torch.inference_mode():
        _close(fused(x), want)
        strided = x[:, :, ::2, 1:]  # neither NCHW- nor NHWC-contiguous
        _close(fused(strided), model(strided))
    # with gradients (training code, say) the same module takes the unfused path, same result
    xg = x.clone().requires_grad_()
    y = fused(xg)
    _close(y.detach(), want)
    y.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


@needs_onednn
def test_batchnorm_then_relu_folds_then_fuses():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), _randomise_bn(nn.BatchNorm2d(8), 4), nn.ReLU(),
                          nn.Conv2d(8, 5, 1)).eval()
    x = torch.randn(2, 3, 9, 10)
    with torch.inference_mode():
        want = model(x)
        assert fuse_for_inference(model) == 2  # one fold, one fusion
        got = model(x)
    assert isinstance(model[0], FusedConv2d) and model[0].attr == "relu" and model[0].bias is not None
    assert isinstance(model[1], nn.Identity) and isinstance(model[2], nn.Identity)
    _close(got, want)


def test_only_certain_pairs_are_fused():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),  # not zero padding: kept
        nn.Conv2d(4, 4, 1), nn.PReLU(4),  # one slope per channel: no oneDNN post-op, kept
        nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1),  # no activation between: kept
        nn.BatchNorm2d(4),  # follows a convolution: folded
    ).eval()
    assert fuse_for_inference(model) == 1
    assert [type(m) for m in model] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.PReLU, nn.Conv2d, nn.Conv2d, nn.Identity]


class Named(nn.Module):
    """A block whose activation is applied in code: it names the pair for the fuser."""

    fusable_pairs = (("conv", "act"),)

    def __init__(self):
        super().__init__()
        self.conv, self.act, self.out = nn.Conv2d(3, 6, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.out(self.act(self.conv(x)))


@needs_onednn
def test_a_model_can_name_its_pairs():
    torch.manual_seed(5)
    model, x = Named().eval(), torch.randn(1, 3, 8, 9)
    with torch.inference_mode():
        want = model(x)
        assert fuse_for_inference(model) == 1
        _close(model(x), want)
    assert isinstance(model.conv, FusedConv2d) and isinstance(model.act, nn.Identity)


@pytest.mark.parametrize("dim", [31, 62, 124])  # one, two and four heads
def test_mstpp_fused_attention_is_the_reference_algebra(dim):
    torch.manual_seed(dim)
    block = SpectralMSA(dim, 31, dim // 31).eval()
    with torch.no_grad():
        block.rescale.copy_(torch.rand_like(block.rescale) * 3 + 0.5)
        block.proj.bias.normal_()
    x = torch.randn(2, 13, 17, dim)  # (N, H, W, C) tokens-last, two images: one mixing matrix each
    with torch.inference_mode():
        want = block(x)
        assert block.fuse_for_inference() == 1 and block.qk.shape == (2 * dim, dim)
        got = block(x)
        _close(got, want, 1e-5)
        _close(block(x.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)), want, 1e-5)  # a strided view too
    assert "qk" not in block.state_dict()  # never saved with the weights


def test_mstpp_feed_forward_runs_in_bands_of_rows_to_the_same_bits():
    """The engine's MST++ runs its feed-forward in bands of rows with a row of halo each side: its
    4x-wide hidden maps never exist whole, and the output is the whole-image output, bit for bit
    (an odd height, bands of unequal height, the first and last rows at the image's edges)."""
    from hstool.recon.models.mstpp import FeedForward

    torch.manual_seed(0)
    ff = FeedForward(8).eval()
    x = torch.rand(1, 37, 24, 8)
    calls = []
    ff.net.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[2]))
    fuse_for_inference(ff)
    assert ff.band_pixels > 0  # the engine's model bands; the research code's (unfused) does not
    with torch.inference_mode():
        ff.band_pixels = 0
        whole = ff(x)
        ff.band_pixels = 10 * 24  # bands of 10 rows
        banded = ff(x)
    assert calls == [37, 11, 12, 12, 8]  # the whole image, then 4 bands with their halo rows
    assert torch.equal(banded, whole)


def test_hscnn_and_hrnet_dense_blocks_run_in_bands_of_rows_to_the_same_values():
    """HSCNN+'s dense blocks (one 3x3 reach: a row of context) and HRNet's residual dense blocks
    (five 3x3 convolutions with reflected edges: five rows) run band by band in the engine's model
    and give the whole-image values: to the bit for HRNet's block; HSCNN+'s 1x1 convolutions may
    sum in another order on a band than on the whole (oneDNN picks kernels by size; the bundled
    model on a 482x512 image came out bit for bit the same)."""
    from hstool.recon.models.hrnet import ResidualDenseBlock

    torch.manual_seed(0)
    hscnn = create_model("hscnnp_s", None, "clean").eval()
    rdb = ResidualDenseBlock(8, 4).eval()
    for model, x, probe in ((hscnn, torch.rand(1, 3, 37, 24), hscnn.blocks[0].bottleneck),
                            (rdb, torch.rand(1, 8, 37, 24), rdb.last)):
        fuse_for_inference(model)
        banding = [m for m in model.modules() if getattr(m, "band_pixels", 0)]
        assert banding  # the engine's model bands; the research code's (unfused) does not
        calls: list[int] = []
        probe.register_forward_hook(lambda module, args, out, calls=calls: calls.append(args[0].shape[2]))
        with torch.inference_mode():
            for m in banding:
                m.band_pixels = 0
            whole = model(x)
            for m in banding:
                m.band_pixels = 10 * 24  # bands of 10 rows
            banded = model(x)
        assert calls[0] == 37 and len(calls) == 5 and max(calls[1:]) < 37  # whole, then 4 bands with context
        assert torch.equal(banded, whole) if model is rdb else float((banded - whole).abs().max()) <= 1e-6


@pytest.mark.parametrize("channels_last", [False, True])
def test_hscnn_dense_blocks_write_into_one_buffer_exactly(channels_last):
    torch.manual_seed(7)
    model = build_model("hscnnp", blocks=4).eval()
    x = torch.rand(1, 3, 23, 31)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = model(x)
        assert fuse_for_inference(model) >= 1 and model.preallocated
        torch.testing.assert_close(model(x), want, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mstpp_s", "awan_s", "hrnet_s", "hscnnp_s", "basisunet"])
def test_reconstructor_fuses_and_matches_the_plain_engine(name):
    rgb = np.random.default_rng(6).random((37, 53, 3), dtype=np.float32)
    rec = Reconstructor(name, track="clean", device="cpu")
    want = predict(create_model(name, "bundled", "clean"), rgb, "cpu")  # the same weights, unfused
    got = rec(rgb)
    assert got.shape == want.shape == (37, 53, 31)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in rec.model.modules())  # folded where present
    if ONEDNN and name != "hscnnp_s":  # its ReLUs are torch.relu calls: nothing names them
        assert any(isinstance(m, FusedConv2d) for m in rec.model.modules())
    if name == "hscnnp_s":
        assert rec.model.preallocated
    if name == "awan_s":  # PSNL's attention by its series
        assert all(m.series_tolerance for m in rec.model.modules() if isinstance(m, SecondOrderNonLocal))
    if name == "mstpp_s":
        assert all(m.qk is not None for m in rec.model.modules() if isinstance(m, SpectralMSA))
    else:  # convolutional models stay channels-last once their convolutions are fused
        assert use_channels_last(rec.model, torch.device("cpu"), torch.float32)
        assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
                   for m in rec.model.modules() if isinstance(m, (nn.Conv2d, FusedConv2d)))


def test_mstpp_fused_attention_sums_its_gram_matrix_in_fp32_under_autocast():
    """Under fp16 autocast the Gram matrix's diagonal (sums of squares over every pixel, here
    ~1.6e5) would overflow fp16's 65,504; it is summed in fp32, so the output stays finite and
    as close to fp32 as the unfused module's in fp16."""
    torch.manual_seed(3)
    block = SpectralMSA(31, 31, 1).eval()
    x = torch.randn(1, 64, 64, 31) * 10.0
    with torch.inference_mode():
        want = block(x)
        with torch.autocast("cpu", dtype=torch.float16):
            unfused = block(x).float()
            block.fuse_for_inference()
            got = block(x).float()
    assert torch.isfinite(got).all()
    scale = float(want.abs().max())
    assert float((got - want).abs().max()) <= 2 * float((unfused - want).abs().max()) + 1e-3 * scale


@pytest.mark.parametrize("name", ["awan_s", "mstpp_s"])
def test_reconstructor_in_bf16_is_fused_and_as_close_as_unfused_bf16(name):
    if compute_dtype(torch.device("cpu"), "bf16") != torch.bfloat16:
        pytest.skip("this CPU has no native bf16")
    rgb = np.random.default_rng(8).random((37, 53, 3), dtype=np.float32)
    model = create_model(name, "bundled", "clean")
    want = predict(model, rgb, "cpu")  # fp32, unfused
    unfused = predict(model, rgb, "cpu", precision="bf16")
    rec = Reconstructor(name, track="clean", device="cpu", precision="bf16")
    assert all(m.series_tolerance for m in rec.model.modules() if isinstance(m, SecondOrderNonLocal))
    assert all(m.qk is not None for m in rec.model.modules() if isinstance(m, SpectralMSA))
    got = rec(rgb)
    error, baseline = float(np.abs(got - want).max()), float(np.abs(unfused - want).max())
    assert error <= 1.5 * baseline + 1e-3 * float(np.abs(want).max())


ALLOCATOR_CHILD = """
import ctypes, sys
import numpy as np
from hstool.recon import engine

class MallInfo2(ctypes.Structure):  # glibc >= 2.33
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
engine.REUSE_FREED_MEMORY = sys.argv[1] == "1"
tuned = engine.reuse_freed_memory()
before = libc.mallinfo2().hblkhd  # bytes in blocks of their own mmap
a = np.ones(1 << 24, np.float32)  # 64 MB
mapped = libc.mallinfo2().hblkhd - before
del a
kept = libc.mallinfo2().fordblks  # free bytes the heap keeps for reuse
box = {}

def on_thread():  # as a Dask worker runs its tasks: one arena for every thread
    b = np.ones(1 << 24, np.float32)
    box["mapped"] = libc.mallinfo2().hblkhd - before
    del b

import threading
t = threading.Thread(target=on_thread)
t.start()
t.join()
rss = lambda: int([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmRSS")][0]) // 1024
held = rss()
engine.release_freed_memory()  # after each image: the free pages go back
print(int(tuned), mapped, kept, box["mapped"], held - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_activations_stay_in_the_heap_for_reuse():
    def run(flag: str) -> tuple[int, int, int]:
        out = subprocess.run([sys.executable, "-c", ALLOCATOR_CHILD, flag], check=False, capture_output=True, text=True)
        if out.returncode:
            pytest.skip(f"no glibc mallinfo2: {out.stderr.strip().splitlines()[-1]}")
        return tuple(int(v) for v in out.stdout.split())

    tuned, mapped, kept, on_thread, released_mb = run("1")
    if not tuned:
        pytest.skip("not glibc: mallopt is unavailable or refused")
    assert mapped == 0 and kept >= 1 << 26  # from the heap, and kept there once freed
    assert on_thread == 0  # another thread's block from the same heap, not an mmap of an arena of its own
    assert released_mb >= 48  # release_freed_memory hands the 64 MB kept back
    default_tuned, default_mapped, default_kept, _, default_released = run("0")
    assert default_tuned == 0 and default_mapped >= 1 << 26 and default_kept < 1 << 26  # its own mmap, unmapped
    assert default_released < 16  # nothing was kept
