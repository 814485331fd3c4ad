"""The contract every backend meets: a model in, logits and input gradients out, as numpy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The backward rule at every ReLU (R = gradient from above, x = forward input):
#   vanilla  R·[x>0]        (Simonyan et al. 2013)
#   deconv   R·[R>0]        (Zeiler & Fergus 2014)
#   guided   R·[x>0]·[R>0]  (Springenberg et al. 2014)
METHODS = ("guided", "vanilla", "deconv")  # the gradient methods a backend computes
RANDOM_SEED = 0


@dataclass(frozen=True)
class WeightsSpec:
    """What `--weights` asked for: ImageNet from the framework's cache, seeded random, or a file."""

    kind: str  # "imagenet" | "random" | "file"
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
        return "imagenet"


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded, for result lines, JSON and PNG metadata."""

    backend: str
    model: str
    num_classes: int
    weights: WeightsSpec
    device: str
    precision: str = "fp32"  # or "bf16": computed in bfloat16, gradients and maps returned in fp32
    warnings: tuple[str, ...] = ()  # things the user must hear, e.g. ReLUs that were not reached


@dataclass
class Explanation:
    """One batch's result. Saliency is the gradient of the target logit w.r.t. the model input."""

    logits: np.ndarray  # (N, classes) float32
    targets: np.ndarray  # (N, K) int64
    saliency: dict[str, np.ndarray] = field(default_factory=dict)  # method → (N, K, H, W, 3)
    relus: dict[str, int] = field(default_factory=dict)  # method → ReLUs overridden in its pass
    # For Grad-CAM: the last dense block's output (N, h, w, C) and the ordinary gradient of each
    # target w.r.t. it (N, K, h, w, C). Everything made from them is shared code (gbp_cli.methods).
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

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """The weights as torchvision-layout numpy arrays (backends/densenet.py's naming)."""

    @abstractmethod
    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace the weights in place, from torchvision-layout numpy arrays."""

    def plan(self, images: int | None, batch_size: int) -> None:  # noqa: B027
        """Told how many images are coming (None: a stream), so a backend can pick how to run."""
