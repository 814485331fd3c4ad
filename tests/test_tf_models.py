"""The TF backend on any classifier: every activation's Keras spelling counted, the rules by hand at
ReLU and ReLU6, refusals, nested (transfer-learning) models, Grad-CAM layers, keras.applications
names and their preprocessing, and sanity stages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gbp_cli.backends.tf.env")  # TensorFlow, imported safely
import keras
import tensorflow as tf

from gbp_cli.backends.base import BackendError, ModelSpec, WeightsSpec
from gbp_cli.backends.rules import canonical
from gbp_cli.backends.tf.backend import load, wrap_keras_model
from gbp_cli.backends.tf.models import FAMILIES, preprocessing
from tests.conftest import BLOCKED_PROXY, ROOT

METHODS = ("guided", "vanilla", "deconv")
# One activation between two linear maps: its input h = x, the gradient from above R = W2.
X = [-1.0, 3.0, 7.0, 2.0]  # below 0, inside (0, 6) twice, above 6
W2 = [1.0, -2.0, 3.0, 4.0]
BY_HAND = {
    "ReLU": {"vanilla": [0, -2, 3, 4], "guided": [0, 0, 3, 4], "deconv": [1, 0, 3, 4]},
    "ReLU6": {"vanilla": [0, -2, 0, 4], "guided": [0, 0, 0, 4], "deconv": [1, 0, 3, 4]},
}
IDENTITY = {"kernel_initializer": "identity", "name": "act"}
SPELLINGS = {
    "ReLU": [
        lambda: keras.layers.Activation("relu", name="act"),
        lambda: keras.layers.ReLU(name="act"),
        lambda: keras.layers.Activation(tf.nn.relu, name="act"),
        lambda: keras.layers.Dense(4, activation="relu", **IDENTITY),
    ],
    "ReLU6": [
        lambda: keras.layers.ReLU(max_value=6.0, name="act"),
        lambda: keras.layers.Activation("relu6", name="act"),
        lambda: keras.layers.Activation(tf.nn.relu6, name="act"),
        lambda: keras.layers.Dense(4, activation=keras.activations.relu6, **IDENTITY),
    ],
}


@keras.saving.register_keras_serializable(package="gbp_tests")
class Hidden(keras.layers.Layer):
    """A custom layer whose activation is code: only the traced graph shows it."""

    def __init__(self, op: str = "sigmoid", **kwargs) -> None:
        super().__init__(**kwargs)
        self.op = op

    def call(self, x):
        return getattr(keras.ops, self.op)(x)

    def get_config(self) -> dict:
        return {**super().get_config(), "op": self.op}


# (layer, the kind gbp counts) for activations with no rule, in every spelling.
def activation(name: str):
    return lambda: keras.layers.Activation(name, name="act")


UNRULED = [
    (make, canonical(kind))
    for make, kind in [
        (activation("swish"), "silu"),
        (activation("hard_swish"), "hard_silu"),
        *[(activation(n), n) for n in ["silu", "gelu", "elu", "selu", "sigmoid", "hard_sigmoid"]],
        *[(activation(n), n) for n in ["tanh", "softplus", "mish", "leaky_relu"]],
        (lambda: keras.layers.Dense(4, activation="gelu", **IDENTITY), "gelu"),
        (lambda: keras.layers.LeakyReLU(0.1, name="act"), "leaky_relu"),
        (lambda: keras.layers.PReLU(name="act"), "prelu"),
        (lambda: keras.layers.ELU(name="act"), "elu"),
        (lambda: keras.layers.ReLU(negative_slope=0.1, name="act"), "leaky_relu"),
        (lambda: keras.layers.ReLU(threshold=1.0, name="act"), "relu(threshold)"),
        (lambda: keras.layers.ReLU(max_value=3.0, name="act"), "relu(max_value)"),
        *[(lambda o=o: Hidden(o, name="act"), o) for o in ["sigmoid", "tanh", "elu", "selu"]],
        *[(lambda o=o: Hidden(o, name="act"), o) for o in ["softplus", "gelu"]],
        (lambda: Hidden("relu", name="act"), "ReLU (unreachable)"),
        (lambda: Hidden("hard_sigmoid", name="act"), "ReLU6 (unreachable)"),
    ]
]


def between(make_activation) -> keras.Model:
    """x → identity Dense → the activation → Dense(1) with weights W2: the logit."""
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(4, use_bias=False, kernel_initializer="identity", name="linear")(x)
    h = make_activation()(h)  # a Dense spelling starts as the identity too
    out = keras.layers.Dense(1, use_bias=False, name="out")
    y = out(h)
    out.set_weights([np.array(W2, np.float32)[:, None]])
    return keras.Model(x, y)


def plain_gradient(model: keras.Model, x: np.ndarray) -> np.ndarray:
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        score = tf.reduce_sum(model(inputs)[:, 0])
    return tape.gradient(score, inputs).numpy()


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        pytest.param(k, m, id=f"{k}-{i}")
        for k, makers in SPELLINGS.items()
        for i, m in enumerate(makers)
    ],
)
def test_relu_and_relu6_rules_by_hand_in_every_spelling(kind: str, make) -> None:
    backend = wrap_keras_model(between(make), WeightsSpec("random"), "cpu")
    assert backend.info.activations == {kind: 1} and backend.info.unruled == {}
    result = backend.explain(np.array([X], np.float32), METHODS, np.array([[0]]))
    for method in METHODS:
        assert result.saliency[method][0, 0].tolist() == BY_HAND[kind][method], method
        assert result.activations[method] == {kind: 1} and result.relus[method] == 1
    assert result.ordinary == {}


@pytest.mark.parametrize(
    ("make", "kind"), UNRULED, ids=[f"{i}-{k}" for i, (_, k) in enumerate(UNRULED)]
)
def test_every_other_activation_is_counted_and_refused_or_left_ordinary(make, kind: str) -> None:
    model = between(make)
    x = np.array([X], np.float32)
    refusing = wrap_keras_model(model, WeightsSpec("random"), "cpu")
    assert refusing.info.activations == {kind: 1}
    assert refusing.info.unruled == {kind: ("act",)}
    for method in ("guided", "deconv"):
        with pytest.raises(BackendError, match=rf"is not defined for 1 {re.escape(kind)} \(act\)"):
            refusing.explain(x, [method])
    plain = plain_gradient(model, x)
    np.testing.assert_allclose(refusing.explain(x, ["vanilla"]).saliency["vanilla"][:, 0], plain)
    spec = ModelSpec("m.keras", other_activations="gradient")
    allowing = wrap_keras_model(model, WeightsSpec("random"), "cpu", spec=spec)
    result = allowing.explain(x, METHODS)
    for method in METHODS:  # no ReLU anywhere: every method is the ordinary gradient
        np.testing.assert_allclose(result.saliency[method][:, 0], plain, rtol=1e-6)
        assert result.relus[method] == 0
    assert result.ordinary == {kind: 1}
    assert allowing.info.warnings == ()  # the result line and JSON say it, once


def test_the_refusal_counts_by_kind_and_names_the_first_layers() -> None:
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="swish", name="stem_activation")(x)
    for i in range(3):
        h = keras.layers.Conv2D(4, 1, activation="silu", name=f"block{i}_activation")(h)
    gate = keras.layers.Conv2D(4, 1, activation="sigmoid", name="se_gate")(h)
    h = keras.layers.ReLU(name="relu")(keras.layers.Multiply()([h, gate]))
    h = keras.layers.GlobalAveragePooling2D()(h)
    backend = wrap_keras_model(keras.Model(x, keras.layers.Dense(3)(h)), WeightsSpec("random"))
    assert backend.info.activations == {"SiLU": 4, "Sigmoid": 1, "ReLU": 1}
    with pytest.raises(BackendError) as refused:
        backend.explain(np.zeros((1, 8, 8, 3), np.float32), ["deconv"])
    assert str(refused.value) == (
        "DeconvNet is not defined for 4 SiLU, 1 Sigmoid (stem_activation, se_gate, "
        "block0_activation, …): pass --other-activations gradient to let them keep their "
        "ordinary gradient, or use vanilla or gradcam"
    )


@pytest.fixture(scope="module")
def transfer(tmp_path_factory) -> tuple[Path, keras.Model]:
    """DenseNet121 as a frozen base inside a Sequential with a new 7-class softmax head."""
    keras.utils.set_random_seed(0)
    base = keras.applications.DenseNet121(weights=None, include_top=False, input_shape=(64, 64, 3))
    model = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(7, activation="softmax", name="head"),
        ],
        name="pets",
    )
    path = tmp_path_factory.mktemp("transfer") / "pets.keras"
    model.save(path)
    return path, model


def test_a_transfer_model_has_every_relu_of_its_nested_base_overridden(transfer) -> None:
    path, original = transfer
    backend = load(WeightsSpec("imagenet"), "cpu", model=ModelSpec(str(path)))
    info = backend.info
    assert (info.model, info.weights.describe(), info.num_classes) == ("pets.keras", str(path), 7)
    assert (info.input_size, info.normalization) == (64, "imagenet")
    assert info.activations == {"ReLU": 121} and info.unruled == {}  # 120 in blocks + the last
    assert info.cam_layer == "densenet121/relu" and info.twin is None
    images = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    result = backend.explain(images, ["guided", "vanilla"], cam=True)
    assert result.relus == {"guided": 121, "vanilla": 121}
    assert result.activations["guided"] == {"ReLU": 121}
    assert result.features.shape == (2, 2, 2, 1024) and result.feature_grads.shape[:2] == (2, 1)
    softmax = np.exp(result.logits) / np.exp(result.logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, original(images).numpy(), atol=1e-5)  # logits, not p
    assert not np.allclose(softmax, result.logits)
    assert not np.allclose(result.saliency["guided"], result.saliency["vanilla"])
    stages, state = backend.stages(), backend.state()
    assert stages[0] == ("head", ("head/",)) and len(stages) == 8
    assert stages[-1][0] == "densenet121/conv1_conv"  # each group named by its first layer
    each_key_in_one_stage(stages, state)
    assert set(backend.random_state(1)) == set(state)


def test_grad_cam_reaches_a_layer_inside_a_nested_functional_model() -> None:
    keras.utils.set_random_seed(1)
    inner_in = keras.Input((16, 16, 3))
    feats = keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="feats")(inner_in)
    inner = keras.Model(inner_in, keras.layers.Conv2D(5, 3, name="late")(feats), name="base")
    x = keras.Input((16, 16, 3))
    h = keras.layers.GlobalAveragePooling2D()(inner(x))
    model = keras.Model(x, keras.layers.Dense(3, name="head")(h))
    spec = ModelSpec("m.keras", cam_layer="feats")
    backend = wrap_keras_model(model, WeightsSpec("random"), "cpu", spec=spec)
    assert backend.info.cam_layer == "base/feats"
    assert wrap_keras_model(model, WeightsSpec("random"), "cpu").info.cam_layer == "base/late"
    images = np.random.default_rng(2).normal(size=(1, 16, 16, 3)).astype(np.float32)
    result = backend.explain(images, ["vanilla"], np.array([[2]]), cam=True)
    features = keras.Model(inner_in, feats)(images)
    np.testing.assert_allclose(result.features[0], features.numpy()[0], rtol=1e-5, atol=1e-6)
    assert result.feature_grads.shape == (1, 1, 7, 7, 6)
    for wrong, reason in [
        ("feat", "is no layer of this model; close: feats"),
        ("head", "(None, 3)"),
    ]:
        with pytest.raises(BackendError, match=rf"--cam-layer {wrong}.*{re.escape(reason)}"):
            wrap_keras_model(
                model, WeightsSpec("random"), spec=ModelSpec("m.keras", cam_layer=wrong)
            )


def test_a_model_without_a_spatial_map_has_no_cam_layer() -> None:
    model = between(lambda: keras.layers.ReLU())
    backend = wrap_keras_model(model, WeightsSpec("random"), "cpu")
    assert backend.info.cam_layer is None
    x = np.array([X], np.float32)
    with pytest.raises(BackendError, match="Grad-CAM needs a spatial feature map, and functional"):
        backend.explain(x, ["vanilla"], cam=True)
    assert backend.explain(x, ["vanilla"]).saliency["vanilla"].shape == (1, 1, 4)


def test_a_lambda_layer_is_refused_with_its_reason(tmp_path: Path) -> None:
    x = keras.Input((8, 8, 3))
    path = tmp_path / "lambda.keras"
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2, name="double")(x)).save(path)
    with pytest.raises(BackendError) as refused:
        load(WeightsSpec("imagenet"), "cpu", model=ModelSpec(str(path)))
    assert str(refused.value) == (
        f"--model {path}: cannot load as a Keras model: it holds a Lambda layer ('double': "
        "arbitrary code), which gbp will not load"
    )


@pytest.fixture(scope="module")
def mobilenet():
    return load(WeightsSpec("random"), "cpu", model=ModelSpec("keras:MobileNet_V3_Small"))


def test_keras_mobilenetv3small_is_counted_and_refused_for_guided(mobilenet) -> None:
    info = mobilenet.info
    assert info.model == "keras:mobilenetv3small" and info.twin is None
    # hard_sigmoid in its squeeze-excite blocks is a ReLU(6) layer of its own: ruled.
    assert info.activations == {"Hardswish": 19, "ReLU": 14, "ReLU6": 9}
    assert list(info.unruled) == ["Hardswish"]
    assert info.preprocessing == preprocessing("none (in the model)", 224)
    assert info.preprocessing.std == (1 / 255,) * 3
    assert info.cam_layer.startswith("activation")  # its last hard_silu; Keras numbers the name
    images = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    with pytest.raises(BackendError, match="guided backprop is not defined for 19 Hardswish"):
        mobilenet.explain(images, ["guided"])
    result = mobilenet.explain(images, ["vanilla"], cam=True)
    assert result.activations["vanilla"] == {"ReLU": 14, "ReLU6": 9}
    assert result.features.shape == (1, 7, 7, 576)


def test_seeded_random_weights_repeat_and_stages_split_the_state(mobilenet) -> None:
    again = load(WeightsSpec("random"), "cpu", model=ModelSpec("keras:mobilenetv3small"))
    first, second = mobilenet.state(), again.state()
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    stages = mobilenet.stages()
    assert len(stages) == 8 and stages[0] == ("logits", ("logits/",))
    each_key_in_one_stage(stages, first)
    mobilenet.load_state(mobilenet.random_state(5))
    assert not np.array_equal(mobilenet.state()["logits/0"], first["logits/0"])
    mobilenet.load_state(first)
    assert np.array_equal(mobilenet.state()["logits/0"], first["logits/0"])


def test_a_densenet_keeps_torchvision_layout_stages_and_its_twin() -> None:
    backend = load(WeightsSpec("random"), "cpu", model=ModelSpec("densenet121"))
    assert backend.info.twin == "densenet121" and backend.info.cam_layer == "conv5_block16_concat"
    assert backend.info.activations == {"ReLU": 121}
    stages, state = backend.stages(), backend.state()
    assert [name for name, _ in stages] == [
        "classifier",
        *("block4", "transition3", "block3", "transition2", "block2", "transition1", "block1"),
        "stem",
    ]  # as the torch backend cuts torchvision's DenseNet
    each_key_in_one_stage(stages, state)
    assert set(backend.random_state(1)) == set(state)


def each_key_in_one_stage(stages: list[tuple[str, tuple[str, ...]]], state: dict) -> None:
    """gbp sanity re-initialises, stage by stage, the state keys that start with its prefixes."""
    for key in state:
        owners = [name for name, prefixes in stages if key.startswith(prefixes)]
        assert len(owners) == 1, (key, owners)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_applications_preprocessing_is_what_its_preprocess_input_does(family: str) -> None:
    import importlib

    module = importlib.import_module(f"keras.src.applications.{family}")
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    theirs = np.asarray(module.preprocess_input(pixels.copy()))
    prep = preprocessing(FAMILIES[family])
    ours = (pixels / 255 - np.array(prep.mean)) / np.array(prep.std)
    if prep.bgr:
        ours = (pixels[..., ::-1] / 255 - np.array(prep.mean)) / np.array(prep.std)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)


def test_unknown_names_list_what_the_backend_knows() -> None:
    with pytest.raises(BackendError) as unknown:
        load(WeightsSpec("random"), "cpu", model=ModelSpec("resnet9"))
    text = str(unknown.value)
    assert text.startswith("--model resnet9: the tf backend knows densenet121, densenet169")
    assert "resnet18" in text and "mobilenet_v2" in text  # the twins of torchvision's
    assert "vgg16" in text and "keras:convnexttiny" in text and "PATH.keras" in text
    with pytest.raises(BackendError, match=r"did you mean keras:efficientnetb0"):
        load(WeightsSpec("random"), "cpu", model=ModelSpec("keras:efficientnet_b0x"))


OFFLINE = """
import sys
from gbp_cli.backends.base import BackendError, ModelSpec, WeightsSpec
from gbp_cli.backends.tf.backend import load
try:
    load(WeightsSpec("imagenet"), "cpu", model=ModelSpec("vgg16"))
