"""`--report` under hostile conditions (issue 23): a full disk while the page is written, a data
file of the wrong shape, pictures replaced under their thumbnails, temp files a killed run left,
and symbolic links planted in OUT. (Names that are not UTF-8 are in test_gallery.py, beside the
browser they are opened in.)"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gbp_cli.errors import GbpError
from gbp_cli.gallery import page as gallery
from tests.conftest import gbp, make_photo, one_line
from tests.test_gallery import data_of, folder_of_photos, rows_of

RED, BLUE = (230, 20, 20), (20, 20, 230)


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".part")]


# --- 6: a full disk while the page is written ------------------------------------------------


def fail_writing(monkeypatch: pytest.MonkeyPatch, name: str, code: int, at: str) -> list[str]:
    """Make writing a file of the report whose name holds `name` fail with `code`: when its data
    is synced (a full disk shows there), when its temp file is created, or when the file itself
    is opened (the lock). Returns what failed, to check the failure happened."""
    from gbp_cli.outputs import atomic

    failed: list[str] = []

    def fail(path: str) -> None:
        failed.append(path)
        raise OSError(code, os.strerror(code))

    if at == "sync":
        real_fsync = atomic.os.fsync

        def fsync(fd: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            if name in os.path.basename(path):
                fail(path)
            real_fsync(fd)

        monkeypatch.setattr(atomic.os, "fsync", fsync)
    elif at == "create":
        real_mkstemp = atomic.tempfile.mkstemp

        def mkstemp(*args, **kwargs):
            if name in f"{kwargs.get('dir')}/{kwargs.get('prefix')}":
                fail(str(kwargs.get("prefix")))
            return real_mkstemp(*args, **kwargs)

        monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    else:
        real_open = os.open

        def opener(path, flags, *args, **kwargs):
            if str(path).endswith(name):
                fail(str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(gallery.os, "open", opener)
    return failed


FULL = [  # the file that cannot be written, how it fails, and where
    ("index.json", errno.ENOSPC, "sync"),
    ("index.data.js", errno.EDQUOT, "sync"),
    ("index.html", errno.EFBIG, "sync"),
    (".thumbs", errno.ENOSPC, "create"),
    ("index.json", errno.EACCES, "create"),
    (".index.lock", errno.ENOSPC, "open"),
]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize(("name", "code", "at"), FULL)
def test_a_report_that_cannot_be_written_is_one_line_then_the_summary_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: int, at: str
) -> None:
    photos = folder_of_photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    failed = fail_writing(monkeypatch, name, code, at)
    result = gbp("explain", photos, "--report", "-o", out)
    assert failed, "the failure was never met"
    assert result.exit_code == 1, result.output
    said = lines(result.stderr)
    assert said[-2] == f"gbp: cannot write the report in {out}: {os.strerror(code).lower()}"
    assert said[-1].startswith("gbp: 2 inputs (2 explained, 0 failed, 0 kept)")
    assert len(said) == 2 and "Traceback" not in result.output
    assert len(list(out.glob("*.guided.color.png"))) == 2  # the run's own outputs stand
    assert not leftovers(out)


STAGES = ("classifier", "block4")


@pytest.fixture
def stand_in_cascade(monkeypatch: pytest.MonkeyPatch) -> None:
    """`gbp sanity`'s cascade in milliseconds (the real one takes minutes on a CPU)."""
    from gbp_cli.sanity import cascade as randomization
    from gbp_cli.sanity.similarity import Similarity

    def cascade(backend, names, images, methods, on_stage=None):
        stages = (*STAGES, randomization.CLASS_CHECK)
        rng = np.random.default_rng(0)
        maps = {
            stage: {m: rng.normal(size=(len(names), 1, 224, 224, 3)) for m in methods}
            for stage in ("original", *stages)
        }
        same = Similarity(0.5, 0.4, 0.3, 0.2)
        records = [
            randomization.Record(n, m, s, same) for n in names for m in methods for s in stages
        ]
        return records, maps

    monkeypatch.setattr(randomization, "cascade", cascade)


@pytest.mark.sanity
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
@pytest.mark.usefixtures("fake", "stand_in_cascade")
@pytest.mark.parametrize(("name", "code", "at"), FULL[:4])
def test_sanity_report_that_cannot_be_written_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: int, at: str
) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out = tmp_path / "sanity"
    failed = fail_writing(monkeypatch, name, code, at)
    result = gbp("sanity", photos, "--method", "guided", "--report", "-o", out)
    assert failed and result.exit_code == 1, result.output
    assert lines(result.stderr) == [
        f"gbp: cannot write the report in {out}: {os.strerror(code).lower()}"
    ]
    assert (out / "p00.sanity.png").is_file() and not leftovers(out)


