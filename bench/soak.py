"""Memory over a long folder: resident memory against photos done, whole processes.

    pip install -e '.[all]' && python bench/soak.py [--photos 2000] [--rows NAME ...] [--readme]

Each row explains the same folder of generated photos (seeded random weights, `--weights
random`) in a process of its own — `gbp explain` with either engine, the Python API called once
per photo, or the Ray API's callable once per batch — and reads that process's resident memory
from /proc each time it reports a photo done (the command line's JSON lines, the scripts' own
lines). The growth per photo is the least-squares slope of memory against photos done after the
first 50 (start-up, the first batches and the allocators' warm-up lie before). A row that passes
--max-rss is stopped there and says so. For the Ray engine the memory read is the model
worker's (the actor that holds the network), where a kept graph would pile up, beside the
driver's.

`--tree DIR` runs another checkout's gbp (its gbp_cli/ and backends/, this venv's packages):
the figures from before a change, on the same machine, kept as `--label before`. Results:
bench/results-soak.json (every sample), a table per label (bench/results-soak-LABEL.md), and
with --readme the README's table from `this`. Memory is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETTLE = 50  # photos before the slope is taken
PAGE = os.sysconf("SC_PAGE_SIZE")

sys.path.insert(0, str(HERE))
from timing import into_readme, machine  # noqa: E402


@dataclass(frozen=True)
class Row:
    name: str
    how: str  # "cli" | "api" | "ray-api"
    backend: str
    model: str
    methods: tuple[str, ...]
    extra: tuple[str, ...] = ()  # more `gbp explain` arguments

    def describe(self) -> str:
        what = {"cli": "gbp explain", "api": "Python API", "ray-api": "Ray API callable"}[self.how]
        if "--engine" in self.extra:
            what += " --engine ray"
        smooth = " --smooth 2" if "--smooth" in self.extra else ""
        return f"{what}, {self.backend}, {self.model}, {' + '.join(self.methods)}{smooth}"


ALL = ("guided", "vanilla", "deconv", "gradcam", "guided-gradcam")
RAY = ("--engine", "ray", "--workers", "1")
SMOOTH = ("--smooth", "2")
ROWS = {
    row.name: row
    for row in (
        Row("torch-densenet201-guided", "cli", "torch", "densenet201", ("guided",)),
        Row("torch-densenet201-gradcam", "cli", "torch", "densenet201", ("gradcam",)),
        Row("tf-densenet201-guided", "cli", "tf", "densenet201", ("guided",)),
        Row("tf-densenet201-gradcam", "cli", "tf", "densenet201", ("gradcam",)),
        Row("torch-resnet18-all", "cli", "torch", "resnet18", ALL),
        Row("torch-resnet18-smooth", "cli", "torch", "resnet18", ("guided", "gradcam"), SMOOTH),
        Row("tf-resnet18-all", "cli", "tf", "resnet18", ALL),
        Row("ray-torch-resnet18-guided", "cli", "torch", "resnet18", ("guided",), RAY),
        Row("ray-torch-resnet18-gradcam", "cli", "torch", "resnet18", ("gradcam",), RAY),
        Row("ray-tf-resnet18-gradcam", "cli", "tf", "resnet18", ("gradcam",), RAY),
        Row("api-torch-resnet18-guided", "api", "torch", "resnet18", ("guided",)),
        Row("api-torch-resnet18-gradcam", "api", "torch", "resnet18", ("gradcam",)),
        Row("api-tf-resnet18-gradcam", "api", "tf", "resnet18", ("gradcam",)),
        Row("ray-api-torch-resnet18-all", "ray-api", "torch", "resnet18", ALL),
    )
}

API_SCRIPT = """
import sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from gbp_cli.api import explain
backend, model, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
for path in sorted(Path(sys.argv[4]).glob("*.jpg")):
    explain(path, method=methods, backend=backend, model=model, weights="random")
    print(path.name, flush=True)
"""

RAY_API_SCRIPT = """
import sys, warnings
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
from gbp_cli.ray_api import Saliency
backend, model, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
explain = Saliency(methods, backend=backend, model=model, weights="random", return_maps=True)
paths = sorted(str(p) for p in Path(sys.argv[4]).glob("*.jpg"))
for start in range(0, len(paths), 8):
    out = explain({"path": np.array(paths[start:start + 8])})
    assert not any(out["error"]), out["error"]
    for path in paths[start:start + 8]:
        print(path, flush=True)
