"""ONNX export: dynamic height/width, onnxruntime agrees with PyTorch, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hstool.hsdata import HsError
from hstool.recon.export import check_onnx, export_onnx
from hstool.recon.registry import build_model, model_spec

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def fresh(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name).eval()
    model.spec = model_spec(name)
    return model


@pytest.mark.parametrize("name", ["mstpp", "basisunet", "awan_s"])
def test_export_matches_pytorch_at_another_size(tmp_path, name):
    model = fresh(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", height=64, width=64)
    graph_input = onnx.load(str(path)).graph.input[0]
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    # 48×80 (rounded to the model's multiple), not the 64×64 traced: the axes are really dynamic
    assert check_onnx(model, path, (48, 80)) < 1e-4
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary was renamed away


@pytest.mark.parametrize("scale", ["none", "pixel"])
def test_export_of_the_log_space_batchnorm_basisunet(tmp_path, scale):
    """The configurations of the bundled basisunet files: exp of a basis sum, BatchNorm folded in eval,
    with or without the per-pixel intensity scale."""
    torch.manual_seed(0)
    model = build_model("basisunet", scale=scale)  # log space, BatchNorm
    model.train()
    with torch.no_grad():  # running statistics away from their 0/1 start, so eval-mode BN is exercised
        for _ in range(3):
            model(torch.rand(2, 3, 64, 64) * 0.5)
    model.eval()
    model.spec = model_spec("basisunet")
    path = export_onnx(model, tmp_path / "b.onnx", height=64, width=64)
    assert check_onnx(model, path, (48, 80)) < 1e-4


def test_export_of_a_network_on_a_linear_base(tmp_path):
    torch.manual_seed(0)
    model = build_model("basisunet", base="linear").eval()
    model.spec = model_spec("basisunet")
    with torch.no_grad():
        model.base.weight.uniform_(0, 1)
        model.gain.fill_(0.5)
    path = export_onnx(model, tmp_path / "b.onnx", height=64, width=64)
    assert check_onnx(model, path, (48, 80)) < 1e-4


def test_export_refuses_to_overwrite(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"keep me")
    with pytest.raises(HsError):
        export_onnx(fresh("hscnnp_s"), target)
    assert target.read_bytes() == b"keep me"
    export_onnx(fresh("hscnnp_s"), target, overwrite=True)
    assert target.read_bytes() != b"keep me"


def test_models_export_command_checks_onnxruntime(hstool, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    r = hstool("models", "export", "mstpp_s", out, "--json")
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0 and 0 <= json.loads(r.stdout)["max_abs_diff"] < 1e-4
    import onnxruntime as ort  # the file says what its graph does not: input convention, size rule, bands

    props = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert props["hstool.multiple"] == str(json.loads(r.stdout)["multiple"]) == "4"
    assert props["hstool.track"] == "clean" and props["hstool.wavelengths_nm"].startswith("400,410,")
    assert "[0, 1]" in props["hstool.input"] and "multiples of 4 and at least 16" in props["hstool.size_rule"]
    assert props["hstool.min_side"] == "16" and "below 0 set to 0" in props["hstool.output"]
    r = hstool("models", "export", "mstpp_s", out)
    assert r.exit_code == 1 and "output exists" in r.stderr
    before = out.stat().st_mtime_ns
    r = hstool("models", "export", "mstpp_s", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert out.stat().st_mtime_ns != before
    weights = tmp_path / "w.safetensors"  # only an .onnx path is written: never the weights read
    from hstool.recon import create_model
    from hstool.recon.weights import save_weights

    save_weights(create_model("linear", "bundled", "clean"), weights, {"architecture": "linear"})
    before = weights.read_bytes()
    for target in (weights, tmp_path / "m.txt"):
        r = hstool("models", "export", "linear", target, "-w", weights, "--overwrite")
        assert r.exit_code == 1 and "ending in .onnx" in r.stderr
    assert weights.read_bytes() == before and not (tmp_path / "m.txt").exists()
    r = hstool("models", "export", tmp_path / "w.onnx", "-w", weights, "--json")  # the file names its model
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == "linear", r.output
    r = hstool("models", "export", "linear", tmp_path / "x.onnx", "--opset", "99", "--json")
    assert r.exit_code == 1 and r.stdout == "" and "opset 99 is outside" in r.stderr


def test_every_pixel_model_exports(hstool, tmp_path):
    """sparse included: under the exporter its atom choice is the plain argmax (same index)."""
    pytest.importorskip("onnxruntime")
    for name in ("linear", "rootpoly", "sparse"):
        r = hstool("models", "export", name, tmp_path / f"{name}.onnx", "--track", "realworld", "--json")
        assert r.exit_code == 0, (name, r.output)
        assert json.loads(r.stdout)["max_abs_diff"] < 1e-4
        import onnx

        dims = onnx.load(str(tmp_path / f"{name}.onnx")).graph.output[0].type.tensor_type.shape.dim
        assert [d.dim_value or d.dim_param for d in dims] == ["batch", 31, "height", "width"], name


def test_models_pattern_matching_nothing_is_an_error(hstool):
    r = hstool("models", "nosuch*")
    assert r.exit_code == 1 and "no model matches 'nosuch*'" in r.stderr


def test_the_exported_graph_clamps_at_zero_as_recon_does_and_awan_says_its_memory(hstool, tmp_path):
    """A linear map gives negative spectra for saturated colours: the graph sets them to 0 as the
    engine does; AWAN's export says its attention grows with the square of the pixel count."""
    ort = pytest.importorskip("onnxruntime")
    from hstool.recon import Reconstructor

    r = hstool("models", "export", "linear", tmp_path / "l.onnx", "--json")
    assert r.exit_code == 0, r.output
    rgb = np.zeros((1, 3, 4, 5), np.float32)
    rgb[0, 0] = 1.0  # pure red
    got = ort.InferenceSession(str(tmp_path / "l.onnx"), providers=["CPUExecutionProvider"]).run(None, {"rgb": rgb})[0]
    want = Reconstructor("linear")(rgb[0].transpose(1, 2, 0)).transpose(2, 0, 1)[None]
    with torch.no_grad():
        raw = Reconstructor("linear").model(torch.from_numpy(rgb)).numpy()
    assert raw.min() < 0 and got.min() == 0 and np.allclose(got, want, atol=1e-6)
    r = hstool("models", "export", "awan_s", tmp_path / "a.onnx", "--json")
    assert r.exit_code == 0 and "square of the pixel count" in json.loads(r.stdout)["note"], r.output
