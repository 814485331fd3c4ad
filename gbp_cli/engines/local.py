"""The explain stage over many inputs: prepared batches → backend → maps → encoded → stored.

Three stages overlap: photos are decoded a window ahead in helper threads, the backend computes
in this one, and the previous batch is rendered and written in other helpers. Results come back
in input order, one per input.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gbp_cli.backends.base import Backend, Explanation
from gbp_cli.engines.batching import batched, helper_threads, prefetch
from gbp_cli.errors import InputError, NotAnInput, RunStopped
from gbp_cli.inputs.find import Source
from gbp_cli.inputs.preprocess import Prepared, prepare
from gbp_cli.outputs.planning import Planned, Planner, Prediction, predictions
from gbp_cli.outputs.store import Store
from gbp_cli.render.encode import PHOTO_FORMATS, Target, encode
from gbp_cli.saliency.maps import explain_maps


@dataclass(frozen=True)
class Job:
    """Everything the user asked for that applies to every input."""

    planner: Planner
    labels: list[str]
    resize: str
    target: int | None = None
    top_k: int = 1
    batch_size: int = 8
    to_stdout: bool = False  # `-o -`: the single output's bytes go to stdout instead of a file


@dataclass
class Result:
    """What happened to one input."""

    source: Source
    error: str | None = None
    files: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # identical outputs that already existed
    targets: list[Prediction] = field(default_factory=list)
    top: list[Prediction] = field(default_factory=list)
    relus: dict[str, int] = field(default_factory=dict)
    activations: dict[str, dict[str, int]] = field(default_factory=dict)  # method → kind → n
    ordinary: dict[str, int] = field(default_factory=dict)  # kinds left with their own gradient
    seconds: float = 0.0
    skipped: bool = False  # a file gbp wrote, met as an input: not explained, only counted


@dataclass
class Summary:
    """What a run did, for the closing line on stderr and the exit code."""

    inputs: int = 0
    explained: int = 0
    failed: int = 0
    kept: int = 0
    skipped: int = 0
    compute_seconds: float = 0.0

    def add(self, result: Result) -> None:
        if result.skipped:
            self.skipped += 1
            return
        self.inputs += 1
        if result.error is not None:
            self.failed += 1
        elif result.files:
            self.explained += 1
        else:
            self.kept += 1


Progress = Callable[[float], None]  # advance the progress display by a fraction of images


def run(
    sources: Iterable[Source],
    backend: Backend,
    job: Job,
    report: Callable[[Result], None],
    store: Store,
    progress: Progress | None = None,
) -> Summary:
    """Explain every source, calling `report` once per input, in order."""
    summary = Summary()
    keep_photo = any(f in PHOTO_FORMATS for _, f in job.planner.outputs.kinds())
    smoothing = job.planner.outputs.smoothing
    share = 1.0 / (1 + (smoothing.samples if smoothing else 0))  # of an image, per pass

    preprocessing = backend.info.preprocessing

    def load(source: Source) -> Prepared:
        return prepare(source.path, job.resize, keep_photo, preprocessing)

    def flush(slots: list[Result | Future[Result]]) -> None:
        for slot in slots:
            result = slot.result() if isinstance(slot, Future) else slot
            summary.add(result)
            report(result)

    pending: list[Result | Future[Result]] | None = None
    threads = helper_threads()
    loaded = prefetch(sources, load, ahead=2 * job.batch_size, workers=threads)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gbp-write") as writer:
        for batch in batched(loaded, job.batch_size):
            slots: list[Result | Future[Result] | None] = []
            ready: list[tuple[int, Source, Prepared]] = []
            for source, future in batch:
                slots.append(_check(source, future, job))
                if slots[-1] is None:
                    ready.append((len(slots) - 1, source, future.result()))
            if ready:
                start = time.perf_counter()
                images = np.stack([prepared.array for _, _, prepared in ready])
                targets = None if job.target is None else np.full((len(ready), 1), job.target)
                tick = None
                if progress is not None:
                    tick = functools.partial(progress, share * len(ready))
                methods = job.planner.outputs.methods
                explanation, maps = explain_maps(
                    backend, images, methods, targets, job.top_k, smoothing, tick
                )
                each = (time.perf_counter() - start) / len(ready)
                summary.compute_seconds += each * len(ready)
                for i, (slot, source, prepared) in enumerate(ready):
                    planned = _claim(source, prepared, explanation, i, job)
                    if isinstance(planned, Result):
                        slots[slot] = planned
                        continue
                    slots[slot] = writer.submit(
                        _write, i, source, prepared, explanation, maps, planned, each, job, store
                    )
            if pending is not None:
                flush(pending)  # the previous batch was written while this one computed
            pending = slots  # type: ignore[assignment]
        if pending is not None:
            flush(pending)
    return summary


def _check(source: Source, future: Future[Prepared], job: Job) -> Result | None:
    """None if the input should be explained, else its finished Result (an error, a skipped
    file of gbp's own, or every output already there and identical)."""
    error = future.exception()
    if isinstance(error, NotAnInput):
        return Result(source, skipped=True)
    if isinstance(error, InputError):
        return Result(source, error=str(error))
    if error is not None:
        raise error
    if job.to_stdout:
        return None
    try:
        kept = job.planner.existing(source, future.result())
    except InputError as e:
        return Result(source, error=str(e))
    return None if kept is None else Result(source, kept=kept)


def _claim(
    source: Source, prepared: Prepared, explanation: Explanation, i: int, job: Job
) -> list[Planned] | Result:
    """This image's outputs now that its classes are known, each claimed for it in this run."""
    targets = predictions(explanation.logits[i], explanation.targets[i], job.labels)
    if job.to_stdout:
        return job.planner.plan(source, prepared, targets)
    try:
        return job.planner.claim(source, job.planner.plan(source, prepared, targets))
    except InputError as e:
        return Result(source, error=str(e))


def _write(
    i: int,
    source: Source,
    prepared: Prepared,
    explanation: Explanation,
    maps: dict[str, np.ndarray],
    planned: list[Planned],
    share: float,
    job: Job,
    store: Store,
) -> Result:
    """Image `i` of a computed batch: its predictions, and every output stored."""
    begun = time.perf_counter()
    logits = explanation.logits[i]
    result = Result(
        source,
        targets=predictions(logits, explanation.targets[i], job.labels),
        top=predictions(logits, np.argsort(-logits)[: max(5, job.top_k)], job.labels),
        relus=dict(explanation.relus),
        activations=dict(explanation.activations),
        ordinary=dict(explanation.ordinary),
    )
    info = job.planner.info
    try:
        for output in planned:
            image_maps = [{m: v[i, k] for m, v in maps.items()} for k in output.ranks]
            tags = [Target(t.index, t.label, t.probability) for t in output.targets]
            data = encode(
                output.method, output.format, image_maps, prepared, tags, info,
                job.planner.outputs, output.provenance, explanation.ordinary,
            )  # fmt: skip
            if job.to_stdout:
                _to_stdout(data)
                result.files.append(Path("-"))
            elif store.save(output.path, data, output.provenance):
                result.files.append(output.path)
            else:
                result.kept.append(output.path)
    except InputError as e:
        return Result(source, error=str(e))
    result.seconds = share + time.perf_counter() - begun
    return result


def _to_stdout(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise RunStopped(f"cannot write to stdout: {reason}") from None
