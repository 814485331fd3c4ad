"""Phone photos (issue 28): HEIC/HEIF, read through pillow-heif, and AVIF, Pillow's own, found
in folders and named, decoded as every photo is (EXIF orientation, first image, high bit depths,
alpha over white), explained in both backends exactly as the same pixels saved as PNG, shown on
the --report page, and one line naming the extra where the plugin is missing.

Every file here is written by the test: HEIC losslessly (x265 with 4:4:4 chroma and RGB kept as
RGB, so the decoded pixels are the written ones), AVIF by Pillow (near-lossless only, so AVIF is
compared with the pixels Pillow decodes from it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif  # the [heif] extra, which the [test] extra brings
import pytest
from PIL import Image, ImageOps

from gbp_cli.errors import InputError
from gbp_cli.gallery import rows as gallery_rows
from gbp_cli.inputs.find import discover
from gbp_cli.inputs.preprocess import decode, open_rgb
from tests.conftest import FAKE, ROOT, gbp, make_photo, one_line, run_gbp
from tests.test_gallery import browser, errors, open_page, wait_for_images  # noqa: F401

LOSSLESS = {"quality": -1, "chroma": 444, "matrix_coefficients": 0}
EXTRA = "pip install 'gbp-saliency[heif]'"
ROTATED = 6  # EXIF orientation: shown turned 90° clockwise


def pixels(tmp: Path, seed: int, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    """A smooth photo-like H×W×3 uint8 image."""
    return np.asarray(Image.open(make_photo(tmp / f"source-{seed}.png", size=size, seed=seed)))


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[0x0112] = orientation
    return tags.tobytes()


def save_heic(path: Path, image: Image.Image, **options: object) -> Path:
    """A lossless HEIC (written without registering the plugin: gbp must do that itself)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pillow_heif.from_pillow(image).save(path, **LOSSLESS, **options)
    return path


def save_burst(path: Path, frames: list[Image.Image], primary: int) -> Path:
    """A multi-image HEIC whose primary image (the one viewers show) is `frames[primary]`."""
    heif = pillow_heif.from_pillow(frames[0])
    for frame in frames[1:]:
        heif.add_from_pillow(frame)
    heif.save(path, primary_index=primary, **LOSSLESS)
    return path


def save_ten_bit_heic(path: Path, values: np.ndarray) -> Path:
    """A 10-bit HEIC of `values` (0…1023; H×W×3 colour or H×W gray)."""
    mode = "RGB;16" if values.ndim == 3 else "L;16"
    data = (values.astype(np.uint16) << 6).astype("<u2").tobytes()  # 10 bits, MSB-aligned
    heif = pillow_heif.from_bytes(mode=mode, size=(values.shape[1], values.shape[0]), data=data)
    heif.save(path, **LOSSLESS)
    return path


def save_avif(path: Path, image: Image.Image, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "AVIF", quality=100, subsampling="4:4:4", **options)
    return path


