"""Every bundled weights file: complete metadata, loads, and reconstructs finite non-negative
spectra through the engine on an odd-sized image."""

import numpy as np
import pytest

from hstool.recon import create_model, list_models, predict
from hstool.recon.weights import bundled_weights

#: (model, track) that must ship: the published configurations (`hstool recon X --model hrnet` just
#: works) and the small "_s" ones they were grown from, which are far faster on a CPU (docs/models.md)
EXPECTED = [(m, t) for m in ("linear", "rootpoly", "sparse", "hrnet", "awan", "hscnnp", "mstpp", "hrnet_s", "awan_s",
                             "hscnnp_s", "mstpp_s", "basisunet")
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
    # a file grown from its _s sibling without training (--epochs 0) validates as the file it grew from
    grown = (meta.get("init") or {}).get("grown") and "--epochs 0" in meta["train_command"]
    val = meta["init"]["val_mrae"] if grown else meta["val_mrae"]
    assert 0 < val < 1 and len(meta["wavelengths"]) == 31 and meta["data_hash"]
    assert meta["config"] and meta["hstool_version"] and meta["css"]
    rgb = np.random.default_rng(5).random((37, 53, 3), dtype=np.float32) * 0.4
    y = predict(model, rgb, "cpu")
    assert y.shape == (37, 53, 31) and np.isfinite(y).all() and y.min() >= 0


def test_package_data_keeps_the_wheel_under_150_mb():
    """Weights and sample data are what make the wheel large (the code is under 1 MB); they barely
    compress, so their bytes bound the wheel's size (measured: a 113 MB wheel for 129 MB of files)."""
    from pathlib import Path

    from hstool.hsdata import sample

    data = FILES + [p for p in Path(sample.__file__).parent.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in data) < 140e6
