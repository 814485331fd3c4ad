"""What runs on the Ray workers for `gbp explain --engine ray`: prepare, explain, write.

The unit of work is a group: up to --batch-size consecutive inputs, cut exactly as the local
engine cuts its batches, so the model sees the same batches and writes the same bytes. A group
travels between the stages as one pickled row ({"group": index, "work": bytes}): Ray Data never
re-batches it, and paths that are not valid UTF-8 need no Arrow column of their own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gbp_cli.backends.base import Backend, Explanation, ModelInfo
from gbp_cli.engines.base import Job, Result, record_of
from gbp_cli.engines.writing import write_result
from gbp_cli.errors import InputError, NotAnInput, RunStopped
from gbp_cli.inputs.find import Source
from gbp_cli.inputs.preprocess import IMAGENET, Prepared, prepare
from gbp_cli.outputs.planning import predictions
from gbp_cli.outputs.store import Store
from gbp_cli.saliency.maps import explain_maps
from gbp_cli.saliency.model import ModelChoice

Batch = dict[str, np.ndarray]


@dataclass
class Item:
    """One input on its way through the stages."""

    source: Source
    refused: str | None = None  # the driver's claim said no; reported after decoding, as locally
    result: Result | None = None  # finished before the model: an error, a skip, all outputs kept
    prepared: Prepared | None = None  # waiting for the model, then for its files


@dataclass
class Group:
    """One model batch: up to --batch-size consecutive inputs, and what became of them."""

    index: int
    items: list[Item]
    images: np.ndarray | None = None  # the ready inputs' model inputs, stacked as locally
    explanation: Explanation | None = None  # logits, targets and ReLU counts only
    maps: dict[str, np.ndarray] | None = None
    seconds: float = 0.0  # model time for the whole batch
    results: list[Result] = field(default_factory=list)  # in input order
    logs: list[str] = field(default_factory=list)  # the Store's notes, for the driver to print
    stopped: str | None = None  # a RunStopped (a full disk): the driver stops the run
    # Any other exception the stages met (the model's, or a bug of gbp's), carried as data: Ray
    # Data's own wrapping keeps only its text, and the driver must end the run as the local
    # engine would, with that exception.
    error: Exception | None = None

    def ready(self) -> list[Item]:
        return [item for item in self.items if item.prepared is not None and item.result is None]


def pack(groups: list[Group]) -> Batch:
    """Groups → a Ray Data batch with one row per group."""
    return {
        "group": np.array([g.index for g in groups], dtype=np.int64),
        "work": np.array([pickle.dumps(g, protocol=5) for g in groups], dtype=object),
    }


def unpack(batch: Batch) -> list[Group]:
    return [pickle.loads(blob) for blob in batch["work"]]


@dataclass(frozen=True)
class Opener:
    """How each worker opens the model: the user's choice travels, never a loaded model."""

    choice: ModelChoice
    threads: int | None = None  # torch's intra-op threads; None: what Ray gives the actor

    def open(self) -> Backend:
        if self.threads and self.choice.backend == "torch":
            import torch

            torch.set_num_threads(self.threads)
        return self.choice.open()


def probe(opener: Opener) -> tuple[ModelInfo, dict[str, str]]:
    """Open the model once on a worker, for what the driver must know before the run (classes,
    warnings, the record's model name, its weights as the workers have them) without loading it
    itself."""
    return opener.open().info, record_of(opener.choice)


def worker_job(job: Job) -> Job:
    """The Job as workers need it: the driver keeps the run's claims and its list of inputs."""
    planner = dataclasses.replace(job.planner.unclaimed(), inputs=frozenset())
    return dataclasses.replace(job, planner=planner)


def keeps_photo(job: Job) -> bool:
    return job.planner.outputs.keeps_photo


def prepare_groups(batch: Batch, job: Job) -> Batch:
    """CPU stage: decode every input and decide, as the local engine's `_check` does, whether it
    is skipped, failed, already done, or goes to the model."""
    groups = unpack(batch)
    keep_photo = keeps_photo(job)
    for group in groups:
        for item in group.items:
            _prepare(item, job, keep_photo)
        ready = group.ready()
        if ready:
            group.images = np.stack([item.prepared.array for item in ready])  # type: ignore[union-attr]
            for item in ready:  # the stack holds them now
                item.prepared.array = np.empty(0, np.float32)  # type: ignore[union-attr]
    return pack(groups)


