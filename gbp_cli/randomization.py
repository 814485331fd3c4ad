"""Cascading randomization (Adebayo et al. 2018) and the class check (Nie et al. 2018).

The network is re-initialised stage by stage from the top, and each method's map compared with
the original one. The random values come from the shared, seeded initialisation in numpy, so
both backends randomise identically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from gbp_cli.backends import Backend
from gbp_cli.backends.densenet import BLOCKS, random_weights
from gbp_cli.errors import GbpError
from gbp_cli.methods import explain_maps
from gbp_cli.similarity import Similarity, similarity

CLASS_CHECK = "least-likely class"
NEARLY_THE_SAME = 0.9  # Spearman (|map|) above which two maps say the same thing
RANDOMIZATION_SEED = 1
DENSENET_STAGES = {
    "classifier": ("classifier.",),
    "block4": ("features.denseblock4.", "features.norm5."),
    "transition3": ("features.transition3.",),
    "block3": ("features.denseblock3.",),
    "transition2": ("features.transition2.",),
    "block2": ("features.denseblock2.",),
    "transition1": ("features.transition1.",),
    "block1": ("features.denseblock1.",),
    "stem": ("features.conv0.", "features.norm0."),
}
STAGES = tuple(DENSENET_STAGES)


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


def cascade(
    backend: Backend,
    names: list[str],
    images: np.ndarray,
    methods: tuple[str, ...],
    on_stage: Callable[[], None] | None = None,
) -> tuple[list[Record], dict[str, dict[str, np.ndarray]]]:
    """Every comparison, and the maps themselves per stage ('original' first) for the grid;
    `on_stage` hears each stage as it is done."""
    arch = backend.info.model
    if arch not in BLOCKS:
        raise GbpError(f"gbp sanity randomizes DenseNet stages; {arch} is not a DenseNet")
    original = backend.state()
    clean, base = explain_maps(backend, images, methods)
    maps = {"original": base}
    random = random_weights(arch, backend.info.num_classes, RANDOMIZATION_SEED)
    state = dict(original)
    try:
        for stage, prefixes in DENSENET_STAGES.items():
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
        for stage in (*STAGES, CLASS_CHECK)
    ]
    return records, maps
