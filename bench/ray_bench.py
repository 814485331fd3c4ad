"""`gbp explain --engine ray` against `--engine local` on one machine: bench/results-ray.json.

    pip install -e '.[torch,ray]' && python bench/ray_bench.py [--photos 64] [--repeat 3]

Both engines explain the same folder of copies of sample_images/ (DenseNet201, seeded random
weights, guided, batch 8, `--format npy`), each run in its own process. Every run also gets a
small folder, so that the per-image cost (the slope between the two) is apart from the fixed
cost of starting (Python, the model, and for Ray: Ray itself, a worker's probe of the model,
the actors); the fastest of --repeat runs counts, the one least disturbed by other work on
the machine (Ray runs its workers at nice 15, so they yield to it). It also times a bare local
Ray (ray.init, one task, shutdown), and compares the two engines' .npy maps byte for byte.
Timing lives here, never in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMALL = 16
BARE_RAY = (
    "import logging, time\nt = time.perf_counter()\nimport ray\n"
    "ray.init(num_cpus={cpus}, include_dashboard=False, logging_level=logging.ERROR)\n"
    "up = time.perf_counter() - t\nray.get(ray.remote(lambda: 1).remote())\n"
    "task = time.perf_counter() - t\nray.shutdown()\n"
    "print(up, task, time.perf_counter() - t)\n"
)


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def photos(folder: Path, count: int) -> Path:
    """`count` copies of the sample photos, under distinct names (their bytes are the same)."""
    samples = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".png", ".jpg"))
    folder.mkdir(parents=True)
    for i in range(count):
        source = samples[i % len(samples)]
        shutil.copy(source, folder / f"{i:03d}-{source.name}")
    return folder


def gbp(folder: Path, out: Path, engine: str) -> dict:
    """One `gbp explain` in its own process: wall seconds, and what its summary line says."""
    command = ["gbp", "explain", str(folder), "-o", str(out), "--weights", "random"]
    command += ["--batch-size", "8", "--format", "npy", "--engine", engine]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    summary = done.stderr.strip().splitlines()[-1]
    return {"wall_s": round(wall, 3), "summary": summary}


def bare_ray(cpus: int) -> dict:
    code = BARE_RAY.format(cpus=cpus)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    up, task, total = (round(float(x), 2) for x in done.stdout.split())
    return {"init_s": up, "first_task_s": task, "with_shutdown_s": total}


def identical(a: Path, b: Path) -> dict:
    """The two engines' maps: how many .npy files are byte-identical, and the worst difference."""
    names = sorted(p.relative_to(a) for p in a.rglob("*.npy"))
    same = sum((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    worst = max(float(np.abs(np.load(a / n) - np.load(b / n)).max()) for n in names)
    return {"npy_files": len(names), "byte_identical": same, "max_abs_difference": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gbp-ray-bench-"))
    load_before = os.getloadavg()[0]  # other work on the machine skews everything: it is noted
    try:
        big, small = photos(work / "big", args.photos), photos(work / "small", SMALL)
        runs: dict[str, dict[str, list[dict]]] = {"local": {}, "ray": {}}
        for r in range(args.repeat):
            for engine in ("local", "ray"):  # turn about, so drift hits both
                for name, folder in (("small", small), ("big", big)):
                    out = work / f"out-{engine}-{name}-{r}"
                    runs[engine].setdefault(name, []).append(gbp(folder, out, engine))
        engines = {}
        for engine, sizes in runs.items():
            big_s = min(x["wall_s"] for x in sizes["big"])  # the least disturbed run of each
            small_s = min(x["wall_s"] for x in sizes["small"])
            per_image = (big_s - small_s) / (args.photos - SMALL)
            engines[engine] = {
                "runs": sizes,
                "images_per_s_end_to_end": round(args.photos / big_s, 2),
                "images_per_s_marginal": round(1 / per_image, 2),
                "fixed_s": round(small_s - SMALL * per_image, 2),
            }
        local, ray = engines["local"], engines["ray"]
        result = {
            "command": "python bench/ray_bench.py " + " ".join(sys.argv[1:]),
            "machine": f"{cpu()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"),
            "ray": __import__("ray").__version__,
            "photos": args.photos,
            "engines": engines,
            "ratio_marginal": round(
                ray["images_per_s_marginal"] / local["images_per_s_marginal"], 3
            ),
            "ratio_end_to_end": round(
                ray["images_per_s_end_to_end"] / local["images_per_s_end_to_end"], 3
            ),
            "ray_startup_extra_s": round(ray["fixed_s"] - local["fixed_s"], 2),
            "bare_local_ray": bare_ray(os.cpu_count() or 1),
            "maps": identical(work / "out-local-big-0", work / "out-ray-big-0"),
            "load_average_1min": [load_before, os.getloadavg()[0]],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (HERE / "results-ray.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "engines"}, indent=2))


if __name__ == "__main__":
    main()
