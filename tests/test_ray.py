"""`gbp explain --engine ray` and gbp_cli.ray_api on a local Ray (two CPUs, one per session):
the same files as the local engine, bad inputs as records, resume, a killed actor, Ctrl-C, and
the README's Ray Data example.

Every run here uses the stand-in backend, named by its module (`--backend tests.fake_backend`)
as a backend of your own would be: the name travels to the Ray workers, and the session's Ray
puts the repo root on their PYTHONPATH. This module is also a backend: `load` below wraps the
stand-in with one crash (os._exit) on a chosen batch, for the killed-actor test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gbp_cli.backends.base import Backend, Explanation, WeightsSpec
from tests import conftest
from tests.conftest import ROOT, interruptible, make_photo, run_gbp, without

ray = pytest.importorskip("ray", reason="needs Ray Data: pip install 'gbp-saliency[ray]'")
CRASH_DIR = "GBP_TEST_CRASH_DIR"  # test-only: where `load` below reads its crash plan
RAY = ("--engine", "ray")
STAND_IN = ("--backend", "tests.fake_backend")


def gbp(command: str, *args: str | Path):
    """`gbp COMMAND` on the stand-in backend (a later --backend in `args` wins)."""
    return conftest.gbp(command, *STAND_IN, *args)


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One local Ray for the session, two CPUs; returns the crash plan's folder."""
    crash = tmp_path_factory.mktemp("crash")
    env = {"PYTHONPATH": str(ROOT), CRASH_DIR: str(crash), "OMP_NUM_THREADS": "1"}
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env}
    )
    yield crash
    ray.shutdown()


pytestmark = pytest.mark.usefixtures("ray_session")


def load(
    weights: WeightsSpec,
    device: str,
    precision: str = "fp32",
    mode: str = "auto",
    model: object = None,
) -> Backend:
    """The stand-in backend, dying once (the whole worker process) on the batch that the crash
    plan names: <crash dir>/at holds N, <crash dir>/crashed records that it happened."""
    from tests import fake_backend

    backend = fake_backend.load(weights, device, precision, mode)
    folder = Path(os.environ.get(CRASH_DIR, "/nonexistent"))
    explain = backend.explain

    def crashing(*args: Any, **kwargs: Any) -> Explanation:
        planned = (folder / "at").exists() and not (folder / "crashed").exists()
        if planned and backend.calls + 1 == int((folder / "at").read_text()):
            (folder / "crashed").write_text(str(os.getpid()))
            os._exit(1)
        return explain(*args, **kwargs)

    backend.explain = crashing
    return backend


def photos(folder: Path, count: int) -> Path:
    for i in range(count):
        make_photo(folder / f"p{i:02d}.png", size=(64 + 8 * i, 48), seed=i)
    return folder


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def lines(stdout: str, out: Path) -> list[str]:
    return stdout.replace(str(out), "OUT").splitlines()


