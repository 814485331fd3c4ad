"""`gbp explain`: validate the options, plan the run, then run it (or only show it: --dry-run)."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from gbp_cli.engines.base import Engine
    from gbp_cli.outputs.planning import Planner

from gbp_cli.backends import ModelInfo, WeightsSpec
from gbp_cli.backends.base import ModelSpec
from gbp_cli.cli.checks import early_target, model_spec, unique
from gbp_cli.errors import GbpError, RunStopped
from gbp_cli.inputs.find import STDIN, STDOUT, Source, discover, in_shard, walk
from gbp_cli.outputs.model_record import file_mark, model_record
from gbp_cli.outputs.naming import Outputs
from gbp_cli.saliency.labels import load_labels, resolve_target
from gbp_cli.saliency.model import ModelChoice
from gbp_cli.settings import Rendering, Smoothing


@dataclass(frozen=True)
class Request:
    """The options of one `gbp explain`, checked."""

    inputs: tuple[str, ...]
    outputs: Outputs
    backend: str
    model: ModelSpec
    spec: WeightsSpec
    labels: Path | None
    target: str | None
    top_k: int
    batch_size: int
    device: str
    precision: str
    tf_mode: str
    overwrite: bool
    null: bool
    as_json: bool
    shard: tuple[int, int] | None
    quiet: bool
    report: bool = False
    engine: str = "local"  # or "ray": gbp_cli.engines.ray
    ray_address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0
    cpus_per_worker: float = 1

    @property
    def to_stdout(self) -> bool:
        return str(self.outputs.out_dir) == STDOUT

    @property
    def streaming(self) -> bool:
        """Paths arrive on stdin as the run goes: nothing is listed ahead."""
        return STDIN in self.inputs and not self.to_stdout


def explain_command(
    inputs: tuple[str, ...],
    *,
    methods: tuple[str, ...] = (),
    formats: tuple[str, ...] = (),
    out: str = "saliency",
    resize: str = "squash",
    clip: float = Rendering.clip,
    cmap: str = Rendering.cmap,
    alpha: float = Rendering.alpha,
    max_size: int = Rendering.max_size,
    smooth: int | None = None,
    noise: float = Smoothing.noise,
    weights: WeightsSpec = WeightsSpec("imagenet"),  # noqa: B008 (frozen)
    shard: tuple[int, int] | None = None,
    dry_run: bool = False,
    model: str = "densenet201",
    input_size: int | None = None,
    normalize: str | None = None,
    cam_layer: str | None = None,
    other_activations: str = "refuse",
    **options,
) -> int:
    """Run `gbp explain` with the values its options parsed (cli/options.py); returns how many
    inputs failed."""
    outputs = Outputs(
        methods=unique(methods, "guided"),
        formats=unique(formats, ()),
        out_dir=Path(out),
        resize=resize,
        rendering=Rendering(clip=clip, cmap=cmap, alpha=alpha, max_size=max_size),
        smoothing=None if smooth is None else Smoothing(samples=smooth, noise=noise),
    )
    request = Request(
        inputs=inputs,
        outputs=outputs,
        model=model_spec(model, input_size, normalize, cam_layer, other_activations),
        spec=weights,
        shard=shard,
        **options,
    )
    validate(request)
    if dry_run and request.report:
        raise GbpError("--dry-run writes nothing, so it cannot --report: give one of them")
    target = early_target(request.target, request.labels, request.spec)
    if dry_run:
        from gbp_cli.cli.dry_run import preview, show

        sources, failures = plan(request, lambda s, e: show(s, "failed", e, [], request.as_json))
        return failures + preview(sources, planner_for(request, target), request.as_json)
    records: list[dict] = []  # --report: every input's JSON record, for OUT/index.html
    sources, failures = plan(request, functools.partial(early_failure, request, records.append))
    return execute(request, sources, records, failures)


def validate(request: Request) -> None:
    """Everything that can be refused before looking at a single input."""
    if request.target is not None and request.top_k > 1:
        raise GbpError("--target and --top-k are alternatives: give one of them")
    out = request.outputs.out_dir
    if request.to_stdout:
        files = len(request.outputs.kinds()) * (1 if request.target else request.top_k)
        if request.as_json or files > 1:
            raise GbpError(
                f"-o - writes exactly one file to stdout, not {files}: one method, one format, "
                "one target, no --json"
            )
        if sys.stdout.isatty():
            raise GbpError("-o - would write PNG bytes to the terminal: redirect stdout")
        if request.report:
            raise GbpError("--report writes a page into an output folder: not with -o -")
    elif out.exists() and not out.is_dir():
        raise GbpError(f"-o {out}: exists and is not a folder")
    elif request.report:
        from gbp_cli.gallery import page as gallery

        gallery.check(out)  # a page the run could not update: refused now, not at its end


def plan(request: Request, failed: Callable[[Source, str], None]) -> tuple[Iterable[Source], int]:
    """The inputs in order (a stream for stdin), and how many already failed. Missing files and
    empty folders are reported now, before a model is loaded."""
    stdin = sys.stdin if STDIN in request.inputs else None
    skip = None if request.to_stdout else request.outputs.out_dir
    sources: Iterable[Source] = discover(request.inputs, stdin, request.null, skip)
    if request.shard is not None:
        sources = (s for s in sources if in_shard(s, *request.shard))
    if request.streaming:
        return sources, 0
    listed, failures = [], 0
    for source in sources:
        if os.path.lexists(source.path):
            listed.append(source)
        else:
            failed(source, "no such file")
            failures += 1
    for argument in request.inputs:
        if Path(argument).is_dir() and next(walk(Path(argument), skip), None) is None:
            click.echo(f"gbp: no images found under {argument}", err=True)
            failures += 1
    if request.to_stdout and len(listed) + failures != 1:
        raise GbpError(f"-o - writes one image to stdout, but {len(listed)} inputs were given")
    if not listed and request.shard is not None and not failures:
        click.echo(f"gbp: share {request.shard[0]}/{request.shard[1]} holds no inputs", err=True)
    return listed, failures


def early_failure(
    request: Request, sink: Callable[[dict], None] | None, source: Source, error: str
) -> None:
    """An input that fails before any model is loaded: one line, and its JSON record."""
    from gbp_cli.cli.results import Reporter
    from gbp_cli.engines.base import Result

    info = ModelInfo(request.backend, request.model.name, 0, request.spec, request.device)
    sink = sink if request.report else None
    Reporter(info, request.outputs.methods, request.as_json, sink=sink)(Result(source, error=error))


def planner_for(
    request: Request,
    target: int | None,
    info: ModelInfo | None = None,
    inputs: frozenset[str] = frozenset(),
    record: dict[str, str] | None = None,
) -> Planner:
    """Plans every input's outputs. Before a model is loaded (--dry-run) the model's record is
    what can be known here; once loaded, `record` is the engine's, read where the model loaded."""
    from gbp_cli.outputs.planning import Planner
    from gbp_cli.render import DRAWING

    model = dict(record if record is not None else unloaded_record(request))
    if request.labels is not None:  # the class names a picture and its record show
        model["labels"] = file_mark(request.labels)
    return Planner(
        outputs=request.outputs,
        model=model,
        target=target,
        top_k=request.top_k,
        info=info,
        overwrite=request.overwrite,
        inputs=inputs,
        drawing=DRAWING,
    )


