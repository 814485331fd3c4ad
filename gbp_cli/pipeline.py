"""The shared explain pipeline: prepared batches → backend → maps → renderings → files → results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backends.base import Backend
from gbp_cli.batching import batched, prefetch
from gbp_cli.errors import InputError
from gbp_cli.inputs import Source
from gbp_cli.methods import explain_maps
from gbp_cli.output import output_stem, write_atomic
from gbp_cli.preprocess import Prepared, prepare
from gbp_cli.writing import PHOTO_FORMATS, Outputs, Target, encode


@dataclass(frozen=True)
class Job:
    """Everything the user asked for that applies to every input."""

    outputs: Outputs
    labels: list[str]
    target: int | None = None
    top_k: int = 1
    batch_size: int = 8
    overwrite: bool = False
    to_stdout: bool = False  # `-o -`: the single output's bytes go to stdout instead of a file

    @property
    def per_class_names(self) -> bool:
        """Several targets per image put the class index into file names."""
        return self.target is None and self.top_k > 1


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    logit: float
    probability: float


@dataclass
class Result:
    """What happened to one input."""

    source: Source
    error: str | None = None
    files: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # outputs that already existed
    targets: list[Prediction] = field(default_factory=list)
    top: list[Prediction] = field(default_factory=list)
    relus: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Summary:
    """What a run did, for the closing line on stderr and the exit code."""

    inputs: int = 0
    failed: int = 0
    kept: int = 0
    compute_seconds: float = 0.0

    def add(self, result: Result) -> None:
        self.inputs += 1
        self.failed += result.error is not None
        self.kept += result.error is None and not result.targets


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return exp / exp.sum(axis=-1, keepdims=True)


def predictions(logits: np.ndarray, indices: Iterable[int], labels: list[str]) -> list[Prediction]:
    probabilities = softmax(logits)
    return [
        Prediction(int(c), labels[int(c)], float(logits[c]), float(probabilities[c]))
        for c in indices
    ]


def run(
    sources: Iterable[Source], backend: Backend, job: Job, report: Callable[[Result], None]
) -> Summary:
    """Explain every source, calling `report` once per input, in order."""
    summary = Summary()
    keep_photo = any(f in PHOTO_FORMATS for f in job.outputs.formats)

    def load(source: Source) -> Prepared:
        return prepare(source.path, job.outputs.resize, keep_photo)

    def finish(result: Result) -> None:
        summary.add(result)
        report(result)

    claimed: dict[Path, Source] = {}
    for batch in batched(prefetch(sources, load, ahead=2 * job.batch_size), job.batch_size):
        ready: list[tuple[Source, Prepared]] = []
        for source, future in batch:
            result = _check(source, future, job, claimed)
            if result is None:
                ready.append((source, future.result()))
            else:
                finish(result)
        if not ready:
            continue
        start = time.perf_counter()
        images = np.stack([prepared.array for _, prepared in ready])
        targets = None if job.target is None else np.full((len(ready), 1), job.target)
        outputs = job.outputs
        explanation, maps = explain_maps(
            backend, images, outputs.methods, targets, job.top_k, outputs.smoothing
        )
        share = (time.perf_counter() - start) / len(ready)
        summary.compute_seconds += share * len(ready)
        for i, (source, prepared) in enumerate(ready):
            begun = time.perf_counter()
            logits = explanation.logits[i]
            result = Result(
                source,
                targets=predictions(logits, explanation.targets[i], job.labels),
                top=predictions(logits, np.argsort(-logits)[: max(5, job.top_k)], job.labels),
                relus=dict(explanation.relus),
            )
            for k, target in enumerate(result.targets):
                image_maps = {method: values[i, k] for method, values in maps.items()}
                _write(result, image_maps, prepared, target, k, backend, job)
            result.seconds = share + time.perf_counter() - begun
            finish(result)
    return summary


def _write(
    result: Result,
    maps: dict[str, np.ndarray],
    prepared: Prepared,
    target: Prediction,
    k: int,
    backend: Backend,
    job: Job,
) -> None:
    """Render and write one image's outputs for one target, recording what happened."""
    tag = Target(target.index, target.label, target.probability)
    class_in_name = target.index if job.per_class_names else None
    paths = job.outputs.planned(result.source.relative, class_in_name)
    encoded = encode(maps, prepared, tag, backend.info, job.outputs)
    for path, (_, _, data) in zip(paths, encoded, strict=True):
        if job.to_stdout:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            result.files.append(Path("-"))
        elif write_atomic(path, data, overwrite=job.overwrite):
            result.files.append(path)
        else:
            result.kept.append(path)


def _check(
    source: Source, future: Future[Prepared], job: Job, claimed: dict[Path, Source]
) -> Result | None:
    """None if the input should be explained, else its finished Result (an error or all kept)."""
    error = future.exception()
    if error is not None:
        if isinstance(error, InputError):
            return Result(source, error=str(error))
        raise error
    key = output_stem(job.outputs.out_dir, source.relative)
    other = claimed.setdefault(key, source)
    if other is not source:
        return Result(source, error=f"its outputs would overwrite those of {other.name}")
    if job.overwrite or job.per_class_names or job.to_stdout:
        return None
    planned = job.outputs.planned(source.relative)
    if all(p.exists() for p in planned):
        return Result(source, kept=planned)
    return None
