"""Issue 23, the write stage under hostile conditions: names too long for the file system, links
planted inside `-o`, damaged outputs, a full disk between an array and its record, and the rules
a user asks about (what `gbp convert --overwrite` replaces, a user's array beside gbp's record,
`-o` through a link). On the stand-in backend unless a test says otherwise."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tests.conftest import gbp, make_photo, one_line

pytestmark = pytest.mark.usefixtures("fake")

NAME_MAX = 255  # ext4, tmpfs, xfs, btrfs: where the suite's temp folders are
COLOR, NPY = ".guided.color.png", ".guided.npy"


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def problems(stderr: str) -> list[str]:
    """stderr less the closing summary line."""
    return [line for line in lines(stderr) if not re.match(r"gbp: \d+ inputs? \(", line)]


def snapshot(folder: Path, leave_out: str | None = None) -> dict[str, bytes]:
    """Every entry under `folder` (links not followed) and a file's bytes; `leave_out`: a
    folder directly in it not to look into."""
    found = {}
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        if here == folder and leave_out in dirs:
            dirs.remove(leave_out)
        for name in dirs + files:
            path = here / name
            regular = path.is_file() and not path.is_symlink()
            found[str(path.relative_to(folder))] = path.read_bytes() if regular else b"-"
    return found


def actions(stdout: str) -> dict[str, str]:
    """--dry-run's action by input file name."""
    return {Path(row.split("\t")[0]).name: row.split("\t")[1] for row in lines(stdout)}


