"""A group of photos through the measures: their maps in one gradient pass, then every perturbed
copy of every photo and map through the model's forward pass alone (Backend.predict: no
autograd, no tape), `batch_size` copies at a time, the next batch made in a helper thread while
the model computes this one. The cost is forward passes, not Python loops."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

import numpy as np

from gbp_cli.backends.base import Backend, Preprocessing
from gbp_cli.faithfulness.baselines import edge_map, random_map
from gbp_cli.faithfulness.metrics import (
    ORIGINAL,
    RANDOM_MAP,
    Curves,
    Photo,
    Settings,
    Slot,
    assemble,
    perturbations,
)
from gbp_cli.saliency.maps import explain_maps


@dataclass
class Evaluated:
    """One photo's result: the class its maps explain, that class's probability on the photo,
    and every (map, metric)'s curves."""

    photo: Photo
    target: int
    probability: float
    curves: dict[tuple[str, str], Curves]

    def scores(self) -> dict[tuple[str, str], float]:
        """(map, score name) → value."""
        return {
            (name, score): value
            for (name, _), curves in self.curves.items()
            for score, value in curves.scores().items()
        }


def baseline_maps(
    photo: Photo, baselines: Sequence[str], settings: Settings, pre: Preprocessing
) -> dict[str, np.ndarray]:
    """The baselines' maps of one photo, (H, W, 1) each."""
    height, width = photo.image.shape[:2]
    made = {
        "random": lambda: random_map(height, width, photo.rng(settings.seed, RANDOM_MAP)),
        "edges": lambda: edge_map(photo.image, pre),
    }
    return {name: made[name]() for name in baselines}


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax in float64, the same arithmetic whichever backend gave the logits."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def evaluate(
    backend: Backend,
    photos: Sequence[Photo],
    methods: Sequence[str],
    baselines: Sequence[str],
    settings: Settings,
    batch_size: int,
    on_copies: Callable[[int], None] | None = None,
) -> list[Evaluated]:
    """Every photo's curves for each method's map and each baseline; `on_copies` hears how many
    copies each forward pass scored."""
    pre = backend.info.preprocessing
    clean, maps = explain_maps(backend, np.stack([p.image for p in photos]), methods)
    targets = clean.targets[:, 0]
    per_photo = [
        {m: maps[m][i, 0] for m in methods} | baseline_maps(photo, baselines, settings, pre)
        for i, photo in enumerate(photos)
    ]
    del maps
    stream = (
        (i, slot, copy)
        for i, photo in enumerate(photos)
        for slot, copy in perturbations(photo, per_photo[i], settings, pre)
    )
    found: list[dict[Slot, float]] = [{} for _ in photos]
    for keys, images in _ahead(_batches(stream, batch_size)):
        p = probabilities(backend.predict(images))
        for row, (i, slot) in enumerate(keys):
            found[i][slot] = float(p[row, targets[i]])
        if on_copies is not None:
            on_copies(len(keys))
    results = []
    for i, photo in enumerate(photos):
        pixels = photo.image.shape[0] * photo.image.shape[1]
        curves = assemble(found[i], per_photo[i], settings, pixels)
        results.append(Evaluated(photo, int(targets[i]), found[i][ORIGINAL], curves))
    return results


Batch = tuple[list[tuple[int, Slot]], np.ndarray]


def _batches(stream: Iterator[tuple[int, Slot, np.ndarray]], size: int) -> Iterator[Batch]:
    """Consecutive batches of `size` copies (the last may be short), across maps and photos."""
    while chunk := list(islice(stream, size)):
        yield [(i, slot) for i, slot, _ in chunk], np.stack([copy for _, _, copy in chunk])


def _ahead(batches: Iterator[Batch]) -> Iterator[Batch]:
    """`batches`, each made in a helper thread while the caller computes the one before (ROAD's
    imputation is CPU work that a GPU's forward pass would otherwise wait for)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gbp-perturb") as pool:
        pending = pool.submit(next, batches, None)
        while (batch := pending.result()) is not None:
            pending = pool.submit(next, batches, None)
            yield batch
