"""Grad-CAM, Guided Grad-CAM and SmoothGrad, shared by both backends; and the Python API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gbp_cli.backends.base import Backend, Explanation, ModelInfo, WeightsSpec
from gbp_cli.saliency.maps import Smoothing, backend_request, explain_maps, grad_cam, upsample


def test_grad_cam_by_hand() -> None:
    features = np.zeros((1, 2, 2, 2), np.float32)
    features[0, :, :, 0] = [[1, 2], [3, 4]]
    features[0, :, :, 1] = [[4, 0], [0, -8]]
    grads = np.zeros((1, 1, 2, 2, 2), np.float32)
    grads[0, 0, :, :, 0] = [[1, 1], [1, 1]]  # α_0 = 1
    grads[0, 0, :, :, 1] = [[2, 0], [0, 0]]  # α_1 = 0.5
    # 1·A0 + 0.5·A1 = [[3, 2], [3, 0]], ReLU keeps it
    np.testing.assert_array_equal(grad_cam(features, grads)[0, 0], [[3, 2], [3, 0]])
    grads[0, 0, :, :, 1] = [[-8, 0], [0, 0]]  # α_1 = −2: [[−7, 2], [3, 20]] → [[0, 2], [3, 20]]
    np.testing.assert_array_equal(grad_cam(features, grads)[0, 0], [[0, 2], [3, 20]])


def test_upsampling_matches_torch_bilinear() -> None:
    torch = pytest.importorskip("torch")
    maps = np.random.default_rng(0).random((2, 3, 7, 7)).astype(np.float32)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(maps), size=(224, 224), mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(upsample(maps, (224, 224)), expected.numpy(), atol=1e-6)


def test_what_each_method_needs_of_a_model_is_in_the_table() -> None:
    from gbp_cli.backends.rules import METHODS

    needs = {name: (m.needs_rule, m.needs_cam_layer) for name, m in METHODS.items()}
    assert needs == {
        "guided": (True, False),
        "vanilla": (False, False),  # the ordinary gradient: defined for every activation
        "deconv": (True, False),
        "gradcam": (False, True),  # weighs its layer by the ordinary gradient
        "guided-gradcam": (True, True),  # made from guided and gradcam
    }


GELU = ({"GELU": 12}, {"GELU": ("encoder.0.mlp.1", "encoder.1.mlp.1")})


@pytest.mark.parametrize(
    ("asked", "model", "cam_layer", "policy", "offered", "now", "later"),
    [
        (["gradcam"], GELU, False, "refuse", "use vanilla, or guided or deconv with "
         "--other-activations gradient", ["vanilla"], ["guided", "deconv"]),
        (["gradcam"], GELU, False, "gradient", "use guided, vanilla or deconv",
         ["guided", "vanilla", "deconv"], []),
        (["guided"], GELU, False, "refuse", "pass --other-activations gradient to let them keep "
         "their ordinary gradient, or use vanilla", ["vanilla"], ["guided"]),
        (["deconv"], GELU, True, "refuse", "pass --other-activations gradient to let them keep "
         "their ordinary gradient, or use vanilla or gradcam", ["vanilla", "gradcam"],
         ["deconv"]),
        (["guided-gradcam"], ({"ReLU": 3}, {}), False, "refuse", "use guided, vanilla or deconv",
         ["guided", "vanilla", "deconv"], []),
    ],
)  # fmt: skip
def test_a_refusal_offers_only_methods_that_work_for_that_model(
    asked: list[str],
    model: tuple,
    cam_layer: bool,
    policy: str,
    offered: str,
    now: list[str],
    later: list[str],
) -> None:
    """A vision transformer has GELUs and no spatial map: each method a refusal offers would
    run on it, with the condition it names."""
    from gbp_cli.backends.rules import refusal

    activations, unruled = model
    line = refusal(asked, activations, unruled, cam_layer, policy, "vit")
    assert line is not None and line.endswith(f": {offered}")
    for name in now:
        assert refusal([name], activations, unruled, cam_layer, policy) is None, name
    for name in later:
        assert refusal([name], activations, unruled, cam_layer, "gradient") is None, name


def test_nothing_is_refused_where_every_method_works() -> None:
    from gbp_cli.backends.rules import METHODS, refusal

    assert refusal(list(METHODS), {"ReLU": 3}, {}, True) is None
    assert refusal(["guided", "gradcam"], *GELU, True, "gradient") is None


def test_what_each_method_asks_of_a_backend() -> None:
    assert backend_request(["gradcam"]) == ((), True)
    assert backend_request(["guided-gradcam", "vanilla"]) == (("vanilla", "guided"), True)
    assert backend_request(["deconv", "guided"]) == (("deconv", "guided"), False)


class Recording(Backend):
    """A stand-in backend whose 'gradient' is its input, and which remembers what it was given."""

    def __init__(self) -> None:
        self.info = ModelInfo("fake", "fake", 3, WeightsSpec("random"), "cpu")
        self.seen: list[np.ndarray] = []

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    def explain(
        self,
        images: np.ndarray,
        methods: Sequence[str],
        targets: np.ndarray | None = None,
        top_k: int = 1,
        cam: bool = False,
    ) -> Explanation:
        self.seen.append(images.copy())
        n = len(images)
        chosen = np.zeros((n, 1), np.int64) if targets is None else targets
        features = np.ones((n, 7, 7, 4), np.float32) if cam else None
        grads = np.ones((n, 1, 7, 7, 4), np.float32) if cam else None
        return Explanation(
            logits=np.zeros((n, 3), np.float32),
            targets=chosen,
            saliency={m: images[:, None] for m in methods},
            relus={m: 0 for m in methods},
            features=features,
            feature_grads=grads,
        )


def test_smoothgrad_averages_seeded_noise_that_any_backend_sees_alike() -> None:
    images = np.random.default_rng(1).normal(size=(2, 224, 224, 3)).astype(np.float32)
    first, second = Recording(), Recording()
    smoothing = Smoothing(samples=8, noise=0.2)
    _, maps = explain_maps(first, images, ["vanilla", "gradcam"], smoothing=smoothing)
    explain_maps(second, images, ["vanilla", "gradcam"], smoothing=smoothing)
    assert len(first.seen) == 1 + 8
    assert all(np.array_equal(a, b) for a, b in zip(first.seen, second.seen, strict=True))
    noise = first.seen[1] - images
    spread = images[0].max() - images[0].min()
    assert noise[0].std() == pytest.approx(0.2 * spread, rel=0.02)
    expected = np.mean(first.seen[1:], axis=0)[:, None]
    np.testing.assert_allclose(maps["vanilla"], expected, atol=1e-5)
    assert maps["gradcam"].shape == (2, 1, 224, 224, 1)


def test_guided_gradcam_is_guided_times_gradcam() -> None:
    images = np.random.default_rng(2).normal(size=(1, 224, 224, 3)).astype(np.float32)
    _, maps = explain_maps(Recording(), images, ["guided", "gradcam", "guided-gradcam"])
    np.testing.assert_allclose(maps["guided-gradcam"], maps["guided"] * maps["gradcam"])


def test_torch_cam_gradients_are_the_ordinary_ones() -> None:
    torch = pytest.importorskip("torch")
    from gbp_cli.backends.torch.backend import explain_module

    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    model = torch.nn.Sequential(body, torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    x = torch.randn(1, 3, 8, 8)
    model(x)
    result = explain_module(model, x, ["guided"], torch.tensor([[1]]), cam_layer=body)
    features = body(x).detach().requires_grad_(True)
    (expected,) = torch.autograd.grad(model[1:](features)[0, 1], features)
    torch.testing.assert_close(result.feature_grads[:, 0], expected)
    torch.testing.assert_close(result.features, features.detach())


def test_the_python_api(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from gbp_cli import Explained, explain
    from gbp_cli.render.pictures import color, overlay

    path = Path(__file__).parents[1] / "sample_images" / "chelsea.png"
    by_path = explain(path, method=["guided", "gradcam"], weights="random", target="tabby")
    assert isinstance(by_path, Explained)
    assert by_path.target.index == 281 and by_path.target.label == "tabby"
    assert by_path.saliency["guided"].shape == (224, 224, 3)
    assert by_path.saliency["gradcam"].shape == (224, 224)  # as gbp explain's .npy files
    assert by_path.relus == {"guided": 201}
    photo = Image.open(path)
    for image in (photo, np.asarray(photo.convert("RGB"))):
        again = explain(image, method="guided", weights="random", target=281)
        np.testing.assert_allclose(again.saliency["guided"], by_path.saliency["guided"], atol=1e-6)
    picture = overlay(by_path.saliency["gradcam"], by_path.photo, by_path.geometry)
    assert isinstance(picture, Image.Image) and picture.size == photo.size
    assert isinstance(color(by_path.saliency["guided"]), Image.Image)
