"""Which Keras model a `--model` name means, how a photo becomes its input, and its Grad-CAM layer.

Names: the twins of torchvision's networks (backends/twins/: densenet121/169/201 and vgg16/19 are
keras.applications' own models, the others built in Keras), keras:NAME for any other
keras.applications model (its own preprocessing and weights), and PATH.keras for a user's own
model."""

from __future__ import annotations

import difflib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import keras

from ..base import NORMALIZATIONS, BackendError, ModelInfo, ModelSpec, Preprocessing, WeightsSpec
from ..reasons import first_line
from ..twins.registry import load_all
from .activations import walk
from .applications import imagenet_model, warnings_only_on_success
from .layout import Layout
from .twins import load as load_twin

IN_MODEL = "none (in the model)"  # the model rescales 0-255 pixels itself
# The user's choices, and Keras applications that take 0-255 pixels and scale them themselves.
SCALINGS = {**NORMALIZATIONS, IN_MODEL: ((0.0,) * 3, (1 / 255,) * 3, False)}
# keras.applications module → what its `preprocess_input` does (tests/test_tf_models checks).
FAMILIES = {"densenet": "imagenet", "vgg16": "caffe", "vgg19": "caffe", "resnet": "caffe"}
FAMILIES |= dict.fromkeys(["efficientnet", "efficientnet_v2", "mobilenet_v3", "convnext"], IN_MODEL)
FAMILIES |= dict.fromkeys(["resnet_v2", "inception_v3", "inception_resnet_v2", "xception"], "tf")
FAMILIES |= dict.fromkeys(["mobilenet", "mobilenet_v2", "nasnet"], "tf")
OWN_FILES = " (a Keras .weights.h5 or .h5 of this model)"


def twin_applications() -> dict[str, str]:
    """keras.applications builder, lowercased → the twin it is (keras:vgg16 is vgg16)."""
    return {
        twin.application.builder.lower(): name
        for name, twin in load_all().items()
        if twin.application is not None
    }


def keras_apps() -> dict[str, str]:
    """keras:NAME → keras.applications builder, for every application with no torchvision twin."""
    twins = twin_applications()
    return {
        name.lower(): name
        for name in dir(keras.applications)
        if name[:1].isupper()
        and name.lower() not in twins
        and callable(getattr(keras.applications, name))
    }


def known_names() -> list[str]:
    return [*load_all(), *(f"keras:{name}" for name in keras_apps()), "PATH.keras"]


def preprocessing(normalize: str, size: int = 224) -> Preprocessing:
    """`normalize` at `size`, resized first to size·256/224 (ImageNet's 224-of-256 crop)."""
    mean, std, bgr = SCALINGS[normalize]
    resize = round(size * 256 / 224)
    return Preprocessing(size, resize, mean=mean, std=std, bgr=bgr, name=normalize)


@dataclass
class Built:
    """A model gbp can explain, and what it must know about it."""

    model: keras.Model
    name: str  # for ModelInfo.model
    preprocessing: Preprocessing
    weights: WeightsSpec  # what the weights really are (a .keras file holds its own)
    layout: Layout
    twin: str | None = None  # the same network in torchvision, by its name there
    trace: bool = True  # search the forward graph for activations no layer declares
    cam_layer: str | None = None  # Grad-CAM's layer when it must be the torch twin's

    def info(self, device: str, precision: str = "fp32") -> ModelInfo:
        """What was loaded; the backend adds what it learns from the model itself."""
        num_classes = int(self.model.outputs[0].shape[-1])
        return ModelInfo(
            "tf",
            self.name,
            num_classes,
            self.weights,
            device,
            precision=precision,
            preprocessing=self.preprocessing,
            twin=self.twin,
        )


def wrapped(model: keras.Model, weights: WeightsSpec, spec: ModelSpec) -> Built:
    """A user's model in memory, cloned first and so left unchanged."""
    if not isinstance(model, keras.Model):
        raise BackendError(f"model={type(model).__name__}: not a Keras model")
    try:
        model.inputs  # noqa: B018  (a Sequential model built without an Input has none)
    except (AttributeError, ValueError):
        raise BackendError(
            f"model={model.name}: this Keras model has no input yet: give it a keras.Input, "
            "or call it once on a batch"
        ) from None
    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
    except Exception as e:
        raise BackendError(
            f"model={model.name}: cannot be copied ({type(e).__name__}: {first_line(e)}); gbp "
            "explains a copy so that your model is left as it is: save it with "
            "model.save('m.keras') and pass model='m.keras'"
        ) from e
    to_logits(clone)
    images = len(clone.inputs[0].shape) == 4  # tiny test nets take vectors
    prep = own_preprocessing(clone, spec) if images else Preprocessing()
    return Built(clone, model.name, prep, weights, Layout())


