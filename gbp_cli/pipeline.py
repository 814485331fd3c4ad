"""The shared explain pipeline: prepared batches → backend → maps → renderings → files → results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backends.base import Backend, Explanation
from gbp_cli.batching import batched, helper_threads, prefetch
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
    """Explain every source, calling `report` once per input, in order.

    Three stages overlap: photos are decoded a window ahead in helper threads, the backend
    computes in this one, and the previous batch is rendered and written in other helpers.
    """
    summary = Summary()
    keep_photo = any(f in PHOTO_FORMATS for f in job.outputs.formats)

    def load(source: Source) -> Prepared:
        return prepare(source.path, job.outputs.resize, keep_photo)

    def flush(slots: list[Result | Future[Result]]) -> None:
        for slot in slots:
            result = slot.result() if isinstance(slot, Future) else slot
            summary.add(result)
            report(result)

    claimed: dict[Path, Source] = {}
    pending: list[Result | Future[Result]] | None = None
    threads = helper_threads()
    loaded = prefetch(sources, load, ahead=2 * job.batch_size, workers=threads)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gbp-write") as writer:
        for batch in batched(loaded, job.batch_size):
            slots: list[Result | Future[Result] | None] = []  # None: to be written below
            ready: list[tuple[int, Source, Prepared]] = []
            for source, future in batch:
                slots.append(_check(source, future, job, claimed))
                if slots[-1] is None:
                    ready.append((len(slots) - 1, source, future.result()))
            if ready:
                start = time.perf_counter()
                images = np.stack([prepared.array for _, _, prepared in ready])
                targets = None if job.target is None else np.full((len(ready), 1), job.target)
                explanation, maps = explain_maps(
                    backend, images, job.outputs.methods, targets, job.top_k, job.outputs.smoothing
                )
                share = (time.perf_counter() - start) / len(ready)
                summary.compute_seconds += share * len(ready)
                for i, (slot, source, prepared) in enumerate(ready):
                    slots[slot] = writer.submit(
                        _write_image, i, source, prepared, explanation, maps, share, backend, job
                    )
            if pending is not None:
                flush(pending)  # the previous batch was written while this one computed
            pending = slots  # type: ignore[assignment]
        if pending is not None:
            flush(pending)
    return summary


def _write_image(
    i: int,
    source: Source,
    prepared: Prepared,
    explanation: Explanation,
    maps: dict[str, np.ndarray],
    share: float,
    backend: Backend,
    job: Job,
) -> Result:
    """Image `i` of a computed batch: its predictions, and every output on disk."""
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
    return result


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
