"""What each command does, in terms of the library: validate, load once, run, report."""

from __future__ import annotations

import difflib
import sys
import time
from pathlib import Path, PurePath

import click

from backends import Backend, WeightsSpec, open_backend
from gbp_cli.errors import GbpError
from gbp_cli.inputs import STDIN, STDOUT, discover, in_shard
from gbp_cli.labels import imagenet_classes, load_labels, resolve_target
from gbp_cli.methods import Smoothing
from gbp_cli.pipeline import Job, Summary, run
from gbp_cli.progress import Progress
from gbp_cli.report import Reporter
from gbp_cli.writing import Outputs, Rendering

RANDOM_WARNING = (
    "gbp: WARNING: --weights random: an untrained, seeded DenseNet; "
    "its labels and maps say nothing about ImageNet"
)


def unique(values: tuple[str, ...], default: str) -> tuple[str, ...]:
    """Repeated options in the order given, each once."""
    return tuple(dict.fromkeys(values)) or (default,)


def explain_command(
    inputs: tuple[str, ...],
    *,
    backend: str,
    methods: tuple[str, ...],
    target: str | None,
    top_k: int,
    weights: str,
    labels: Path | None,
    out: str,
    formats: tuple[str, ...],
    resize: str,
    batch_size: int,
    device: str,
    overwrite: bool,
    null: bool,
    as_json: bool = False,
    shard: str | None = None,
    quiet: bool = False,
    tf_mode: str = "auto",
    clip: float = 99.0,
    cmap: str = "inferno",
    alpha: float = 0.5,
    smooth: int | None = None,
    noise: float = 0.15,
    precision: str = "fp32",
) -> int:
    """Run `gbp explain`; returns how many inputs failed."""
    to_stdout = out == STDOUT
    outputs = Outputs(
        methods=unique(methods, "guided"),
        formats=unique(formats, "color"),
        out_dir=Path(out),
        resize=resize,
        rendering=Rendering(clip=clip, cmap=check_colormap(cmap, formats), alpha=alpha),
        smoothing=None if smooth is None else Smoothing(samples=smooth, noise=noise),
    )
    methods = outputs.methods
    if target is not None and top_k > 1:
        raise GbpError("--target and --top-k are alternatives: give one of them")
    files = len(outputs.planned(PurePath("x"))) * (1 if target else top_k)
    if to_stdout and (as_json or files > 1):
        raise GbpError(
            f"-o - writes exactly one file to stdout, not {files}: one method, one format, "
            "one target, no --json"
        )
    part = parse_shard(shard) if shard else None
    spec = WeightsSpec.parse(weights)
    if spec.kind == "file" and not (spec.path and spec.path.is_file()):
        raise GbpError(f"--weights {weights}: no such file (expected imagenet, random or a path)")
    if target is not None and spec.kind != "file" and labels is None:
        resolve_target(target, imagenet_classes())  # fail fast, before loading a framework
    out_dir = outputs.out_dir
    streaming = STDIN in inputs and not to_stdout
    sources = discover(
        inputs, stdin=sys.stdin if STDIN in inputs else None, null=null, skip=out_dir
    )
    if part is not None:
        sources = (source for source in sources if in_shard(source, *part))
    if not streaming:
        sources = list(sources)  # cheap, and tells the backend how much work is coming
        if to_stdout and len(sources) != 1:
            raise GbpError(f"-o - writes one image to stdout, but {len(sources)} inputs were given")
    model = open_backend(backend, spec, device, precision)
    names = load_labels(labels, model.info.num_classes)
    if top_k > len(names):
        raise GbpError(f"--top-k {top_k} is more than the model's {len(names)} classes")
    job = Job(
        outputs=outputs,
        labels=names,
        target=None if target is None else resolve_target(target, names),
        top_k=top_k,
        batch_size=batch_size,
        overwrite=overwrite,
        to_stdout=to_stdout,
    )
    announce(model)
    model.plan(None if streaming else len(sources), batch_size)
    if tf_mode != "auto" and backend == "tf":
        model.mode = tf_mode  # type: ignore[attr-defined]
    show_progress = not quiet and sys.stderr.isatty()
    total = None if streaming else len(sources)
    reporter = Reporter(
        model.info,
        methods,
        as_json=as_json,
        data_to_stdout=not to_stdout,
        progress=Progress(total) if show_progress else None,
    )
    started = time.perf_counter()
    try:
        summary = run(sources, model, job, reporter)
    finally:
        if reporter.progress is not None:
            reporter.progress.close()
    if not quiet:
        click.echo(summary_line(summary, time.perf_counter() - started, model), err=True)
    return summary.failed


def check_colormap(name: str, formats: tuple[str, ...]) -> str:
    """A matplotlib colormap name, checked only when a format will use it."""
    if any(f in ("heatmap", "overlay", "panel") for f in formats):
        import matplotlib

        if name not in matplotlib.colormaps:
            close = difflib.get_close_matches(name, list(matplotlib.colormaps), n=3)
            raise GbpError(f"--cmap {name!r} is not a matplotlib colormap; try {', '.join(close)}")
    return name


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N`, 0 ≤ I < N: this job's share of the inputs."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise GbpError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise GbpError(f"--shard {text!r}: I must be in 0..N-1")
    return index, count


def summary_line(summary: Summary, seconds: float, model: Backend) -> str:
    """The closing line on stderr: counts, and end-to-end against compute-only throughput."""
    explained = summary.inputs - summary.failed - summary.kept
    mode = getattr(model, "mode", "")
    text = (
        f"gbp: {summary.inputs} inputs ({explained} explained, {summary.failed} failed, "
        f"{summary.kept} kept) in {seconds:.1f} s with {model.info.backend}"
        f"{' ' + mode if mode else ''} on {model.info.device}"
    )
    if explained:
        text += (
            f": {explained / seconds:.2f} images/s end to end, "
            f"{explained / max(summary.compute_seconds, 1e-9):.2f} images/s compute"
        )
    return text


def announce(model: Backend) -> None:
    """Say on stderr what the user must know before trusting any output."""
    if model.info.weights.is_random:
        click.echo(RANDOM_WARNING, err=True)
    for warning in model.info.warnings:
        click.echo(f"gbp: WARNING: {warning}", err=True)
