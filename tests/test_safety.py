"""Nothing lost, nothing mixed up: inputs are never written, outputs always match their input and
settings, and every failure is one line. On the stand-in backend unless a test says otherwise."""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FRAMEWORKS, ROOT, gbp, make_photo, one_line, run_gbp, without

pytestmark = pytest.mark.usefixtures("fake")
SAMPLES = ROOT / "sample_images"


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    folder = tmp_path / "ow"
    folder.mkdir()
    shutil.copy(SAMPLES / "chelsea.png", folder / "a.png")
    shutil.copy(SAMPLES / "rocket.jpg", folder / "a.guided.color.png")  # a photo, by that name
    before = (folder / "a.guided.color.png").read_bytes()
    result = gbp("explain", folder, "-o", folder, "--overwrite", "-q")
    assert result.exit_code == 1
    refusal = one_line(result.stderr)
    assert "a.png" in refusal and "is an input of this run" in refusal
    assert (folder / "a.guided.color.png").read_bytes() == before
    assert (folder / "a.guided.color.guided.color.png").exists()  # the photo itself explained


def test_a_file_gbp_did_not_write_is_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_photo(tmp_path / "p.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "p.guided.color.png").write_bytes(b"someone's notes")
    for extra in ([], ["--overwrite"]):
        result = gbp("explain", "p.png", "-o", out, "-q", *extra)
        assert result.exit_code == 1 and "is not a file gbp wrote" in one_line(result.stderr)
    assert (out / "p.guided.color.png").read_bytes() == b"someone's notes"


@pytest.mark.parametrize("flags", [[], ["--overwrite"], ["--dry-run"]])
def test_a_sidecar_gbp_did_not_write_is_never_replaced(
    flags: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_photo(tmp_path / "p.png")
    out = tmp_path / "out"
    out.mkdir()
    notes = out / "p.guided.npy.json"
    notes.write_text('{"my": "notes on p.guided.npy"}')  # JSON, but not gbp's record
    result = gbp("explain", "p.png", "-o", out, "--format", "npy", "-q", *flags)
    assert result.exit_code == 1
    line = one_line(result.stdout if "--dry-run" in flags else result.stderr)
    assert f"{notes} is not a file gbp wrote; it was left alone" in line
    assert "--dry-run" not in flags or line.split("\t")[1] == "refused"
    assert notes.read_text() == '{"my": "notes on p.guided.npy"}'
    assert sorted(p.name for p in out.iterdir()) == ["p.guided.npy.json"]


def test_a_record_a_killed_run_left_without_its_array_is_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_photo(tmp_path / "p.png")
    out = tmp_path / "out"
    args = ["explain", "p.png", "-o", out, "--format", "npy", "-q"]
    assert gbp(*args).exit_code == 0
    array = (out / "p.guided.npy").read_bytes()
    (out / "p.guided.npy").unlink()  # kill -9 between the record and the array
    assert gbp(*args, "--dry-run").stdout.split("\t")[1] == "write"
    again = gbp(*args)
    assert again.exit_code == 0, again.output
    assert (out / "p.guided.npy").read_bytes() == array
    assert "\tkept\t" in gbp(*args).stdout


@pytest.mark.parametrize("layout", ["same folder", "dot", "stdin"])
def test_outputs_never_become_inputs(
    layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    make_photo(folder / "chelsea.png", seed=1)
    make_photo(folder / "sub" / "b.png", seed=2)
    monkeypatch.chdir(folder)
    for run in range(2):
        if layout == "same folder":
            result = gbp("explain", folder, "-o", folder)
        elif layout == "dot":
            result = gbp("explain", ".", "-o", ".")
        else:  # find . -name '*.png' -print0 | gbp explain - -0, next to an earlier saliency/
            found = "\0".join(str(p.relative_to(folder)) for p in sorted(folder.rglob("*.png")))
            result = gbp("explain", "-", "-0", input=found + "\0")
        assert result.exit_code == 0, result.output
        assert len(lines(result.stdout)) == 2, result.stdout  # the two photos, nothing else
        if run:
            assert "2 kept" in result.stderr and "gbp's own outputs skipped" in result.stderr
    assert not list(folder.rglob("*.color.*.color.png"))


def test_kept_means_this_input_and_these_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    photo = tmp_path / "x.png"
    out = tmp_path / "O"
    make_photo(photo, seed=1)
    args = ["explain", "x.png", "-o", out, "--format", "heatmap", "--format", "npy", "-q"]
    assert gbp(*args).exit_code == 0
    assert "\tkept\t" in gbp(*args).stdout
    make_photo(photo, seed=2)  # another photo by the same name
    other = gbp(*args)
    assert other.exit_code == 1 and "holds the map of another input" in one_line(other.stderr)
    make_photo(photo, seed=1)
    restyled = gbp(*args, "--cmap", "viridis")
    assert restyled.exit_code == 1
    assert "other settings (cmap inferno → viridis)" in one_line(restyled.stderr)
    redone = gbp(*args, "--cmap", "viridis", "--overwrite")
    assert redone.exit_code == 0 and "heatmap.png (kept)" not in redone.stdout
    assert "\tkept\t" in gbp(*args, "--cmap", "viridis").stdout
    # The .npy's record is beside it: an array changed behind gbp's back is not kept.
    np.save(out / "x.guided.npy", np.zeros((224, 224, 3), np.float32))
    tampered = gbp(*args, "--cmap", "viridis")
    assert tampered.exit_code == 1 and "x.guided.npy" in one_line(tampered.stderr)


def test_top_k_names_hold_the_class_and_a_rerun_keeps_them(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(photos)
    out = tmp_path / "out"
    first = gbp("explain", "a.png", "--top-k", "2", "-o", out, "-q")
    assert first.exit_code == 0, first.output
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and all(
        n.startswith("a.") and n.count(".") == 4 and "-" in n.split(".")[1] for n in names
    )
    again = gbp("explain", "a.png", "--top-k", "2", "-o", out, "-q")
    assert again.exit_code == 0 and "\tkept\t" in again.stdout
    plain = gbp("explain", "a.png", "-o", out, "-q")  # top-1 beside them: no clash
    assert plain.exit_code == 0 and (out / "a.guided.color.png").exists()


@pytest.mark.sanity
def test_sanity_into_an_existing_folder_follows_the_same_rule(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png", size=(64, 64))
    out = tmp_path / "s"
    args = ["sanity", photo, "--method", "vanilla", "-o", out]
    assert gbp(*args, "--weights", "random").exit_code == 0
    changed = gbp(*args, "--resize", "crop", "--weights", "random")
    assert changed.exit_code == 1 and "other settings" in changed.stderr


def test_named_paths_keep_their_folders_and_never_leave_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    make_photo(work / "a" / "x.png", seed=1)
    make_photo(work / "b" / "x.png", seed=2)
    make_photo(tmp_path / "up.png", seed=3)
    monkeypatch.chdir(work)
    result = gbp("explain", "a/x.png", "b/x.png", "../up.png", "-o", "O", "-q")
    assert result.exit_code == 0, result.output
    assert (work / "O" / "a" / "x.guided.color.png").exists()
    assert (work / "O" / "b" / "x.guided.color.png").exists()
    climbed = work / "O" / (tmp_path / "up.guided.color.png").relative_to("/")
    assert climbed.exists()  # by its absolute path, below -o
    piped = gbp("explain", "-", "-o", "P", "-q", input="a/x.png\nb/x.png\n")
    assert piped.exit_code == 0 and (work / "P" / "b" / "x.guided.color.png").exists()


def test_a_fifo_is_skipped_with_one_line_not_opened(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_photo(folder / "a.png")
    os.mkfifo(folder / "pipe.png")
    os.mkfifo(tmp_path / "named.jpg")
    result = run_gbp(
        "explain", folder, tmp_path / "named.jpg", "-o", tmp_path / "o", "-q", fake=True
    )
    assert result.returncode == 1
    assert [line.split(": ", 2)[-1] for line in lines(result.stderr)] == [
        "not a regular file (a FIFO): skipped"
    ] * 2
    assert (tmp_path / "o" / "a.guided.color.png").exists()


def test_an_output_folder_that_is_a_file_is_a_usage_error(photos: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    result = run_gbp("explain", photos, "-o", target, block=FRAMEWORKS)  # no model loaded
    assert result.returncode == 2 and "is not a folder" in one_line(result.stderr)


def test_a_folder_that_cannot_be_written_is_one_line_per_input(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # what a read-only folder does (but as root)
    result = gbp("explain", photos, "-o", tmp_path / "ro", "-q")
    assert result.exit_code == 1
    assert [line.endswith("permission denied") for line in lines(result.stderr)] == [True, True]


def test_a_full_disk_stops_the_run_at_once_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gbp_cli.outputs import atomic

    for i in range(6):
        make_photo(tmp_path / "in" / f"p{i}.png", seed=i)
    attempts = []

    def full(fd: int) -> None:
        attempts.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    out = tmp_path / "out"
    result = gbp("explain", tmp_path / "in", "-o", out, "--batch-size", "1", "-q")
    assert result.exit_code == 1
    assert "no space left on device; stopping" in result.stderr
    assert len(attempts) <= 3  # not one failure per remaining photo
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_stdout_on_a_full_device_is_one_line(photos: Path) -> None:
    with open("/dev/full", "wb") as full:
        run = subprocess.run(
            [sys.executable, "-c", without(fake=True), "explain", str(photos / "a.png"), "-o", "-"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cannot write to stdout: no space left on device" in run.stderr


@pytest.mark.parametrize("reader", ["true", "head -c1"])
def test_a_closed_pipe_exits_141_silently(reader: str, tmp_path: Path) -> None:
    big = make_photo(tmp_path / "big.png", size=(1600, 1600))  # more than a pipe holds
    command = [sys.executable, "-c", without(fake=True), "explain", str(big)]
    quoted = shlex.join(command)
    run = subprocess.run(
        ["bash", "-c", f"{quoted} -o - -q | {reader} > /dev/null; echo ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    # `true` leaves at once: 141. GNU `head -c1` here drains the pipe before it exits, so gbp
    # finishes its write and exits 0. Either way: no message, no traceback.
    assert run.stdout.strip() == "141" if reader == "true" else run.stdout.strip() in ("0", "141")
    assert "Traceback" not in run.stderr and "gbp:" not in run.stderr  # no message


def test_dash_o_dash_on_a_terminal_is_refused(photos: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    run = subprocess.run(
        [sys.executable, "-c", without(fake=True), "explain", str(photos / "a.png"), "-o", "-"],
        stdout=follower,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    os.close(follower)
    os.close(leader)
    assert run.returncode == 2 and "terminal" in one_line(run.stderr)


def test_smaller_ones(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smooth = gbp("explain", photos, "--smooth", "-1")
    assert smooth.exit_code == 2 and "-1 is not in the range" in smooth.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_gbp("explain", empty, block=FRAMEWORKS)  # said before a model would load
    assert (
        nothing.returncode == 1
        and one_line(nothing.stderr) == f"gbp: no images found under {empty}"
    )
    odd = tmp_path / "odd"
    make_photo(odd / "tab\there.png")
    shutil.copy(odd / "tab\there.png", os.fsencode(odd) + b"/caf\xe9.png")  # not UTF-8
    bytes_named = gbp("explain", odd, "-o", tmp_path / "b", "--json")
    assert bytes_named.exit_code == 0 and "caf\\\\xe9.png" in bytes_named.stdout
    escaped = gbp("explain", odd, "-o", tmp_path / "o", "-q")
    names = [line.split("\t")[0] for line in escaped.stdout.splitlines()]
    assert len(names) == 2 and names[1].endswith("tab\\there.png")
    import builtins

    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if str(file).endswith("b.jpg"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    denied = gbp("explain", photos, "-o", tmp_path / "p", "-q")
    assert one_line(denied.stderr).endswith("b.jpg: cannot read: permission denied")


def test_two_runs_into_one_folder_count_what_each_really_did(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for i in range(4):
        make_photo(folder / f"p{i}.png", seed=i)
    command = [sys.executable, "-c", without(fake=True), "explain", str(folder)]
    command += ["-o", str(tmp_path / "out"), "--batch-size", "4"]
    env = {**os.environ, "GBP_FAKE_SECONDS": "1.5"}
    runs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    summaries = [one_line(r.communicate(timeout=60)[1].decode()) for r in runs]
    assert all(r.returncode == 0 for r in runs), summaries
    explained = [int(s.split("(")[1].split(" explained")[0]) for s in summaries]
    kept = [int(s.split("failed, ")[1].split(" kept")[0]) for s in summaries]
    assert sum(explained) + sum(kept) == 8 and sum(explained) == 4  # each photo written once


def test_stale_temp_files_of_a_killed_run_are_removed(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a.guided.color.png.k3x9qz0a.part"
    stale.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = out / ".b.guided.color.png.abcdefgh.part"  # maybe another run's, right now
    fresh.write_bytes(b"half")
    result = gbp("explain", photos, "-o", out)
    assert result.exit_code == 0
    assert "removed 1 stale temp file" in result.stderr
    assert not stale.exists() and fresh.exists()


@pytest.mark.usefixtures("fake")
def test_a_run_a_full_disk_stops_still_says_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line that says why it stopped, then the summary of what was done by then — and with
    --report, the page's own line, since a full disk cannot take it either."""
    from gbp_cli.outputs import atomic

    for i in range(6):
        make_photo(tmp_path / "in" / f"p{i}.png", seed=i)
    fsync = atomic.os.fsync
    calls: list[int] = []

    def filling(fd: int) -> None:  # two outputs fit, then the disk is full
        calls.append(fd)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", filling)
    result = gbp("explain", tmp_path / "in", "-o", tmp_path / "out", "--batch-size", "1",
                 "--report")  # fmt: skip
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "no space left on device; stopping" in lines[-3]
    assert lines[-2].startswith("gbp: cannot write the report in")
    assert lines[-1].startswith("gbp: 2 inputs (2 explained, 0 failed, 0 kept)")
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("fake")
def test_top_k_outputs_of_classes_named_without_letters_are_kept(tmp_path: Path) -> None:
    """Such a class is tagged by its index alone (`p.281.guided.color.png`): a rerun finds it."""
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["★"] * 1000) + "\n")
    photo = make_photo(tmp_path / "p.png")
    args = ["explain", photo, "-o", tmp_path / "out", "--top-k", "2", "--labels", labels]
    first = gbp(*args)
    assert first.exit_code == 0 and all(p.name.count(".") == 4 for p in
                                        (tmp_path / "out").rglob("*.png"))  # fmt: skip
    again = gbp(*args, "--dry-run")
    assert again.exit_code == 0 and again.stdout.split("\t")[1] == "kept", again.stdout
