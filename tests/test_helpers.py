"""Decoding, rendering and encoding in worker processes (engines.helpers): the same files and
lines as in one process, and a pool that starts only when the model waits for that work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gbp_cli.engines import helpers
from gbp_cli.engines.helpers import ENVIRONMENT, PACED_BATCHES, Helpers
from tests.conftest import make_photo, run_gbp


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_worker_processes_write_the_same_files_and_lines(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for i in range(5):
        make_photo(folder / f"p{i}.jpg", size=(120 + 30 * i, 90), seed=i)
    (folder / "broken.png").write_bytes(b"not a png")
    runs = {}
    for processes in ("0", "2"):
        out = tmp_path / f"out{processes}"
        args = ["explain", folder, "-o", out, "--batch-size", "2", "--format", "color"]
        run = run_gbp(*args, "--format", "overlay", env={ENVIRONMENT: processes}, fake=True)
        assert run.returncode == 1, run.stderr  # the broken file: one line, the run goes on
        runs[processes] = (run.stdout.replace(str(out), "OUT"), files(out), run.stderr)
    (lines0, files0, errors0), (lines2, files2, errors2) = runs["0"], runs["2"]
    assert lines0 == lines2 and len(lines0.splitlines()) == 5  # a line per photo explained
    assert files0 == files2 and len(files0) >= 10  # byte for byte, records included
    assert [e for e in errors2.splitlines() if "broken.png" in e] == [
        e for e in errors0.splitlines() if "broken.png" in e
    ]
    assert "Traceback" not in errors2


def test_the_pool_starts_only_after_batches_that_waited_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    monkeypatch.setattr(helpers, "machine_processes", lambda: 2)
    started: list[int] = []
    monkeypatch.setattr(Helpers, "start", lambda self: started.append(self.size))
    model_bound = Helpers()
    for _ in range(10):
        model_bound.paced(waited=0.1, computed=0.5)  # the model sets the pace
    assert started == []
    cpu_bound = Helpers()
    for _ in range(PACED_BATCHES - 1):
        cpu_bound.paced(waited=0.5, computed=0.1)
    cpu_bound.paced(waited=0.1, computed=0.5)  # one batch the other way: counted afresh
    for _ in range(PACED_BATCHES - 1):
        cpu_bound.paced(waited=0.5, computed=0.1)
    assert started == []
    cpu_bound.paced(waited=0.5, computed=0.1)
    assert started == [2]


def test_the_environment_forces_or_forbids_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    monkeypatch.setattr(Helpers, "start", lambda self: started.append(self.size))
    monkeypatch.setenv(ENVIRONMENT, "0")
    never = Helpers()
    for _ in range(10):
        never.paced(waited=1.0, computed=0.0)
    assert started == [] and never.lane(os.getpid)() == os.getpid()  # here, in this process
    monkeypatch.setenv(ENVIRONMENT, "3")
    Helpers()
    assert started == [3]


def test_a_started_pool_runs_the_work_in_other_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT, "2")
    pool = Helpers()
    try:
        ran_in = {pool.lane(os.getpid)() for _ in range(8)}
    finally:
        pool.close()
    assert os.getpid() not in ran_in and 1 <= len(ran_in) <= 2
