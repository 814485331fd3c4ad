"""How far float32 alone moves PyTorch's own vanilla map: the yardstick for `gbp parity`.

    pip install -e '.[all]' && python bench/rounding.py [--models resnet50 …]

For each network (seeded as bench/parity.py seeds it, BatchNorm measured on the photos), the
sample photos' vanilla maps from gbp's torch backend three ways: float32 with oneDNN (PyTorch's
default CPU convolutions), float32 without it, and float64. Same weights, same inputs, same
framework: whatever separates them is rounding. Writes bench/results-rounding.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from parity import seeded  # noqa: E402

METHODS = ("vanilla", "guided")


def maps(name: str, weights: str, photos: list[Path]) -> dict[str, dict[str, np.ndarray]]:
    import torch

    from gbp_cli.backends import WeightsSpec, open_backend
    from gbp_cli.backends.base import ModelSpec
    from gbp_cli.inputs.preprocess import prepare

    spec, model = WeightsSpec("file", Path(weights)), ModelSpec(name)
    single = open_backend("torch", spec, "cpu", "fp32", model=model)
    double = open_backend("torch", spec, "cpu", "fp64", model=model)
    pre = single.info.preprocessing
    x = np.stack([prepare(p, "squash", pre=pre).array for p in photos])
    first = single.explain(x, METHODS)
    found = {"fp32": first.saliency}
    with torch.backends.mkldnn.flags(enabled=False):
        found["fp32, no oneDNN"] = single.explain(x, METHODS, first.targets).saliency
    found["fp64"] = double.explain(x, METHODS, first.targets).saliency
    return found


def relative_l2(reference: np.ndarray, other: np.ndarray) -> float:
    return float(np.linalg.norm(reference - other) / np.linalg.norm(reference))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["resnet18", "resnet50", "resnet152"])
    args = parser.parse_args()
    root = HERE.parent
    photos = sorted(p for p in (root / "sample_images").iterdir() if p.suffix in (".png", ".jpg"))
    rows = [
        "| model | method | fp32 vs fp64 (per photo) | fp32 with vs without oneDNN (per photo) |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            found = maps(name, seeded(name, Path(scratch)), photos)
            for method in METHODS:
                pairs = [("fp64", "fp32"), ("fp32", "fp32, no oneDNN")]
                cells = [
                    " ".join(
                        f"{relative_l2(found[a][method][i], found[b][method][i]):.1e}"
                        for i in range(len(photos))
                    )
                    for a, b in pairs
                ]
                rows.append(f"| {name} | {method} | {cells[0]} | {cells[1]} |")
                print(rows[-1], file=sys.stderr)
    names = ", ".join(p.name for p in photos)
    text = (
        "`python bench/rounding.py`: PyTorch against itself, relative L2 of the maps; photos in "
        f"the order {names}; seeded weights with BatchNorm measured on the photos (as "
        "bench/parity.py).\n\n" + "\n".join(rows) + "\n"
    )
    (HERE / "results-rounding.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