def unloaded_record(request: Request) -> dict[str, str]:
    """What every output records about the model, as far as it can be known without loading it
    (--dry-run): what only loading can tell is marked unknown, never guessed."""
    return model_record(
        request.backend, request.model, request.spec, request.precision, before_loading=True
    )


def engine_for(request: Request) -> Engine:
    """Where the run happens: this process, or a Ray job (the model loads on its workers,
    never here)."""
    if request.engine == "ray":
        from gbp_cli.engines.ray import RayEngine

        return RayEngine(
            request.outputs.out_dir,
            request.to_stdout,
            request.ray_address,
            request.workers,
            request.gpus_per_worker,
            request.cpus_per_worker,
        )
    from gbp_cli.engines.local import LocalEngine

    return LocalEngine()


def execute(
    request: Request,
    sources: Iterable[Source],
    records: list[dict] | None = None,
    failed_early: int = 0,
) -> int:
    """Load the model once and explain every input."""
    from gbp_cli.cli.progress import Progress
    from gbp_cli.cli.results import Reporter, summary_line
    from gbp_cli.engines.base import Job, Summary
    from gbp_cli.outputs.store import Store

    if isinstance(sources, list) and not sources:
        return failed_early
    watched = not request.quiet and sys.stderr.isatty()  # before Ray turns stderr into a pipe
    engine = engine_for(request)
    choice = ModelChoice(
        request.backend,
        request.spec,
        request.device,
        request.precision,
        request.tf_mode,
        request.model,
        request.outputs.methods,
    )
    model = engine.open(choice)
    names = load_labels(request.labels, model.info.num_classes)
    if request.top_k > len(names):
        raise GbpError(f"--top-k {request.top_k} is more than the model's {len(names)} classes")
    target = None if request.target is None else resolve_target(request.target, names)
    listed = isinstance(sources, list)
    inputs = frozenset(os.path.realpath(s.path) for s in sources) if listed else frozenset()
    planner = planner_for(request, target, model.info, inputs, engine.record(choice))
    job = Job(
        planner=planner,
        labels=names,
        resize=request.outputs.resize,
        target=target,
        top_k=request.top_k,
        batch_size=request.batch_size,
        to_stdout=request.to_stdout,
    )
    total = len(sources) if listed else None  # type: ignore[arg-type]
    model.plan(total, request.batch_size)
    progress = Progress(total) if watched else None
    reporter = Reporter(
        model.info,
        request.outputs.methods,
        as_json=request.as_json,
        data_to_stdout=not request.to_stdout,
        progress=progress,
        share=1.0 / request.outputs.passes,
        sink=records.append if request.report and records is not None else None,
    )
    root = None if request.to_stdout else request.outputs.out_dir  # nothing written outside -o
    store = Store(request.overwrite, reporter.log, root=root)
    started = time.perf_counter()
    stopped = 0  # 1 when a full disk (or a closed stdout) stopped the run: exit 1
    try:
        summary = engine.run(
            sources, model, job, reporter, store, progress.advance if progress else None
        )
    except RunStopped as e:
        if progress is not None:
            progress.close()
        click.echo(f"gbp: {e}; stopping", err=True)
        summary, stopped = e.summary if isinstance(e.summary, Summary) else Summary(), 1
    finally:
        if progress is not None:
            progress.close()
    summary.inputs += failed_early  # missing inputs, said before the model loaded
    summary.failed += failed_early
    unwritten = 0  # 1 if the page could not be written: the run then exits 1, as a full disk does
    if request.report and records is not None and not request.to_stdout:
        from gbp_cli.gallery import page as gallery

        def say(message: str) -> None:  # the progress bar, if any, is closed by now
            click.echo(f"gbp: {message}", err=True)

        header = gallery.header(model.info, request.outputs, time.perf_counter() - started)
        try:  # the rows reported so far, also when the run was stopped
            gallery.update(request.outputs.out_dir, records, header, store.started, say)
        except (gallery.ReportNotWritten, GbpError) as e:  # after the run: its line, then its sum
            say(str(e))
            unwritten = 1
    if not request.quiet:
        mode = getattr(model, "mode", "")
        device = f"{model.info.backend}{' ' + mode if mode else ''} on {model.info.device}"
        click.echo(summary_line(summary, time.perf_counter() - started, device), err=True)
    return max(summary.failed, unwritten, stopped)
