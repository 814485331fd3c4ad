"""What each command does, in terms of the library: validate, load once, run, report."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click
import numpy as np

from backends import Backend, WeightsSpec, open_backend
from backends.checkpoints import checkpoint_bytes
from gbp_cli.batching import batched
from gbp_cli.errors import GbpError, InputError
from gbp_cli.inputs import STDIN, discover
from gbp_cli.labels import imagenet_classes, load_labels, resolve_target
from gbp_cli.output import write_atomic
from gbp_cli.parity import compare, row_line
from gbp_cli.pipeline import Job, run
from gbp_cli.preprocess import prepare
from gbp_cli.report import printer

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
    out_dir: Path,
    formats: tuple[str, ...],
    resize: str,
    batch_size: int,
    device: str,
    overwrite: bool,
    null: bool,
    tf_mode: str = "auto",
) -> int:
    """Run `gbp explain`; returns how many inputs failed."""
    if target is not None and top_k > 1:
        raise GbpError("--target and --top-k are alternatives: give one of them")
    spec = WeightsSpec.parse(weights)
    if spec.kind == "file" and not (spec.path and spec.path.is_file()):
        raise GbpError(f"--weights {weights}: no such file (expected imagenet, random or a path)")
    if target is not None and spec.kind != "file" and labels is None:
        resolve_target(target, imagenet_classes())  # fail fast, before loading a framework
    model = open_backend(backend, spec, device)
    names = load_labels(labels, model.info.num_classes)
    if top_k > len(names):
        raise GbpError(f"--top-k {top_k} is more than the model's {len(names)} classes")
    job = Job(
        methods=unique(methods, "guided"),
        formats=unique(formats, "color"),
        out_dir=out_dir,
        labels=names,
        target=None if target is None else resolve_target(target, names),
        top_k=top_k,
        resize=resize,
        batch_size=batch_size,
        overwrite=overwrite,
    )
    announce(model)
    streaming = STDIN in inputs
    sources = discover(inputs, stdin=sys.stdin if streaming else None, null=null, skip=out_dir)
    if not streaming:
        sources = list(sources)  # cheap, and tells the backend how much work is coming
    model.plan(None if streaming else len(sources), batch_size)
    if tf_mode != "auto" and backend == "tf":
        model.mode = tf_mode  # type: ignore[attr-defined]
    return run(sources, model, job, printer(spec.is_random))


def announce(model: Backend) -> None:
    """Say on stderr what the user must know before trusting any output."""
    if model.info.weights.is_random:
        click.echo(RANDOM_WARNING, err=True)
    for warning in model.info.warnings:
        click.echo(f"gbp: WARNING: {warning}", err=True)


def parity_weights(spec: WeightsSpec, folder: Path, device: str) -> tuple[Backend, WeightsSpec]:
    """The torch backend, and weights for TF that are exactly the torch model's."""
    from backends.convert import kind, read_keras

    if spec.kind == "file" and spec.path is not None and kind(spec.path) == "keras":
        state, _ = read_keras(spec.path)
        shared = folder / "weights.pth"
        write_atomic(shared, checkpoint_bytes(state))
        return open_backend("torch", WeightsSpec("file", shared), device), spec
    torch_backend = open_backend("torch", spec, device)
    if spec.kind != "imagenet":
        return torch_backend, spec  # seeded random weights and .pth files load identically
    shared = folder / "imagenet.pth"
    write_atomic(shared, checkpoint_bytes(torch_backend.state()))  # type: ignore[attr-defined]
    return torch_backend, WeightsSpec("file", shared)


def parity_command(
    inputs: tuple[str, ...],
    *,
    weights: str,
    methods: tuple[str, ...],
    resize: str,
    device: str,
    batch_size: int,
) -> int:
    """Run `gbp parity`; returns the number of failures (inputs and figures over tolerance)."""
    spec = WeightsSpec.parse(weights)
    if spec.kind == "file" and not (spec.path and spec.path.is_file()):
        raise GbpError(f"--weights {weights}: no such file (expected imagenet, random or a path)")
    methods = unique(methods, "guided")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="gbp-parity-") as folder:
        torch_backend, tf_spec = parity_weights(spec, Path(folder), device)
        tf_backend = open_backend("tf", tf_spec, device)
        announce(torch_backend)
        sources = list(discover(inputs))
        tf_backend.plan(len(sources), batch_size)
        for batch in batched(sources, batch_size):
            names, arrays = [], []
            for source in batch:
                try:
                    arrays.append(prepare(source.path, resize).array)
                    names.append(source.name)
                except InputError as e:
                    click.echo(f"gbp: {source.name}: {e}", err=True)
                    failures += 1
            if arrays:
                for row in compare(names, np.stack(arrays), methods, torch_backend, tf_backend):
                    click.echo(row_line(row))
                    failures += not row.ok
    return failures


def convert_command(source: Path, destination: Path, overwrite: bool) -> None:
    """Run `gbp convert` and print what was converted."""
    from backends.convert import convert

    summary = convert(source, destination, overwrite)
    click.echo(f"{source}\t{destination}\t{summary}")
