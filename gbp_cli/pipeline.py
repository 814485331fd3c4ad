"""The shared explain pipeline: prepared batches → backend → renderings → files → results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backends.base import Backend, Explanation
from gbp_cli import __version__, render
from gbp_cli.batching import batched, prefetch
from gbp_cli.errors import InputError
from gbp_cli.inputs import Source
from gbp_cli.output import npy_bytes, output_path, output_stem, png_bytes, write_atomic
from gbp_cli.preprocess import Prepared, prepare


@dataclass(frozen=True)
class Job:
    """Everything the user asked for that applies to every input."""

    methods: tuple[str, ...]
    formats: tuple[str, ...]
    out_dir: Path
    labels: list[str]
    target: int | None = None
    top_k: int = 1
    resize: str = "squash"
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


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return exp / exp.sum(axis=-1, keepdims=True)


def _prepare(job: Job) -> Callable[[Source], Prepared]:
    return lambda source: prepare(source.path, job.resize)


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


def run(
    sources: Iterable[Source], backend: Backend, job: Job, report: Callable[[Result], None]
) -> Summary:
    """Explain every source, calling `report` once per input, in order."""
    summary = Summary()

    def finish(result: Result) -> None:
        summary.add(result)
        report(result)

    claimed: dict[Path, Source] = {}
    for batch in batched(
        prefetch(sources, _prepare(job), ahead=2 * job.batch_size), job.batch_size
    ):
        ready: list[tuple[Source, Prepared]] = []
        for source, future in batch:
            result = _check(source, future, job, claimed)
            if result is None:
                ready.append((source, future.result()))
            else:
                finish(result)
        if ready:
            start = time.perf_counter()
            explanation = _explain(ready, backend, job)
            share = (time.perf_counter() - start) / len(ready)
            summary.compute_seconds += share * len(ready)
            for i, (source, _) in enumerate(ready):
                begun = time.perf_counter()
                result = _write_one(i, source, explanation, backend, job)
                result.seconds = share + time.perf_counter() - begun
                finish(result)
    return summary


def _check(
    source: Source, future: Future[Prepared], job: Job, claimed: dict[Path, Source]
) -> Result | None:
    """None if the input should be explained, else its finished Result (an error or all kept)."""
    error = future.exception()
    if error is not None:
        if isinstance(error, InputError):
            return Result(source, error=str(error))
        raise error
    key = output_stem(job.out_dir, source.relative)
    other = claimed.setdefault(key, source)
    if other is not source:
        return Result(source, error=f"its outputs would overwrite those of {other.name}")
    if job.overwrite or job.per_class_names or job.to_stdout:
        return None
    planned = [
        output_path(job.out_dir, source.relative, m, f) for m in job.methods for f in job.formats
    ]
    if all(p.exists() for p in planned):
        return Result(source, kept=planned)
    return None


def _explain(ready: list[tuple[Source, Prepared]], backend: Backend, job: Job) -> Explanation:
    images = np.stack([prepared.array for _, prepared in ready])
    targets = None if job.target is None else np.full((len(ready), 1), job.target, dtype=np.int64)
    return backend.explain(images, job.methods, targets, job.top_k)


def _predictions(logits: np.ndarray, indices: Iterable[int], labels: list[str]) -> list[Prediction]:
    probabilities = softmax(logits)
    return [
        Prediction(int(c), labels[int(c)], float(logits[c]), float(probabilities[c]))
        for c in indices
    ]


def _write_one(
    i: int, source: Source, explanation: Explanation, backend: Backend, job: Job
) -> Result:
    logits = explanation.logits[i]
    top = np.argsort(-logits, kind="stable")[: max(5, job.top_k)]
    result = Result(
        source,
        targets=_predictions(logits, explanation.targets[i], job.labels),
        top=_predictions(logits, top, job.labels),
        relus=dict(explanation.relus),
    )
    for k, target in enumerate(result.targets):
        class_in_name = target.index if job.per_class_names else None
        for method in job.methods:
            saliency = explanation.saliency[method][i, k]
            for fmt in job.formats:
                data = _encode(saliency, fmt, method, target, backend, job)
                if job.to_stdout:
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
                    result.files.append(Path("-"))
                    continue
                path = output_path(job.out_dir, source.relative, method, fmt, class_in_name)
                if write_atomic(path, data, overwrite=job.overwrite):
                    result.files.append(path)
                else:
                    result.kept.append(path)
    return result


def _encode(
    saliency: np.ndarray, fmt: str, method: str, target: Prediction, backend: Backend, job: Job
) -> bytes:
    if fmt == "npy":
        return npy_bytes(saliency)
    info = backend.info
    metadata = {
        "Software": f"gbp {__version__}",
        "gbp:backend": info.backend,
        "gbp:model": info.model,
        "gbp:weights": info.weights.describe(),
        "gbp:method": method,
        "gbp:target": f"{target.index} {target.label}",
        "gbp:probability": f"{target.probability:.6f}",
        "gbp:resize": job.resize,
        "gbp:format": fmt,
    }
    return png_bytes(render.color(saliency), metadata)
