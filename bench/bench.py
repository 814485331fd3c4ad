"""gbp against its baselines and peers, in one run on one machine; writes a table, a chart, JSON.

    pip install -e '.[all,bench]' && python bench/bench.py [--readme] [--device cpu|cuda]
    python bench/bench.py --tf-modes     # the first-call and steady costs behind --tf-mode auto

Each case runs in its own process (bench/cases.py): the median of --repeat timed calls after a
warm-up, in ms per image, and that process's peak RSS. Ratios are between rows of the same run.
Timing lives here, never in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import LABELS, chart, markdown  # noqa: E402  (bench/report.py)
from timing import into_readme  # noqa: E402  (bench/timing.py)

ROOT = HERE.parent
BARE = {  # the least a script can do: import, build DenseNet201, take one input gradient
    "torch": "import torch, torchvision\n"
    "m = torchvision.models.densenet201().eval()\n"
    "x = torch.rand(1, 3, 224, 224, requires_grad=True)\n"
    "torch.autograd.grad(m(x).max(), x)\n",
    "tf": "import tensorflow as tf, keras\n"
    "m = keras.applications.DenseNet201(weights=None, classifier_activation=None)\n"
    "x = tf.random.uniform((1, 224, 224, 3))\n"
    "with tf.GradientTape() as t:\n    t.watch(x)\n    s = tf.reduce_max(m(x))\n"
    "t.gradient(s, x)\n",
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.+)", text).group(1).strip()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def run_case(case: str, batch: int, precision: str, device: str, repeat: int) -> dict:
    command = [
        sys.executable,
        str(HERE / "cases.py"),
        case,
        str(batch),
        precision,
        device,
        str(repeat),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        print(f"  {case} batch {batch} {precision}: FAILED ({tail[0]})", file=sys.stderr)
        return {"case": case, "batch": batch, "precision": precision, "error": tail[0]}
    result = json.loads(lines[-1])
    label = LABELS.get(case, case)
    ms = result["ms_per_image"]
    print(f"  {label:40s} batch {batch} {precision}: {ms:7.1f} ms/image", file=sys.stderr)
    return result


def wall(command: list[str], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, cwd=ROOT, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gbp_explain(inputs: Path, backend: str, device: str, *extra: str) -> list[str]:
    """The command line for `gbp explain` on seeded random weights."""
    return [
        sys.executable,
        "-m",
        "gbp_cli",
        "explain",
        str(inputs),
        "--backend",
        backend,
        "--weights",
        "random",
        "--device",
        device,
        *extra,
    ]


def cold_start(backend: str, device: str, folder: Path) -> dict:
    """`gbp explain` on one photo, start to finish, against the bare-minimum script."""
    photo = ROOT / "sample_images" / "chelsea.png"
    gbp = gbp_explain(photo, backend, device, "-q", "--overwrite", "-o", str(folder))
    ours, bare = wall(gbp), wall([sys.executable, "-c", BARE[backend]])
    print(f"  cold start {backend}: gbp {ours:.2f} s, bare minimum {bare:.2f} s", file=sys.stderr)
    return {"backend": backend, "gbp_s": ours, "bare_s": bare, "ratio": ours / bare}


def folder_throughput(backend: str, device: str, folder: Path) -> dict:
    """End-to-end images/s over 64 photos against the compute-only rate, from gbp's own summary."""
    photos = folder / "photos"
    if not photos.exists():
        samples = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix != ".md")
        for i in range(64):
            photos.mkdir(exist_ok=True)
            sample = samples[i % len(samples)]
            shutil.copy(sample, photos / f"{i:02d}{sample.suffix}")
    out = folder / f"out-{backend}"
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        gbp_explain(photos, backend, device, "-o", str(out)),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    summary = done.stderr.strip().splitlines()[-1]
    end_to_end, compute = (float(v) for v in re.findall(r"([\d.]+) images/s", summary))
    print(
        f"  64 photos {backend}: {end_to_end:.2f} images/s end to end, {compute:.2f} compute",
        file=sys.stderr,
    )
    return {
        "backend": backend,
        "end_to_end": end_to_end,
        "compute": compute,
        "ratio": end_to_end / compute,
    }


def tf_modes(device: str, repeat: int) -> None:
    """The numbers behind `--tf-mode auto` (backends/tf_backend.py's COST): per mode and batch
    size, what the first call costs beyond its own work, and the steady ms per image."""
    for batch in (1, 8):
        for case in ("gbp-tf-eager", "gbp-tf", "gbp-tf-xla"):
            row = run_case(case, batch, "fp32", device, repeat)
            if "error" not in row:
                extra = row["first_call_s"] - row["ms_per_image"] * batch / 1000
                print(
                    f"{case:13s} batch {batch}: first call +{extra:.1f} s, "
                    f"then {row['ms_per_image']:.0f} ms/image"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--readme", action="store_true", help="put the table into README.md")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--skip", nargs="*", default=[], help="cases to leave out")
    parser.add_argument("--report-only", action="store_true", help="redraw from results.json")
    parser.add_argument(
        "--tf-modes", action="store_true", help="only the TF modes' first-call and steady costs"
    )
    args = parser.parse_args()
    if args.tf_modes:
        tf_modes(args.device, args.repeat)
        return
    suffix = "" if args.device == "cpu" else f"-{args.device}"
    if args.report_only:
        publish(json.loads((args.out / f"results{suffix}.json").read_text()), args, suffix)
        return
    plan = [(c, b, "fp32") for b in (1, 8) for c in LABELS if not (c == "gbp-tf-xla" and b == 8)]
    plan += [("gbp-torch", 8, "bf16"), ("gbp-tf", 8, "bf16")]
    plan += [("paired-torch", 1, "fp32"), ("paired-torch", 8, "fp32")]
    plan = [p for p in plan if p[0] not in args.skip]
    print(f"gbp bench on {machine()}", file=sys.stderr)
    rows = [run_case(c, b, p, args.device, args.repeat) for c, b, p in plan]
    with tempfile.TemporaryDirectory(prefix="gbp-bench-") as scratch:
        backends = [b for b in ("torch", "tf") if not (b == "tf" and "gbp-tf" in args.skip)]
        cold = [cold_start(b, args.device, Path(scratch)) for b in backends]
        folder = [folder_throughput(b, args.device, Path(scratch)) for b in backends]
    results = {
        "machine": machine(),
        "device": args.device,
        "python": platform.python_version(),
        "rows": rows,
        "cold_start": cold,
        "folder": folder,
        "date": time.strftime("%Y-%m-%d"),
    }
    publish(results, args, suffix)


def publish(results: dict, args: argparse.Namespace, suffix: str) -> None:
    """results.json, results.md, results.png, and (with --readme) the table in README.md."""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"results{suffix}.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    (args.out / f"results{suffix}.md").write_text(table)
    chart(results, args.out / f"results{suffix}.png")
    print(table)
    if args.readme:
        into_readme("bench", table)


if __name__ == "__main__":
    main()