def pillow_pixels(path: Path, mode: str = "RGB") -> np.ndarray:
    """What Pillow itself decodes from a file, turned upright: the reference for AVIF."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert(mode))


def solid(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (32, 24), colour)


# --- found and decoded ----------------------------------------------------------------------


def test_folders_find_heic_heif_and_avif_in_any_case_and_each_can_be_named(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "phone"
    names = ["IMG_0001.HEIC", "IMG_0002.heic", "b.HeIf", "c.heif", "d.AVIF", "e.avif", "f.jpg"]
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")  # the walk goes by name; what is inside is not read
    (folder / "notes.txt").write_text("not a photo")
    found = [s.relative.as_posix() for s in discover([str(folder)])]
    assert found == sorted(names)
    named = [s.path for s in discover([str(folder / "IMG_0001.HEIC"), str(folder / "d.AVIF")])]
    assert named == [folder / "IMG_0001.HEIC", folder / "d.AVIF"]


def test_a_lossless_heic_decodes_to_its_own_pixels(tmp_path: Path) -> None:
    photo = pixels(tmp_path, 1)
    for name in ("IMG_0001.HEIC", "still.heif", "misnamed.jpg"):  # known by content, not name
        path = save_heic(tmp_path / name, Image.fromarray(photo))
        np.testing.assert_array_equal(np.asarray(open_rgb(path)), photo)
    generic = bytearray(path.read_bytes())  # major brand "mif1", as some phones write: Pillow's
    generic[8:12] = b"mif1"  # AVIF reader accepts that brand first, declines, then pillow-heif
    np.testing.assert_array_equal(np.asarray(decode(bytes(generic))), photo)


def test_avif_decodes_as_pillow_decodes_it(tmp_path: Path) -> None:
    photo = pixels(tmp_path, 2)
    path = save_avif(tmp_path / "IMG_0002.avif", Image.fromarray(photo))
    decoded = np.asarray(open_rgb(path))
    np.testing.assert_array_equal(decoded, pillow_pixels(path))
    assert np.abs(decoded.astype(int) - photo).max() <= 4  # AVIF at quality 100: near-lossless


@pytest.mark.parametrize("kind", ["heic", "avif"])
def test_exif_orientation_is_applied(tmp_path: Path, kind: str) -> None:
    photo = pixels(tmp_path, 3, size=(96, 64))
    save = save_heic if kind == "heic" else save_avif
    path = save(tmp_path / f"rotated.{kind}", Image.fromarray(photo), exif=exif(ROTATED))
    upright = np.asarray(open_rgb(path))
    turned = np.rot90(photo, k=-1)  # 90° clockwise: 64 wide, 96 high
    assert upright.shape == turned.shape == (96, 64, 3)
    if kind == "heic":
        np.testing.assert_array_equal(upright, turned)
    else:
        assert np.abs(upright.astype(int) - turned).max() <= 4


def test_ten_bit_colour_keeps_its_top_eight_bits_and_ten_bit_gray_is_rescaled(
    tmp_path: Path,
) -> None:
    """Colour: libheif's 10 → 8 bits, the rule Pillow applies to a 16-bit RGB PNG (its top
    bits); gray: gbp's own rescaling of 16-bit gray (to_rgb), as for a 16-bit gray PNG."""
    ramp = np.tile(np.arange(1024, dtype=np.uint16), (4, 1))  # every 10-bit value
    colour = np.stack([ramp, ramp[:, ::-1], (ramp * 7) % 1024], axis=-1)
    decoded = np.asarray(open_rgb(save_ten_bit_heic(tmp_path / "deep.heic", colour)))
    np.testing.assert_array_equal(decoded, (colour >> 2).astype(np.uint8))
    gray = np.asarray(open_rgb(save_ten_bit_heic(tmp_path / "deep-gray.heic", ramp)))
    expected = np.round((ramp.astype(np.float64) * 64) / 65535 * 255).astype(np.uint8)
    np.testing.assert_array_equal(gray, np.repeat(expected[..., None], 3, axis=-1))
    assert gray[0, -1, 0] == 255 and gray[0, 0, 0] == 0  # the full range, not clipped


@pytest.mark.parametrize("kind", ["heic", "avif"])
def test_alpha_is_composited_on_white(tmp_path: Path, kind: str) -> None:
    photo = pixels(tmp_path, 4)
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, :48] = 0  # the left half fully transparent
    rgba = Image.fromarray(np.dstack([photo, alpha]), "RGBA")
    save = save_heic if kind == "heic" else save_avif
    decoded = np.asarray(open_rgb(save(tmp_path / f"clear.{kind}", rgba)))
    assert (decoded[:, :48] == 255).all()  # white where nothing was
    tolerance = 0 if kind == "heic" else 4
    assert np.abs(decoded[:, 48:].astype(int) - photo[:, 48:]).max() <= tolerance


def test_a_multi_image_heic_gives_its_primary_image_and_an_avif_sequence_its_first(
    tmp_path: Path,
) -> None:
    frames = [solid((255, 0, 0)), solid((0, 255, 0)), solid((0, 0, 255))]
    burst = save_burst(tmp_path / "burst.heic", frames, primary=0)
    assert open_rgb(burst).getpixel((0, 0)) == (255, 0, 0)
    chosen = save_burst(tmp_path / "chosen.heic", frames, primary=1)  # the still viewers show
    assert open_rgb(chosen).getpixel((0, 0)) == (0, 255, 0)
    sequence = tmp_path / "sequence.avif"
    frames[0].save(sequence, "AVIF", save_all=True, append_images=frames[1:], quality=100)
    red, green, blue = open_rgb(sequence).getpixel((0, 0))
    assert red > 250 and green < 5 and blue < 5


