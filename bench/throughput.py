"""Whole processes on the photos people have, against the floor: bench/results-throughput.md.

    pip install -e '.[all,bench]' && python bench/throughput.py [--repeat 3] [--readme]

Two folders of JPEGs made from the sample photos: a mix of 48 (224² to 1411², the sizes of
photos from the web and of ImageNet's) and 8 phone photos (4032×3024). Each case is a whole
process, timed wall to wall; the cases take turns `--repeat` times and the median counts, so
drift in a shared machine's speed touches all alike. DenseNet201 with gbp's seeded weights,
batch 8, on the CPU:

- floor: a plain script that decodes, squashes to 224², normalises and runs the forward pass and
  the plain input gradient (channels-last, as gbp), writing nothing — the least any tool does;
- gbp: `gbp explain DIR` with its default formats, and with `--format npy`, and Grad-CAM's
  default overlay (`--method gradcam`);
- captum: a careful Captum script (GuidedBackprop at batch 8, one 224² PNG per photo).

Then, with the stand-in backend that computes nothing (`--backend tests.fake_backend`), the CPU
cost of one photo outside the model, stage by stage, on one core (`time.process_time`), and what
that lets a 16-core host feed an accelerator. Ratios are between rows of the same run; timing
lives here, never in the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from timing import machine, publish  # noqa: E402

MIX_SIZES = ((224, 224), (500, 375), (375, 500), (640, 480), (800, 600), (1024, 768),
             (1411, 1058), (1058, 1411))  # fmt: skip
PHONE = (4032, 3024)

# Both scripts' start: DenseNet201 with gbp's seeded weights, channels-last, frozen; ImageNet's
# normalisation.
NETWORK = """
import sys
from pathlib import Path
import numpy as np, torch, torchvision
from PIL import Image
from gbp_cli.backends.twins.densenet import random_weights
torch.manual_seed(0)
model = torchvision.models.densenet201().eval()
state = random_weights("densenet201", 1000, 0)
model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
model = model.to(memory_format=torch.channels_last)
for p in model.parameters():
    p.requires_grad_(False)
mean = np.array([0.485, 0.456, 0.406], np.float32)
std = np.array([0.229, 0.224, 0.225], np.float32)
"""

FLOOR = (
    NETWORK
    + """
paths = sorted(Path(sys.argv[1]).glob("*.jpg"))
for start in range(0, len(paths), 8):
    batch = []
    for path in paths[start:start + 8]:
        with Image.open(path) as image:
            view = image.convert("RGB").resize((224, 224), Image.BILINEAR)
        batch.append((np.asarray(view, np.float32) / 255 - mean) / std)
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).requires_grad_(True)
    logits = model(x)
    torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), x)
"""
)

CAPTUM = (
    NETWORK
    + """
from captum.attr import GuidedBackprop
explainer = GuidedBackprop(model)
paths = sorted(Path(sys.argv[1]).glob("*.jpg"))
out = Path(sys.argv[2])
for start in range(0, len(paths), 8):
    names, batch = [], []
    for path in paths[start:start + 8]:
        with Image.open(path) as image:
            view = image.convert("RGB").resize((224, 224), Image.BILINEAR)
        batch.append((np.asarray(view, np.float32) / 255 - mean) / std)
        names.append(path.stem)
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        targets = model(x).argmax(1)
    maps = explainer.attribute(x, target=targets).permute(0, 2, 3, 1).numpy()
    for name, g in zip(names, maps):
        picture = np.clip((g - g.mean()) / (g.std() + 1e-12) * 0.1 + 0.5, 0, 1)
        Image.fromarray((picture * 255).astype(np.uint8)).save(out / f"{name}.png")
