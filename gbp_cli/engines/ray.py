"""`gbp explain --engine ray`: the local pipeline's stages as a Ray Data job.

The driver lists the inputs and claims their outputs exactly as the local engine does, cuts them
into the local engine's batches, and hands Ray the paths: decoding runs as CPU tasks, the model in
an actor pool (loaded once per actor, never on the driver), rendering and atomic writing as CPU
tasks. Results come back to the driver, which prints them in input order with the local engine's
Reporter and summary, so both engines give the same lines, the same files and the same exit code.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from gbp_cli.backends.base import Backend, Explanation, ModelInfo
from gbp_cli.engines.base import Job, Progress, Report, Summary, record_of
from gbp_cli.engines.ray_cluster import (
    RUN_ENDED,
    actor_pool,
    cause,
    check_resources,
    connect,
    default_workers,
    import_ray,
    restarts,
    shared_folder_problem,
    worker_env,
)
from gbp_cli.engines.ray_workers import (
    Explainer,
    Group,
    Item,
    Opener,
    pack,
    prepare_groups,
    probe,
    unpack,
    worker_job,
    write_groups,
)
from gbp_cli.errors import GbpError, InputError, RunStopped
from gbp_cli.inputs.find import Source
from gbp_cli.inputs.preprocess import Geometry, Prepared
from gbp_cli.outputs.planning import Planner
from gbp_cli.outputs.store import Store
from gbp_cli.saliency.model import ModelChoice, announce

MAX_BLOCKS = 10_000  # groups per Ray Data block stay few enough for results to stream back


@dataclass
class RemoteModel(Backend):
    """The model as the driver knows it: what a probe on a worker reported, and how the actors
    open it. It computes nothing here."""

    info: ModelInfo
    opener: Opener
    record: dict[str, str]  # what every output records of the model, as a worker read it
    workers: int
    gpus: float
    cpus: float
    started_ray: bool
    total: int | None = None
    mode: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.mode = f"on Ray ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def plan(self, images: int | None, batch_size: int) -> None:
        self.total = images

    def explain(self, *args: Any, **kwargs: Any) -> Explanation:
        raise NotImplementedError("the model runs on the Ray workers")

    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError("the model runs on the Ray workers")

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError("the model runs on the Ray workers")


@dataclass(frozen=True)
class RayEngine:
    """A Ray Data job on this machine's cores (`address` None) or a cluster: the driver lists,
    claims and reports; decoding, the model and writing run on the workers."""

    out_dir: Path
    to_stdout: bool = False
    address: str | None = None
    workers: int | None = None  # model workers; None: one per GPU share, else one per machine
    gpus_per_worker: float = 0
    cpus_per_worker: float = 1
    _opened: dict[ModelChoice, RemoteModel] = field(default_factory=dict, compare=False)

    def open(self, choice: ModelChoice) -> RemoteModel:
        """Start or join Ray, check that -o is shared, and learn the model's info from a
        worker."""
        if self.to_stdout:
            raise GbpError("--engine ray writes into a folder: -o - is for --engine local")
        ray = import_ray()
        started = connect(ray, self.address, worker_env())
        try:
            if self.address is not None:
                problem = shared_folder_problem(ray, self.out_dir)
                if problem:
                    raise GbpError(problem)
            workers = self.workers or default_workers(ray, self.gpus_per_worker)
            check_resources(ray, workers, self.gpus_per_worker, self.cpus_per_worker)
            threads = None
            if self.address is None:  # this machine: share its cores as the local engine does
                cores = int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
                threads = max(1, math.ceil(self.cpus_per_worker), cores // workers)
            opener = Opener(choice, threads)
            task = ray.remote(probe).options(
                num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker, max_retries=0
            )
            try:
                info, record = ray.get(task.remote(opener))
            except ray.exceptions.RayTaskError as e:
                raise cause(e) from None
            model = RemoteModel(
                info, opener, record, workers, self.gpus_per_worker, self.cpus_per_worker, started
            )
        except BaseException:  # an error, or a stopping signal: no worker outlives gbp
            if started:
                ray.shutdown()
            raise
        announce(model)
        self._opened[choice] = model
        return model

    def record(self, choice: ModelChoice) -> dict[str, str]:
        """The record a worker's probe read (a cluster's workers hold the weights, perhaps not
        this machine): `open` first."""
        model = self._opened.get(choice)
        return model.record if model is not None else record_of(choice)

    def run(self, *args: Any, **kwargs: Any) -> Summary:
        """The Engine's `run`: this module's `run` below (the local engine's, on Ray)."""
        return run(*args, **kwargs)


def run(
    sources: Iterable[Source],
    backend: Backend,
    job: Job,
    report: Report,
    store: Store,
    progress: Progress | None = None,
) -> Summary:
    """The local engine's `run`, on Ray: every source reported once, in input order."""
    assert isinstance(backend, RemoteModel), "the Ray engine runs a RemoteModel"
    import ray

    model = backend
    summary = Summary()
    rest = 1.0 - 1.0 / job.planner.outputs.passes  # the model's share of an image
    batches = None
    started = time.time()
    try:
        groups = cut(list(sources), job)
        if not groups:
            return summary
        dataset = build(ray, groups, model, job, store)
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
        order = InOrder()
        for batch in batches:
            for group in order.ready(unpack(batch)):
                for line in group.logs:
                    store.log(line)
                summary.compute_seconds += group.seconds
                for result in group.results:
                    summary.add(result)
                    report(result)
                    if progress is not None and result.targets:
                        progress(rest)
                if group.stopped is not None:
                    raise RunStopped(group.stopped)
                if group.error is not None:  # what the local engine raises at that batch
                    raise group.error
    except ray.exceptions.RayError as e:
        if getattr(e, "cause", None) is None:  # Ray's own failure: the run cannot go on
            stopped = RunStopped(f"the Ray job failed: {cause(e)}")
            stopped.summary = summary
            raise stopped from None
        raise cause(e) from e  # a worker's error, as the local engine would raise it
    except RunStopped as e:
        e.summary = summary
        raise
    finally:
        RUN_ENDED.set()  # what Ray says of the job's teardown from now on is not the user's news
        if batches is not None and hasattr(batches, "close"):
            batches.close()  # Ctrl-C or a stop: Ray Data cancels its tasks, which clean up
        if model.started_ray:  # no worker outlives the run
            ray.shutdown()
        if sys.exc_info()[0] is not None:  # stopped: what killed workers left half-written
            sweep(job.planner, started)
    return summary


def sweep(planner: Planner, since: float) -> None:
    """Temp files of this run's own outputs that a worker killed mid-write left behind (the
    local engine's writers unwind and remove theirs; a killed Ray worker cannot)."""
    for claimed in planner.claimed():
        folder, name = os.path.split(claimed)
        for leftover in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}*.part")):
            with contextlib.suppress(OSError):
                if os.stat(leftover).st_mtime >= since:
                    os.unlink(leftover)


