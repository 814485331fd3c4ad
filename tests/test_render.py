"""Renderings: sizes, modes, value ranges, metadata, and overlays that line up with the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gbp_cli.inputs.preprocess import Geometry, fit, open_rgb
from gbp_cli.render.panel import panel
from gbp_cli.render.pictures import (
    color,
    gray,
    heatmap,
    negative,
    on_photo,
    overlay,
    positive,
    render,
)
from tests.conftest import gbp, make_photo, mirrored


def hot_corner(channels: int = 3) -> np.ndarray:
    """A map that is zero except for the model view's top-left quarter."""
    saliency = np.zeros((224, 224, channels), np.float32)
    saliency[:112, :112] = 1.0
    return saliency


def test_pictures_have_the_expected_modes_sizes_and_ranges() -> None:
    rng = np.random.default_rng(0)
    signed = rng.normal(size=(224, 224, 3)).astype(np.float32)
    assert (color(signed).mode, color(signed).size) == ("RGB", (224, 224))
    assert np.asarray(color(np.zeros((224, 224, 3)))).max() == 128  # zero is mid-grey
    strength = np.asarray(gray(signed))
    assert gray(signed).mode == "L" and strength.max() == 255 and strength.min() < 20
    assert (np.asarray(gray(signed)) == 255).mean() == pytest.approx(0.01, abs=0.002)  # 99th pct
    assert heatmap(signed, cmap="viridis").mode == "RGB"
    assert np.asarray(positive(-np.abs(signed))).max() == 0  # nothing positive: black
    assert np.asarray(negative(np.abs(signed))).max() == 0
    assert np.asarray(positive(np.abs(signed))).max() == 255
    cam = np.abs(signed[..., :1])  # Grad-CAM maps have one channel
    assert gray(cam).size == (224, 224) and color(cam).mode == "RGB"


def test_maps_go_back_onto_the_photo_geometry() -> None:
    squash = Geometry(640, 427, (0, 0, 640, 427))
    crop = Geometry(640, 427, (107, 0, 534, 427))
    picture = color(hot_corner())
    assert on_photo(picture, squash).size == (640, 427)
    assert on_photo(picture, crop).size == (427, 427)
    for fmt in ("color", "gray", "heatmap", "pos", "neg"):
        assert render(fmt, hot_corner(), crop).size == (427, 427)


def test_the_overlay_lines_up_with_the_photo(tmp_path: Path) -> None:
    photo = Image.new("RGB", (400, 200), (90, 90, 90))
    geometry = Geometry(400, 200, (0, 0, 400, 200))
    changed = (
        np.abs(
            np.asarray(overlay(hot_corner(), photo, geometry, alpha=1.0), np.int16)
            - np.asarray(photo, np.int16)
        ).sum(axis=-1)
        > 10
    )
    assert changed[:95, :195].all() and not changed[105:, :].any() and not changed[:, 205:].any()
    # With a crop, the heat stays inside the box and the rest is the photo, untouched.
    _, cropped = fit(photo, "crop")
    result = np.asarray(overlay(np.ones((224, 224, 3)), photo, cropped, alpha=1.0))
    left, top, right, bottom = cropped.box
    assert (result[:, :left] == 90).all() and (result[:, right:] == 90).all()
    assert (result[:top] == 90).all() and (result[bottom:] == 90).all()
    assert (result[top + 2 : bottom - 2, left + 2 : right - 2] != 90).any(axis=-1).all()


