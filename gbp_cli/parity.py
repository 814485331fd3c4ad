"""`gbp parity`: the same photo and weights through both backends, and how far apart they land."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backends.base import Backend

# Relative L2 per method; vanilla is looser since gates flip where a ReLU's input is ≈ 0.
TOLERANCE = {"logits": 1e-3, "guided": 1e-3, "deconv": 1e-3, "vanilla": 5e-3}


@dataclass(frozen=True)
class Agreement:
    """How closely the two backends agree on one image and method."""

    image: str
    method: str
    target: int
    logits: float  # max |Δ logit|
    saliency: float  # ‖torch − tf‖ / ‖torch‖

    @property
    def ok(self) -> bool:
        return self.logits <= TOLERANCE["logits"] and self.saliency <= TOLERANCE[self.method]


def relative_l2(reference: np.ndarray, other: np.ndarray) -> float:
    scale = float(np.linalg.norm(reference))
    return float(np.linalg.norm(reference - other)) / max(scale, np.finfo(np.float32).tiny)


def compare(
    names: list[str], images: np.ndarray, methods: tuple[str, ...], torch: Backend, tf: Backend
) -> list[Agreement]:
    """Explain with torch, then with TF for torch's targets, so both explain the same class."""
    first = torch.explain(images, methods)
    second = tf.explain(images, methods, targets=first.targets)
    rows = []
    for i, name in enumerate(names):
        logits = float(np.abs(first.logits[i] - second.logits[i]).max())
        for method in methods:
            error = relative_l2(first.saliency[method][i], second.saliency[method][i])
            rows.append(Agreement(name, method, int(first.targets[i, 0]), logits, error))
    return rows


def row_line(row: Agreement) -> str:
    verdict = "ok" if row.ok else f"OVER {TOLERANCE[row.method]:g}"
    return (
        f"{row.image}\t{row.method}\tclass {row.target}\tlogits {row.logits:.2e}\t"
        f"saliency {row.saliency:.2e}\t{verdict}"
    )
