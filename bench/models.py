"""The model table: gbp against the plain input gradient and Captum, per network, at batch 8.

    pip install -e '.[bench]' && python bench/models.py [--repeat 3] [--readme]

Each network runs in its own process. In it, gbp's pass (guided, or vanilla where guided is not
defined), the plain input gradient on the very same module (the floor: the same arithmetic) and
Captum's GuidedBackprop are timed turn about, `--repeat` times after a warm-up, and the median
ms per image reported; the ratio to the floor is of those medians. Captum overrides only nn.ReLU
modules, so beside its time stands how far its "guided" map lies from gbp's (relative L2, the
sample photo chelsea.png). Seeded random weights, except EfficientNet-Lite0's trained ones.
Where the TensorFlow backend has the same network, its guided pass is timed too (own process).
Writes bench/results-models.json and .md; --readme puts the table into README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from gbp_cli.backends import Backend, WeightsSpec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from timing import into_readme, turn_about  # noqa: E402  (bench/timing.py)

MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg16",
    "vgg19",
    "mobilenet_v2",
    "efficientnet_b0",
    "convnext_tiny",
    "densenet201",
    "efficientnet_lite0",
)
BATCH = 8


def _weights(name: str) -> WeightsSpec:
    from gbp_cli.backends import WeightsSpec

    return WeightsSpec("imagenet" if name == "efficientnet_lite0" else "random")


def _photos(backend: Backend, batch: int) -> np.ndarray:
    import numpy as np

    from gbp_cli.inputs.preprocess import prepare

    paths = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".png", ".jpg"))
    pre = backend.info.preprocessing
    return np.stack([prepare(paths[i % len(paths)], "squash", pre=pre).array for i in range(batch)])


def torch_case(name: str, repeat: int) -> dict:
    """gbp, the floor and Captum on one torch module, timed turn about."""
    import numpy as np
    import torch

    from gbp_cli.backends import open_backend
    from gbp_cli.backends.base import ModelSpec

    backend = open_backend("torch", _weights(name), "cpu", model=ModelSpec(name))
    method = "vanilla" if backend.info.unruled else "guided"
    x = _photos(backend, BATCH)
    source = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        targets = backend.model(source).argmax(1)

    def floor() -> object:
        leaf = source.detach().requires_grad_(True)
        logits = backend.model(leaf)
        return torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), leaf)[0]

    steps = {
        "gbp": lambda: backend.explain(x, [method], targets=targets.numpy()[:, None]),
        "floor": floor,
    }
    captum_map = None
    if method == "guided":
        from captum.attr import GuidedBackprop

        explainer = GuidedBackprop(backend.model)
        steps["captum"] = lambda: explainer.attribute(source, target=targets)
    ms = turn_about(steps, repeat, BATCH)
    result = {
        "model": name,
        "method": method,
        "activations": backend.info.activations,
        "unruled": list(backend.info.unruled),
        "input": backend.info.input_size,
        "gbp_ms": ms["gbp"],
        "floor_ms": ms["floor"],
        "ratio": ms["gbp"] / ms["floor"],
        "captum_ms": ms.get("captum"),
    }
    if "captum" in steps:  # chelsea.png is the second sample photo, sorted
        ours = backend.explain(x[1:2], ["guided"], targets=targets.numpy()[1:2, None])
        ours_map = ours.saliency["guided"][0, 0]
        captum_map = steps["captum"]()[1].permute(1, 2, 0).detach().numpy()
        distance = np.linalg.norm(captum_map - ours_map) / np.linalg.norm(ours_map)
        result["captum_relative_l2"] = float(distance)
    return result


def tf_case(name: str, repeat: int) -> dict:
    """gbp's TensorFlow guided pass on the same network, if the TF backend has it, and its
    vanilla pass beside it (the same graph with the ordinary rule: what the override costs)."""
    from gbp_cli.backends import open_backend
    from gbp_cli.backends.base import ModelSpec

    backend = open_backend("tf", _weights(name), "cpu", mode="graph", model=ModelSpec(name))
    x = _photos(backend, BATCH)
    backend.plan(1000, BATCH)
    steps = {m: functools.partial(backend.explain, x, [m]) for m in ("guided", "vanilla")}
    ms = turn_about(steps, repeat, BATCH)
    return {"model": name, "tf_ms": ms["guided"], "tf_vanilla_ms": ms["vanilla"]}


def run(kind: str, name: str, repeat: int) -> dict:
    command = [sys.executable, __file__, "--case", kind, name, "--repeat", str(repeat)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {kind} {name}: FAILED ({tail})", file=sys.stderr)
        return {"model": name, f"{kind}_error": tail}
    print(f"  {kind} {name}: {lines[-1]}", file=sys.stderr)
    return json.loads(lines[-1])


def twin(name: str) -> bool:
    """Whether the TF backend holds the very same network (a DenseNet or a replica)."""
    from gbp_cli.backends.twins.densenet import BLOCKS
    from gbp_cli.backends.twins.registry import load_all

    return name in BLOCKS or name in load_all()


def parity_figures(name: str) -> str:
    """`gbp parity`'s largest guided and vanilla figures in float32, and its largest in float64,
    from bench/parity-NAME.txt (python bench/parity.py), for a network identical in both."""
    from parity import worst

    kept = HERE / f"parity-{name}.txt"
    if not twin(name):
        return "no"
    if not kept.is_file():
        return "yes (parity not measured)"
    fp32, _, fp64 = kept.read_text().strip().partition("\n\n")
    single, double = worst(fp32.splitlines()), worst(fp64.splitlines())
    largest = max(double[k] for k in double if k not in ("ok", "torch", "tf"))
    return f"yes: {single['guided']:.0e} / {single['vanilla']:.0e} / {largest:.0e}"


def table(rows: list[dict]) -> str:
    head = (
        "| model | overridden | other activations | input | gbp ms/image (method) | floor | "
        "gbp / floor | Captum ms/image | Captum's map vs gbp's | TF guided ms/image | TF / torch "
        "| identical in TF: parity guided / vanilla / fp64 |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        ruled = ", ".join(f"{n} {k}" for k, n in r["activations"].items() if k not in r["unruled"])
        other = ", ".join(f"{r['activations'][k]} {k}" for k in r["unruled"]) or "–"
        captum = f"{r['captum_ms']:.0f}" if r.get("captum_ms") else "–"
        distance = f"{r['captum_relative_l2']:.3f}" if "captum_relative_l2" in r else "–"
        tf = f"{r['tf_ms']:.0f}" if r.get("tf_ms") else "–"
        tf_ratio = f"{r['tf_ms'] / r['gbp_ms']:.2f}×" if r.get("tf_ms") else "–"
        lines.append(
            f"| {r['model']} | {ruled or '–'} | {other} | {r['input']} | "
            f"{r['gbp_ms']:.0f} ({r['method']}) | {r['floor_ms']:.0f} | {r['ratio']:.2f}× | "
            f"{captum} | {distance} | {tf} | {tf_ratio} | {parity_figures(r['model'])} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--case", nargs=2, metavar=("KIND", "MODEL"))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--tf", action="store_true", help="also time the TF backend's twins")
    parser.add_argument("--table", action="store_true", help="redo the table from the JSON")
    args = parser.parse_args()
    if args.case:
        kind, name = args.case
        print(json.dumps((torch_case if kind == "torch" else tf_case)(name, args.repeat)))
        return
    rows = []
    if args.table:
        rows = json.loads((HERE / "results-models.json").read_text())
        args.models = []
    for name in args.models:
        row = run("torch", name, args.repeat)
        if "torch_error" in row:
            continue
        if args.tf and twin(name):
            row.update({k: v for k, v in run("tf", name, args.repeat).items() if k != "model"})
        rows.append(row)
    kept = HERE / "results-models.json"
    if not args.table and kept.is_file():  # rows not rerun stay as measured, TF figures too
        earlier = {row["model"]: row for row in json.loads(kept.read_text())}
        for row in rows:
            old = earlier.pop(row["model"], {})
            row.update({k: v for k, v in old.items() if k.startswith("tf_") and k not in row})
        order = {name: i for i, name in enumerate(MODELS)}
        rows = sorted([*earlier.values(), *rows], key=lambda r: order.get(r["model"], len(order)))
    machine = f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores"
    header = (
        f"Measured by `python bench/models.py` on {machine} (cpu), "
        f"{time.strftime('%Y-%m-%d')}: batch {BATCH}, median of {args.repeat} after a warm-up, "
        "seeded random weights (EfficientNet-Lite0: its trained ones).\n\n"
    )
    text = header + table(rows)
    (HERE / "results-models.json").write_text(json.dumps(rows, indent=1) + "\n")
    (HERE / "results-models.md").write_text(text)
    print(text)
    if args.readme:
        into_readme("models", text)


if __name__ == "__main__":
    main()
