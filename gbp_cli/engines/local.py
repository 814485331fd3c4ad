"""The explain stage over many inputs: prepared batches → backend → maps → encoded → stored.

Three stages overlap: photos are decoded a window ahead in helper threads, the backend computes
in this one, and the previous batch is rendered and written in other helpers. Once the model
waits for them, decoding and rendering move to worker processes (engines.helpers). Results come
back in input order, one per input.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from gbp_cli.backends.base import Backend, Explanation
from gbp_cli.engines.base import Job, Progress, Report, Result, Summary, record_of
from gbp_cli.engines.batching import batched, helper_threads, prefetch
from gbp_cli.engines.helpers import Helpers
from gbp_cli.engines.writing import write_result
from gbp_cli.errors import InputError, NotAnInput, RunStopped
from gbp_cli.inputs.find import Source
from gbp_cli.inputs.preprocess import Prepared, prepare
from gbp_cli.outputs.planning import Planned, predictions
from gbp_cli.outputs.store import Store
from gbp_cli.render.encode import encode
from gbp_cli.saliency.maps import explain_maps
from gbp_cli.saliency.model import ModelChoice


def run(
    sources: Iterable[Source],
    backend: Backend,
    job: Job,
    report: Report,
    store: Store,
    progress: Progress | None = None,
) -> Summary:
    """Explain every source, calling `report` once per input, in order."""
    summary = Summary()
    try:
        return _run(sources, backend, job, report, store, progress, summary)
    except RunStopped as e:  # what was done by then, for the closing line
        e.summary = summary
        raise


def _run(
    sources: Iterable[Source],
    backend: Backend,
    job: Job,
    report: Report,
    store: Store,
    progress: Progress | None,
    summary: Summary,
) -> Summary:
    keep_photo = job.planner.outputs.keeps_photo
    bound = job.planner.outputs.rendering.max_size  # the photo is kept at the pictures' size
    smoothing = job.planner.outputs.smoothing
    share = 1.0 / job.planner.outputs.passes  # of an image, per pass
    preprocessing = backend.info.preprocessing

    helpers = Helpers()
    encoder, preparer = helpers.lane(encode), helpers.lane(prepare)

    def load(source: Source) -> Prepared:
        return preparer(source.path, job.resize, keep_photo, preprocessing, bound)

    def flush(slots: list[Result | Future[Result]]) -> None:
        for slot in slots:
            result = slot.result() if isinstance(slot, Future) else slot
            summary.add(result)
            report(result)

    pending: list[Result | Future[Result]] | None = None
    threads = max(helper_threads(), helpers.size)  # a thread waits on each worker process
    loaded = prefetch(sources, load, ahead=2 * job.batch_size, workers=threads)
    fetched = time.perf_counter()
    with (
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gbp-write") as writer,
        contextlib.closing(helpers),
    ):
        for batch in batched(loaded, job.batch_size):
            waited, computed = time.perf_counter() - fetched, 0.0  # for this batch's photos
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
                try:
                    explanation, maps = explain_maps(
                        backend, images, methods, targets, job.top_k, smoothing, tick
                    )
                except Exception:
                    if pending is not None:  # the batch before was written: say so first
                        flush(pending)
                    raise
                computed = time.perf_counter() - start
                each = computed / len(ready)
                summary.compute_seconds += computed
                for i, (slot, source, prepared) in enumerate(ready):
                    planned = _claim(source, prepared, explanation, i, job)
                    if isinstance(planned, Result):
                        slots[slot] = planned
                        continue
                    slots[slot] = writer.submit(
                        write_result, i, source, prepared, explanation, maps, planned, each, job,
                        store, encoder,
                    )  # fmt: skip
            if pending is not None:
                flushing = time.perf_counter()
                flush(pending)  # the previous batch was written while this one computed
                waited += time.perf_counter() - flushing
            pending = slots  # type: ignore[assignment]
            if ready:  # a batch all kept or failed says nothing of the model's pace
                helpers.paced(waited, computed)
            fetched = time.perf_counter()
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


class LocalEngine:
    """This process: the model loads here once, and every batch runs through it."""

    def open(self, choice: ModelChoice) -> Backend:
        return choice.open()

    def record(self, choice: ModelChoice) -> dict[str, str]:
        return record_of(choice)

    run = staticmethod(run)
