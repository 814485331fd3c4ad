"""Cascading randomization (Adebayo et al. 2018) and the class check (Nie et al. 2018).

The network is re-initialised stage by stage from the top, and each method's map compared with
the original one. A twin (the same network in both backends, backends/twins/) is cut into the
same stages and re-drawn from one seeded numpy draw in either backend, so both report the same
figures for the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from gbp_cli.backends import Backend
from gbp_cli.errors import GbpError
from gbp_cli.saliency.maps import explain_maps
from gbp_cli.sanity.similarity import Similarity, similarity

CLASS_CHECK = "least-likely class"
NEARLY_THE_SAME = 0.9  # Spearman (|map|) above which two maps say the same thing
RANDOMIZATION_SEED = 1


@dataclass(frozen=True)
class Record:
    """One (image, method, stage) comparison."""

    image: str
    method: str
    stage: str  # the deepest stage randomized so far, or CLASS_CHECK
    similarity: Similarity

    def fields(self) -> dict[str, object]:
        return {
            "input": self.image,
            "method": self.method,
            "stage": self.stage,
            **asdict(self.similarity),
        }


def stages_of(backend: Backend) -> list[tuple[str, tuple[str, ...]]]:
    """The backend's stages from the output back (DenseNet: classifier, block4, transition3, …,
    stem; ResNet: fc, layer4, …, stem; VGG: classifier, conv5, …; MobileNet: its inverted-residual
    stages; anything else: its weighted layers in about eight groups), the same for a twin in
    both backends (backends/stages.py)."""
    stages = getattr(backend, "stages", None)
    if stages is None:
        raise GbpError(f"gbp sanity cannot randomize {backend.info.model}: no stages known")
    return stages()


def cascade(
    backend: Backend,
    names: list[str],
    images: np.ndarray,
    methods: tuple[str, ...],
    on_stage: Callable[[], None] | None = None,
) -> tuple[list[Record], dict[str, dict[str, np.ndarray]]]:
    """Every comparison, and the maps themselves per stage ('original' first) for the grid;
    `on_stage` hears each stage as it is done."""
    stages = stages_of(backend)
    original = backend.state()
    clean, base = explain_maps(backend, images, methods)
    maps = {"original": base}
    random = backend.random_state(RANDOMIZATION_SEED)  # type: ignore[attr-defined]
    state = dict(original)
    try:
        for stage, prefixes in stages:
            for key in state:
                if key.startswith(prefixes):
                    state[key] = random[key]
            backend.load_state(state)
            maps[stage] = explain_maps(backend, images, methods, clean.targets)[1]
            if on_stage is not None:
                on_stage()
    finally:
        backend.load_state(original)
    least = clean.logits.argmin(axis=1)[:, None]
    maps[CLASS_CHECK] = explain_maps(backend, images, methods, least)[1]
    records = [
        Record(name, method, stage, similarity(base[method][i, 0], maps[stage][method][i, 0]))
        for i, name in enumerate(names)
        for method in methods
        for stage in (*(s for s, _ in stages), CLASS_CHECK)
    ]
    return records, maps