"""
)


def jpegs(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    """The sample photos resized to each size (cycling through them), JPEG quality 90, with a
    little noise so that a large one compresses like a camera's photo, not a smooth upscale."""
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    samples = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".png", ".jpg"))
    rng = np.random.default_rng(0)
    for i, size in enumerate(sizes):
        with Image.open(samples[i % len(samples)]) as image:
            photo = image.convert("RGB").resize(size, Image.BICUBIC)
        noisy = np.asarray(photo, np.float32) + rng.normal(0, 4, (size[1], size[0], 3))
        picture = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        picture.save(folder / f"{i:03d}.jpg", quality=90)
    (folder / ".complete").touch()
    return folder


def whole(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One whole process: wall seconds, and its own peak RSS in MB (from wait4's rusage)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]}… exit {process.returncode}: {errors[-800:]!r}")
    return seconds, usage.ru_maxrss / 1024


def gbp(folder: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gbp_cli", "explain", str(folder), "-o", str(out), "-q",
            "--weights", "random", "--overwrite", *extra]  # fmt: skip


def cases(folder: Path, scratch: Path) -> dict[str, list[str]]:
    out = scratch / "out"
    return {
        "floor": [sys.executable, "-c", FLOOR, str(folder)],
        "gbp (default: color)": gbp(folder, out / "color"),
        "gbp --format npy": gbp(folder, out / "npy", "--format", "npy"),
        "gbp --method gradcam (overlay)": gbp(folder, out / "cam", "--method", "gradcam"),
        "captum script": [sys.executable, "-c", CAPTUM, str(folder), str(out / "captum")],
    }


def all_cores(mix: Path, phone: Path, scratch: Path) -> dict[str, list[str]]:
    """Item 5: the CPU side in worker processes (engines.helpers). With the stand-in backend it
    sets the pace, so the pool starts by itself (after PACED_BATCHES batches: not in a run of
    one batch) or forced; DenseNet201 sets the pace, so none starts unless
    forced (GBP_HELPER_PROCESSES=2), which shows what the workers take from the model's threads.
    `env` execs the command, so its peak memory is still measured."""
    out = scratch / "out"
    alone = ["env", "GBP_HELPER_PROCESSES=0"]
    pool = ["env", "-u", "GBP_HELPER_PROCESSES"]
    forced = ["env", "GBP_HELPER_PROCESSES=2"]
    stand_in = ("--backend", "tests.fake_backend")
    return {
        "stand-in, mix: one process": alone + gbp(mix, out / "a", *stand_in),
        "stand-in, mix: by the pace (default)": pool + gbp(mix, out / "b", *stand_in),
        "stand-in, mix: 2 workers forced": forced + gbp(mix, out / "h", *stand_in),
        "stand-in, phone: one process": alone + gbp(phone, out / "c", *stand_in),
        "stand-in, phone: 2 workers forced": forced + gbp(phone, out / "d", *stand_in),
        "DenseNet201, mix: one process": alone + gbp(mix, out / "e"),
        "DenseNet201, mix: by the pace (default)": pool + gbp(mix, out / "f"),
        "DenseNet201, mix: 2 workers forced": forced + gbp(mix, out / "g"),
    }


def turn_about(commands: dict[str, list[str]], repeat: int, scratch: Path) -> dict[str, dict]:
    """Each command once to warm caches, then `repeat` rounds in turn; the median wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (scratch / "out" / "captum").mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, float] = {}
    for name, command in commands.items():
        _, peaks[name] = whole(command, env)
    for _ in range(repeat):
        for name, command in commands.items():
            seconds, peak = whole(command, env)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
    return {n: {"seconds": statistics.median(t), "runs": t, "peak_mb": peaks[n]}
            for n, t in times.items()}  # fmt: skip


def output_sizes(scratch: Path) -> dict[str, float]:
    """The largest map PNG of each gbp format, in MB."""
    sizes = {}
    for name in ("color", "cam"):
        found = [p.stat().st_size for p in (scratch / "out" / name).rglob("*.png")]
        sizes[name] = max(found) / 1e6 if found else float("nan")
    return sizes


def stage_costs(folder: Path, fmt: str, method: str) -> dict[str, float]:
    """CPU ms of one core per photo, stage by stage, through gbp's own functions with the
    stand-in backend (the model costs nothing): find, read, hash, decode, preprocess, the
    backend's (empty) pass, render, encode, write."""
    from gbp_cli.backends import WeightsSpec, open_backend
    from gbp_cli.fingerprints import sha256_bytes
    from gbp_cli.inputs import find, preprocess
    from gbp_cli.outputs.atomic import write_atomic
    from gbp_cli.outputs.naming import PHOTO_FORMATS
    from gbp_cli.render import encode as encoding
    from gbp_cli.render import pictures
    from gbp_cli.saliency.maps import explain_maps
    from gbp_cli.settings import Rendering

    backend = open_backend("tests.fake_backend", WeightsSpec("random"), "cpu")
    spent: dict[str, float] = dict.fromkeys(
        ("find", "read", "hash", "decode", "preprocess", "render", "encode", "write"), 0.0
    )
    out = Path(tempfile.mkdtemp(prefix="gbp-stages-"))

    @contextlib.contextmanager
    def clock(stage: str) -> Iterator[None]:
        start = time.process_time()
        yield
        spent[stage] += time.process_time() - start

    with clock("find"):
        sources = list(find.discover((str(folder),)))
    keep = fmt in PHOTO_FORMATS
    for source in sources:
        with clock("read"):
            data = preprocess.read_input(source.path)
        with clock("hash"):
            sha256_bytes(data)
        with clock("decode"):
            image = preprocess.decode(data)
        with clock("preprocess"):
            prepared = preprocess.prepare_image(image, "squash", keep, bound=Rendering.max_size)
        _, maps = explain_maps(backend, prepared.array[None], [method])
        with clock("render"):
            picture = pictures.render(
                fmt, maps[method][0, 0], prepared.geometry, prepared.photo, Rendering()
            )
        with clock("encode"):
            encoded = encoding.png_bytes(np.asarray(picture), {})
        with clock("write"):
            write_atomic(out / f"{source.stem.name}.png", encoded)
    shutil.rmtree(out, ignore_errors=True)
    return {stage: 1000 * seconds / len(sources) for stage, seconds in spent.items()}


def png_settings(folder: Path) -> dict[str, dict[str, list[float]]]:
    """Pillow's PNG settings, and gbp's own writer, on gbp's pictures of a photo at the default
    size: ms to encode (one core) and MB, per format — what picks the writer gbp uses."""
    import zlib

    from gbp_cli.backends import ModelSpec, WeightsSpec, open_backend
    from gbp_cli.inputs import preprocess
    from gbp_cli.render import pictures
    from gbp_cli.render.png import encode_png
    from gbp_cli.saliency.maps import explain_maps
    from gbp_cli.settings import Rendering

    spec = ModelSpec("efficientnet_lite0")  # trained: maps as noisy as real ones
    backend = open_backend("torch", WeightsSpec("imagenet"), "cpu", model=spec)
    path = sorted(folder.glob("*.jpg"))[1]  # chelsea
    pre = backend.info.preprocessing
    prepared = preprocess.prepare(path, "squash", True, pre, bound=Rendering.max_size)
    _, maps = explain_maps(backend, prepared.array[None], ["guided", "gradcam"])
    settings = {"zlib 1": (1, zlib.Z_DEFAULT_STRATEGY), "zlib 6": (6, zlib.Z_DEFAULT_STRATEGY),
                "Huffman only": (1, zlib.Z_HUFFMAN_ONLY), "RLE": (1, zlib.Z_RLE)}  # fmt: skip
    found: dict[str, dict[str, list[float]]] = {}
    for fmt, method in (("color", "guided"), ("heatmap", "guided"), ("overlay", "gradcam")):
        picture = pictures.render(
            fmt, maps[method][0, 0], prepared.geometry, prepared.photo, Rendering()
        )
        for name, (level, strategy) in settings.items():
            start, runs = time.process_time(), 5
            for _ in range(runs):
                buffer = io.BytesIO()
                picture.save(buffer, "PNG", compress_level=level, compress_type=strategy)
            ms = 1000 * (time.process_time() - start) / runs
            found.setdefault(fmt, {})[name] = [ms, len(buffer.getvalue()) / 1e6]
        start, runs = time.process_time(), 5
        for _ in range(runs):
            data = encode_png(np.asarray(picture))
        ms = 1000 * (time.process_time() - start) / runs
        found[fmt]["gbp's writer (Sub, Huffman only)"] = [ms, len(data) / 1e6]
    return found


def table(results: dict) -> str:
    mix, phone = results["mix"], results["phone"]
    floor = mix["floor"]["seconds"]
    lines = [
        f"Measured by `python bench/throughput.py` on {results['machine']}, {results['date']}: "
        "DenseNet201 with gbp's seeded weights, batch 8, CPU; whole processes, median of "
        f"{results['repeat']} turn-about runs.\n",
        "| folder | case | seconds | / floor | peak RSS |",
        "|---|---|---:|---:|---:|",
    ]
    for name, group in (("48 mixed, 224²–1411²", mix), ("8 phone, 4032×3024", phone)):
        base = group["floor"]["seconds"]
        for case, row in group.items():
            lines.append(
                f"| {name} | {case} | {row['seconds']:.1f} | {row['seconds'] / base:.2f}× "
                f"| {row['peak_mb']:,.0f} MB |"
            )
    npy = phone["gbp --format npy"]["seconds"]
    color = mix["gbp (default: color)"]["seconds"]
    captum = mix["captum script"]["seconds"] / color
    phone_peak = max(r["peak_mb"] for k, r in phone.items() if k.startswith("gbp")) / 1024
    overlay = phone["gbp --method gradcam (overlay)"]["seconds"]
    lines += [
        "",
        "| target | measured | goal | met |",
        "|---|---:|---|---|",
        _target("whole process / floor, 48 mixed", color / floor, 1.10),
        f"| Captum script / gbp, 48 mixed (speed-up) | {captum:.2f}× | > 1 | "
        f"{'yes' if captum > 1 else '**no**'} |",
        _target("phone: color / npy", phone["gbp (default: color)"]["seconds"] / npy, 1.15),
        _target("phone: Grad-CAM overlay / npy", overlay / npy, 1.30),
        _target("phone: peak RSS, GB", phone_peak, 3.0, "GB"),
        _target("phone: a map's PNG, MB", results["png_mb"]["color"], 1.5, "MB"),
    ]
    cores = results.get("cores")
    if cores:
        t = {k: v["seconds"] for k, v in cores.items()}
        lines += [
            "",
            "All cores (the machine above): decoding, rendering and encoding in worker "
            "processes once the model waits for them (whole processes, median seconds):",
            "",
            "| stand-in backend | one process | by the pace (default) | 2 workers forced |",
            "|---|---:|---:|---:|",
        ]
        for name, folder in (
            ("48 mixed", "mix"),
            ("8 phone (one batch: no pool by pace)", "phone"),
        ):
            one = t[f"stand-in, {folder}: one process"]
            paced = t.get(f"stand-in, {folder}: by the pace (default)")
            many = t[f"stand-in, {folder}: 2 workers forced"]
            shown = "–" if paced is None else f"{paced:.2f} s ({one / paced:.2f}×)"
            lines.append(f"| {name} | {one:.2f} s | {shown} | {many:.2f} s ({one / many:.2f}×) |")
        one = t["DenseNet201, mix: one process"]
        lines += [
            "",
            "| DenseNet201, 48 mixed | seconds | / one process |",
            "|---|---:|---:|",
            f"| one process (no workers) | {one:.1f} | 1.00× |",
            f"| by the pace, the default (the model sets it: no pool) "
            f"| {t['DenseNet201, mix: by the pace (default)']:.1f} "
            f"| {t['DenseNet201, mix: by the pace (default)'] / one:.2f}× |",
            f"| 2 workers forced beside the model's threads "
            f"| {t['DenseNet201, mix: 2 workers forced']:.1f} "
            f"| {t['DenseNet201, mix: 2 workers forced'] / one:.2f}× |",
        ]
    lines += ["", "CPU of one core per photo outside the model (stand-in backend), ms:", ""]
    stages = list(next(iter(results["stages"].values())))
    lines.append("| photos, format | " + " | ".join(stages) + " | total | goal |")
    lines.append("|---|" + "---:|" * (len(stages) + 2))
    goals = {"mix, color": 12, "mix, overlay": 25, "phone, color": 40, "phone, overlay": 40}
    for name, costs in results["stages"].items():
        total = sum(costs.values())
        cells = " | ".join(f"{costs[s]:.1f}" for s in stages)
        met = "" if total <= goals[name] else " **missed**"
        lines.append(f"| {name} | {cells} | {total:.1f} | ≤ {goals[name]}{met} |")
    settings = list(next(iter(results["png"].values())))
    lines += [
        "",
        "PNG settings on a phone photo's pictures at the default size, the maps of the trained",
        "EfficientNet-Lite0 (ms of one core, MB):",
        "",
        "| format | " + " | ".join(settings) + " |",
        "|---|" + "---:|" * len(settings),
    ]
    for fmt, row in results["png"].items():
        cells = " | ".join(f"{ms:.0f} ms, {mb:.2f} MB" for ms, mb in row.values())
        lines.append(f"| {fmt} | {cells} |")
    feed = 16 * 1000 / sum(results["stages"]["mix, color"].values())
    lines.append(
        f"\nAt that cost a 16-core host feeds an accelerator about {feed:,.0f} ImageNet-size "
        "photos per second (`color`), if every core works on the CPU side."
    )
    return "\n".join(lines) + "\n"


def _target(what: str, value: float, goal: float, unit: str = "×") -> str:
    shown = f"{value:.2f}{unit}" if unit == "×" else f"{value:.2f} {unit}"
    return f"| {what} | {shown} | ≤ {goal:g}{'×' if unit == '×' else ' ' + unit} | " + (
        "yes |" if value <= goal else "**no** |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "gbp-photos")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU-side figures")
    args = parser.parse_args()
    mix_sizes = [MIX_SIZES[i % len(MIX_SIZES)] for i in range(48)]
    mix = jpegs(args.folder / "mix", mix_sizes)
    phone = jpegs(args.folder / "phone", [PHONE] * 8)
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                     "repeat": args.repeat}  # fmt: skip
    for name, folder in (("mix", mix), ("phone", phone)) if not args.cpu_only else ():
        scratch = Path(tempfile.mkdtemp(prefix=f"gbp-throughput-{name}-"))
        results[name] = turn_about(cases(folder, scratch), args.repeat, scratch)
        if name == "phone":
            results["png_mb"] = output_sizes(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        print(name, json.dumps({k: round(v["seconds"], 2) for k, v in results[name].items()}))
    if not args.cpu_only:
        scratch = Path(tempfile.mkdtemp(prefix="gbp-throughput-cores-"))
        results["cores"] = turn_about(all_cores(mix, phone, scratch), args.repeat, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        print("cores", json.dumps({k: round(v["seconds"], 2) for k, v in results["cores"].items()}))
    sys.path.insert(0, str(ROOT))
    results["stages"] = {
        f"{name}, {fmt}": stage_costs(folder, fmt, method)
        for name, folder in (("mix", mix), ("phone", phone))
        for fmt, method in (("color", "guided"), ("overlay", "gradcam"))
    }
    results["png"] = png_settings(phone)
    if args.cpu_only:
        print(json.dumps({k: results[k] for k in ("stages", "png")}, indent=1))
        return
    publish("throughput", results, table(results), args.readme)


if __name__ == "__main__":
    main()