def test_an_exif_rotated_photo_is_overlaid_upright(tmp_path: Path) -> None:
    stored = np.zeros((100, 200, 3), np.uint8)  # 200 wide, 100 tall as stored
    stored[:, :100] = 255  # the left half is white
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: 100 wide, 200 tall, white on top
    path = tmp_path / "turned.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    upright = open_rgb(path)
    _, geometry = fit(upright, "squash")
    assert upright.size == (100, 200) and geometry.box == (0, 0, 100, 200)
    blended = np.asarray(overlay(hot_corner(), upright, geometry, alpha=1.0), np.int16)
    changed = np.abs(blended - np.asarray(upright, np.int16)).sum(axis=-1) > 10
    assert changed[:95, :45].all() and not changed[105:].any()
    out = tmp_path / "out"
    result = gbp(
        "explain",
        path,
        "--weights",
        "random",
        "--format",
        "overlay",
        "--format",
        "color",
        "-o",
        out,
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(mirrored(out, path, ".guided.overlay.png")).size == (100, 200)
    assert Image.open(mirrored(out, path, ".guided.color.png")).size == (100, 200)


def test_every_format_and_its_metadata(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    photo = make_photo(tmp_path / "p.png", size=(300, 200))
    out = tmp_path / "out"
    formats = ["color", "gray", "heatmap", "overlay", "pos", "neg", "panel", "npy"]
    args = [
        "explain",
        photo,
        "--weights",
        "random",
        "-o",
        out,
        "-q",
        "--method",
        "guided",
        "--method",
        "gradcam",
        "--resize",
        "crop",
        "--cmap",
        "viridis",
    ]
    result = gbp(*args, *(x for f in formats for x in ("--format", f)))
    assert result.exit_code == 0, result.output
    left, top, right, bottom = fit(Image.open(photo), "crop")[1].box
    box = (right - left, bottom - top)
    assert box == (176, 176)  # 224/256 of the shorter side, centred
    for method in ("guided", "gradcam"):
        for fmt in ("color", "gray", "heatmap", "pos", "neg"):
            picture = Image.open(mirrored(out, photo, f".{method}.{fmt}.png"))
            assert picture.size == box  # the crop box, in photo pixels
            text = picture.text
            assert text["gbp:method"] == method and text["gbp:format"] == fmt
            assert text["Software"].startswith("gbp ") and "random" in text["gbp:weights"]
            assert text["gbp:preprocess"].startswith("crop to 224x224")
            assert "cmap=viridis" in text["gbp:render"] and text["gbp:smoothing"] == "none"
            assert text["gbp:target"].split()[0].isdigit() and float(text["gbp:probability"]) < 1
        assert Image.open(mirrored(out, photo, f".{method}.overlay.png")).size == (300, 200)
    assert np.load(mirrored(out, photo, ".guided.npy")).shape == (224, 224, 3)
    assert np.load(mirrored(out, photo, ".gradcam.npy")).shape == (224, 224)
    figure = Image.open(mirrored(out, photo, ".panel.png"))
    assert figure.width > 2 * figure.height and "random" in figure.text["gbp:weights"]


def test_the_panel_says_when_weights_are_random() -> None:
    photo = Image.new("RGB", (300, 200), "gray")
    geometry = Geometry(300, 200, (0, 0, 300, 200))
    rows = [("tabby", 0.5, {"guided": hot_corner(), "gradcam": hot_corner(1)})]
    plain = panel(photo, geometry, rows)
    noted = panel(photo, geometry, rows, note="RANDOM weights")
    assert noted.height > plain.height  # room for the red headline
    red = np.asarray(noted)[:40]
    assert ((red[..., 0] > 150) & (red[..., 1] < 80)).any()


@pytest.mark.parametrize("cmap", ["inferno", "viridis", "jet", "gray", "coolwarm"])
def test_the_colormap_is_matplotlibs_own_table(cmap: str) -> None:
    """Indexed as matplotlib indexes its table (⌊v·N⌋, 1.0 at the last entry), without its
    per-call cost: the same colours, edges included."""
    import matplotlib

    from gbp_cli.render.pictures import colormap

    values = np.concatenate(
        [np.random.default_rng(0).random(5000), [0.0, 1.0, 0.5, 1 / 256, 255 / 256, 1 - 1e-9]]
    )
    expected = matplotlib.colormaps[cmap](values)[:, :3]
    np.testing.assert_allclose(colormap(values, cmap), expected, atol=1e-7)
