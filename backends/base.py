"""The contract every backend meets: a model in, logits and input gradients out, as numpy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only in annotations: `gbp --help` need not import it
    import numpy as np

RANDOM_SEED = 0
# fp32 the default; bf16 for speed (maps returned in fp32); fp64 for checking (gbp parity).
PRECISIONS = ("fp32", "bf16", "fp64")
DISTRIBUTION = "gbp-saliency"  # what `pip install` calls gbp (the name `gbp` is taken on PyPI)


class GbpError(Exception):
    """The base of every error gbp raises on purpose, as `gbp_cli.GbpError`: its message is one
    line for the user (the CLI shows it as `gbp: …`). It lives here, the lowest layer, so that
    the backends, which import nothing else of gbp, raise the same family."""

    exit_code = 2  # the CLI's exit status for it: a usage or configuration problem


class BackendError(GbpError):
    """A model, weights or device problem that stops the run; the CLI shows it as one line."""


@dataclass(frozen=True)
class WeightsSpec:
    """What `--weights` asked for: ImageNet from the framework's cache, seeded random, or a file."""

    kind: str  # "imagenet" | "random" | "file" | "given" (a model object's own, Python API)
    path: Path | None = None
    seed: int = RANDOM_SEED

    @classmethod
    def parse(cls, text: str) -> WeightsSpec:
        if text in ("imagenet", "random"):
            return cls(text)
        return cls("file", Path(text))

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    def describe(self) -> str:
        if self.kind == "file":
            return str(self.path)
        if self.kind == "random":
            return f"random (seed {self.seed}, NOT trained)"
        if self.kind == "given":  # a model object handed to the Python API: its own weights
            return "the model's own"
        return "imagenet"


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Triple = tuple[float, float, float]
# The pixel scalings --normalize names, for a model of your own, in both backends: name →
# (mean, std, BGR), applied as (pixels in [0, 1] − mean) / std.
NORMALIZATIONS: dict[str, tuple[Triple, Triple, bool]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD, False),  # torchvision's; keras.applications' "torch"
    "caffe": ((103.939 / 255, 116.779 / 255, 123.68 / 255), (1 / 255,) * 3, True),  # BGR, − mean
    "tf": ((0.5,) * 3, (0.5,) * 3, False),  # pixels scaled to [-1, 1]
    "none": ((0.0,) * 3, (1.0,) * 3, False),  # pixels in [0, 1]
}


@dataclass(frozen=True)
class ModelSpec:
    """What `--model` asked for, and what describes a user's own model."""

    name: str = "densenet201"  # torchvision name | package.module:factory | PATH.keras | keras:NAME
    input_size: int | None = None  # --input-size, for a user's own model (default 224)
    normalize: str | None = None  # --normalize imagenet|caffe|tf|none, for a user's own model
    cam_layer: str | None = None  # --cam-layer: a torch module path or a Keras layer name
    other_activations: str = "refuse"  # "gradient": activations with no rule keep their own

    @property
    def kind(self) -> str:
        """ "zoo" (a framework's named model), "factory" (module:callable), "keras-file", or
        "keras-app" (keras:NAME, a Keras application with no torchvision twin)."""
        if self.name.startswith("keras:"):
            return "keras-app"
        if self.name.endswith(".keras"):
            return "keras-file"
        if ":" in self.name:
            return "factory"
        return "zoo"


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes this model's input: input = (pixels in [0, 1] − mean) / std.

    caffe (VGG's Keras weights): BGR, mean (103.939, 116.779, 123.68)/255, std 1/255;
    tf: mean 0.5, std 0.5; none: mean 0, std 1; EfficientNet-Lite: mean 127/255, std 128/255.
    """

    size: int = 224  # the square the model sees
    resize: int = 256  # `--resize crop`: the shorter side before the centre crop
    interpolation: str = "bilinear"  # or "bicubic", "nearest"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    bgr: bool = False
    name: str = "imagenet"  # for metadata: imagenet | caffe | tf | none | lite | …


def precise(precision: str) -> str:
    """`precision`, if a backend can compute in it (checked before a model is built)."""
    if precision not in PRECISIONS:
        raise BackendError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded, for result lines, JSON and PNG metadata."""

    backend: str
    model: str
    num_classes: int
    weights: WeightsSpec
    device: str
    precision: str = "fp32"  # one of PRECISIONS
    warnings: tuple[str, ...] = ()  # things the user must hear, e.g. ReLUs that were not reached
    preprocessing: Preprocessing = Preprocessing()
    # Activations seen in one forward pass, by kind ("ReLU", "ReLU6", "SiLU", …), and for kinds
    # with no backward rule (backends/rules.py) the first few module or layer paths.
    activations: dict[str, int] = field(default_factory=dict)
    unruled: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cam_layer: str | None = None  # Grad-CAM's layer; None: the model has no spatial feature map
    twin: str | None = None  # the same network in the other backend, by its name there

    @property
    def input_size(self) -> int:
        return self.preprocessing.size

    @property
    def normalization(self) -> str:
        return self.preprocessing.name


@dataclass
class Explanation:
    """One batch's result. Saliency is the gradient of the target logit w.r.t. the model input."""

    logits: np.ndarray  # (N, classes) float32
    targets: np.ndarray  # (N, K) int64
    saliency: dict[str, np.ndarray] = field(default_factory=dict)  # method → (N, K, H, W, 3)
    relus: dict[str, int] = field(default_factory=dict)  # method → activations its rule reached
    # method → {kind: activations its rule was applied to in one pass}, and the kinds left with
    # their ordinary gradient under --other-activations gradient, with their counts.
    activations: dict[str, dict[str, int]] = field(default_factory=dict)
    ordinary: dict[str, int] = field(default_factory=dict)
    # For Grad-CAM: the last dense block's output (N, h, w, C) and the ordinary gradient of each
    # target w.r.t. it (N, K, h, w, C). Everything made from them is shared code
    # (gbp_cli.saliency.maps).
    features: np.ndarray | None = None
    feature_grads: np.ndarray | None = None


class Backend(ABC):
    """A loaded model that can explain batches of preprocessed images (N, H, W, 3, float32)."""

    info: ModelInfo

    @abstractmethod
    def explain(
        self,
        images: np.ndarray,
        methods: Sequence[str],
        targets: np.ndarray | None = None,
        top_k: int = 1,
        cam: bool = False,
    ) -> Explanation:
        """Forward once, then take each method's input gradient for each target.

        With `targets` None, the targets are each image's `top_k` most likely classes. With `cam`,
        also return the Grad-CAM layer's output and its ordinary gradients.
        """

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The logits (N, classes) of a forward pass alone, for the many perturbed copies
        `gbp evaluate` scores: no gradient is taken, so nothing of the pass is kept. The torch
        and TF backends run it without autograd or a tape; this default, for a backend of your
        own, is `explain` with no methods."""
        return self.explain(images, []).logits

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """The weights as torchvision-layout numpy arrays (backends/densenet.py's naming)."""

    @abstractmethod
    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace the weights in place, from torchvision-layout numpy arrays."""

    def plan(self, images: int | None, batch_size: int) -> None:  # noqa: B027
        """Told how many images are coming (None: a stream), so a backend can pick how to run."""