@dataclass
class InOrder:
    """Groups come back as they finish; they are reported in input order."""

    following: int = 0
    pending: dict[int, Group] = field(default_factory=dict)

    def ready(self, arrived: list[Group]) -> list[Group]:
        self.pending.update((g.index, g) for g in arrived)
        out = []
        while self.following in self.pending:
            out.append(self.pending.pop(self.following))
            self.following += 1
        return out


def cut(sources: list[Source], job: Job) -> list[Group]:
    """The local engine's batches (consecutive --batch-size inputs), each input claimed now, in
    input order, as the local engine claims it."""
    refusals = claims(sources, job.planner)
    iterator = iter(sources)
    groups = []
    while chunk := list(islice(iterator, job.batch_size)):
        items = [Item(s, refusals.get(id(s))) for s in chunk]
        groups.append(Group(len(groups), items))
    return groups


def claims(sources: Sequence[Source], planner: Planner) -> dict[int, str]:
    """Why an input may not have its outputs (another input has them, or they are an input),
    by id(source). With --top-k the names hold classes only the model knows: two inputs that
    share an output stem are refused up front."""
    placeholder = Prepared(np.empty(0, np.float32), Geometry(0, 0, (0, 0, 0, 0)))
    refused: dict[int, str] = {}
    stems: dict[Path, Source] = {}
    for source in sources:
        if planner.per_class:
            stem = planner.outputs.out_dir / source.stem
            other = stems.setdefault(stem, source)
            if other is not source:
                refused[id(source)] = (
                    f"its outputs {stem}.* would overwrite those of {other.name}; "
                    "rename one of them or explain them into different -o folders"
                )
            continue
        targets = planner.unnamed()
        try:
            planner.claim(source, planner.plan(source, placeholder, targets))
        except InputError as e:
            refused[id(source)] = str(e)
    return refused


def build(ray: Any, groups: list[Group], model: RemoteModel, job: Job, store: Store) -> Any:
    """paths → prepare (CPU tasks) → explain (actor pool) → write (CPU tasks)."""
    context = ray.data.DataContext.get_current()
    for name in ("enable_progress_bars", "print_on_execution_start"):
        if hasattr(context, name):
            setattr(context, name, False)
    light = worker_job(job)
    items = [pack([g]) for g in groups]
    rows = [{"group": int(b["group"][0]), "work": b["work"][0]} for b in items]
    dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
    dataset = dataset.map_batches(
        prepare_groups, batch_size=1, batch_format="numpy", fn_kwargs={"job": light}
    )
    with warnings.catch_warnings():  # the deprecation of **ray_remote_args: see restarts()
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = _explain_stage(ray, dataset, model, light)
    return dataset.map_batches(
        write_groups,
        batch_size=1,
        batch_format="numpy",
        fn_kwargs={"job": light, "overwrite": store.overwrite, "started": store.started},
    )


def _explain_stage(ray: Any, dataset: Any, model: RemoteModel, light: Job) -> Any:
    return dataset.map_batches(
        Explainer,
        batch_size=1,  # one group: exactly --batch-size inputs, the local engine's batch
        batch_format="numpy",
        fn_constructor_kwargs={"opener": model.opener, "job": light, "total": model.total},
        num_cpus=model.cpus,
        num_gpus=model.gpus,
        **actor_pool(ray, model.workers),
        **restarts(ray),
    )
