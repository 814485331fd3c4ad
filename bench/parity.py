"""`gbp parity` over every network with a Keras twin, on the sample photos.

    pip install -e '.[all]' && python bench/parity.py [--models resnet18 …]

Each torchvision network gets seeded weights whose BatchNorm affine terms are drawn and whose
statistics are measured on the sample photos, as training leaves them (not the trivial 0 and 1),
saved as a state_dict; EfficientNet-Lite0 uses its trained
weights. Then `gbp parity --model NAME --weights FILE` runs every method, in float32 and in float64,
each in its own process, and its lines are kept in bench/parity-NAME.txt with the commands that
made them; a summary (the largest figure per method) goes to bench/results-parity.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = (
    "vgg16",
    "vgg19",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "mobilenet_v2",
    "densenet201",
    "efficientnet_lite0",
)
METHODS = ("guided", "vanilla", "deconv", "gradcam", "guided-gradcam")


def seeded(name: str, folder: Path) -> str:
    """A state_dict file with seeded weights and non-trivial BatchNorm, or 'imagenet'."""
    if name == "efficientnet_lite0":
        return "imagenet"
    import torch
    from torchvision import models

    torch.manual_seed(0)
    model = models.get_model(name)
    generator = torch.Generator().manual_seed(1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for module in norms:  # affine terms of a trained network's size, not 1 and 0
            module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.momentum = None  # a plain average over the calibration batch
        # Statistics as training leaves them: measured on real photos, so that activations stay
        # in range through 150 layers (seeded random statistics make deep ResNets overflow).
        model.train()(calibration_batch())
    model.eval()
    path = folder / f"{name}-seeded.pth"
    torch.save(model.state_dict(), path)
    return str(path)


def calibration_batch() -> torch.Tensor:
    """The sample photos and flipped copies, as torchvision models take them."""
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from gbp_cli.inputs.preprocess import prepare

    paths = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".png", ".jpg"))
    arrays = [prepare(p, "crop").array for p in paths]
    arrays += [a[:, ::-1] for a in arrays]
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays))).permute(0, 3, 1, 2)


def parity(name: str, weights: str, precision: str) -> list[str]:
    command = ["gbp", "parity", "sample_images/", "--model", name, "--weights", weights]
    command += [x for m in METHODS for x in ("--method", m)] + ["--precision", precision]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    shown = " ".join(command).replace(str(Path(weights).parent), "$SEEDED")
    lines = [f"$ {shown}", *done.stdout.splitlines()]
    if done.returncode not in (0, 1) or len(lines) == 1:
        lines.append(f"# exit {done.returncode}: {done.stderr.strip().splitlines()[-3:]}")
    print(f"  {name} {precision}: exit {done.returncode}", file=sys.stderr)
    return lines


def worst(lines: list[str]) -> dict[str, float]:
    """The largest logits gap, each method's largest figure, whether every line passed, and over
    the lines that missed, how far torch's and TF's float32 maps lay from float64 at most."""
    found = {"logits": 0.0, "ok": len(lines) > 1, "torch": 0.0, "tf": 0.0}
    found |= {m: 0.0 for m in METHODS}
    for line in lines[1:]:
        parts = line.split("\t")
        if len(parts) < 6:
            found["ok"] = False
            continue
        found["logits"] = max(found["logits"], float(parts[3].split()[1]))
        found[parts[1]] = max(found[parts[1]], float(parts[4].split()[1]))
        found["ok"] &= parts[5] == "ok"
        rounding = re.search(r"torch ([0-9.e+-]+), tf ([0-9.e+-]+)", parts[5])
        if rounding:
            found["torch"] = max(found["torch"], float(rounding[1]))
            found["tf"] = max(found["tf"], float(rounding[2]))
    return found


def summary(results: dict[str, tuple[list[str], list[str]]]) -> str:
    rows = [
        "| model | logits (max abs) | " + " | ".join(METHODS) + " | fp32 | misses vs float64: "
        "torch / tf | fp64: largest |"
    ]
    rows.append("|---|---:|" + "---:|" * len(METHODS) + "---|---:|---:|")
    for name, (fp32, fp64) in results.items():
        single, double = worst(fp32), worst(fp64)
        largest = max(double[k] for k in ("logits", *METHODS))
        cells = " | ".join(f"{single[m]:.1e}" for m in METHODS)
        rounding = "–" if single["ok"] else f"{single['torch']:.1e} / {single['tf']:.1e}"
        rows.append(
            f"| {name} | {single['logits']:.1e} | {cells} | {'ok' if single['ok'] else 'OVER'} "
            f"| {rounding} | {largest:.0e}{'' if double['ok'] else ' OVER'} |"
        )
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            weights = seeded(name, Path(scratch))
            runs = [parity(name, weights, "fp32"), parity(name, weights, "fp64")]
            (HERE / f"parity-{name}.txt").write_text("\n".join(runs[0] + ["", *runs[1]]) + "\n")
    results = {}  # every network's kept lines, those just run and the others
    for name in MODELS:
        kept = HERE / f"parity-{name}.txt"
        if kept.is_file():
            fp32, _, fp64 = kept.read_text().strip().partition("\n\n")
            results[name] = (fp32.splitlines(), fp64.splitlines())
    text = (
        "`python bench/parity.py`: the largest relative L2 per method over the five sample "
        "photos (tolerances: logits 1e-3; vanilla 5e-3; others 1e-3); seeded weights with "
        "non-trivial BatchNorm (EfficientNet-Lite0: its trained weights). Where a map missed "
        "its tolerance, gbp parity measured how far each framework's float32 map lay from "
        "torch's float64 one: the largest of those. Last column: the largest figure (logits or "
        "map) of `gbp parity --precision fp64`, whose tolerance is 1e-9. Every line is in "
        "bench/parity-NAME.txt.\n\n" + summary(results)
    )
    (HERE / "results-parity.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
