"""Folders and pipelines, on the stand-in backend: stdin, -o -, --json, --shard, mirroring,
resume, signals, progress."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, gbp, interruptible, make_photo, one_line, run_gbp, without

pytestmark = pytest.mark.usefixtures("fake")
QUIET = ("-q",)


def names_in(stdout: str) -> list[str]:
    return [line.split("\t")[0] for line in stdout.splitlines()]


def test_folders_are_walked_sorted_skipping_hidden_and_mirrored(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for name in ["b/x.JPG", "a/x.png", "a/deeper/y.webp", ".hidden/z.png", "a/.secret.png"]:
        make_photo(root / name)
    (root / "a" / "notes.txt").write_text("not an image, not picked up")
    out = tmp_path / "out"
    result = gbp("explain", root, "-o", out, *QUIET)
    assert result.exit_code == 0, result.output
    found = [Path(name).relative_to(root).as_posix() for name in names_in(result.stdout)]
    assert found == ["a/x.png", "a/deeper/y.webp", "b/x.JPG"]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [
        "a/deeper/y.guided.color.png",
        "a/x.guided.color.png",
        "b/x.guided.color.png",
    ]


@pytest.mark.parametrize("null", [False, True])
def test_paths_from_stdin(null: bool, photos: Path, tmp_path: Path) -> None:
    paths = [str(photos / "a.png"), str(photos / "b.jpg")]
    text = "\0".join(paths) + "\0" if null else "\n".join(paths) + "\n"
    args = ["explain", "-", "-o", tmp_path / "out", *QUIET] + (["-0"] if null else [])
    result = gbp(*args, input=text)
    assert result.exit_code == 0, result.output
    assert names_in(result.stdout) == paths


def test_json_gives_one_object_per_input_with_the_prediction(photos: Path, tmp_path: Path) -> None:
    result = gbp(
        "explain", photos, photos / "nope.png", "--json", "--top-k", "2", "-o", tmp_path / "o"
    )
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3
    ok, bad = [r for r in records if "error" not in r], [r for r in records if "error" in r]
    assert len(ok) == 2 and bad[0]["error"] == "no such file"
    for record in ok:
        assert record["backend"] == "torch" and record["model"] == "fake"
        assert record["random_weights"] is False and record["methods"] == ["guided"]
        assert set(record["target"]) == {"index", "label", "logit", "probability"}
        assert [t["index"] for t in record["targets"]] == [t["index"] for t in record["top_k"][:2]]
        assert record["relus"] == {"guided": 3} and record["seconds"] > 0
        assert len(record["files"]) == 2 and all(Path(f).exists() for f in record["files"])


def test_dash_o_dash_writes_the_png_to_stdout(photos: Path, tmp_path: Path) -> None:
    result = run_gbp(
        "explain", photos / "a.png", "-o", "-", *QUIET, cwd=tmp_path, text=False, fake=True
    )
    assert result.returncode == 0, result.stderr
    picture = Image.open(io.BytesIO(result.stdout))
    assert picture.format == "PNG" and picture.size == Image.open(photos / "a.png").size
    assert b"a.png" in result.stderr  # the result line moved to stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no file written


@pytest.mark.parametrize(
    "extra", [["--method", "guided", "--method", "vanilla"], ["--json"], ["--top-k", "2"], []]
)
def test_dash_o_dash_refuses_more_than_one_file(extra: list[str], photos: Path) -> None:
    inputs = [photos] if not extra else [photos / "a.png"]
    result = gbp("explain", *inputs, "-o", "-", *extra, *QUIET)
    assert result.exit_code == 2 and "-o -" in one_line(result.stderr)


def test_shards_count_from_one_and_split_the_inputs_without_overlap(tmp_path: Path) -> None:
    for i in range(9):
        make_photo(tmp_path / "in" / f"p{i}.png", size=(32, 32), seed=i)
    seen: list[str] = []
    for index in (1, 2, 3):  # as SLURM's --array=1-3 numbers its jobs
        result = gbp("explain", tmp_path / "in", "--shard", f"{index}/3", "-o", tmp_path / "o")
        assert result.exit_code == 0, result.output
        seen += names_in(result.stdout)
    assert sorted(seen) == sorted(str(p) for p in (tmp_path / "in").iterdir())
    for bad in ["0/3", "4/3", "x", "1/0", "-1/2"]:
        refused = gbp("explain", tmp_path / "in", "--shard", bad)
        assert (refused.exit_code == 2 and "1..N" in refused.stderr) or "I/N" in refused.stderr


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_inputs_are_never_touched_and_nothing_lands_outside_out(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = digest(photos)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = gbp("explain", "-", "-o", out, *QUIET, input=f"{photos}/../photos/a.png\n")
    assert result.exit_code == 0, result.output
    assert digest(photos) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]
    assert [p.name for p in out.rglob("*.png")] == ["a.guided.color.png"]


@pytest.mark.parametrize(
    ("signum", "code", "line"),
    [
        (signal.SIGINT, 130, "gbp: interrupted"),
        (signal.SIGTERM, 143, "gbp: terminated"),
        (signal.SIGHUP, 129, "gbp: hung up"),  # a closed terminal: stopped as cleanly
    ],
)
def test_an_interrupted_run_leaves_no_partial_file_and_resumes(
    signum: int, code: int, line: str, tmp_path: Path
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    for i in range(12):
        make_photo(folder / f"p{i:02d}.png", size=(64, 64), seed=i)
    args = ["explain", folder, "-o", out, "--batch-size", "1", *QUIET]
    process = subprocess.Popen(
        [sys.executable, "-c", without(fake=True), *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**__import__("os").environ, "GBP_FAKE_SECONDS": "1.0"},  # slow: never done first
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.color.png"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert stderr.decode().splitlines()[-1] == line
    done = sorted(out.glob("*.png"))
    assert 2 <= len(done) < 12
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    for path in done:
        Image.open(path).verify()  # complete PNGs only
    rerun = gbp(*args)
    assert rerun.exit_code == 0
    kept = [line for line in rerun.stdout.splitlines() if "\tkept\t" in line]
    assert len(kept) == len(done)
    assert len(list(out.glob("*.png"))) == 12


def test_progress_bar_and_summary(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gbp_cli.cli.progress import Progress

    progress = Progress(total=10)
    for _ in range(3):
        progress.advance(0.5)
    progress.advance(1.5)
    progress.bar.refresh()
    assert "3/10" in capsys.readouterr().err
    progress.close()
    piped = gbp("explain", photos, "-o", tmp_path / "out")
    assert "\r" not in piped.stderr  # stderr is not a terminal: no progress bar
    summary = one_line(piped.stderr)
    assert "2 inputs (2 explained, 0 failed, 0 kept)" in summary and "images/s compute" in summary
    single = gbp("explain", photos / "a.png", "-o", tmp_path / "one")
    assert "1 input (1 explained" in single.stderr
    assert gbp("explain", photos, "-o", tmp_path / "out", *QUIET).stderr == ""


def test_a_file_reached_twice_is_explained_once(photos: Path, tmp_path: Path) -> None:
    (photos / "alias.png").symlink_to(photos / "a.png")
    result = gbp("explain", photos, photos / "a.png", "-o", tmp_path / "out", *QUIET)
    names = [Path(name).name for name in names_in(result.stdout)]
    assert names == ["a.png", "b.jpg"]


def test_smoothgrad_through_the_command_line(photos: Path, tmp_path: Path) -> None:
    plain, smooth = tmp_path / "plain", tmp_path / "smooth"
    args = ["explain", photos / "a.png", "--format", "npy", "--format", "color", "-q"]
    assert gbp(*args, "-o", plain).exit_code == 0
    assert gbp(*args, "--smooth", "3", "--noise", "0.2", "-o", smooth).exit_code == 0
    (a,), (b,) = list(plain.rglob("*.npy")), list(smooth.rglob("*.npy"))
    assert not np.allclose(np.load(a), np.load(b))
    (picture,) = list(smooth.rglob("*.color.png"))
    assert Image.open(picture).text["gbp:smoothing"] == "SmoothGrad n=3 sigma=0.2 seed=0"


def test_tf_mode_reaches_the_tf_backend_only(
    photos: Path, tmp_path: Path, stand_in: Callable[..., None]
) -> None:
    stand_in("tf")
    tf = gbp("explain", photos / "a.png", "--backend", "tf", "--tf-mode", "graph", "-o", tmp_path)
    assert "with torch graph on cpu" in tf.stderr  # the stand-in calls itself torch
    ignored = gbp("explain", photos / "a.png", "--tf-mode", "graph", "-o", tmp_path / "t")
    assert "with torch on cpu" in ignored.stderr