def build(spec: ModelSpec, weights: WeightsSpec) -> Built:
    """The Keras model `spec` names, with `weights`, logits out."""
    name = spec.name.lower()
    if spec.kind == "keras-file":
        return user_model(Path(spec.name), weights, spec)
    if spec.kind == "keras-app":
        name = re.sub(r"[_\-\s]", "", name.removeprefix("keras:"))
        if name not in twin_applications():  # keras:vgg16 is the twin vgg16
            return keras_app(name, weights)
        name = twin_applications()[name]
    twin = load_all().get(name)
    if twin is not None and weights.path and weights.path.name.lower().endswith(".keras"):
        own = load_keras_model(weights.path, f"--weights {weights.path}")  # a user's, as ever
        return Built(own, "keras model", own_preprocessing(own, spec), weights, Layout())
    if twin is not None:  # torchvision's network in Keras: the same map in both
        loaded = load_twin(twin, weights)
        found = loaded.twin  # trace=False: each activation is a layer
        if loaded.application is not None:  # Keras's own model, as its own weights want it
            prep = preprocessing(loaded.application.normalize)
            return Built(loaded.model, found.name, prep, weights, loaded.layout, found.name, False)
        return Built(
            loaded.model,
            found.name,
            found.preprocessing,
            weights,
            loaded.layout,
            found.name,
            False,
            found.cam_layer,
        )
    raise BackendError(f"--model {spec.name}: the tf backend knows {', '.join(known_names())}")


def keras_app(key: str, weights: WeightsSpec) -> Built:
    apps = keras_apps()
    if key not in apps:
        close = difflib.get_close_matches(key, list(apps), n=3)
        hint = f" (did you mean {', '.join('keras:' + c for c in close)}?)" if close else ""
        raise BackendError(
            f"--model keras:{key}: no such keras.applications model{hint}; the tf backend knows "
            f"{', '.join(known_names())}"
        )
    model = application(apps[key], weights, OWN_FILES)
    family = getattr(keras.applications, apps[key]).__module__.rsplit(".", 1)[-1]
    prep = preprocessing(FAMILIES.get(family, "imagenet"), int(model.inputs[0].shape[1] or 224))
    return Built(model, f"keras:{key}", prep, weights, Layout())


def application(builder: str, weights: WeightsSpec, files: str) -> keras.Model:
    """A keras.applications model with logits out: ImageNet weights, seeded random, or a file."""
    if weights.kind == "imagenet":
        return imagenet_model(builder, files)
    model = getattr(keras.applications, builder)(weights=None, classifier_activation=None)
    reweigh(model, weights, builder)
    return model


def reweigh(model: keras.Model, weights: WeightsSpec, what: str) -> None:
    """Seeded random weights, or a Keras weights file's."""
    if weights.kind == "random":
        Layout().load_state(model, Layout().random_state(model, weights.seed))
        return
    assert weights.path is not None
    source = f"--weights {weights.path}"
    if not weights.path.is_file():
        raise BackendError(f"{source}: no such file")
    if not weights.path.name.lower().endswith((".h5", ".hdf5")):
        raise BackendError(f"{source}: expected a Keras .weights.h5 or .h5 for {what}")
    try:
        with warnings_only_on_success():
            model.load_weights(weights.path)
    except Exception as e:
        raise BackendError(f"{source}: does not fit Keras {what} ({first_line(e)})") from None


def user_model(path: Path, weights: WeightsSpec, spec: ModelSpec) -> Built:
    """A user's .keras model. Its own weights serve unless `--weights` says random or names a
    weights file (`imagenet`, the default, means nothing to it)."""
    model = load_keras_model(path, f"--model {path}")
    if weights.kind == "imagenet":
        weights = WeightsSpec("file", path)
    else:
        reweigh(model, weights, path.name)
    return Built(model, path.name, own_preprocessing(model, spec), weights, Layout())