def test_damaged_heic_and_avif_are_one_line_each(tmp_path: Path, fake: None) -> None:
    photo = Image.fromarray(pixels(tmp_path, 5))
    heic = save_heic(tmp_path / "whole.heic", photo).read_bytes()
    avif = save_avif(tmp_path / "whole.avif", photo).read_bytes()
    folder = tmp_path / "damaged"
    folder.mkdir()
    damaged = {
        "cut.HEIC": heic[: len(heic) // 2],
        "head.heic": heic[:40],
        "junk.heif": heic[:60] + b"\xff" * 240 + heic[300:],
        "cut.avif": avif[: len(avif) // 2],
        "tail.AVIF": avif[:-10],
    }
    for name, data in damaged.items():
        (folder / name).write_bytes(data)
        with pytest.raises(InputError, match="corrupt or truncated") as caught:
            decode(data)
        assert "\n" not in str(caught.value)
    result = gbp("explain", folder, "-o", tmp_path / "out", "-q")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert sorted(line.split(": ")[1].rsplit("/", 1)[-1] for line in lines) == sorted(damaged)
    assert all("corrupt or truncated" in line and "not an image" not in line for line in lines)


# --- without the plugin, and only when needed ---------------------------------------------------


def test_without_the_plugin_a_heic_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    folder = tmp_path / "phone"
    save_heic(folder / "IMG_0001.HEIC", Image.fromarray(pixels(tmp_path, 6)))
    make_photo(folder / "b.jpg", seed=7)
    run = run_gbp(
        "explain", folder, "-o", tmp_path / "out", "-q", block=("pillow_heif",), fake=True
    )
    assert run.returncode == 1, run.stderr
    line = one_line(run.stderr)
    assert "IMG_0001.HEIC" in line and EXTRA in line and "not an image" not in line
    assert "b.jpg" in run.stdout and "IMG_0001" not in run.stdout
    dry = run_gbp("explain", folder, "--dry-run", block=("pillow_heif",), fake=True)
    assert dry.returncode == 1 and EXTRA in next(x for x in dry.stdout.splitlines() if "HEIC" in x)


def test_without_pillows_avif_an_avif_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    path = save_avif(tmp_path / "IMG_0002.avif", Image.fromarray(pixels(tmp_path, 8)))
    run = run_gbp("explain", path, "-o", tmp_path / "out", "-q", block=("PIL._avif",), fake=True)
    assert run.returncode == 1
    line = one_line(run.stderr)
    assert "IMG_0002.avif" in line and EXTRA in line and "AVIF" in line


@pytest.mark.torch
@pytest.mark.tf
def test_the_plugin_is_imported_only_once_a_heic_is_met(tmp_path: Path) -> None:
    """Not by `gbp --help`, the backends, or a run without HEIC; by the first HEIC."""
    png = make_photo(tmp_path / "a.png")
    heic = save_heic(tmp_path / "b.heic", Image.fromarray(pixels(tmp_path, 9)))
    code = (
        "import sys\n" + FAKE + "from click.testing import CliRunner\n"
        "from gbp_cli.cli.main import cli\n"
        "import gbp_cli.backends.torch.backend, gbp_cli.backends.tf.backend\n"
        "seen = []\n"
        "for args in (['--help'], ['explain', '--help'], ['explain', sys.argv[1], '-o', "
        "sys.argv[3]], ['explain', sys.argv[2], '-o', sys.argv[3]]):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "    seen.append('pillow_heif' in sys.modules)\n"
        "print(seen)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(png), str(heic), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert run.stdout.strip().splitlines()[-1:] == ["[False, False, False, True]"], run.stderr


# --- downstream: both backends, the API, the page ---------------------------------------------


@dataclass
class Phone:
    """A folder of phone photos mixed with a JPEG and a PNG, and beside it, under twins/png,
    each phone photo's pixels as a PNG, and the same JPEG and PNG (their outputs land in
    OUT/png/): the same images in the same order, so both folders make the same batches."""

    folder: Path
    twins: Path
    names: dict[str, str]  # photo → its twin's name


def phone_folder(root: Path) -> Phone:
    folder, twins = root / "phone", root / "twins" / "png"
    twins.mkdir(parents=True)
    names: dict[str, str] = {}

    def twin(name: str, picture: np.ndarray) -> None:
        names[name] = f"{name.rsplit('.', 1)[0]}.png"
        Image.fromarray(picture).save(twins / names[name])

    photo = pixels(root, 11, size=(120, 90))
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, :40] = 0  # a transparent band
    clear = np.dstack([photo, alpha])  # twins keep it: their alpha goes over white the same way
    save_heic(folder / "IMG_0001.HEIC", Image.fromarray(clear, "RGBA"), exif=exif(ROTATED))
    twin("IMG_0001.HEIC", np.rot90(clear, k=-1).copy())
    ten = (pixels(root, 12, size=(120, 90)).astype(np.uint16) << 2) | 3  # all 10 bits used
    save_ten_bit_heic(folder / "IMG_0002.heif", ten)
    twin("IMG_0002.heif", (ten >> 2).astype(np.uint8))
    frames = [Image.fromarray(pixels(root, 13 + i, size=(120, 90))) for i in range(3)]
    save_burst(folder / "IMG_0003.HEIC", frames, primary=0)
    twin("IMG_0003.HEIC", np.asarray(frames[0]))
    avif = save_avif(folder / "IMG_0004.avif", Image.fromarray(clear, "RGBA"), exif=exif(ROTATED))
    twin("IMG_0004.avif", pillow_pixels(avif, "RGBA"))
    for name, size in [("a.jpg", (100, 80)), ("b.png", (80, 100))]:
        shutil.copyfile(make_photo(folder / name, size=size, seed=len(names)), twins / name)
        names[name] = name
    return Phone(folder, twins, names)


def pixels_of(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize(
    "backend",
    [pytest.param("torch", marks=pytest.mark.torch), pytest.param("tf", marks=pytest.mark.tf)],
)
def test_a_mixed_folder_gives_the_maps_of_the_same_pixels_saved_as_png(
    tmp_path: Path, backend: str
) -> None:
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs the [lite0] extra")
    phone = phone_folder(tmp_path)
    out = tmp_path / "out"
    args = ["explain", phone.folder, phone.twins.parent, "--backend", backend]
    args += ["--model", "efficientnet_lite0", "--method", "guided", "--method", "gradcam"]
    args += ["--format", "npy", "--format", "overlay", "--format", "panel"]
    args += ["--batch-size", str(len(phone.names)), "--json", "-o", out, "-q"]  # a folder a batch
    result = gbp(*args)
    assert result.exit_code == 0, result.output
    records = {r["input"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert len(records) == 2 * len(phone.names)
    for name, twin in phone.names.items():
        assert (
            records[str(phone.folder / name)]["target"]
            == records[str(phone.twins / twin)]["target"]
        ), name
        ours, theirs = out / name.rsplit(".", 1)[0], out / "png" / twin.rsplit(".", 1)[0]
        for method in ("guided", "gradcam"):
            np.testing.assert_array_equal(
                np.load(f"{ours}.{method}.npy"), np.load(f"{theirs}.{method}.npy"), name
            )
        for picture in ("gradcam.overlay.png", "panel.png"):
            np.testing.assert_array_equal(
                pixels_of(Path(f"{ours}.{picture}")), pixels_of(Path(f"{theirs}.{picture}")), name
            )
        with Image.open(f"{ours}.gradcam.overlay.png") as overlay:  # over the upright photo
            assert overlay.size == open_rgb(phone.folder / name).size
    again = gbp(*args)  # a rerun keeps every output: their records name the same inputs
    assert again.exit_code == 0, again.output
    for record in map(json.loads, again.stdout.splitlines()):
        assert record["files"] == [] and len(record["kept"]) == 5, record
    if backend == "torch":  # the Python API reads a HEIC as the command does
        from gbp_cli import explain

        heic = explain(phone.folder / "IMG_0001.HEIC", model="efficientnet_lite0", backend="torch")
        png = explain(phone.twins / "IMG_0001.png", model="efficientnet_lite0", backend="torch")
        assert heic.target == png.target
        np.testing.assert_array_equal(heic.saliency["guided"], png.saliency["guided"])


@pytest.fixture
def phone_page(tmp_path: Path, fake: None) -> Path:
    """The --report page of a phone folder (with a TIFF, which browsers do not show either)."""
    phone = phone_folder(tmp_path)
    make_photo(phone.folder / "scan.tif", size=(90, 60), seed=30)
    out = tmp_path / "out"
    result = gbp("explain", phone.folder, "--report", "--method", "guided", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    return out


def test_photos_browsers_do_not_show_link_to_a_jpeg_of_them(phone_page: Path) -> None:
    out = phone_page
    rows = {Path(r["input"]).name: r for r in json.loads((out / "index.json").read_text())["rows"]}
    assert len(rows) == 7
    for name, row in rows.items():
        assert row["status"] == "explained" and row["thumb"].startswith(".thumbs/inputs/")
        original = name.endswith((".jpg", ".png", ".avif", ".AVIF"))
        if original:
            assert (out / row["photo"]).resolve() == (out.parent / "phone" / name).resolve()
            continue
        assert row["photo"].startswith(".thumbs/photos/"), row["photo"]
        with Image.open(out / row["photo"]) as copy:  # upright, the photo's size (≤ VIEW)
            assert copy.format == "JPEG"
            assert copy.size == open_rgb(out.parent / "phone" / name).size
    rerun = gbp("explain", out.parent / "phone", "--report", "--method", "guided", "-o", out, "-q")
    assert rerun.exit_code == 0
    again = {Path(r["input"]).name: r for r in json.loads((out / "index.json").read_text())["rows"]}
    assert {n: r["photo"] for n, r in again.items()} == {n: r["photo"] for n, r in rows.items()}
    assert not list(out.rglob("*.part"))


def test_a_view_copy_is_bounded_and_made_again_when_its_photo_changes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    photo = save_heic(tmp_path / "big.heic", Image.fromarray(pixels(tmp_path, 31, (3000, 200))))
    target = out / ".thumbs" / "photos" / "big.heic.jpg"
    assert gallery_rows._thumbnail(photo, target, gallery_rows.VIEW, out, photo_link=True)
    with Image.open(target) as copy:
        assert copy.format == "JPEG" and max(copy.size) == gallery_rows.VIEW < 3000
    made = target.stat()
    assert gallery_rows._thumbnail(photo, target, gallery_rows.VIEW, out, photo_link=True)
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (made.st_ino, made.st_mtime_ns)
    save_heic(photo, Image.fromarray(pixels(tmp_path, 32, (300, 200))))  # replaced
    assert gallery_rows._thumbnail(photo, target, gallery_rows.VIEW, out, photo_link=True)
    with Image.open(target) as copy:
        assert copy.size == (300, 200)
    jpeg = make_photo(tmp_path / "c.jpg")  # a browser shows it: no copy, the link stays
    assert not gallery_rows._thumbnail(jpeg, out / "c.jpg.jpg", gallery_rows.VIEW, out, True)
    assert not (out / "c.jpg.jpg").exists()


def test_every_photo_and_its_link_load_in_a_real_browser(browser, phone_page: Path) -> None:  # noqa: F811
    open_page(browser, phone_page / "index.html")
    assert wait_for_images(browser) == []  # every thumbnail, the HEICs' and the AVIFs' too
    assert len(browser.find_elements("css selector", "#rows img")) == 7 * 2  # photo, one map
    widths = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const links = [...document.querySelectorAll('#rows .pics figure:first-child a')];"
        "Promise.all(links.map(a => new Promise(ok => { const image = new Image();"
        " image.onload = () => ok([a.href, image.naturalWidth]);"
        " image.onerror = () => ok([a.href, 0]); image.src = a.href; }))).then(done);"
    )
    assert len(widths) == 7
    assert [href for href, width in widths if not width] == []  # each photo link is a picture
    assert errors(browser) == []


def test_the_thumbnail_of_a_heic_is_made_where_no_decode_registered_the_plugin(
    tmp_path: Path,
) -> None:
    """The gallery may meet a HEIC first (Ray decodes on workers): it loads the reader too."""
    heic = save_heic(tmp_path / "IMG_0001.HEIC", Image.fromarray(pixels(tmp_path, 40)))
    code = (
        "import sys\nfrom pathlib import Path\nfrom gbp_cli.gallery import rows\n"
        "out = Path(sys.argv[2])\n"
        "print(rows._thumbnail(Path(sys.argv[1]), out / 't.jpg', 224, out),"
        " rows._thumbnail(Path(sys.argv[1]), out / 'v.jpg', 2048, out, True))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(heic), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.stdout.strip() == "True True", run.stderr
    assert pixels_of(tmp_path / "out" / "v.jpg").shape == (64, 96, 3)


def test_the_ray_engine_reads_them_as_the_local_engine_does(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="needs Ray Data: pip install 'gbp-saliency[ray]'")
    folder = tmp_path / "phone"
    save_heic(folder / "IMG_0001.HEIC", Image.fromarray(pixels(tmp_path, 6)))
    save_avif(folder / "IMG_0002.avif", Image.fromarray(pixels(tmp_path, 7)))
    make_photo(folder / "b.jpg", seed=7)
    args = ["explain", folder, "-q", "--backend", "tests.fake_backend", "--format", "overlay"]
    local = gbp(*args, "-o", tmp_path / "local")
    remote = gbp(*args, "-o", tmp_path / "ray", "--engine", "ray")
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert len(local.stdout.splitlines()) == 3
    assert local.stdout.replace("local", "ray") == remote.stdout
    for made in (tmp_path / "local").rglob("*.png"):
        twin = tmp_path / "ray" / made.relative_to(tmp_path / "local")
        assert twin.read_bytes() == made.read_bytes()  # the overlays drawn on the same photos
