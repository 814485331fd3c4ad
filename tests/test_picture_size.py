"""Pictures at a bounded size (`--max-size`), in the photo's aspect, from the maps the model's
whole-photo input gave; and the PNG writer that encodes them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gbp_cli.render.png import encode_png
from tests.conftest import gbp, make_photo

pytestmark = pytest.mark.usefixtures("fake")


@pytest.mark.parametrize(
    ("size", "max_size", "expected"),
    [
        ((2000, 1500), None, (1024, 768)),  # the default: the longer side to 1024
        ((1500, 2000), None, (768, 1024)),
        ((2016, 1512), 800, (800, 600)),  # a phone photo's aspect (half its size: less memory)
        ((640, 480), None, (640, 480)),  # smaller than the bound: the photo's own size
        ((2000, 1500), 0, (2000, 1500)),  # 0: the photo's own size
        ((3000, 7), 300, (300, 1)),  # never a side of zero
    ],
)
def test_pictures_keep_the_photos_aspect_within_the_bound(
    size: tuple[int, int], max_size: int | None, expected: tuple[int, int], tmp_path: Path
) -> None:
    photo = make_photo(tmp_path / "p.jpg", size=size)
    bound = [] if max_size is None else ["--max-size", str(max_size)]
    args = ["--method", "guided", "--method", "gradcam", "--format", "color", "--format", "overlay"]
    result = gbp("explain", photo, "-o", tmp_path / "out", *args, *bound)
    assert result.exit_code == 0, result.output
    pictures = sorted((tmp_path / "out").rglob("*.png"))
    assert len(pictures) == 4
    for picture in pictures:
        assert Image.open(picture).size == expected


def test_the_bound_changes_pictures_never_the_maps(tmp_path: Path) -> None:
    """The model's input comes from the whole photo whatever the pictures' size: the raw maps
    are byte-identical, and a picture drawn at the photo's size shrinks to the bounded one."""
    photo = make_photo(tmp_path / "p.jpg", size=(1600, 1200), seed=3)
    for bound in ("0", "512"):
        out = tmp_path / bound
        result = gbp("explain", photo, "-o", out, "--format", "npy", "--format", "gray",
                     "--max-size", bound)  # fmt: skip
        assert result.exit_code == 0, result.output
    big, small = (np.load(next((tmp_path / b).rglob("*.npy"))) for b in ("0", "512"))
    assert np.array_equal(big, small) and big.shape == (224, 224, 3)
    drawn = {b: Image.open(next((tmp_path / b).rglob("*.gray.png"))) for b in ("0", "512")}
    assert drawn["0"].size == (1600, 1200) and drawn["512"].size == (512, 384)
    shrunk = np.asarray(drawn["0"].resize((512, 384), Image.BILINEAR), np.float64)
    assert np.abs(shrunk - np.asarray(drawn["512"], np.float64)).mean() < 3  # the same picture


def test_a_rerun_with_another_bound_is_another_rendering(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png", size=(1200, 900))
    first = gbp("explain", photo, "-o", tmp_path / "out")
    assert first.exit_code == 0
    again = gbp("explain", photo, "-o", tmp_path / "out", "--max-size", "600")
    assert again.exit_code == 1 and "max_size 1024 → 600" in again.stderr


@pytest.mark.parametrize("shape", [(37, 53, 3), (37, 53), (1, 1, 3), (5, 1), (224, 224, 3)])
def test_the_png_writer_round_trips_every_pixel_and_its_text(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(pixels, {"gbp:method": "guided", "gbp:target": "281 tabby — Käfer"})
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.mode == ("RGB" if len(shape) == 3 else "L")
        assert np.array_equal(np.asarray(image), pixels)
        assert image.text == {"gbp:method": "guided", "gbp:target": "281 tabby — Käfer"}


def test_the_png_writer_refuses_what_is_no_picture() -> None:
    with pytest.raises(ValueError, match="not 4 channels"):
        encode_png(np.zeros((4, 4, 4), np.uint8))


@pytest.mark.parametrize(
    ("size", "max_size"), [((4000, 5), 100), ((5, 4000), 100), ((10000, 5), 0)]
)
@pytest.mark.parametrize("resize", ["squash", "crop"])
def test_a_sliver_of_a_photo_is_drawn_not_a_crash(
    size: tuple[int, int], max_size: int, resize: str, tmp_path: Path
) -> None:
    """The crop's box, scaled down with the photo, keeps at least a pixel of width and height."""
    photo = make_photo(tmp_path / "p.png", size=size)
    other = make_photo(tmp_path / "q.png")
    args = ["--resize", resize, "--max-size", str(max_size), "--method", "guided"]
    args += ["--method", "gradcam", "--format", "color", "--format", "overlay", "--format", "panel"]
    result = gbp("explain", photo, other, "-o", tmp_path / "out", *args)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