def _prepare(item: Item, job: Job, keep_photo: bool) -> None:
    source = item.source
    info = job.planner.info
    bound = job.planner.outputs.rendering.max_size
    try:
        pre = IMAGENET if info is None else info.preprocessing
        prepared = prepare(source.path, job.resize, keep_photo, pre, bound)
    except NotAnInput:
        item.result = Result(source, skipped=True)
        return
    except InputError as e:
        item.result = Result(source, error=str(e))
        return
    if item.refused is not None:
        item.result = Result(source, error=item.refused)
        return
    planner = job.planner.unclaimed()  # claims were the driver's
    try:
        kept = planner.existing(source, prepared)
    except InputError as e:
        item.result = Result(source, error=str(e))
        return
    if kept is not None:
        item.result = Result(source, kept=kept)
    else:
        item.prepared = prepared


class Explainer:
    """The model stage: one actor per worker, the model loaded once in __init__."""

    def __init__(self, opener: Opener, job: Job, total: int | None) -> None:
        self.model = opener.open()
        self.model.plan(total, job.batch_size)
        self.job = job

    def __call__(self, batch: Batch) -> Batch:
        groups = unpack(batch)
        outputs = self.job.planner.outputs
        for group in groups:
            if group.images is None or group.error is not None:
                continue
            start = time.perf_counter()
            n = len(group.images)
            targets = None if self.job.target is None else np.full((n, 1), self.job.target)
            try:
                explanation, maps = explain_maps(
                    self.model, group.images, outputs.methods, targets, self.job.top_k,
                    outputs.smoothing,
                )  # fmt: skip
            except Exception as e:
                group.error, group.images = carried(e), None
                continue
            group.seconds = time.perf_counter() - start
            # What writing needs (predictions, counts); the gradients live on in `maps`.
            group.explanation = dataclasses.replace(
                explanation, saliency={}, features=None, feature_grads=None
            )
            group.maps = maps
            group.images = None
        return pack(groups)


def carried(error: Exception) -> Exception:
    """`error` as it can travel to the driver: itself if it pickles, else its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


_STORES: dict[tuple[bool, float], Store] = {}  # per worker process: each folder tidied once


def write_groups(batch: Batch, job: Job, overwrite: bool, started: float) -> Batch:
    """CPU stage: render and store every explained input's files (Store: atomic, checked)."""
    groups = unpack(batch)
    store = _STORES.get((overwrite, started))
    if store is None:
        root = job.planner.outputs.out_dir  # nothing written outside -o
        store = _STORES[(overwrite, started)] = Store(overwrite, lambda _: None, root=root)
        store.started = started  # stale temp files are judged against the run, not this worker
    for group in groups:
        store.log = group.logs.append
        if group.error is not None:
            continue
        try:
            _write_group(group, job, store)
        except RunStopped as e:  # the results so far are reported, then the run stops
            group.stopped = str(e)
        except Exception as e:
            group.error = carried(e)
        group.maps = None
        group.explanation = None
    return pack(groups)


def _write_group(group: Group, job: Job, store: Store) -> None:
    """Each input's Result into `group.results`, in order, as the local engine writes them."""
    ready = {id(item): i for i, item in enumerate(group.ready())}
    each = group.seconds / max(len(ready), 1)
    for item in group.items:
        if item.result is not None:
            group.results.append(item.result)
            continue
        i = ready[id(item)]
        explanation, maps, prepared = group.explanation, group.maps, item.prepared
        assert explanation is not None and maps is not None and prepared is not None
        targets = predictions(explanation.logits[i], explanation.targets[i], job.labels)
        planned = job.planner.plan(item.source, prepared, targets)  # claimed by the driver
        written = write_result(
            i, item.source, prepared, explanation, maps, planned, each, job, store
        )
        group.results.append(written)


def write_marker(folder: str, name: str, token: str) -> str:
    """Write a marker into -o from a worker; returns the node it ran on, for the message."""
    import socket

    path = Path(folder, name)
    if not Path(folder).is_dir():
        return f"{socket.gethostname()}: {folder} does not exist there"
    path.write_text(token, "utf-8")
    return ""


def remove_marker(folder: str, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(Path(folder, name))
