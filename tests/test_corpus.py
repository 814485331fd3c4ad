"""Awkward inputs, built here, through both backends: bad ones get one line, odd ones work."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gbp_cli.inputs.preprocess import open_rgb
from tests.conftest import gbp, make_photo


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb(path: Path) -> Path:
    """A tiny PNG claiming 100000×100000 pixels: PIL must refuse it before decoding."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )
    return path


def with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """The PNG with one more chunk right after its header."""
    return png[:33] + png_chunk(kind, data) + png[33:]


def build_corpus(root: Path) -> tuple[dict[str, str], list[str], list[Path]]:
    """(bad input → expected reason, good input names, explicitly named extra inputs)."""
    folder = root / "corpus"
    folder.mkdir()
    photo = make_photo(root / "base.png", size=(120, 90))
    rgb = Image.open(photo)
    # Unusual but valid.
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257).save(folder / "gray16.png")
    palette = rgb.convert("P")
    palette.info["transparency"] = 0
    palette.save(folder / "palette.png", transparency=0)
    rgb.convert("LA").save(folder / "la.png")
    rgb.convert("RGBA").save(folder / "rgba.png")
    frames = [Image.new("RGB", (40, 30), c) for c in ("red", "blue")]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    many = [Image.new("L", (8, 8), 255 * (i % 2)) for i in range(10_000)]
    many[0].save(folder / "frames.gif", save_all=True, append_images=many[1:])
    Image.new("RGB", (1, 1), "green").save(folder / "tiny.png")
    rgb.resize((6000, 4000)).save(folder / "large.jpg", quality=70)
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb.save(folder / "rotated.jpg", exif=exif)
    rgb.save(folder / "png-inside.jpg", format="PNG")
    rgb.save(folder / "café ü.png")
    good = [
        "cmyk.jpg",
        "gray16.png",
        "palette.png",
        "la.png",
        "rgba.png",
        "animated.gif",
        "frames.gif",
        "tiny.png",
        "large.jpg",
        "rotated.jpg",
        "png-inside.jpg",
        "café ü.png",
    ]
    # Unusable.
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "cut.jpg").write_bytes(jpeg_bytes(rgb)[:300])
    (folder / "notes.png").write_text("these are not pixels")
    corrupt = bytearray(photo.read_bytes())
    corrupt[60:160] = b"\0" * 100
    (folder / "corrupt.png").write_bytes(bytes(corrupt))
    bomb(folder / "bomb.png")
    inflating = zlib.compress(b"\0" * (200 << 20), 9)  # 200 MB of zeros in 200 kB
    (folder / "ztxt.png").write_bytes(with_chunk(photo.read_bytes(), b"zTXt", b"c\0\0" + inflating))
    (folder / "iccp.png").write_bytes(with_chunk(photo.read_bytes(), b"iCCP", b"p\0\0" + inflating))
    huge = bytearray(jpeg_bytes(Image.new("RGB", (16, 16), "blue")))
    struct.pack_into(">HH", huge, huge.find(b"\xff\xc0") + 5, 65500, 65500)  # SOF0 height, width
    (folder / "huge.jpg").write_bytes(bytes(huge))
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    elsewhere = root / "elsewhere"
    make_photo(elsewhere / "outside.png")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)  # not followed
    readme = root / "readme.txt"
    readme.write_text("explicitly named, not an image")
    bad = {
        "empty.jpg": "not an image",
        "cut.jpg": "truncated",
        "notes.png": "not an image",
        "corrupt.png": "corrupt",
        "bomb.png": "decompression bomb",
        "ztxt.png": "compressed chunk",
        "iccp.png": "compressed chunk",
        "huge.jpg": "decompression bomb",
        "dangling.png": "no such file",
        "loop.png": "symlink loop",
        "readme.txt": "not an image",
        "missing.jpg": "no such file",
    }
    return bad, good, [readme, root / "missing.jpg"]


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.usefixtures("fake")
def test_every_awkward_input_is_handled_in_seconds(tmp_path: Path) -> None:
    bad, good, extra = build_corpus(tmp_path)
    out = tmp_path / "out"
    result = gbp("explain", tmp_path / "corpus", *extra, "--json", "-o", out)  # seconds, no hang
    assert result.exit_code == 1, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(bad) + len(good)  # exactly one object per input
    by_name = {Path(r["input"]).name: r for r in records}
    for name, reason in bad.items():
        assert reason in by_name[name]["error"], by_name[name]
        named = [line for line in result.stderr.splitlines() if name in line]
        assert len(named) == 1 and reason in named[0]
    for name in good:
        record = by_name[name]
        assert "error" not in record, record
        picture = Image.open(record["files"][0])
        width, height = open_rgb(tmp_path / "corpus" / name).size  # upright photo size …
        scale = min(1.0, 1024 / max(width, height))  # … bounded by --max-size's default
        assert picture.size == (max(1, round(width * scale)), max(1, round(height * scale)))
    assert (out / "café ü.guided.color.png").exists()
    assert "outside.png" not in result.stdout  # a symlinked folder is not followed
    assert not list(out.rglob("*.part"))
