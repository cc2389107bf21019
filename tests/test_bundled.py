"""Every bundled weights file: complete metadata, loads, and reconstructs finite non-negative
spectra through the engine on an odd-sized image."""

import numpy as np
import pytest

from hstool.recon import create_model, list_models, predict
from hstool.recon.weights import bundled_weights

#: (model, track) that must ship; deep models ship the small "_s" variants where the published
#: size is too slow to train on CPU or too large for the repository (README, "Models").
EXPECTED = [(m, t) for m in ("linear", "rootpoly", "sparse", "hrnet_s", "awan_s", "hscnnp_s", "mstpp_s", "basisunet")
            for t in ("clean", "realworld")]
FILES = bundled_weights()


def _split(path):
    name, _, track = path.stem.rpartition("_")
    return name, track


def test_expected_weights_are_bundled():
    shipped = {_split(p) for p in FILES}
    assert set(EXPECTED) <= shipped


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_bundled_weights_load_and_run(path):
    name, track = _split(path)
    assert name in list_models()
    model = create_model(name, "bundled", track)
    meta = model.meta
    assert meta["architecture"] == name and meta["track"] == track
    assert meta["train_command"].startswith(f"hstool train --model {name} ")
    assert f"--track {track}" in meta["train_command"] and f"--out recon/weights/{path.name}" in meta["train_command"]
    assert 0 < meta["val_mrae"] < 1 and len(meta["wavelengths"]) == 31 and meta["data_hash"]
    assert meta["config"] and meta["hstool_version"] and meta["css"]
    rgb = np.random.default_rng(5).random((37, 53, 3), dtype=np.float32) * 0.4
    y = predict(model, rgb, "cpu")
    assert y.shape == (37, 53, 31) and np.isfinite(y).all() and y.min() >= 0