# --- 7: a data file of the wrong shape -------------------------------------------------------

ROW = {"kind": "explain", "key": "/p.png", "input": "p.png", "status": "explained"}


def data_file(fmt: int = 2, runs: object = None, rows: object = None) -> str:
    """A data file as gbp writes it, of format `fmt`, with these runs and rows (none if None)."""
    runs = [] if runs is None else runs
    rows = [] if rows is None else rows
    data = {"generator": "gbp", "format": fmt, "runs": runs, "rows": rows}
    return json.dumps(data, separators=(",", ":"))


WRONG_SHAPES = {
    "rows of numbers": data_file(1, rows=[1, 2]),
    "runs a number": data_file(1, runs=5),
    "rows an object": data_file(rows={"p.png": ROW}),
    "no rows": data_file()[: -len(',"rows":[]}')] + "}",
    "a row without its key": data_file(rows=[{k: v for k, v in ROW.items() if k != "key"}]),
    "an empty row": data_file(rows=[{}]),
    "an unknown status": data_file(rows=[{**ROW, "status": "done"}]),
    "a probability as text": data_file(rows=[{**ROW, "probability": "high"}]),
    "a probability NaN": data_file(rows=[{**ROW, "probability": float("nan")}]),
    "a short top 5": data_file(rows=[{**ROW, "top": [[1, "tabby"]]}]),
    "a map without its file": data_file(rows=[{**ROW, "maps": [{"method": "guided"}]}]),
    "files of numbers": data_file(rows=[{**ROW, "files": [3]}]),
    "format 2 files as paths": data_file(rows=[{**ROW, "files": ["p.guided.color.png"]}]),
    "a link with a scheme": data_file(rows=[{**ROW, "photo": "javascript:alert(1)"}]),
    "a table of words": data_file(rows=[{**ROW, "table": [["guided", "head", "high"]]}]),
    "a run's seconds as text": data_file(runs=[{"command": "explain", "seconds": "1"}]),
    "a run's methods as text": data_file(runs=[{"methods": "guided"}]),
    "a row nested past any depth": data_file(rows=[ROW])[: -len("}]}")]
    + f', "deep": {"[" * 100_000}{"]" * 100_000}}}]}}',
}


