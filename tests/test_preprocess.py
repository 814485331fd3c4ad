"""Shared preprocessing: what reaches the model, for ordinary and awkward photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gbp_cli.errors import InputError
from gbp_cli.inputs.preprocess import MEAN, SIZE, STD, fit, normalize, open_rgb, prepare
from tests.conftest import make_photo


def test_a_224_rgb_photo_reaches_the_model_unchanged_but_for_scaling(tmp_path: Path) -> None:
    path = make_photo(tmp_path / "exact.png", size=(SIZE, SIZE))
    pixels = np.asarray(Image.open(path), dtype=np.float32)
    prepared = prepare(path, "squash")
    expected = (pixels / 255.0 - MEAN) / STD
    assert prepared.array.dtype == np.float32
    np.testing.assert_array_equal(prepared.array, expected.astype(np.float32))


@pytest.mark.parametrize("size", [(1, 1), (500, 300), (300, 500)])
def test_squash_keeps_the_whole_photo(size: tuple[int, int]) -> None:
    view, geometry = fit(Image.new("RGB", size, (10, 20, 30)), "squash")
    assert view.size == (SIZE, SIZE)
    assert geometry.box == (0, 0, *size)


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (301, 257), (224, 224), (1000, 260)])
def test_crop_is_torchvisions_eval_transform(size: tuple[int, int]) -> None:
    transforms = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    reference = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])(image)
    view, geometry = fit(image, "crop")
    np.testing.assert_array_equal(np.asarray(view), np.asarray(reference))
    left, top, right, bottom = geometry.box
    assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]


def test_normalize_uses_imagenet_statistics() -> None:
    gray = Image.new("RGB", (SIZE, SIZE), (124, 116, 104))
    assert np.abs(normalize(gray)).max() < 0.01  # ImageNet's mean colour maps to ~0


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display 90° clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    upright = open_rgb(path)
    assert upright.size == (20, 40)
    top, bottom = np.asarray(upright)[:5].mean(), np.asarray(upright)[-5:].mean()
    assert top > 200 and bottom < 50  # the white left half is now on top


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(path)
    assert open_rgb(path).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(path)  # 32896 = 128·257
    assert open_rgb(path).getpixel((0, 0)) == (128, 128, 128)


@pytest.mark.parametrize("mode", ["CMYK", "L", "LA", "P", "1"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = make_photo(tmp_path / f"m{suffix}", mode=mode)
    assert open_rgb(path).mode == "RGB"


def test_unusable_files_raise_input_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    good = io.BytesIO()
    Image.new("RGB", (64, 64)).save(good, format="JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.getvalue()[:200])
    for path, reason in [
        (tmp_path / "missing.png", "no such file"),
        (empty, "not an image"),
        (text, "not an image"),
        (truncated, "truncated"),
    ]:
        with pytest.raises(InputError, match=reason):
            open_rgb(path)
