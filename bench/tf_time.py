"""Where TensorFlow's guided pass spends its time beside PyTorch's, for one network.

    pip install -e '.[all]' && python bench/tf_time.py [--model resnet50] [--repeat 5]

Seeded weights, batch 8 of the sample photos, CPU. Timed turn about, median ms per image after
a warm-up: each framework's forward pass alone, its gbp guided pass (forward + backward with
the rule), and TF's guided pass under XLA. If TF's forward is as much slower than torch's as
its guided pass is, the gap is TF's convolutions, not gbp's rule. Writes
bench/results-tf-time-MODEL.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
BATCH = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import importlib

    importlib.import_module("gbp_cli.backends.tf.env")  # TensorFlow as gbp imports it
    import tensorflow as tf
    import torch
    from models import _photos
    from timing import turn_about

    from gbp_cli.backends import WeightsSpec, open_backend
    from gbp_cli.backends.base import ModelSpec

    spec, model = WeightsSpec("random"), ModelSpec(args.model)
    torch_backend = open_backend("torch", spec, "cpu", model=model)
    graph = open_backend("tf", spec, "cpu", mode="graph", model=model)
    xla = open_backend("tf", spec, "cpu", mode="xla", model=model)
    for backend in (graph, xla):
        backend.plan(1000, BATCH)
    x = _photos(torch_backend, BATCH)
    source = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    forward = tf.function(lambda images: graph.model(images, training=False))

    def torch_forward() -> object:
        with torch.no_grad():
            return torch_backend.model(source)

    steps = {
        "torch forward": torch_forward,
        "torch guided": lambda: torch_backend.explain(x, ["guided"]),
        "tf forward (graph)": lambda: forward(tf.constant(x)),
        "tf guided (graph)": lambda: graph.explain(x, ["guided"]),
        "tf guided (xla)": lambda: xla.explain(x, ["guided"]),
    }
    ms = turn_about(steps, args.repeat, BATCH)
    rows = ["| step | ms/image | TF / torch |", "|---|---:|---:|"]
    for key, value in ms.items():
        base = ms["torch forward" if "forward" in key else "torch guided"]
        ratio = f"{value / base:.2f}×" if key.startswith("tf") else "–"
        rows.append(f"| {key} | {value:.0f} | {ratio} |")
    text = (
        f"`python bench/tf_time.py --model {args.model} --repeat {args.repeat}` "
        f"({time.strftime('%Y-%m-%d')}, CPU, batch {BATCH}, seeded weights, median ms per "
        "image after a warm-up):\n\n" + "\n".join(rows) + "\n"
    )
    (HERE / f"results-tf-time-{args.model}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
