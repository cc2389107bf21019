"""The CUDA paths, on a GPU machine: ``pytest tests/test_cuda.py`` (skipped without one, as on CI).

Every bundled model must give the CPU's answer on the GPU (fp32 there runs convolutions in TF32,
PyTorch's default, so "the same" means within 1e-3 relative), the half precisions must stay close,
tiles and flips must agree as on the CPU, training must run there and write a file the CPU
reads, and ``hstool recon --device cuda`` must work with worker processes (a forked child cannot
use CUDA once its parent has, so the batch runner spawns them).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hstool.hsdata import read_cube, read_rgb
from hstool.hsdata.sample import sample_dir
from hstool.recon import Reconstructor, create_model, list_models, model_spec, predict
from hstool.recon.weights import bundled_path

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

BUNDLED = [n for n in list_models() if not n.startswith("_") and bundled_path(n, "clean").exists()]
DEEP = [n for n in BUNDLED if model_spec(n).kind == "deep"]


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference relative to the mean magnitude of ``b``."""
    return float(np.abs(a - b).mean() / np.abs(b).mean())


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return read_rgb(sample_dir() / "SYNTH_test_0000_clean.png")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_models_give_the_cpu_answer_on_cuda(name, rgb):
    cpu = Reconstructor(name, device="cpu")(rgb)
    gpu = Reconstructor(name, device="cuda")(rgb)
    assert gpu.shape == cpu.shape == (*rgb.shape[:2], 31)
    assert np.all(np.isfinite(gpu)) and gpu.min() >= 0
    assert rel(gpu, cpu) < 1e-3, rel(gpu, cpu)


@pytest.mark.parametrize("name", DEEP)
def test_half_precisions_stay_close_on_cuda(name, rgb):
    full = Reconstructor(name, device="cuda")(rgb)
    for precision, tol in (("fp16", 5e-3), ("bf16", 2e-2)):
        half = Reconstructor(name, device="cuda", precision=precision)(rgb)
        assert half.dtype == np.float32 and np.all(np.isfinite(half))
        assert rel(half, full) < tol, (precision, rel(half, full))


@pytest.mark.parametrize("name", DEEP)
def test_fused_models_give_the_unfused_answer_on_cuda(name, rgb):
    """The Reconstructor's fused model (MST++'s Gram form, AWAN's series attention in float64,
    folded BatchNorm) against the same weights unfused, on the GPU, in fp32 (TF32 convolutions,
    so within 1e-3 as against the CPU) and fp16 (MST++'s Gram sums would overflow it)."""
    model = create_model(name, "bundled", "clean")
    for precision, tol in (("fp32", 1e-3), ("fp16", 5e-3)):
        fused = Reconstructor(name, device="cuda", precision=precision)(rgb)
        plain = predict(model, rgb, "cuda", precision=precision)
        assert np.all(np.isfinite(fused)), precision
        assert rel(fused, plain) < tol, (precision, rel(fused, plain))


def test_tiles_and_flips_give_the_cpu_answer_on_cuda(rgb):
    model = create_model("mstpp_s", "bundled", "clean")
    gpu = {"tiles": predict(model, rgb, "cuda", tile=96), "flips": predict(model, rgb, "cuda", ensemble=True)}
    model.to("cpu")
    cpu = {"tiles": predict(model, rgb, "cpu", tile=96), "flips": predict(model, rgb, "cpu", ensemble=True)}
    whole = predict(model, rgb, "cpu", tile=0)
    for mode, got in gpu.items():
        assert rel(got, cpu[mode]) < 1e-3, mode
        assert rel(cpu[mode], whole) > 1e-4, mode  # the mode changes the answer: it was run, not skipped


def test_training_on_cuda_writes_weights_the_cpu_reads(hstool, tmp_path):
    out = tmp_path / "tiny.safetensors"
    r = hstool("train", "--model", "hscnnp_s", "--data", "synth", "--steps-per-epoch", "3", "--batch", "4",
               "--crop", "16", "--scenes", "2", "--scene-size", "32", "--val-scenes", "1", "--val-size", "32",
               "--epochs", "2", "--seed", "3", "--device", "cuda", "--loss", "rel-l1", "--mrae-mix", "0.1",
               "--out", out)
    assert r.exit_code == 0, r.output
    model = create_model("hscnnp_s", out)
    assert next(model.parameters()).device.type == "cpu"
    meta = model.meta
    assert np.isfinite(meta["val_mrae"]) and len(meta["history"]) == 2
    assert meta["speed"]["device"] == torch.cuda.get_device_name(0)  # timed on the GPU it trained on


def test_recon_cli_on_cuda_with_workers(hstool, tmp_path, rgb):
    images = sorted(sample_dir().glob("*_clean.png"))
    r = hstool("recon", *images, "--model", "mstpp_s", "--device", "cuda", "--workers", "2", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    written = sorted(tmp_path.glob("*.mat"))
    assert len(written) == len(images)
    got = read_cube(tmp_path / "SYNTH_test_0000.mat").data
    assert rel(got, Reconstructor("mstpp_s", device="cpu")(rgb)) < 1e-3