except BackendError as e:
    print(e, file=sys.stderr)
    sys.exit(2)
"""


def test_vgg16_imagenet_offline_names_the_file_and_folder(tmp_path: Path) -> None:
    home = tmp_path / "keras-home"
    proxies = dict.fromkeys(
        ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"], BLOCKED_PROXY
    )
    env = {**os.environ, "KERAS_HOME": str(home), **proxies, "no_proxy": ""}
    run = subprocess.run(
        [sys.executable, "-c", OFFLINE], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert run.returncode == 2 and run.stdout == ""
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith("ImageNet weights vgg16_weights_tf_dim_ordering_tf_kernels.h5 are not")
    assert f"in {home / 'models'}/" in line and "--weights PATH (a Keras .weights.h5" in line


def test_ops_belong_to_the_layer_that_made_them_not_to_a_lookalike_name_scope() -> None:
    # Traced, layer "conv" runs under name scope "conv_1", which is also the next layer's name.
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(2, 3, activation="swish", name="conv")(x)
    h = Hidden("tanh", name="custom")(
        keras.layers.Conv2D(2, 3, activation="relu", name="conv_1")(h)
    )
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    info = wrap_keras_model(model, WeightsSpec("random"), "cpu").info
    assert info.activations == {"SiLU": 1, "ReLU": 1, "Tanh": 1}
    assert info.unruled == {"SiLU": ("conv",), "Tanh": ("custom",)}