"""


def make_photos(folder: Path, count: int) -> Path:
    """`count` distinct smooth random JPEGs, 224² to 640×480, each one different."""
    from PIL import Image

    marker = folder / f".complete-{count}"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sizes = ((224, 224), (320, 240), (480, 360), (640, 480), (300, 400))
    for i in range(count):
        rng = np.random.default_rng(i)
        w, h = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        f = rng.uniform(3, 30, (3, 2))
        phase = rng.uniform(0, 6, 3)
        base = np.stack(
            [np.sin(xx / f[c, 0] + phase[c]) * np.cos(yy / f[c, 1]) for c in range(3)], -1
        )
        pixels = np.clip(base * 100 + 128 + rng.normal(0, 8, (h, w, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)
    marker.touch()
    return folder


def status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and RssShmem (shared memory it maps: Ray's object store) of a live process,
    in kB (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = (
        line.split(":", 1) for line in lines if line.startswith(("VmRSS", "VmHWM", "RssShmem"))
    )
    return {key: int(value.split()[0]) for key, value in fields}


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (Ray's raylet, its workers, …)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def model_worker(pid: int) -> int | None:
    """The Ray actor process that explains (its title names the Explainer's map_batches)."""
    for child in descendants(pid):
        try:
            title = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if title.startswith("ray::") and ("Explainer" in title or "MapWorker" in title):
            return child
    return None


@dataclass
class Measured:
    row: str
    description: str
    photos: int  # asked for
    done: int = 0
    seconds: float = 0.0
    stopped: str = ""  # why the row ended early, if it did
    samples: list[tuple[int, float]] = field(default_factory=list)  # (photos done, RSS MB)
    shared: list[tuple[int, float]] = field(default_factory=list)  # (photos done, shmem MB)
    driver: list[tuple[int, float]] = field(default_factory=list)  # Ray: the driver's RSS
    peak_mb: float = 0.0  # the measured process's VmHWM at its last sample
    slope_mb: float | None = None  # MB per photo after SETTLE
    own_slope_mb: float | None = None  # the same, less shared memory (Ray's object store)
    replaced: list[int] = field(default_factory=list)  # Ray: photos done when a new worker came
    notes: list[str] = field(default_factory=list)  # what gbp said on stderr (its first lines)
    tree: str = ""  # the commit measured


def command(row: Row, folder: Path, out: Path) -> list[str]:
    if row.how == "cli":
        args = [sys.executable, "-m", "gbp_cli", "explain", str(folder), "-o", str(out), "--json"]
        args += ["-q", "--weights", "random", "--backend", row.backend, "--model", row.model]
        args += [a for m in row.methods for a in ("--method", m)]
        return args + list(row.extra)
    script = API_SCRIPT if row.how == "api" else RAY_API_SCRIPT
    return [
        sys.executable,
        "-c",
        script,
        row.backend,
        row.model,
        ",".join(row.methods),
        str(folder),
    ]


def run_row(row: Row, folder: Path, count: int, max_rss_mb: float, env: dict) -> Measured:
    measured = Measured(row.name, row.describe(), count)
    out = Path(tempfile.mkdtemp(prefix=f"soak-{row.name}-"))
    start = time.perf_counter()
    process = subprocess.Popen(  # cwd: not the checkout, which `python -c` would put first
        command(row, folder, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        text=True, cwd=out,
    )  # fmt: skip
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True).start()
    ray = "--engine" in row.extra
    worker: int | None = None
    assert process.stdout is not None
    for line in process.stdout:
        if row.how == "cli" and json.loads(line).get("error"):
            measured.stopped = f"input failed: {json.loads(line)['error']}"
            break
        measured.done += 1
        watched = process.pid
        if ray:
            if worker is not None and not status(worker):  # gone: Ray replaced the actor
                measured.replaced.append(measured.done)
                worker = None
            worker = worker or model_worker(process.pid)
            if worker is None:
                continue
            watched = worker
            driver = status(process.pid).get("VmRSS", 0) / 1024
            measured.driver.append((measured.done, round(driver, 1)))
        now = status(watched)
        if not now:
            continue
        rss = now["VmRSS"] / 1024
        measured.samples.append((measured.done, round(rss, 1)))
        measured.shared.append((measured.done, round(now.get("RssShmem", 0) / 1024, 1)))
        measured.peak_mb = max(measured.peak_mb, now["VmHWM"] / 1024)
        if rss > max_rss_mb:
            measured.stopped = f"stopped at {rss / 1024:.1f} GB (--max-rss)"
            break
    if process.poll() is None and measured.stopped:
        process.terminate()
    code = process.wait()
    measured.seconds = time.perf_counter() - start
    measured.notes = [line.strip() for line in errors if line.startswith("gbp:")][:20]
    if code != 0 and not measured.stopped:
        measured.stopped = f"exit {code}: {''.join(errors[-3:]).strip()[-300:]}"
    shutil.rmtree(out, ignore_errors=True)
    measured.slope_mb = slope(measured.samples)
    shared = dict(measured.shared)
    measured.own_slope_mb = slope([(n, mb - shared.get(n, 0.0)) for n, mb in measured.samples])
    return measured


def slope(samples: list[tuple[int, float]], settle: int = SETTLE) -> float | None:
    """MB per photo: the least-squares slope of memory against photos done, after `settle`."""
    settled = [(n, mb) for n, mb in samples if n >= settle]
    if len(settled) < 2 or settled[-1][0] <= settled[0][0]:
        return None
    done, mb = np.array(settled, dtype=float).T
    return float(np.polyfit(done, mb, 1)[0])


def other_tree(tree: Path) -> Path:
    """Another checkout laid out as the installed package (backends/ inside gbp_cli/)."""
    staged = Path(tempfile.mkdtemp(prefix="soak-tree-"))
    shutil.copytree(tree / "gbp_cli", staged / "gbp_cli")
    shutil.copytree(tree / "backends", staged / "gbp_cli" / "backends")
    return staged


def working(row: dict) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """A row's samples (RSS, and RSS less shared memory) while its process was at work: a Ray
    model worker that has finished the model's share (it ends while writing goes on) is last
    seen on its way out, its shared pages already gone; that sample says nothing of the run."""
    shared = dict(row.get("shared") or [])
    kept = list(row["samples"])
    if row.get("replaced") and any(shared.values()):  # its last samples: shared pages all gone
        while kept and not shared.get(kept[-1][0]):
            kept.pop()
    return kept, [(n, mb - shared.get(n, 0.0)) for n, mb in kept]


def table(results: list[dict], machine: str) -> str:
    lines = [
        f"Measured by `python bench/soak.py` on {machine}; seeded random weights, generated "
        "photos (224² to 640×480 JPEG), batch 8, default formats; resident memory of the process "
        "that runs the network. For `--engine ray` that is its model worker, whose resident "
        "memory also counts the pages of Ray's object store it has touched (the last column "
        "leaves those out); it ends once the model's share is done, while the driver still "
        "reports photos as they are written, so its last sample comes before the last photo. "
        "A run stopped before 50 photos grows by its slope after 10 (marked *).\n",
        "| run | photos | memory after 50 | at the end | peak | growth per photo after 50 "
        "| the same, less shared memory |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def grown(samples: list[tuple[int, float]]) -> str:
        """The slope after 50 photos; for a run stopped before them, after 10 (marked *)."""
        found, early = slope(samples), slope(samples, 10)
        if found is None and early is not None:
            return f"{early * 1024:+.1f} kB*"
        return "–" if found is None else f"{found * 1024:+.1f} kB"

    mb = lambda v: "–" if v is None else f"{v:,.0f} MB"  # noqa: E731
    for r in results:
        samples, own = working(r)
        first = next((mb for n, mb in samples if n >= SETTLE), None)
        last = samples[-1][1] if samples else None
        done = f"{r['done']}" + (f" ({r['stopped']})" if r["stopped"] else "")
        lines.append(
            f"| {r['description']} | {done} | {mb(first)} | {mb(last)} | {mb(r['peak_mb'])} "
            f"| {grown(samples)} | {grown(own)} |"
        )
    return "\n".join(lines) + "\n"


def dumped(saved: dict) -> str:
    """The results as JSON, a row per line (each row holds thousands of samples)."""
    runs = ",\n".join(
        f"  {json.dumps(label)}: [\n" + ",\n".join(f"   {json.dumps(r)}" for r in rows) + "\n  ]"
        for label, rows in saved["runs"].items()
    )
    return f'{{\n "machine": {json.dumps(saved["machine"])},\n "runs": {{\n{runs}\n }}\n}}\n'


def commit(tree: Path) -> str:
    found = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True)  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "gbp_cli", "backends"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return found.stdout.strip() + (" + uncommitted changes" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--tree", type=Path, help="run another checkout's gbp (before a change)")
    parser.add_argument("--label", help="the results' name [this; with --tree: before]")
    parser.add_argument("--max-rss", type=float, default=12.0, help="GB; a row stops beyond")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "gbp-soak")
    parser.add_argument("--results", type=Path, default=HERE / "results-soak.json")
    parser.add_argument("--table", action="store_true", help="only redo the tables from the JSON")
    parser.add_argument("--readme", action="store_true", help="put the table of `this` in README")
    args = parser.parse_args()
    label = args.label or ("this" if args.tree is None else "before")
    saved = json.loads(args.results.read_text()) if args.results.exists() else {"runs": {}}
    if not args.table:
        folder = make_photos(args.folder / str(args.photos), args.photos)
        env = dict(os.environ)  # the installed gbp (pip install -e: this checkout)
        tree = HERE.parent
        if args.tree is not None:
            tree = args.tree.resolve()
            env["PYTHONPATH"] = str(other_tree(tree))
        results = {r["row"]: r for r in saved["runs"].get(label, [])}
        for name in args.rows:
            measured = run_row(ROWS[name], folder, args.photos, args.max_rss * 1024, env)
            measured.tree = commit(tree)
            results[name] = asdict(measured)
            growth = "–" if measured.slope_mb is None else f"{measured.slope_mb * 1024:+.1f} kB"
            print(
                f"{name}: {measured.done} photos in {measured.seconds:.0f} s, peak "
                f"{measured.peak_mb:,.0f} MB, {growth} per photo {measured.stopped}",
                flush=True,
            )
            saved["runs"][label] = [results[n] for n in ROWS if n in results]
            saved["machine"] = machine()
            args.results.write_text(dumped(saved))
    for name, rows in saved["runs"].items():
        text = table(rows, saved.get("machine", "?"))
        (HERE / f"results-soak-{name}.md").write_text(text)
        print(f"## {name}\n{text}")
    if args.readme:
        into_readme("soak", table(saved["runs"]["this"], saved["machine"]))


if __name__ == "__main__":
    main()