# --- 1. names too long for the file system -------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "suffix", "fits"),
    [
        ("x" * 218, COLOR, True),  # 235 bytes: the longest output name that fits
        ("x" * 219, COLOR, False),  # one byte over
        ("x" * 240, COLOR, False),  # the name
        ("x" * 251, COLOR, False),  # the longest input name there can be (255 with .png)
        ("x" * 224, NPY, True),  # its record's temp file .<name>.json.<random>.part: 255 bytes
        ("x" * 225, NPY, False),
        ("é" * 109, COLOR, True),  # 218 bytes in UTF-8, 109 characters
        ("é" * 110, COLOR, False),  # 220 bytes: the limit is in bytes, not characters
        ("日本" * 37, COLOR, False),  # 222 bytes, 74 characters
    ],
)
def test_a_name_too_long_for_the_file_system_fails_that_input_alone(
    stem: str, suffix: str, fits: bool, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    make_photo(folder / f"{stem}.png", seed=1)
    make_photo(folder / "a.png", seed=2)
    out = tmp_path / "out"
    fmt = ["--format", "npy"] if suffix == NPY else []
    for run in range(2):  # a rerun into the same folder too
        result = gbp("explain", folder, "-o", out, *fmt)
        assert result.exit_code == (0 if fits else 1), result.output
        assert f"a{suffix}" in result.stdout  # the other input goes on
        assert ("0 kept" in result.stderr) == (run == 0)  # the rerun keeps what fits
        assert (out / f"a{suffix}").is_file()
        wanted = len((stem + suffix).encode())
        if fits:
            assert not problems(result.stderr), result.stderr
            assert (out / f"{stem}{suffix}").is_file()
            assert suffix != NPY or (out / f"{stem}{suffix}.json").is_file()
        else:
            (line,) = problems(result.stderr)
            assert f"{stem}.png: the name of its output" in line
            assert f"would be {wanted} bytes long" in line and f"allows {NAME_MAX}" in line
            assert "NAME_MAX" in line and f"at most {NAME_MAX - 20}" in line
        preview = gbp("explain", folder, "-o", out, *fmt, "--dry-run")
        verdicts = actions(preview.stdout)
        assert verdicts == {"a.png": "kept", f"{stem}.png": "kept" if fits else "refused"}
        assert preview.exit_code == (0 if fits else 1)
    names = [os.fsencode(p.name) for p in out.iterdir()]
    assert all(len(n) <= NAME_MAX for n in names) and not [n for n in names if n.endswith(b".part")]


@pytest.mark.parametrize(
    ("length", "refused_before_the_model"),
    [
        (150, None),  # every class tag fits
        (216, False),  # 233 bytes without the class; a class tag makes it too long
        (219, True),  # even the shortest class tag (".0") cannot fit: --dry-run knows
    ],
)
def test_top_k_names_too_long_fail_once_the_class_is_known(
    length: int, refused_before_the_model: bool | None, tmp_path: Path
) -> None:
    stem = "y" * length
    folder = tmp_path / "in"
    make_photo(folder / f"{stem}.png", seed=3)
    make_photo(folder / "a.png", seed=2)
    out = tmp_path / "out"
    preview = gbp("explain", folder, "-o", out, "--top-k", "2", "--dry-run")
    action = actions(preview.stdout)[f"{stem}.png"]
    assert action == ("refused" if refused_before_the_model else "write")
    result = gbp("explain", folder, "-o", out, "--top-k", "2", "--report")
    if refused_before_the_model is None:
        assert result.exit_code == 0, result.output
        assert len(list(out.glob(f"{stem}.*{COLOR}"))) == 2
        return
    assert result.exit_code == 1
    (line,) = problems(result.stderr)
    assert "NAME_MAX" in line and ("at least" in line) == refused_before_the_model
    assert not list(out.glob(f"{stem}*")) and len(list(out.glob(f"a.*{COLOR}"))) == 2
    rows = json.loads((out / "index.json").read_text())["rows"]
    statuses = {Path(row["input"]).name: row["status"] for row in rows}
    assert statuses == {"a.png": "explained", f"{stem}.png": "failed"}


def test_the_store_refuses_a_name_too_long_with_one_line(tmp_path: Path) -> None:
    from gbp_cli.errors import InputError
    from gbp_cli.outputs.records import Provenance
    from gbp_cli.outputs.store import Store

    store = Store(False, lambda _: None)
    record = Provenance("p.png", "0" * 64, {"method": "guided"})
    for name in ("z" * 240 + COLOR, "z" * 236 + NPY, "ü" * 120 + COLOR):
        with pytest.raises(InputError, match="NAME_MAX"):
            store.save(tmp_path / name, b"data", record)
    assert not list(tmp_path.iterdir())


def test_too_long_reads_the_limit_of_the_file_system_it_writes_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gbp_cli.outputs import naming

    limits = {"PC_NAME_MAX": 143, "PC_PATH_MAX": 4096}  # eCryptfs's NAME_MAX
    monkeypatch.setattr(naming.os, "pathconf", lambda _, key: limits[key])
    folder = tmp_path / "not" / "made" / "yet"
    assert naming.too_long(folder / ("a" * 123)) is None
    assert "allows 143 bytes" in (naming.too_long(folder / ("a" * 124)) or "")
    assert "folder" in (naming.too_long(tmp_path / ("b" * 144) / "a.png") or "")
    limits["PC_PATH_MAX"] = len(os.fsencode(tmp_path)) + 40
    assert "PATH_MAX" in (naming.too_long(tmp_path / "c" / "d.guided.color.png") or "")


# --- 2. links planted inside -o ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["color", "npy"])
@pytest.mark.parametrize(
    "plant",
    ["folder outside", "dangling folder", "parent of -o", "deeper folder", "file outside"],
)
def test_outputs_never_leave_o_through_a_planted_link(plant: str, fmt: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_photo(folder / "sub" / "deep" / "p.png", seed=1)
    make_photo(folder / "q.png", seed=2)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    suffix = NPY if fmt == "npy" else COLOR
    (elsewhere / f"p{suffix}").write_bytes(b"precious")
    if plant == "folder outside":  # out/sub/deep/p… would be elsewhere/deep/p…
        (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    elif plant == "dangling folder":
        (out / "sub").symlink_to(tmp_path / "not-yet", target_is_directory=True)
    elif plant == "parent of -o":  # … would be tmp_path/deep/p…
        (out / "sub").symlink_to("..", target_is_directory=True)
    elif plant == "deeper folder":  # … would replace elsewhere/p…
        (out / "sub").mkdir()
        (out / "sub" / "deep").symlink_to(elsewhere, target_is_directory=True)
    else:  # the output itself a link to a file outside
        (out / "sub" / "deep").mkdir(parents=True)
        (out / "sub" / "deep" / f"p{suffix}").symlink_to(elsewhere / f"p{suffix}")
    before = snapshot(tmp_path, leave_out="out")
    for flags in ([], ["--overwrite"], ["--report"]):
        result = gbp("explain", folder, "-o", out, "--format", fmt, *flags)
        assert result.exit_code == 1, result.output
        (line,) = problems(result.stderr)
        assert line.startswith(f"gbp: {folder / 'sub' / 'deep' / 'p.png'}: ")
        assert "would land outside" in line and "is a link to" in line
        assert (out / f"q{suffix}").is_file()  # the other input goes on
        redo = [f for f in flags if f == "--overwrite"]  # --dry-run takes no --report
        preview = gbp("explain", folder, "-o", out, "--format", fmt, "--dry-run", *redo)
        assert actions(preview.stdout) == {"q.png": "write" if redo else "kept", "p.png": "refused"}
    assert snapshot(tmp_path, leave_out="out") == before


def test_links_that_stay_inside_o_are_followed(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_photo(folder / "sub" / "p.png", seed=1)
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "sub").symlink_to("real", target_is_directory=True)
    for run in range(2):
        result = gbp("explain", folder, "-o", out, "--format", "npy")
        assert result.exit_code == 0, result.output
        assert ("1 kept" in result.stderr) == bool(run)
    assert sorted(p.name for p in (out / "real").iterdir()) == ["p.guided.npy", "p.guided.npy.json"]


@pytest.mark.parametrize("how", ["-o a link", "-o below a link"])
def test_o_itself_may_be_a_link(how: str, tmp_path: Path) -> None:
    """Decided: `-o` may be reached through links; what is inside it is judged where it
    resolves."""
    photo = make_photo(tmp_path / "in" / "p.png")
    real = tmp_path / "disk" / "maps"
    real.mkdir(parents=True)
    if how == "-o a link":
        out = tmp_path / "maps"
        out.symlink_to(real, target_is_directory=True)
    else:
        (tmp_path / "mnt").symlink_to(tmp_path / "disk", target_is_directory=True)
        out = tmp_path / "mnt" / "maps"
    for run in range(2):
        result = gbp("explain", photo.parent, "-o", out, "--format", "color", "--format", "npy")
        assert result.exit_code == 0, result.output
        assert ("1 kept" in result.stderr) == bool(run)
    assert sorted(p.name for p in real.iterdir()) == [
        "p.guided.color.png", "p.guided.npy", "p.guided.npy.json",
    ]  # fmt: skip


@pytest.mark.parametrize("fmt", ["color", "npy"])
def test_a_folder_made_a_link_after_planning_is_refused_when_written(
    fmt: str, tmp_path: Path
) -> None:
    """The store checks again when it writes: a folder swapped for a link between planning
    and writing sends nothing outside `-o`."""
    from gbp_cli.outputs.containment import Outside
    from gbp_cli.outputs.records import Provenance
    from gbp_cli.outputs.store import Store

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    path = out / "sub" / f"p{NPY if fmt == 'npy' else COLOR}"
    store = Store(False, lambda _: None, root=out)
    record = Provenance("p.png", "0" * 64, {"method": "guided"})
    (out / "sub").rmdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(Outside, match="would land outside"):
        store.save(path, b"data", record)
    assert not list(elsewhere.iterdir())


def test_the_shared_check_for_the_gallery(tmp_path: Path) -> None:
    """What the gallery's page, data files, lock and thumbnails are checked with."""
    from gbp_cli.outputs.atomic import AtomicFile, write_atomic
    from gbp_cli.outputs.containment import Outside, escape

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / ".thumbs").symlink_to(elsewhere, target_is_directory=True)
    (out / ".index.lock").symlink_to(elsewhere / "lock")  # dangling
    there = os.path.realpath(elsewhere)
    assert escape(out, out / "index.html") is None
    assert (
        escape(out, out / ".thumbs" / "maps" / "p.jpg") == f"{out / '.thumbs'} is a link to {there}"
    )
    assert escape(out, out / ".index.lock") == f"{out / '.index.lock'} is a link to {there}/lock"
    with pytest.raises(Outside):
        write_atomic(out / ".thumbs" / "maps" / "p.jpg", b"jpeg", overwrite=True, root=out)
    with pytest.raises(Outside), AtomicFile(out / ".thumbs" / "p.jpg", True, root=out) as temp:
        temp.write_bytes(b"jpeg")
    assert write_atomic(out / "index.json", b"{}", overwrite=True, root=out)
    assert not list(elsewhere.iterdir()) and not (elsewhere / "lock").exists()


def test_stale_temp_files_are_removed_only_inside_o(tmp_path: Path) -> None:
    from gbp_cli.outputs.atomic import remove_stale_temps

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / ".thumbs").symlink_to(elsewhere, target_is_directory=True)
    theirs, ours = elsewhere / ".notes.txt.abcdefgh.part", out / ".p.png.abcdefgh.part"
    for temp in (theirs, ours):
        temp.write_bytes(b"half")
        os.utime(temp, (0, 0))
    started = 10**9
    assert remove_stale_temps(out / ".thumbs", started, root=out) == 0 and theirs.exists()
    assert remove_stale_temps(out, started, root=out) == 1 and not ours.exists()


# --- 3. damaged outputs --------------------------------------------------------------------


def chunks(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, type) of each chunk of a whole PNG."""
    found, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        found.append((at, kind))
        at += 12 + length
    return found


def other_pixels_same_text(png: bytes) -> bytes:
    """Another picture under the original's text chunks (its record and image digest too)."""
    with Image.open(io.BytesIO(png)) as image:
        info, size, mode = dict(image.info), image.size, image.mode
    text = PngImagePlugin.PngInfo()
    for key, value in info.items():
        if isinstance(value, str):
            text.add_text(key, value)
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 10, 10)).save(buffer, format="PNG", pnginfo=text)
    return buffer.getvalue()


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def damage(png: bytes, how: str) -> bytes:
    where = dict((kind, at) for at, kind in reversed(chunks(png)))  # first of each kind
    idat, iend = where[b"IDAT"], where[b"IEND"]
    if how == "cut inside the image data":
        return png[: idat + (iend - idat) // 2]
    if how == "cut after the first image bytes":
        return png[: idat + 9]
    if how == "IEND removed":
        return png[:iend]
    if how == "last byte cut":
        return png[:-1]
    if how == "bytes after IEND":
        return png + b"junk"
    if how == "byte flipped in the image data":
        return flip(png, idat + 8 + 100)
    if how == "byte flipped in the record":
        return flip(png, where[b"iTXt"] + 12)
    if how == "pixels replaced, text kept":
        return other_pixels_same_text(png)
    assert how == "pixels replaced with valid CRCs"
    at = idat + 8 + 50
    changed = png[:at] + bytes([png[at] ^ 0xFF]) + png[at + 1 :]
    length = struct.unpack(">I", png[idat : idat + 4])[0]
    body = changed[idat + 4 : idat + 8 + length]
    crc = struct.pack(">I", zlib.crc32(body))
    return changed[: idat + 8 + length] + crc + changed[idat + 12 + length :]


@pytest.mark.parametrize(
    "how",
    [
        "cut inside the image data",
        "cut after the first image bytes",
        "IEND removed",
        "last byte cut",
        "bytes after IEND",
        "byte flipped in the image data",
        "pixels replaced, text kept",
        "pixels replaced with valid CRCs",
    ],
)
def test_a_damaged_png_is_never_kept_and_overwrite_redoes_it(how: str, tmp_path: Path) -> None:
    """Decided: a PNG that still carries gbp's record is gbp's, damaged or not (its record says
    so), so it is a conflict like a stale output, and --overwrite redoes it."""
    photo = make_photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    assert gbp("explain", photo.parent, "-o", out, "-q").exit_code == 0
    output = out / f"p{COLOR}"
    good = output.read_bytes()
    output.write_bytes(damage(good, how))
    damaged = output.read_bytes()
    preview = gbp("explain", photo.parent, "-o", out, "--dry-run")
    assert actions(preview.stdout) == {"p.png": "refused"} and "is damaged" in preview.stdout
    result = gbp("explain", photo.parent, "-o", out, "--report")
    assert result.exit_code == 1
    (line,) = problems(result.stderr)
    assert line.endswith(
        f"{output} is damaged (cut short or changed since gbp wrote it); --overwrite replaces it"
    )
    assert output.read_bytes() == damaged
    rows = json.loads((out / "index.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["failed"]  # the gallery does not call it kept
    redone = gbp("explain", photo.parent, "-o", out, "--overwrite", "--report")
    assert redone.exit_code == 0, redone.output
    assert output.read_bytes() == good
    again = gbp("explain", photo.parent, "-o", out, "--json")
    assert json.loads(again.stdout)["kept"] == [str(output)]


def test_a_png_whose_record_is_damaged_is_not_gbps(tmp_path: Path) -> None:
    """A flipped byte in the text chunks breaks the record itself: nothing then says the file is
    gbp's, so it is left alone like any file gbp did not write."""
    photo = make_photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    assert gbp("explain", photo.parent, "-o", out, "-q").exit_code == 0
    output = out / f"p{COLOR}"
    first_text = next(at for at, kind in chunks(output.read_bytes()) if kind == b"iTXt")
    output.write_bytes(flip(output.read_bytes(), first_text + 12))
    damaged = output.read_bytes()
    for flags in ([], ["--overwrite"]):
        result = gbp("explain", photo.parent, "-o", out, *flags)
        assert result.exit_code == 1
        assert problems(result.stderr)[0].endswith("is not a file gbp wrote; it was left alone")
    assert output.read_bytes() == damaged


def test_every_png_output_records_its_image_digest(tmp_path: Path) -> None:
    from gbp_cli.fingerprints import IMAGE_DIGEST, png_image_digest

    photo = make_photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    formats = ["color", "gray", "heatmap", "overlay", "pos", "neg", "panel"]
    args = [a for f in formats for a in ("--format", f)]
    assert gbp("explain", photo, "-o", out, "-q", *args).exit_code == 0
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == len(formats)
    for png in pngs:
        with Image.open(png) as image, png.open("rb") as handle:
            assert image.info[IMAGE_DIGEST] == png_image_digest(handle)


def test_a_png_of_an_older_gbp_without_an_image_digest_is_a_conflict_once(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    assert gbp("explain", photo.parent, "-o", out, "-q").exit_code == 0
    output = out / f"p{COLOR}"
    png = output.read_bytes()
    at = next(at for at, kind in chunks(png) if kind == b"tEXt")  # the digest's chunk
    length = struct.unpack(">I", png[at : at + 4])[0]
    assert png[at + 8 : at + 8 + length].startswith(b"gbp:image-sha256\0")
    output.write_bytes(png[:at] + png[at + 12 + length :])  # as gbp wrote PNGs before
    result = gbp("explain", photo.parent, "-o", out)
    assert result.exit_code == 1
    assert problems(result.stderr)[0].endswith(
        "was written by an older gbp, whose record does not cover its pixels; --overwrite "
        "replaces it"
    )
    assert gbp("explain", photo.parent, "-o", out, "--overwrite").exit_code == 0
    assert output.read_bytes() == png


@pytest.mark.parametrize("fmt", ["color", "npy"])
def test_an_output_that_cannot_be_read_is_one_line(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gbp_cli.outputs import records

    photo = make_photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    assert gbp("explain", photo.parent, "-o", out, "--format", fmt, "-q").exit_code == 0

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(records, "sha256_file" if fmt == "npy" else "png_image_digest", denied)
    for flags in ([], ["--dry-run"]):
        result = gbp("explain", photo.parent, "-o", out, "--format", fmt, *flags)
        assert result.exit_code == 1
        line = result.stdout if flags else problems(result.stderr)[0]
        output = out / f"p{NPY if fmt == 'npy' else COLOR}"
        assert line.rstrip().endswith(f"cannot look at {output}: permission denied")


# --- decided: a user's array beside gbp's record -------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--overwrite"], ["--dry-run"]])
@pytest.mark.parametrize("put", ["another array", "notes", "array cut short"])
def test_an_array_that_is_not_the_one_its_record_names_is_never_replaced(
    put: str, flags: list[str], tmp_path: Path
) -> None:
    """Decided: an array is gbp's only if it is the one its record names (the record beside it
    says so by its SHA-256); anything else there is not a file gbp wrote."""
    import numpy as np

    photo = make_photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    args = ["explain", photo.parent, "-o", out, "--format", "npy"]
    assert gbp(*args, "-q").exit_code == 0
    array, record = out / "p.guided.npy", out / "p.guided.npy.json"
    if put == "another array":
        np.save(array, np.zeros((4, 4), np.float32))
    elif put == "notes":
        array.write_text("my notes")
    else:
        array.write_bytes(array.read_bytes()[:-100])
    theirs, ours = array.read_bytes(), record.read_bytes()
    result = gbp(*args, *flags)
    assert result.exit_code == 1
    line = result.stdout if "--dry-run" in flags else problems(result.stderr)[0]
    assert f"{array} does not match gbp's record beside it (p.guided.npy.json), so it is not the " \
        "array gbp wrote; it was left alone" in line  # fmt: skip
    assert "written by gbp" not in line
    assert array.read_bytes() == theirs and record.read_bytes() == ours


# --- 6. a full disk between an array and its record ----------------------------------------


@pytest.mark.parametrize(
    "fails", ["array's fsync", "array's write", "array's publishing", "every write"]
)
@pytest.mark.parametrize("replacing", [False, True])
def test_a_full_disk_leaves_no_record_without_its_array(
    fails: str, replacing: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gbp_cli.outputs import atomic

    photo = make_photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    args = ["explain", photo.parent, "-o", out, "--format", "npy", "-q"]
    if replacing:  # an earlier run's output, of other settings, that --overwrite replaces
        assert gbp(*args, "--resize", "crop").exit_code == 0
    before = snapshot(out) if out.exists() else {}
    full = OSError(errno.ENOSPC, "No space left on device")
    real_fsync, real_publish, real_fdopen = atomic.os.fsync, atomic._publish, atomic.os.fdopen
    synced = []

    def fsync(fd: int) -> None:
        synced.append(fd)
        if fails == "every write" or (fails == "array's fsync" and len(synced) == 2):
            raise full
        real_fsync(fd)

    class FullAfter(io.FileIO):
        def write(self, data: bytes) -> int:
            if len(data) > 4096:  # the array, not its record
                raise full
            return super().write(data)

    def fdopen(fd: int, mode: str = "r", *rest: object, **kwargs: object) -> object:
        if fails == "array's write" and mode == "wb":
            return FullAfter(fd, "wb")
        return real_fdopen(fd, mode, *rest, **kwargs)

    def publish(temp: Path, path: Path, overwrite: bool) -> bool:
        if fails == "array's publishing" and path.suffix == ".npy":
            raise full
        return real_publish(temp, path, overwrite)

    with monkeypatch.context() as patch:
        patch.setattr(atomic.os, "fsync", fsync)
        patch.setattr(atomic.os, "fdopen", fdopen)
        patch.setattr(atomic, "_publish", publish)
        result = gbp(*args, *(["--overwrite"] if replacing else []))
    assert result.exit_code == 1 and "no space left on device" in result.stderr
    left = snapshot(out) if out.exists() else {}
    if replacing and fails != "array's publishing":
        assert left == before  # nothing published: the earlier output stands, whole
        crop = gbp(*args, "--resize", "crop", "--json")
        assert json.loads(crop.stdout)["kept"] == [str(out / "p.guided.npy")]
    else:  # nothing, or (publishing failed after the old array was removed) nothing of it
        assert sorted(left) == []
    again = gbp(*args, "--overwrite")
    assert again.exit_code == 0, again.output
    assert sorted(snapshot(out)) == ["p.guided.npy", "p.guided.npy.json"]


# --- decided: what `gbp convert --overwrite` replaces ---------------------------------------


@pytest.fixture
def resnet18_pth(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from torchvision import models

    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(models.resnet18().state_dict(), path)
    return path


@pytest.mark.torch
@pytest.mark.parametrize(
    ("there", "message"),
    [
        (b"\x89PNG\r\n\x1a\n a photo under a weights name", "is not an HDF5 (Keras weights) file"),
        (b"my notes on these weights", "is not an HDF5 (Keras weights) file"),
        (b"", "is not an HDF5 (Keras weights) file"),
        ("link", "is not a regular file"),
    ],
)
def test_convert_overwrite_replaces_only_a_weights_file(
    there: bytes | str, message: str, resnet18_pth: Path, tmp_path: Path
) -> None:
    """Decided: DST is the one file the user names, so --overwrite may replace it whoever wrote
    it, but only if it holds weights of the kind its name says; nothing else is replaced."""
    target, kept = tmp_path / "r.weights.h5", tmp_path / "kept.h5"
    if there == "link":
        kept.write_bytes(b"\x89HDF\r\n\x1a\n")
        target.symlink_to(kept)
    else:
        target.write_bytes(there)  # type: ignore[arg-type]
    before = snapshot(tmp_path)
    result = gbp("convert", resnet18_pth, target, "--overwrite")
    assert result.exit_code == 2
    assert one_line(result.stderr) == f"gbp: {target} {message}; " + (
        "it was left alone"
        if there == "link"
        else "--overwrite replaces only a weights file of the kind its name says, so it was left "
        "alone"
    )
    assert snapshot(tmp_path) == before


def test_convert_overwrite_refuses_a_non_checkpoint_under_a_torch_name(tmp_path: Path) -> None:
    source, target = tmp_path / "k.weights.h5", tmp_path / "k.pth"
    source.write_bytes(b"\x89HDF\r\n\x1a\n")
    target.write_text("not a checkpoint")
    result = gbp("convert", source, target, "--overwrite")
    assert result.exit_code == 2 and f"{target} is not a PyTorch checkpoint" in result.stderr
    assert target.read_text() == "not a checkpoint"


@pytest.mark.torch
@pytest.mark.tf
def test_convert_overwrite_replaces_a_weights_file_the_user_names(
    resnet18_pth: Path, tmp_path: Path
) -> None:
    target = tmp_path / "r.weights.h5"
    target.write_bytes(b"\x89HDF\r\n\x1a\n someone else's Keras weights")
    result = gbp("convert", resnet18_pth, target, "--overwrite")
    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"\x89HDF") and target.stat().st_size > 10**6
    back = tmp_path / "back.pth"
    back.write_bytes(resnet18_pth.read_bytes()[:100])  # a checkpoint, cut short: still one
    assert gbp("convert", target, back, "--overwrite").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "back.pth",
        "r.weights.h5",
        "resnet18.pth",
    ]


def test_two_runs_racing_for_one_array_leave_one_runs_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run publishes the same `.npy` between this run's record and its array: the
    array that stays is the one this run's record names, never another's beside it."""
    import numpy as np

    from gbp_cli.fingerprints import sha256_bytes
    from gbp_cli.outputs import atomic
    from gbp_cli.outputs.records import Provenance, decide, sidecar
    from gbp_cli.outputs.store import Store
    from gbp_cli.render.encode import npy_bytes

    path = tmp_path / "x.guided.npy"
    original = atomic.AtomicFile.publish

    def racing(self: atomic.AtomicFile, overwrite: bool | None = None) -> bool:
        if self.path == path and not path.exists():
            path.write_bytes(npy_bytes(np.ones((2, 2, 3))))  # the other run's, just published
        return original(self, overwrite)

    monkeypatch.setattr(atomic.AtomicFile, "publish", racing)
    provenance = Provenance("x.png", "0" * 64, {"method": "guided"})
    data = npy_bytes(np.zeros((2, 2, 3)))
    assert Store(False, lambda _: None, root=tmp_path).save(path, data, provenance)
    assert path.read_bytes() == data
    assert json.loads(sidecar(path).read_text())["sha256"] == sha256_bytes(data)
    assert decide(path, provenance, overwrite=False) == "kept"  # a whole pair, this run's