@pytest.mark.parametrize("text", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_a_data_file_of_another_shape_is_refused_in_one_line(tmp_path: Path, text: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.json").write_text(text)
    with pytest.raises(GbpError, match="move it away") as refused:
        gallery.publish(out, [dict(ROW)], {"command": "explain"})
    assert "\n" not in str(refused.value) and str(out / "index.json") in str(refused.value)
    assert (out / "index.json").read_text() == text  # left as it was
    assert not (out / "index.html").exists()


@pytest.mark.parametrize("text", ["[1, 2]", '"gbp"', "5", "null"])
def test_a_data_file_that_is_not_an_object_is_refused_in_one_line(
    tmp_path: Path, text: str
) -> None:
    (tmp_path / "index.json").write_text(text)
    with pytest.raises(GbpError, match="move it away"):
        gallery._load(tmp_path / "index.json")


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize("name", ["rows of numbers", "runs a number", "a row without its key"])
def test_gbp_explain_refuses_a_data_file_of_another_shape_in_one_line(
    tmp_path: Path, name: str
) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.json").write_text(WRONG_SHAPES[name])
    result = gbp("explain", photos, "--report", "-o", out, "-q")
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert line.startswith(f"gbp: {out / 'index.json'} ") and line.endswith(
        "move it away to start a new page"
    )
    assert (out / "index.json").read_text() == WRONG_SHAPES[name]


def test_a_format_1_data_file_is_brought_up_to_date(tmp_path: Path) -> None:
    """What the previous gbp wrote (paths as text) is read, and its paths become links."""
    out = tmp_path / "out"
    out.mkdir()
    old = {
        **ROW,
        "input": "my photos/a#1.png",
        "photo": "../my photos/a#1.png",
        "thumb": ".thumbs/inputs/my photos/a#1.png.jpg",
        "label": "tabby",
        "index": 281,
        "probability": 0.5,
        "top": [[281, "tabby", 0.5]],
        "files": ["a#1.guided.color.png"],
        "maps": [{"method": "guided", "format": "color", "file": "a#1.guided.color.png"}],
    }
    (out / "index.json").write_text(data_file(1, runs=[{"command": "explain"}], rows=[old]))
    gallery.publish(out, [], {"command": "explain"})
    data = data_of(out)
    assert data["format"] == 2 and len(data["runs"]) == 2
    (row,) = data["rows"]
    assert row["photo"] == "../my%20photos/a%231.png"
    assert row["thumb"] == ".thumbs/inputs/my%20photos/a%231.png.jpg"
    assert row["files"] == [["a#1.guided.color.png", "a%231.guided.color.png"]]
    assert row["maps"][0]["file"] == "a%231.guided.color.png"
    gallery.publish(out, [], {"command": "explain"})  # and read again as this format
    assert data_of(out)["rows"] == [row]


# --- 8: a picture replaced under its thumbnail -----------------------------------------------


def solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> Path:
    """A one-colour picture; a BMP of a given size always has the same number of bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def colour_of(thumbnail: Path) -> str:
    with Image.open(thumbnail) as image:
        r, _, b = np.asarray(image.convert("RGB"), np.float64).mean(axis=(0, 1))
    return "red" if r > b + 100 else "blue" if b > r + 100 else "other"


def renamed_over_with_an_older_time(photo: Path, colour: tuple[int, int, int]) -> None:
    before = photo.stat()
    new = solid(photo.with_name("new.bmp"), colour)
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns - 86_400 * 10**9))
    os.replace(new, photo)


def rewritten_in_place_same_size_and_time(photo: Path, colour: tuple[int, int, int]) -> None:
    before = photo.stat()
    new = solid(photo.with_name("new.bmp"), colour).read_bytes()
    assert len(new) == before.st_size
    with photo.open("r+b") as handle:  # the same inode, the same size…
        handle.write(new)
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))  # …and the same time
    assert photo.stat().st_mtime_ns == before.st_mtime_ns
    photo.with_name("new.bmp").unlink()


REPLACEMENTS: dict[str, Callable[[Path, tuple[int, int, int]], None]] = {
    "renamed over, a day older": renamed_over_with_an_older_time,
    "rewritten in place, same size and time": rewritten_in_place_same_size_and_time,
}


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize("replace", REPLACEMENTS.values(), ids=REPLACEMENTS.keys())
def test_a_photo_replaced_under_its_thumbnail_gets_a_new_one(
    tmp_path: Path, replace: Callable[[Path, tuple[int, int, int]], None]
) -> None:
    photo = solid(tmp_path / "photos" / "p.bmp", RED)
    out = tmp_path / "out"
    assert gbp("explain", photo.parent, "--report", "-o", out, "-q").exit_code == 0
    thumb = out / rows_of(out)["p.bmp"]["thumb"]
    assert colour_of(thumb) == "red"
    made = thumb.stat()
    assert gbp("explain", photo.parent, "--report", "-o", out, "-q").exit_code == 0
    assert thumb.stat().st_mtime_ns == made.st_mtime_ns  # unchanged: not made again
    time.sleep(0.02)  # a change time the coarsest file system clock tells apart
    replace(photo, BLUE)
    result = gbp("explain", photo.parent, "--report", "--overwrite", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert colour_of(out / rows_of(out)["p.bmp"]["thumb"]) == "blue"


@pytest.mark.parametrize("replace", REPLACEMENTS.values(), ids=REPLACEMENTS.keys())
def test_a_map_replaced_under_its_thumbnail_gets_a_new_one(
    tmp_path: Path, replace: Callable[[Path, tuple[int, int, int]], None]
) -> None:
    out = tmp_path / "out"
    photo = solid(tmp_path / "p.bmp", RED)
    picture = solid(out / "p.guided.color.bmp", RED)  # a map, as a BMP so its size is fixed
    record = {"input": str(photo), "files": [str(picture)], "methods": ["guided"]}
    map_png = out / "p.guided.color.png"

    def publish() -> str:
        with Image.open(picture) as image:
            image.save(map_png)
        os.utime(map_png, ns=(picture.stat().st_atime_ns, picture.stat().st_mtime_ns))
        gallery.update(out, [{**record, "files": [str(map_png)]}], {"command": "explain"})
        (row,) = data_of(out)["rows"]
        return colour_of(out / row["maps"][0]["thumb"])

    assert publish() == "red"
    time.sleep(0.02)
    replace(picture, BLUE)  # the map's PNG follows its time, older or the same
    assert publish() == "blue"


# --- 9: temp files a killed run left in the page's folders -----------------------------------


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize(("age", "stale"), [(90, True), (86_400, True), (30, False), (0, False)])
def test_temp_files_a_killed_run_left_are_removed_once_a_minute_older_than_the_run(
    tmp_path: Path, age: float, stale: bool
) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    assert gbp("explain", photos, "--report", "-o", out, "-q").exit_code == 0
    row = rows_of(out)["p00.png"]
    folders = [(out / row["thumb"]).parent, (out / row["maps"][0]["thumb"]).parent, out]
    assert folders[0] != folders[1] and all(f.is_dir() for f in folders)
    planted = [f / ".p00.png.jpg.Ab3_xY9z.part" for f in folders[:2]]
    planted.append(out / ".index.json.q1W2e3R4.part")
    other = folders[0] / ".notes.part"  # not a name of gbp's temp files: never removed
    then = time.time() - age
    for path in [*planted, other]:
        path.write_bytes(b"half a file")
        os.utime(path, (then, then))
    os.utime(other, (0, 0))
    result = gbp("explain", photos, "--report", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert [p.exists() for p in planted] == [not stale] * 3
    assert other.exists()
    assert ("stale temp file" in result.stderr) == stale


# --- writes never leave OUT through a link planted there ---------------------------------------


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize("planted", [".thumbs", ".thumbs/inputs", ".thumbs/maps"])
def test_a_thumbnail_folder_linked_out_of_out_is_refused(tmp_path: Path, planted: str) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / planted).parent.mkdir(parents=True, exist_ok=True)
    (out / planted).symlink_to(elsewhere, target_is_directory=True)
    result = gbp("explain", photos, "--report", "-o", out, "-q")
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert line.startswith(f"gbp: {out / planted}/") and "would land outside" in line
    assert f"{out / planted} is a link to {elsewhere}" in line
    assert list(elsewhere.iterdir()) == [] and not (out / "index.html").exists()


@pytest.mark.usefixtures("fake")
def test_a_thumbnail_folder_linked_inside_out_is_followed(tmp_path: Path) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    (out / "thumbnails").mkdir(parents=True)
    (out / ".thumbs").symlink_to("thumbnails", target_is_directory=True)
    assert gbp("explain", photos, "--report", "-o", out, "-q").exit_code == 0
    assert len(list((out / "thumbnails").rglob("*.jpg"))) == 2


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize("dangling", [True, False])
def test_a_lock_linked_out_of_out_is_refused(tmp_path: Path, dangling: bool) -> None:
    photos = folder_of_photos(tmp_path / "photos", 1)
    out, outside = tmp_path / "out", tmp_path / "outside.lock"
    out.mkdir()
    if not dangling:
        outside.write_bytes(b"")
    (out / ".index.lock").symlink_to(outside)
    result = gbp("explain", photos, "--report", "-o", out, "-q")
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert f"{out / '.index.lock'} is a link to {outside}" in line
    assert outside.exists() == (not dangling) and not (out / "index.html").exists()


def test_a_lock_that_is_a_link_is_never_opened_through(tmp_path: Path) -> None:
    """Even one that stays inside OUT: the lock is opened with O_NOFOLLOW, so a link put there
    after the check cannot send it elsewhere either."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".index.lock").symlink_to("elsewhere.lock")
    with pytest.raises(GbpError, match="is a symbolic link; gbp writes nothing through one"):
        gallery.publish(out, [dict(ROW)], {"command": "explain"})
    assert not (out / "elsewhere.lock").exists()


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("index.json", '{"generator":"gbp","format":2,"runs":[],"rows":5}', "move it away"),
        ("index.json", '{"rows": []}', "is not a file gbp wrote"),
        ("index.html", "<html>mine</html>", "is not a file gbp wrote"),
        ("index.data.js", "var x = 1;", "is not a file gbp wrote"),
    ],
)
def test_a_page_the_run_could_not_update_is_refused_before_any_work(
    name: str, content: str, message: str, tmp_path: Path
) -> None:
    """Not hours later, at the end of the run: before a model loads or an output is written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text(content)
    photo = make_photo(tmp_path / "p.png")
    result = gbp("explain", photo, "-o", out, "--report")
    assert result.exit_code == 2 and message in one_line(result.stderr)
    assert sorted(p.name for p in out.iterdir()) == [name]  # nothing explained, nothing written
    assert (out / name).read_text() == content
