"""The Keras VGG and ResNet twins compute what torchvision's compute, and their weights move
between the two layouts bit-exactly through their tables (backends/twins/vgg.py, resnet.py).

Small inputs and narrow twins where the family allows; every full depth is checked by structure
(keys, shapes, ReLU count, every Keras layer filled, gbp sanity's stages), its torch side built on
the meta device.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("gbp_cli.backends.tf.env")  # TensorFlow, quietly, and triton before it
pytest.importorskip("torch")
pytest.importorskip("torchvision")
import keras
import tensorflow as tf
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models
from torchvision.models import resnet, vgg

from gbp_cli.backends.tf.twins import TwinLayout
from gbp_cli.backends.torch.probe import probe
from gbp_cli.backends.torch.randomize import stages
from gbp_cli.backends.twins import blocks, table
from gbp_cli.backends.twins import resnet as keras_resnet
from gbp_cli.backends.twins import vgg as keras_vgg
from gbp_cli.backends.twins.registry import TWINS, load_all
from tests.conftest import randomize_batchnorm

pytestmark = [pytest.mark.torch, pytest.mark.tf]

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16", "vgg19")
LOOKALIKES = ("wide_resnet50_2", "resnext50_32x4d", "vgg16_bn", "vgg11", "densenet121")
NARROW_VGG = (8, "M", 16, "M")  # 28×28 in → 7×7×16 features
NCHW = (0, 3, 1, 2)


def load(keras_model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    """Set every weighted Keras layer, and check none is left out."""
    assert {layer.name for layer in keras_model.layers if layer.weights} == set(weights)
    for name, arrays in weights.items():
        keras_model.get_layer(name).set_weights(arrays)


def relu_calls(model: nn.Module, x: torch.Tensor) -> int:
    """How many times torch's ReLU modules run in one forward pass (ResNet reuses each)."""
    calls = []
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in relus]
    model(x)
    for hook in hooks:
        hook.remove()
    return len(calls)


def run(model: nn.Module, keras_model: keras.Model, cam: str, x: np.ndarray) -> dict:
    """torch's and Keras's logits, Grad-CAM layer output and input gradient of one logit per
    image, all in torch's NCHW layout, for the same input."""
    captured: list[torch.Tensor] = []
    hook = model.get_submodule(cam).register_forward_hook(lambda *a: captured.append(a[2]))
    xt = torch.tensor(x, requires_grad=True)
    logits = model(xt)
    hook.remove()
    targets = [1, logits.shape[1] - 1]
    logits[[0, 1], targets].sum().backward()
    outputs = [keras_model.get_layer(cam).output, *keras_model.outputs]
    xk = tf.constant(x.transpose(0, 2, 3, 1))
    with tf.GradientTape() as tape:
        tape.watch(xk)
        features, logits_k = keras.Model(keras_model.inputs, outputs)(xk, training=False)
        picked = logits_k[0, targets[0]] + logits_k[1, targets[1]]
    return {
        "logits": logits.detach().numpy(),
        "cam": captured[0].detach().numpy(),
        "grad": xt.grad.numpy(),
        "keras logits": logits_k.numpy(),
        "keras cam": features.numpy().transpose(NCHW),
        "keras grad": tape.gradient(picked, xk).numpy().transpose(NCHW),
    }


def rel_max(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(a).max())


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def check_twin(
    model: nn.Module, make: Callable[[], Any], layers: table.Table, cam: str, size: int
) -> dict:
    """Weights over by the table, the round trip bit-exact, torch's Grad-CAM layer, and the same
    function: logits and Grad-CAM features in float32 within 1e-4; input gradients in float64
    within 1e-9, and in float32 within 1e-3, or twice torch's own float32-vs-float64 gap where
    that is wider (a deep net's ReLU gates flip where x ≈ 0 at float32's precision: resnet50,
    measured)."""
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    weights = table.to_keras(layers, state)
    assert_bit_exact(table.from_keras(layers, weights), state)
    assert probe(model, size, "twin").cam_layer == cam
    x = np.random.default_rng(0).standard_normal((2, 3, size, size))
    found: dict[str, float] = {}
    saved = keras.config.floatx(), keras.config.dtype_policy()
    for dtype in ("float32", "float64"):
        twin = model if dtype == "float32" else copy.deepcopy(model).to(torch.float64)
        keras.config.set_floatx(dtype)  # while the probe model is made too: it casts its input
        keras.config.set_dtype_policy(dtype)  # fixed once read, so floatx alone would not do
        try:
            keras_model = make()
            load(keras_model, weights)
            got = run(twin, keras_model, cam, x.astype(dtype))
        finally:
            keras.config.set_floatx(saved[0])
            keras.config.set_dtype_policy(saved[1])
        if dtype == "float32":  # what every Keras layer holds comes back as the state_dict
            every = {layer.name: layer.get_weights() for layer in keras_model.layers}
            assert_bit_exact(table.from_keras(layers, every), state)
            found |= {k: rel_max(got[k], got[f"keras {k}"]) for k in ("logits", "cam")}
            grad32 = got["grad"]
        found[f"grad {dtype}"] = rel_l2(got["grad"], got["keras grad"])
    found["torch's own grad gap"] = rel_l2(got["grad"], grad32)
    assert found["logits"] <= 1e-4 and found["cam"] <= 1e-4, found
    assert found["grad float64"] <= 1e-9, found
    assert found["grad float32"] <= max(1e-3, 2 * found["torch's own grad gap"]), found
    return found