def own_preprocessing(model: keras.Model, spec: ModelSpec) -> Preprocessing:
    """`--normalize` (default imagenet) at `--input-size`, or the model's own square input."""
    normalize = spec.normalize or "imagenet"
    if normalize not in NORMALIZATIONS:
        raise BackendError(f"--normalize {normalize}: expected one of {', '.join(NORMALIZATIONS)}")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise BackendError(f"{model.name} takes input {shape}, not images (N, H, W, 3)")
    if shape[1] != shape[2]:
        raise BackendError(f"{model.name} takes {shape[1]}×{shape[2]} images; gbp feeds squares")
    if spec.input_size and shape[1] and spec.input_size != shape[1]:
        raise BackendError(f"--input-size {spec.input_size}: the model takes {shape[1]}×{shape[1]}")
    return preprocessing(normalize, spec.input_size or shape[1] or 224)


def load_keras_model(path: Path, source: str) -> keras.Model:
    """A whole .keras model, in safe mode, with a softmax head turned back into logits.

    A Lambda layer is arbitrary code: Keras's safe mode refuses those that hold Python bytecode,
    and gbp refuses them all, saying so, rather than passing on Keras's advice to load unsafely.
    """
    if not path.is_file():
        raise BackendError(f"{source}: no such file")
    lambdas = lambda_layers(path)
    if lambdas:
        raise BackendError(
            f"{source}: cannot load as a Keras model: it holds a Lambda layer ({lambdas[0]!r}: "
            f"arbitrary code), which gbp will not load"
        )
    try:
        with warnings_only_on_success():
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:
        raise BackendError(f"{source}: cannot load as a Keras model ({first_line(e)})") from None
    to_logits(model)
    return model


def lambda_layers(path: Path) -> list[str]:
    """The names of the Lambda layers in a .keras file's config, read without loading it."""
    found: list[str] = []

    def look(node: dict) -> dict:
        if node.get("class_name") == "Lambda":
            found.append(str(node.get("config", {}).get("name", "lambda")))
        return node

    try:
        with zipfile.ZipFile(path) as archive:
            json.loads(archive.read("config.json"), object_hook=look)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        pass  # not a .keras archive: Keras's own load says why
    return found


def to_logits(model: keras.Layer) -> None:
    """Remove a softmax or sigmoid on the output (looking into a nested last layer): gbp explains
    the logit, and that head is no activation to count."""
    head = model
    while getattr(head, "layers", None):
        head = head.layers[-1]
    if isinstance(head, keras.layers.Softmax):
        head.call = lambda inputs, *args, **kwargs: inputs
    elif getattr(getattr(head, "activation", None), "__name__", None) in ("softmax", "sigmoid"):
        head.activation = keras.activations.linear


def find_cam_layer(model: keras.Model, asked: str | None = None) -> str | None:
    """Grad-CAM's layer path: `asked`, or the last layer whose output is a spatial feature map
    (N, h, w, C) with h, w > 1, which is the last one before global pooling. A DenseNet keeps
    its last dense block's output (torchvision's features.denseblock4, for parity). None: the
    model has no such map."""
    layers = dict(walk(model))
    if asked is not None:
        return _asked_cam_layer(layers, asked)
    blocks = [p for p in layers if re.fullmatch(r"conv5_block\d+_concat", p)]
    spatial = [p for p, layer in layers.items() if not _nests(layer) and _spatial(layer)]
    return (blocks or spatial or [None])[-1]


def _asked_cam_layer(layers: dict[str, keras.Layer], asked: str) -> str:
    matches = [p for p in layers if p == asked] or [p for p in layers if p.split("/")[-1] == asked]
    if len(matches) != 1:
        close = difflib.get_close_matches(asked, [*layers, *(p.split("/")[-1] for p in layers)])
        what = f"is ambiguous ({', '.join(matches)})" if matches else "is no layer of this model"
        hint = f"; close: {', '.join(dict.fromkeys(close))}" if close and not matches else ""
        raise BackendError(f"--cam-layer {asked} {what}{hint}")
    if not _spatial(layers[matches[0]]):
        shape = _shape(layers[matches[0]])
        raise BackendError(f"--cam-layer {asked}: its output {shape} is no feature map (N,h,w,C)")
    return matches[0]


def _nests(layer: keras.Layer) -> bool:
    return bool(getattr(layer, "layers", None))


def _shape(layer: keras.Layer) -> tuple | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _spatial(layer: keras.Layer) -> bool:
    shape = _shape(layer)
    return shape is not None and len(shape) == 4 and all(d is None or d > 1 for d in shape[1:3])