def test_the_same_files_lines_and_exit_code_as_the_local_engine(tmp_path: Path) -> None:
    folder = photos(tmp_path / "in", 7)
    (folder / "p03.png").write_bytes(b"not an image")  # a bad input is a record, not a failed job
    args = ["explain", folder, "--batch-size", "3", "--method", "guided", "--method", "gradcam"]
    args += ["--format", "npy", "--format", "color", "--format", "overlay", "-q"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    a = gbp(*args, "-o", local)
    b = gbp(*args, "-o", remote, *RAY)
    assert (a.exit_code, b.exit_code) == (1, 1), b.output
    assert lines(b.stdout, remote) == lines(a.stdout, local)
    assert "p03.png: not an image PIL can read" in b.stderr
    ours, theirs = files(local), files(remote)
    assert sorted(ours) == sorted(theirs) and len(ours) == 6 * 2 * 4  # png, png, npy, npy.json
    assert [name for name in ours if ours[name] != theirs[name]] == []  # every byte

    records = gbp(*args, "-o", remote, *RAY, "--json")  # resume: all kept, nothing rewritten
    assert records.exit_code == 1
    parsed = [json.loads(line) for line in records.stdout.splitlines()]
    assert [bool(r.get("error")) for r in parsed] == [False] * 3 + [True] + [False] * 3
    assert all(r["files"] == [] and len(r["kept"]) == 6 for r in parsed if "error" not in r)
    assert files(remote) == theirs


def test_top_k_smoothgrad_and_panels_match_the_local_engine_too(tmp_path: Path) -> None:
    folder = photos(tmp_path / "in", 3)
    args = ["explain", folder, "--top-k", "2", "--smooth", "2", "--format", "panel", "-q"]
    args += ["--format", "npy", "--method", "guided", "--method", "vanilla", "--batch-size", "2"]
    a = gbp(*args, "-o", tmp_path / "local")
    b = gbp(*args, "-o", tmp_path / "ray", *RAY)
    assert (a.exit_code, b.exit_code) == (0, 0), b.output
    ours, theirs = files(tmp_path / "local"), files(tmp_path / "ray")
    assert sorted(ours) == sorted(theirs) and len(ours) == 3 * (1 + 2 * 2 * 2)
    assert [name for name in ours if ours[name] != theirs[name]] == []


def test_a_rerun_on_a_shared_folder_skips_what_exists(tmp_path: Path) -> None:
    folder = photos(tmp_path / "in", 4)
    out = tmp_path / "out"
    first = gbp("explain", folder, "-o", out, "--batch-size", "2", "-q")
    assert first.exit_code == 0
    (out / "p01.guided.color.png").unlink()
    again = gbp("explain", folder, "-o", out, *RAY, "--ray-address", "auto", "--batch-size", "2")
    assert again.exit_code == 0, again.output
    assert [line.split("\t")[1] for line in again.stdout.splitlines()].count("kept") == 3
    assert "(1 explained, 0 failed, 3 kept)" in again.stderr
    assert "on Ray (1 worker)" in again.stderr
    assert not list(out.glob(".gbp-ray-check-*"))  # the shared-folder markers are gone


def test_an_actor_that_dies_is_restarted_and_every_input_explained_once(
    tmp_path: Path, ray_session: Path
) -> None:
    (ray_session / "at").write_text("2")
    try:
        folder = photos(tmp_path / "in", 6)
        args = ["-o", tmp_path / "out", "--batch-size", "2", "-q", *RAY]
        result = gbp("explain", folder, *args, "--backend", "tests.test_ray")
    finally:
        (ray_session / "at").unlink()
    assert (ray_session / "crashed").exists(), "the actor was not killed"
    assert result.exit_code == 0, result.output
    names = [Path(line.split("\t")[0]).name for line in result.stdout.splitlines()]
    assert names == [f"p{i:02d}.png" for i in range(6)]
    assert len(list((tmp_path / "out").glob("*.png"))) == 6


def test_ctrl_c_cancels_the_job_exits_130_and_leaves_no_partial_file(tmp_path: Path) -> None:
    folder = photos(tmp_path / "in", 12)
    out = tmp_path / "out"
    address = ray.get_runtime_context().gcs_address  # this session's Ray, as a cluster
    args = ["explain", folder, "-o", out, "--batch-size", "2", "--format", "npy", *RAY]
    args += ["--ray-address", address, *STAND_IN]
    env = {**os.environ, "GBP_FAKE_SECONDS": "1.5"}  # GBP_* reach the workers; slow on purpose
    env["PYTHONPATH"] = str(ROOT)  # and PYTHONPATH: the workers import the stand-in by name
    process = subprocess.Popen(
        [sys.executable, "-c", without(fake=True), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,  # a terminal's Ctrl-C reaches the whole process group
        preexec_fn=interruptible,
    )
    assert process.stdout is not None
    process.stdout.readline()  # the first result: the job is under way
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.rstrip().endswith("gbp: interrupted")
    time.sleep(1)  # the cluster ends the job's workers once the driver is gone
    left = sorted(p.name for p in out.rglob("*"))
    assert not [name for name in left if name.endswith(".part")]
    assert len(left) < 2 * 12  # it stopped before the end
    for array in out.glob("*.npy"):  # what was published is whole, with its record
        assert np.load(array).shape == (224, 224, 3)
        assert json.loads(array.with_name(array.name + ".json").read_text())["sha256"]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, found by parent links in /proc (never by name)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(
    ("signum", "when", "code", "line"),
    [
        (signal.SIGTERM, "starting", 143, "gbp: terminated"),  # was exit 15 or an abort
        (signal.SIGHUP, "starting", 129, "gbp: hung up"),  # left Ray's agents running
        (signal.SIGINT, "starting", 130, "gbp: interrupted"),
        (signal.SIGTERM, "running", 143, "gbp: terminated"),
    ],
)
def test_a_stopping_signal_ends_a_ray_run_it_started_cleanly(
    signum: int, when: str, code: int, line: str, tmp_path: Path
) -> None:
    """gbp starts its own Ray here (no --ray-address). A signal while Ray starts, or while the
    job runs, ends gbp with the local engine's code and line, no partial file, and no process
    that gbp started (Ray's raylet, agents, workers: every descendant seen) left alive."""
    folder, out = photos(tmp_path / "in", 8), tmp_path / "out"
    args = ["explain", folder, "-o", out, "--batch-size", "2", "--format", "npy", *RAY]
    env = {**os.environ, "GBP_FAKE_SECONDS": "0.5", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gbp_cli", *map(str, args), *STAND_IN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    if when == "starting":  # Ray's first processes exist: ray.init is under way
        while not seen and time.monotonic() < deadline:
            seen |= descendants(process.pid)
            time.sleep(0.01)
    else:
        assert process.stdout is not None
        process.stdout.readline()  # the first result: the job is under way
        seen |= descendants(process.pid)
    process.send_signal(signum)
    while process.poll() is None and time.monotonic() < deadline:
        seen |= descendants(process.pid)
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert stderr.splitlines()[-1] == line
    assert seen, "no process of Ray's was seen"
    settle = time.monotonic() + 10  # what gbp shut down may take a moment to be reaped
    while any(alive(pid) for pid in seen) and time.monotonic() < settle:
        time.sleep(0.1)
    assert not [pid for pid in seen if alive(pid)]
    assert not list(out.rglob("*.part"))  # nothing half-written (no folder: nothing at all)


def test_options_that_cannot_work_are_refused_in_one_line(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "a.png")
    piped = gbp("explain", photo, "-o", "-", *RAY)
    assert piped.exit_code == 2 and piped.stderr.startswith("gbp: ")
    many = gbp("explain", photo, "-o", tmp_path / "out", "--workers", "3", *RAY)
    assert many.exit_code == 2
    assert many.stderr.strip() == (
        "gbp: --workers 3 × --cpus-per-worker 1 leaves no CPU of the Ray cluster's 2 for "
        "decoding and writing"
    )
    gpus = gbp("explain", photo, "-o", tmp_path / "out", "--gpus-per-worker", "1", *RAY)
    assert gpus.exit_code == 2 and "the Ray cluster has 0" in gpus.stderr
    missing = run_gbp("explain", photo, "-o", tmp_path / "out", *RAY, *STAND_IN, block=("ray",))
    assert (missing.returncode, missing.stderr) == (
        2,
        "gbp: --engine ray needs Ray Data, which is not installed: pip install "
        "'gbp-saliency[ray]'\n",
    )


def write_elsewhere(folder: str, name: str, token: str) -> str:
    """A worker whose -o is another disk: its marker lands where the driver cannot see it."""
    Path(folder, "..", "elsewhere").mkdir(exist_ok=True)
    Path(folder, "..", "elsewhere", name).write_text(token)
    return "node-b: its own disk"


def test_a_cluster_run_refuses_an_output_folder_the_workers_do_not_share(tmp_path: Path) -> None:
    from gbp_cli.engines.ray_cluster import shared_folder_problem

    assert shared_folder_problem(ray, tmp_path / "out") is None
    assert not list((tmp_path / "out").iterdir())
    problem = shared_folder_problem(ray, tmp_path / "out", write_elsewhere)
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"-o {tmp_path / 'out'} is not a folder every Ray worker shares")


def test_the_actor_pool_is_spelled_as_each_ray_version_wants() -> None:
    from types import SimpleNamespace

    from gbp_cli.engines.ray_cluster import actor_pool, version

    assert version("2.9.3") == (2, 9) and version("2.60.0rc1") == (2, 60)
    old = SimpleNamespace(__version__="2.20.0", data=ray.data)
    assert actor_pool(old, 3) == {"concurrency": 3}
    (compute,) = actor_pool(ray, 3).values()
    assert isinstance(compute, ray.data.ActorPoolStrategy)


def readme_example() -> str:
    """The README's Ray Data example, as it stands there."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## On a Ray cluster", 1)[1].split("\n## ", 1)[0]
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "read_images" in b]
    return code


@pytest.mark.torch
def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        make_photo(tmp_path / "photos" / f"p{i}.png", size=(120, 90), seed=i)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(readme_example(), scope)
    rows = scope["rows"]
    assert len(rows) == 3 and all(r["error"] == "" for r in rows)
    assert all(r["guided"].shape == (224, 224, 3) for r in rows)
    assert all(r["gradcam"].shape == (224, 224) for r in rows)
    assert all(0 <= r["class"] < 1000 and 0 < r["probability"] <= 1 for r in rows)


API_RUN = """
import sys, numpy as np
from gbp_cli.ray_api import Saliency
saliency = Saliency("guided", weights="random", out=sys.argv[1], formats=["npy"])
batch = {"path": np.array(sys.argv[2:], dtype=object)}
rows = saliency(batch)
print(list(rows["error"]), int(rows["class"][-1]), bool(rows["guided"][-1].any()))
"""


def test_the_python_api_writes_what_gbp_explain_writes(tmp_path: Path) -> None:
    """Each in a fresh process, as users run them (one process holding several models can
    differ from another in the last bits)."""
    from gbp_cli.ray_api import Saliency

    folder = photos(tmp_path / "in", 3)
    paths = sorted(str(p) for p in folder.iterdir())
    cli = run_gbp(
        "explain", *paths, "-o", tmp_path / "cli", "--format", "npy", "--weights", "random"
    )
    assert cli.returncode == 0, cli.stderr
    missing = str(folder / "missing.png")
    api = subprocess.run(
        [sys.executable, "-c", API_RUN, str(tmp_path / "api"), *paths, missing],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert api.stdout.strip() == "['', '', '', 'no such file'] -1 False", api.stderr
    assert files(tmp_path / "api") == files(tmp_path / "cli")
    saliency = Saliency("guided", weights="random", out=tmp_path / "api", formats=["npy"])
    batch = {"path": np.array([*paths, missing], dtype=object)}
    rows = saliency(batch)
    again = saliency(batch)  # identical files already there are kept
    assert again["files"][0] == rows["files"][0] and again["error"][0] == ""


def test_phone_photos_are_decoded_on_the_workers_as_here(tmp_path: Path) -> None:
    """HEIC and AVIF (issue 28): each worker loads pillow-heif itself; the same lines and files
    as the local engine, and on the page the HEIC links to a JPEG of it."""
    from tests.test_phone_formats import phone_folder

    folder = phone_folder(tmp_path).folder
    args = ["explain", folder, "--method", "guided", "--format", "npy", "--format", "overlay"]
    args += ["--report", "-q"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    a = gbp(*args, "-o", local)
    b = gbp(*args, "-o", remote, *RAY)
    assert (a.exit_code, b.exit_code) == (0, 0), b.output
    assert lines(b.stdout, remote) == lines(a.stdout, local)
    page = ("index.", ".index.lock", ".thumbs/")  # the page records its run's times
    ours = {n: data for n, data in files(local).items() if not n.startswith(page)}
    theirs = {n: data for n, data in files(remote).items() if not n.startswith(page)}
    assert sorted(ours) == sorted(theirs) and len(ours) == 6 * 3  # npy, its record, overlay
    assert [name for name in ours if ours[name] != theirs[name]] == []
    rows = {
        Path(r["input"]).name: r for r in json.loads((remote / "index.json").read_text())["rows"]
    }
    assert all(row["thumb"] for row in rows.values())
    assert rows["IMG_0001.HEIC"]["photo"].startswith(".thumbs/photos/")
    assert rows["IMG_0004.avif"]["photo"].endswith("IMG_0004.avif")  # a browser shows AVIF


@pytest.mark.parametrize(
    ("backend", "code", "line"),
    [
        ("tests.raising_backend", 2, "gbp: the model ran out of memory on this batch"),
        (
            "tests.buggy_backend",
            1,
            "gbp: internal error (a bug in gbp, please report it): KeyError: 'planner'",
        ),
    ],
)
def test_an_error_in_a_worker_ends_the_run_as_the_local_engine_ends_it(
    backend: str, code: int, line: str, tmp_path: Path
) -> None:
    folder = photos(tmp_path / "in", 3)
    Image.new("RGB", (64, 48), "white").save(folder / "p03.png")  # the stand-in fails on it
    args = ["--batch-size", "2", "-q", "--backend", backend]
    local = gbp("explain", folder, "-o", tmp_path / "local", *args)
    remote = gbp("explain", folder, "-o", tmp_path / "ray", *args, *RAY)
    for result in (local, remote):
        assert result.exit_code == code, result.output
        assert result.stderr.splitlines()[-1].startswith(line), result.stderr
    assert len(local.stdout.splitlines()) == 2  # the batch before the failing one
    assert local.stdout.replace("local", "ray") == remote.stdout  # the same inputs reported
