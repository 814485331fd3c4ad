"""`gbp sanity`: does the map depend on the model? (Adebayo et al. 2018, Nie et al. 2018)"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from gbp_cli.backends import WeightsSpec
from gbp_cli.backends.rules import GRADIENT_METHODS
from gbp_cli.cli.checks import model_spec, unique
from gbp_cli.engines.batching import batched
from gbp_cli.errors import InputError
from gbp_cli.inputs.find import discover
from gbp_cli.inputs.preprocess import prepare
from gbp_cli.outputs.model_record import model_record
from gbp_cli.outputs.records import Provenance
from gbp_cli.saliency.model import load_model
from gbp_cli.sanity.similarity import metric_libraries


def table_line(record) -> str:
    s = record.similarity
    return (
        f"{record.image}\t{record.method}\t{record.stage}\tspearman_abs {s.spearman_abs:.3f}\t"
        f"spearman {s.spearman:.3f}\tssim {s.ssim:.3f}\thog_pearson {s.hog_pearson:.3f}"
    )


def sanity_command(
    inputs: tuple[str, ...],
    *,
    backend: str,
    methods: tuple[str, ...],
    weights: WeightsSpec,
    out: str,
    as_json: bool,
    resize: str,
    device: str,
    batch_size: int,
    overwrite: bool,
    quiet: bool = False,
    model: str = "densenet201",
    input_size: int | None = None,
    normalize: str | None = None,
    cam_layer: str | None = None,
    other_activations: str = "refuse",
    report: bool = False,
) -> int:
    """Run `gbp sanity`; returns the number of inputs that failed."""
    metric_libraries()  # fail before loading a framework if scipy or scikit-image is missing
    from gbp_cli.cli.progress import Progress
    from gbp_cli.gallery import page as gallery
    from gbp_cli.outputs.store import Store
    from gbp_cli.render import DRAWING
    from gbp_cli.render.encode import png_bytes
    from gbp_cli.sanity.cascade import CLASS_CHECK, NEARLY_THE_SAME, cascade, stages_of
    from gbp_cli.sanity.plots import map_grid, similarity_plot

    spec = weights
    methods = unique(methods, GRADIENT_METHODS)
    network = model_spec(model, input_size, normalize, cam_layer, other_activations)
    if report:
        gallery.check(Path(out))  # a page the run could not update: refused before the model
    loaded = load_model(backend, spec, device, model=network, methods=methods)
    info = loaded.info
    title = f"{info.backend}, {info.model}, weights {info.weights.describe()}"
    # The record of `gbp explain`'s outputs, model part: the weights by name and content.
    settings = model_record(info.backend, network, spec, info.precision)
    settings |= {"methods": ",".join(methods), "resize": resize, "drawing": DRAWING}
    store = Store(
        overwrite, lambda message: click.echo(f"gbp: {message}", err=True), root=Path(out)
    )
    failures = 0
    entries: list[dict] = []  # each input's plots and numbers, or its error (--report)
    started = time.perf_counter()
    for batch in batched(discover(inputs, skip=Path(out)), batch_size):
        ready = []
        for source in batch:
            try:
                ready.append((source, prepare(source.path, resize, pre=info.preprocessing)))
            except InputError as e:
                click.echo(f"gbp: {source.name}: {e}", err=True)
                failures += 1
                entries.append({"input": str(source.path), "error": str(e)})
        if not ready:
            continue
        names = [source.name for source, _ in ready]
        show = not quiet and sys.stderr.isatty()
        progress = Progress(len(stages_of(loaded)), unit="stage") if show else None
        try:
            records, maps = cascade(
                loaded,
                names,
                np.stack([prepared.array for _, prepared in ready]),
                methods,
                progress.advance if progress else None,
            )
        finally:
            if progress is not None:
                progress.close()
        for i, (source, prepared) in enumerate(ready):
            mine = [r for r in records if r.image == source.name]
            heading = f"{source.name}: {title}"
            stem = Path(out) / source.stem
            try:
                for suffix, picture in (
                    (".sanity.png", similarity_plot(mine, heading)),
                    (".sanity-maps.png", map_grid(maps, i, heading)),
                ):
                    record = Provenance(source.name, prepared.digest, {**settings, "kind": suffix})
                    tags = {"Software": "gbp sanity", "gbp:weights": info.weights.describe()}
                    data = png_bytes(np.asarray(picture), tags | record.chunks())
                    store.save(stem.with_name(stem.name + suffix), data, record)
            except InputError as e:
                click.echo(f"gbp: {source.name}: {e}", err=True)
                failures += 1
                entries.append({"input": str(source.path), "error": str(e)})
            else:
                entries.append(gallery.sanity_entry(source.path, stem, mine))
            for record in mine:
                if as_json:
                    extra = {"backend": info.backend, "model": info.model}
                    extra["weights"] = spec.describe()
                    click.echo(json.dumps({**record.fields(), **extra}, ensure_ascii=False))
                else:
                    click.echo(table_line(record))
                similar = record.similarity.spearman_abs
                if record.stage == CLASS_CHECK and similar >= NEARLY_THE_SAME:
                    click.echo(
                        f"gbp: WARNING: {record.image}: the {record.method} map of the least "
                        f"likely class is nearly the one of the top-1 class (Spearman "
                        f"{similar:.2f}): it shows the image, not the class",
                        err=True,
                    )
    if report:
        header = gallery.sanity_header(info, methods, time.perf_counter() - started)
        try:
            gallery.update(Path(out), entries, header, store.started, store.log)
        except gallery.ReportNotWritten as e:  # the run's files stand: exit 1, as a full disk
            click.echo(f"gbp: {e}", err=True)
            failures = max(failures, 1)
    return failures
