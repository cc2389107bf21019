"""Specim IQ capture folders: the synthetic writer's files and SpecimCapture's checks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hstool.hsdata import HsError
from hstool.hsdata.formats.envi import open_envi
from hstool.hsdata.specim import (
    IQ_WAVELENGTHS,
    SpecimCapture,
    find_captures,
    parse_header_date,
    sensor_orientation,
    upright,
)
from hstool.hsdata.specim_synthetic import write_synthetic_capture


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_synthetic_capture(tmp_path_factory.mktemp("caps"), "cap1", 3, samples=40, lines=24, ref_lines=12)


def test_iq_wavelengths_are_the_cameras():
    assert IQ_WAVELENGTHS.size == 204
    assert IQ_WAVELENGTHS[0] == 397.32 and IQ_WAVELENGTHS[-1] == 1003.58
    steps = np.diff(IQ_WAVELENGTHS)
    assert 2.87 < steps.min() < steps.max() < 3.1


@pytest.mark.filterwarnings("ignore:Parameters with non-lowercase names")
def test_synthetic_capture_files_look_like_the_camera(capture):
    cap = capture.path / "capture"
    for stem in ("cap1", "DARKREF_cap1", "WHITEREF_cap1"):
        assert (cap / f"{stem}.hdr").is_file() and (cap / f"{stem}.raw").is_file()
    assert not (cap / "WHITEDARKREF_cap1.hdr").exists()
    text = (cap / "cap1.hdr").read_text()
    for line in ("samples = 40", "lines = 24", "bands = 204", "data type = 12", "interleave = bil",
                 "byte order = 0", "tint = 40", "sensor type = SPECIM IQ"):
        assert line in text
    # BIL uint16, 12-bit: the file is lines x bands x samples little-endian words
    raw = np.fromfile(cap / "cap1.raw", dtype="<u2")
    assert raw.size == 24 * 204 * 40 and raw.max() <= 4095
    view, wl, _, _ = open_envi(cap / "cap1.hdr")
    np.testing.assert_allclose(wl, IQ_WAVELENGTHS)
    np.testing.assert_array_equal(view, raw.reshape(24, 204, 40).transpose(0, 2, 1))
    assert (capture.path / "metadata" / "cap1.xml").is_file() and (capture.path / "manifest.xml").is_file()


def test_open_reads_parts_tint_date_and_metadata(capture):
    c = SpecimCapture.open(capture.path)
    assert (c.lines, c.samples, c.bands) == (24, 40, 204)
    assert c.dark.lines == 12 and c.white.lines == 12
    assert c.tint_ms == 40.0 and c.date == "2026-11-25"
    assert c.metadata["integration_time"] == "40" and not c.preset_white
    mean, std = c.reference_stats("dark")
    direct = np.asarray(c.dark.view, dtype=np.float64)
    np.testing.assert_allclose(mean, direct.mean(axis=0))
    np.testing.assert_allclose(std, direct.std(axis=0, ddof=1))


def test_a_recorded_rotation_is_described_and_warned_of_not_applied(tmp_path):
    sc = write_synthetic_capture(tmp_path, "r", 3, samples=16, lines=8, ref_lines=4)
    assert SpecimCapture.open(sc.path).describe()["datacube_angle"] == 0 and not SpecimCapture.open(sc.path).warnings()
    xml = sc.path / "metadata" / "r.xml"
    xml.write_text(xml.read_text().replace('"datacube_angle">0<', '"datacube_angle">90<'))
    cap = SpecimCapture.open(sc.path)
    assert cap.describe()["datacube_angle"] == 90
    (note,) = cap.warnings()
    assert note.startswith("the camera recorded datacube_angle 90, which is not applied")


def test_upright_orientation_rows_are_detector_columns():
    sensor = np.arange(3 * 5).reshape(3, 5)  # (lines, samples)
    up = upright(sensor)
    assert up.shape == (5, 3)
    np.testing.assert_array_equal(up[2], sensor[::-1, 2])  # upright row i = sample i, lines reversed
    np.testing.assert_array_equal(sensor_orientation(up), sensor)


def test_header_dates():
    assert parse_header_date("DATE(dd-mm-yyyy): 05-07-2019") == "2019-07-05"
    assert parse_header_date("DATE(yyyy-mm-dd): 2018-01-24") == "2018-01-24"
    assert parse_header_date(None) is None


def test_find_captures(tmp_path, capture):
    assert find_captures(capture.path) == [capture.path]
    assert find_captures(capture.path.parent) == [capture.path]
    (tmp_path / "empty").mkdir()
    with pytest.raises(HsError, match="no Specim IQ capture"):
        find_captures(tmp_path / "empty")


@pytest.fixture
def broken(tmp_path, capture):
    """A fresh copy of the capture to break."""
    dst = tmp_path / "cap1"
    shutil.copytree(capture.path, dst)
    return dst


def test_missing_dark_reference_is_named(broken):
    (broken / "capture" / "DARKREF_cap1.hdr").unlink()
    (broken / "manifest.xml").unlink()
    with pytest.raises(HsError, match="dark reference is missing") as exc:
        SpecimCapture.open(broken)
    assert exc.value.path.name == "DARKREF_cap1.hdr"


def test_header_binary_size_mismatch(broken):
    raw = broken / "capture" / "cap1.raw"
    raw.write_bytes(raw.read_bytes()[:-2])
    with pytest.raises(HsError, match="truncated or mismatched"):
        SpecimCapture.open(broken)


def test_reference_with_wrong_band_count(broken):
    hdr = broken / "capture" / "WHITEREF_cap1.hdr"
    text = hdr.read_text().replace("bands = 204", "bands = 203").replace(", 1003.58", "")
    hdr.write_text(text)
    raw = hdr.with_suffix(".raw")
    raw.write_bytes(raw.read_bytes()[: 12 * 203 * 40 * 2])
    with pytest.raises(HsError, match="203 bands, the scene 204"):
        SpecimCapture.open(broken)


def test_reference_wavelengths_must_match(broken):
    hdr = broken / "capture" / "DARKREF_cap1.hdr"
    hdr.write_text(hdr.read_text().replace("400.20", "401.20"))
    with pytest.raises(HsError, match="wavelengths differ"):
        SpecimCapture.open(broken)


def test_integration_time_disagreement(broken):
    xml = broken / "metadata" / "cap1.xml"
    xml.write_text(xml.read_text().replace('"integration_time">40<', '"integration_time">80<'))
    with pytest.raises(HsError, match="integration time disagrees"):
        SpecimCapture.open(broken)