def assert_bit_exact(back: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> None:
    assert sorted(back) == sorted(state)
    for key, value in state.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape, key
        assert back[key].tobytes() == value.tobytes(), key


def seeded(factory: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = factory()
    randomize_batchnorm(model, seed + 1)
    return model.eval()


# --- the same function ---


@pytest.mark.parametrize(
    ("arch", "layers", "num_classes", "size"),
    [
        ("resnet18", None, 1000, 64),
        ("resnet50", None, 1000, 64),
        ("basic", (1, 1, 1, 1), 10, 70),  # an odd side (35) before the stem's max-pool
        ("bottleneck", (1, 2, 1, 1), 10, 64),
    ],
)
def test_resnet_twin_computes_what_torchvision_computes(
    arch: str, layers: tuple[int, ...] | None, num_classes: int, size: int
) -> None:
    if layers is None:
        model = seeded(lambda: getattr(models, arch)(num_classes=num_classes))
        make = lambda: keras_resnet.build(arch, num_classes, size)  # noqa: E731
        rows = TWINS[arch].layers(num_classes)
    else:
        block = resnet.BasicBlock if arch == "basic" else resnet.Bottleneck
        model = seeded(lambda: resnet.ResNet(block, list(layers), num_classes=num_classes))
        make = lambda: keras_resnet.resnet(arch, layers, num_classes, size)  # noqa: E731
        rows = keras_resnet.table(arch, layers, num_classes)
    print(arch, layers, check_twin(model, make, rows, keras_resnet.CAM_LAYER, size))


def narrow_vgg(num_classes: int = 10, hidden: int = 32) -> nn.Module:
    """torchvision's VGG over NARROW_VGG with a narrow classifier (its own is fixed at 4096)."""
    model = vgg.VGG(vgg.make_layers(list(NARROW_VGG)), init_weights=False)
    flat = int(NARROW_VGG[-2]) * 7 * 7
    model.classifier = nn.Sequential(
        *(nn.Linear(flat, hidden), nn.ReLU(True), nn.Dropout()),
        *(nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout()),
        nn.Linear(hidden, num_classes),
    )
    return model


@pytest.mark.parametrize("size", [28, 56])  # a 7×7 map (pool = identity), a 14×14 one (2×2 mean)
def test_vgg_twin_computes_what_torchvision_computes(size: int) -> None:
    make = lambda: keras_vgg.vgg(NARROW_VGG, 10, size, hidden=32)  # noqa: E731
    rows = keras_vgg.table(NARROW_VGG, 10, hidden=32)
    print("vgg", NARROW_VGG, size, check_twin(seeded(narrow_vgg), make, rows, "features", size))


def test_vgg_twin_needs_the_first_dense_rows_permuted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras flattens (H, W, C), torch (C, H, W): without the permutation the round trip is still
    exact, but the function is not the same."""
    model = seeded(narrow_vgg)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    rows = keras_vgg.table(NARROW_VGG, 10, hidden=32)
    x = np.random.default_rng(0).standard_normal((2, 3, 28, 28)).astype(np.float32)
    logits = {}
    for permuted in (True, False):
        if not permuted:
            monkeypatch.setattr(table, "flat_dense_to_keras", lambda w, _: w.T.copy())
            monkeypatch.setattr(table, "flat_dense_from_keras", lambda k, _: k.T.copy())
        assert_bit_exact(table.from_keras(rows, table.to_keras(rows, state)), state)
        keras_model = keras_vgg.vgg(NARROW_VGG, 10, 28, hidden=32)
        load(keras_model, table.to_keras(rows, state))
        got = run(model, keras_model, "features", x)
        logits[permuted] = rel_max(got["logits"], got["keras logits"])
    assert logits[True] <= 1e-5 and logits[False] > 1e-2, logits


def test_vgg_twin_refuses_sizes_where_adaptive_pooling_is_uneven() -> None:
    with pytest.raises(ValueError, match="8×8 feature map"):
        keras_vgg.vgg(NARROW_VGG, 10, 32, hidden=8)


# --- every depth, by structure ---


def meta_state(arch: str, num_classes: int = 1000) -> tuple[nn.Module, dict[str, Any]]:
    """torchvision's `arch` on the meta device: keys, shapes and a forward pass, no memory."""
    with torch.device("meta"):
        model = getattr(models, arch)(num_classes=num_classes).eval()
    return model, model.state_dict()


def mine(state: dict[str, Any]) -> list[str]:
    return [name for name in ARCHS if load_all()[name].matches(state)]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_depth_is_recognized_filled_and_round_tripped(arch: str) -> None:
    """Random arrays of the meta state_dict's shapes go to Keras, fill every weighted layer of
    the built twin, and come back bit-exact; torch applies as many ReLUs as the twin has; and
    the TF side cuts gbp sanity's stages as the torch side does."""
    model, state = meta_state(arch, num_classes=7)
    twin = TWINS[arch]
    assert mine(state) == [arch] and twin.num_classes(state) == 7
    assert mine({f"module.{k}": v for k, v in state.items()}) == []  # wrapped: not as such
    assert mine(dict(list(state.items())[:-4])) == []  # truncated
    rng = np.random.default_rng(0)
    arrays = {
        k: np.zeros((), np.int64) if v.dtype == torch.int64 else rng.random(v.shape, np.float32)
        for k, v in state.items()
    }
    weights = twin.to_keras(arrays)
    assert_bit_exact(twin.from_keras(weights), arrays)
    keras_model = twin.build(7)
    load(keras_model, weights)
    assert_bit_exact(TwinLayout(twin).state(keras_model), arrays)
    assert TwinLayout(twin).stages(keras_model) == stages(model, arch)
    relus = sum(isinstance(layer, keras.layers.ReLU) for layer in keras_model.layers)
    assert relu_calls(model, torch.zeros(1, 3, 224, 224, device="meta")) == relus
    assert {"resnet18": 17, "resnet50": 49, "vgg16": 15, "vgg19": 18}.get(arch, relus) == relus
    channels = 2048 if arch in ("resnet50", "resnet101", "resnet152") else 512
    assert keras_model.get_layer(twin.cam_layer).output.shape == (None, 7, 7, channels)


@pytest.mark.parametrize("arch", LOOKALIKES)
def test_lookalikes_are_not_taken_for_a_twin(arch: str) -> None:
    """Same keys, other widths (wide, ResNeXt); BatchNorm in the features; another depth."""
    assert mine(meta_state(arch)[1]) == []


def test_keras_own_vgg_holds_torchvision_layout_weights_and_stages() -> None:
    """TF explains Keras's own VGG16 (its own weights) in keras.applications' model: its
    application table reads that model in torchvision's layout, bit-exactly both ways, and cuts
    the stages as torch cuts torchvision's VGG16. (32×32 input and 3 classes keep it small.)"""
    twin = TWINS["vgg16"]
    assert twin.application is not None
    app = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=3)
    layout = TwinLayout(twin, twin.application.layers)
    state = layout.state(app)
    _, torch_state = meta_state("vgg16", num_classes=3)
    assert list(state) == list(torch_state)
    rows = twin.application.layers(3)
    assert_bit_exact(table.from_keras(rows, table.to_keras(rows, state)), state)
    with torch.device("meta"):
        reference = stages(models.vgg16(num_classes=3), "vgg16")
    assert layout.stages(app) == reference
    assert [name for name, _ in reference] == ["classifier", *(f"conv{b}" for b in (5, 4, 3, 2, 1))]


# --- the stem's max-pool, and saving ---


@pytest.mark.parametrize("side", [16, 15])
def test_stem_max_pool_pads_with_minus_inf_as_torch_does(side: int) -> None:
    """A ReLU output with all-zero windows at the border: forward and gradient as torch's
    MaxPool2d(3, 2, padding=1), whose −inf padding never takes a tie."""
    rng = np.random.default_rng(side)
    x = np.maximum(rng.standard_normal((2, 4, side, side)), 0).astype(np.float32)
    x[:, :, :4, :] = 0  # whole windows of ties along the top
    x[:, :, :, -3:] = 0  # and the right
    inputs = keras.Input((side, side, 4))
    pool = keras.Model(inputs, blocks.max_pool_like_torch(inputs, "maxpool"))
    xt = torch.tensor(x, requires_grad=True)
    yt = F.max_pool2d(xt, 3, stride=2, padding=1)
    upstream = rng.standard_normal(yt.shape).astype(np.float32)
    (yt * torch.tensor(upstream)).sum().backward()
    xk = tf.constant(x.transpose(0, 2, 3, 1))
    with tf.GradientTape() as tape:
        tape.watch(xk)
        yk = pool(xk)
        picked = tf.reduce_sum(yk * upstream.transpose(0, 2, 3, 1))
    grad = tape.gradient(picked, xk).numpy().transpose(NCHW)
    np.testing.assert_array_equal(yk.numpy().transpose(NCHW), yt.detach().numpy())
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_a_saved_twin_loads_in_safe_mode(tmp_path: Path) -> None:
    """Built-in layers only: nothing to register, nothing unsafe to deserialize."""
    x = np.random.default_rng(0).random((1, 28, 28, 3), np.float32)
    resnet_twin = keras_resnet.resnet("basic", (1, 1, 1, 1), 5, 28)
    for model in (resnet_twin, keras_vgg.vgg(NARROW_VGG, 5, 28, 8)):
        model.save(tmp_path / "twin.keras")
        again = keras.saving.load_model(tmp_path / "twin.keras", safe_mode=True, compile=False)
        np.testing.assert_array_equal(again(x, training=False), model(x, training=False))
