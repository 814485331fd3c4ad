"""A stand-in backend for pipeline, rendering and CLI tests: milliseconds, no framework.

Its "model" scores 1000 classes by fixed random projections of the image's mean colours, so the
top class depends on the photo; its "gradients" are the image itself, scaled per method, so maps
follow the photo's structure; Grad-CAM's features are the image pooled to 7×7.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from gbp_cli.backends.base import Backend, Explanation, ModelInfo, ModelSpec, WeightsSpec

CLASSES = 1000
RELUS = 3
_SCALE = {"guided": 1.0, "vanilla": -0.5, "deconv": 2.0}


class FakeBackend(Backend):
    def __init__(self, info: ModelInfo, mode: str = "auto") -> None:
        self.info = info
        self.mode = "" if mode == "auto" else mode  # what the summary line names
        self.projection = np.random.default_rng(7).normal(size=(3, CLASSES)).astype(np.float32)
        self.colours = np.ones(3, np.float32)  # a per-channel gain, so a "stage" to randomize
        self.calls = 0

    def state(self) -> dict[str, np.ndarray]:
        return {"projection": self.projection.copy(), "colours": self.colours.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.projection = np.asarray(state["projection"], np.float32)
        self.colours = np.asarray(state["colours"], np.float32)

    def stages(self) -> list[tuple[str, tuple[str, ...]]]:
        return [("head", ("projection",)), ("colours", ("colours",))]

    def random_state(self, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {"projection": rng.normal(size=(3, CLASSES)), "colours": rng.normal(size=3)}

    def explain(
        self,
        images: np.ndarray,
        methods: Sequence[str],
        targets: np.ndarray | None = None,
        top_k: int = 1,
        cam: bool = False,
    ) -> Explanation:
        self.calls += 1
        time.sleep(float(os.environ.get("GBP_FAKE_SECONDS", "0")))  # to be slow enough to stop
        n, h, w, c = images.shape
        logits = (images.mean(axis=(1, 2)) * self.colours) @ self.projection * 10
        chosen = np.argsort(-logits, axis=1)[:, :top_k] if targets is None else targets
        k = chosen.shape[1]
        saliency = {
            m: np.repeat(images[:, None] * self.colours * _SCALE[m], k, axis=1).astype(np.float32)
            for m in methods
        }
        features = feature_grads = None
        if cam:
            features = images.reshape(n, 7, h // 7, 7, w // 7, c).mean(axis=(2, 4))
            feature_grads = np.repeat(features[:, None], k, axis=1)
        return Explanation(
            logits=logits.astype(np.float32),
            targets=np.asarray(chosen, np.int64),
            saliency=saliency,
            relus={m: RELUS for m in methods},
            activations={m: {"ReLU": RELUS} for m in methods},
            features=features,
            feature_grads=feature_grads,
        )


def load(
    weights: WeightsSpec,
    device: str,
    precision: str = "fp32",
    mode: str = "auto",
    model: ModelSpec | None = None,
) -> FakeBackend:
    info = ModelInfo(
        "torch",
        "fake",
        CLASSES,
        weights,
        "cpu",
        precision=precision,
        activations={"ReLU": RELUS},
        cam_layer="pooled",
    )
    return FakeBackend(info, mode)
