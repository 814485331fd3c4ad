"""`gbp parity` over every network with a Keras twin, on the sample photos.

    pip install -e '.[all]' && python bench/parity.py [--models resnet18 …]

Each torchvision network gets seeded weights whose BatchNorm affine terms are drawn and whose
statistics are measured on the sample photos, as training leaves them (not the trivial 0 and 1),
saved as a state_dict; EfficientNet-Lite0 uses its trained
weights. Then `gbp parity --model NAME --weights FILE` runs every method, in its own process, and
its lines are kept in bench/parity-NAME.txt with the command that made them; a summary (the
largest figure per method) goes to bench/results-parity.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

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


def calibration_batch():
    """The sample photos and flipped copies, as torchvision models take them."""
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from gbp_cli.preprocess import prepare

    paths = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".png", ".jpg"))
    arrays = [prepare(p, "crop").array for p in paths]
    arrays += [a[:, ::-1] for a in arrays]
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays))).permute(0, 3, 1, 2)


def parity(name: str, weights: str) -> list[str]:
    command = ["gbp", "parity", "sample_images/", "--model", name, "--weights", weights]
    command += [x for m in METHODS for x in ("--method", m)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    shown = " ".join(command).replace(str(Path(weights).parent), "$SEEDED")
    lines = [f"$ {shown}", *done.stdout.splitlines()]
    if done.returncode not in (0, 1):
        lines.append(f"# exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    (HERE / f"parity-{name}.txt").write_text("\n".join(lines) + "\n")
    print(f"  {name}: exit {done.returncode}", file=sys.stderr)
    return lines


def summary(results: dict[str, list[str]]) -> str:
    rows = ["| model | logits (max abs) | " + " | ".join(METHODS) + " | verdict |"]
    rows.append("|---|---:|" + "---:|" * len(METHODS) + "---|")
    for name, lines in results.items():
        worst = {m: 0.0 for m in METHODS}
        logits, ok = 0.0, True
        for line in lines[1:]:
            parts = line.split("\t")
            if len(parts) < 6:
                ok = False
                continue
            logits = max(logits, float(parts[3].split()[1]))
            worst[parts[1]] = max(worst[parts[1]], float(parts[4].split()[1]))
            ok &= parts[5] == "ok"
        cells = " | ".join(f"{worst[m]:.1e}" for m in METHODS)
        rows.append(f"| {name} | {logits:.1e} | {cells} | {'ok' if ok else 'OVER'} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            results[name] = parity(name, seeded(name, Path(scratch)))
    text = (
        "`python bench/parity.py`: the largest relative L2 per method over the five sample "
        "photos (tolerances: logits 1e-3; vanilla 5e-3; others 1e-3); seeded weights with "
        "non-trivial BatchNorm (EfficientNet-Lite0: its trained weights). Every line is in "
        "bench/parity-NAME.txt.\n\n" + summary(results)
    )
    (HERE / "results-parity.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
