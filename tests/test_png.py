"""hstool's PNG writer (filtered rows + libdeflate): the pixels OpenCV and imageio decode, the size
against OpenCV's own encoder at the same level, and the OpenCV fallback."""

from __future__ import annotations

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hstool.camera import simulate
from hstool.hsdata import HsError
from hstool.hsdata.formats import image as image_format
from hstool.hsdata.formats.image import encode_png
from hstool.hsdata.synth import generate_scene


def clean_codes(seed: int, size: tuple[int, int]) -> np.ndarray:
    """The 8-bit codes of a clean-track image of a synthetic scene."""
    return np.round(simulate(generate_scene(seed, size), "clean") * 255).astype(np.uint8)


def decoded(data: bytes) -> np.ndarray:
    """RGB(A) or grey pixels as OpenCV reads the file."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert arr is not None
    if arr.ndim == 3:
        arr = arr[..., [2, 1, 0, 3]] if arr.shape[2] == 4 else arr[..., ::-1]
    return arr


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), channels=st.sampled_from([0, 1, 3, 4]),
       dtype=st.sampled_from([np.uint8, np.uint16]), level=st.integers(0, 9), seed=st.integers(0, 2**16))
def test_every_layout_decodes_to_the_same_pixels(h, w, channels, dtype, level, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    img = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    if seed % 2:  # smooth rows too, where every filter has something to choose from
        img = np.cumsum(img % 3, axis=1, dtype=dtype)
    data = encode_png(img, level)
    np.testing.assert_array_equal(decoded(data), img.reshape(h, w) if channels == 1 else img)
    if dtype == np.uint8:  # a second decoder (Pillow reads 16-bit colour PNGs as 8-bit)
        np.testing.assert_array_equal(iio.imread(data, extension=".png").reshape(img.shape), img)


def test_a_clean_image_is_no_larger_than_opencv_at_level_9():
    """The organisers write level 9 (libpng + zlib); hstool's level 9 is smaller on a clean image."""
    img = clean_codes(3, (96, 128))
    ours = encode_png(img, 9)
    theirs = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1]
    np.testing.assert_array_equal(decoded(ours), img)
    assert len(ours) <= theirs.size
    assert len(encode_png(img, 1)) > len(ours)  # the level is used


def test_only_integer_images_are_encoded():
    with pytest.raises(HsError, match="uint8 or uint16"):
        encode_png(np.zeros((2, 2, 3)), 9)


def test_without_libdeflate_opencv_writes_it(monkeypatch):
    img = clean_codes(1, (20, 24))
    monkeypatch.setattr(image_format, "_deflate", None)
    data = encode_png(img, 9)
    assert data == cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    np.testing.assert_array_equal(decoded(data), img)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_write_rgb_keeps_a_preview_note_in_a_png_of_its_own(tmp_path, channels):
    from hstool.hsdata.formats.image import is_preview, write_rgb

    img = np.arange(5 * 7 * channels, dtype=np.uint8).reshape(5, 7, channels)
    path = write_rgb(tmp_path / "p.png", img, preview=True)
    assert is_preview(path)
    np.testing.assert_array_equal(decoded(path.read_bytes()).reshape(img.shape), img)
