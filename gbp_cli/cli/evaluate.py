"""`gbp evaluate`: which map can I trust for this model? Deletion, insertion and ROAD for each
method's map and for two baselines that know nothing of the model, over the user's photos.

The measures themselves are gbp_cli.faithfulness; this module reads the inputs as `gbp explain`
does (missing files and empty folders said before the model loads, one `gbp:` line per input
that fails, the run going on), prints the table or the JSON records, writes the plot and the
page."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gbp_cli.backends import ModelInfo, WeightsSpec
from gbp_cli.cli.checks import model_spec, unique
from gbp_cli.errors import GbpError, InputError, NotAnInput
from gbp_cli.faithfulness import BASELINES, METRICS, check_libraries
from gbp_cli.inputs.find import STDIN, Source, discover, walk
from gbp_cli.outputs.model_record import model_record
from gbp_cli.outputs.records import look
from gbp_cli.saliency.labels import load_labels
from gbp_cli.saliency.model import load_model

if TYPE_CHECKING:
    from gbp_cli.faithfulness.metrics import Settings

DEFAULT_METHODS = ("guided", "vanilla", "gradcam")
PLOT = "evaluate.png"
GRADIENT_PASS_SHARE = 8  # photos per gradient pass: --batch-size / this (a pass keeps every
# layer's activations for the backward; a forward pass without gradients keeps a few)


def evaluate_command(
    inputs: tuple[str, ...],
    *,
    backend: str = "torch",
    methods: tuple[str, ...] = (),
    metrics: tuple[str, ...] = (),
    steps: int = 20,
    baselines: tuple[str, ...] = (),
    seed: int = 0,
    weights: WeightsSpec = WeightsSpec("imagenet"),  # noqa: B008 (frozen)
    labels: Path | None = None,
    out: str = "evaluate",
    resize: str = "squash",
    batch_size: int = 8,
    device: str = "auto",
    precision: str = "fp32",
    tf_mode: str = "auto",
    null: bool = False,
    as_json: bool = False,
    report: bool = False,
    quiet: bool = False,
    model: str = "densenet201",
    input_size: int | None = None,
    normalize: str | None = None,
    cam_layer: str | None = None,
    other_activations: str = "refuse",
) -> int:
    """Run `gbp evaluate` with the values its options parsed; returns how many inputs failed."""
    from gbp_cli.faithfulness.metrics import Settings, copies_per_photo

    check_libraries()  # before a framework loads: one line if scipy is missing
    methods = unique(methods, DEFAULT_METHODS)
    settings = Settings(unique(metrics, METRICS), steps, seed)
    chosen_baselines = unique(baselines, BASELINES)
    if "none" in chosen_baselines:
        if len(chosen_baselines) > 1:
            raise GbpError("--baseline none means no baseline: not with random or edges")
        chosen_baselines = ()
    network = model_spec(model, input_size, normalize, cam_layer, other_activations)
    out_dir = Path(out)
    if out == STDIN:
        raise GbpError("-o -: gbp evaluate prints its table on stdout; give a folder for its plot")
    if out_dir.exists() and not out_dir.is_dir():
        raise GbpError(f"-o {out}: exists and is not a folder")
    found = look(out_dir / PLOT)
    if found.exists and not found.ours:  # said now, not after the work
        raise GbpError(f"{out_dir / PLOT} is not a file gbp wrote; it was left alone")
    if report:
        from gbp_cli.gallery import page as gallery

        gallery.check(out_dir)  # a page the run could not update: refused before the model
    run = Run(out_dir, as_json, report, quiet)
    sources = run.listed(inputs, null)
    if isinstance(sources, list) and not sources:
        return run.failures
    loaded = load_model(backend, weights, device, precision, tf_mode, network, methods)
    info = loaded.info
    names = load_labels(labels, info.num_classes)
    pixels = info.input_size**2
    if steps > pixels:
        raise GbpError(f"--steps {steps} is more than the model input's {pixels} pixels")
    record = model_record(info.backend, network, weights, info.precision)
    record |= settings.record()
    record |= {"methods": ",".join(methods), "baselines": ",".join(chosen_baselines) or "none"}
    record["resize"] = resize
    run.start(info, names, record, methods, chosen_baselines, settings)
    total = len(sources) if isinstance(sources, list) else None
    copies = copies_per_photo(settings, len(methods) + len(chosen_baselines))
    loaded.plan(None if total is None else total * copies, batch_size)
    run.evaluate(loaded, sources, resize, batch_size, total, copies)
    return run.finish()


class Run:
    """One `gbp evaluate`: its inputs, results, output and page."""

    def __init__(self, out_dir: Path, as_json: bool, report: bool, quiet: bool) -> None:
        self.out_dir = out_dir
        self.as_json = as_json
        self.report = report
        self.quiet = quiet
        self.failures = 0
        self.skipped = 0
        self.results: list = []  # faithfulness.evaluation.Evaluated, in input order
        self.sources: list[Source] = []  # beside each result
        self.entries: list[dict] = []  # --report: each input's row data
        self.started = time.perf_counter()
        self.wall_started = time.time()  # the page's tidying judges temp files against it
        self.where = ""  # " with torch on cpu", once the model is loaded

    # --- inputs ------------------------------------------------------------------------------

    def listed(self, inputs: tuple[str, ...], null: bool) -> Iterable[Source]:
        """The inputs in order (a stream for stdin). Missing files and empty folders are said
        now, before a model is loaded, as `gbp explain` does."""
        stdin = sys.stdin if STDIN in inputs else None
        sources = discover(inputs, stdin, null, self.out_dir)
        if stdin is not None:
            return sources
        found = []
        for source in sources:
            if os.path.lexists(source.path):
                found.append(source)
            else:
                self.failed(source, "no such file")
        for argument in inputs:
            if Path(argument).is_dir() and next(walk(Path(argument), self.out_dir), None) is None:
                click.echo(f"gbp: no images found under {argument}", err=True)
                self.failures += 1
        return found

    def failed(self, source: Source, error: str) -> None:
        """One input that failed: its line, its JSON record, its row on the page."""
        self.failures += 1
        click.echo(f"gbp: {source.name}: {error}", err=True)
        if self.as_json:
            click.echo(json.dumps({"input": source.name, "error": error}, ensure_ascii=False))
        self.entries.append({"input": str(source.path), "error": error})

    # --- the work ------------------------------------------------------------------------------

    def start(
        self,
        info: ModelInfo,
        names: list[str],
        record: dict[str, str],
        methods: tuple[str, ...],
        baselines: tuple[str, ...],
        settings: Settings,
    ) -> None:
        """The model is loaded: what every record and the table will say."""
        self.info, self.names, self.record = info, names, record
        self.where = f" with {info.backend} on {info.device}"
        self.methods, self.baselines, self.settings = methods, baselines, settings

    def evaluate(
        self,
        loaded,
        sources: Iterable[Source],
        resize: str,
        batch_size: int,
        total: int | None,
        copies: int,
    ) -> None:
        """Every input, a few photos per gradient pass, their copies `batch_size` at a time."""
        from gbp_cli.cli.progress import Progress
        from gbp_cli.engines.batching import batched
        from gbp_cli.faithfulness.evaluation import evaluate
        from gbp_cli.faithfulness.metrics import Photo
        from gbp_cli.inputs.preprocess import prepare

        show = not self.quiet and sys.stderr.isatty()
        progress = Progress(None if total is None else total * copies) if show else None
        group = max(1, batch_size // GRADIENT_PASS_SHARE)
        try:
            for batch in batched(sources, group):
                ready = []
                for source in batch:
                    try:
                        prepared = prepare(source.path, resize, pre=self.info.preprocessing)
                    except NotAnInput:
                        self.skipped += 1
                        continue
                    except InputError as e:
                        self._aside(progress, lambda s=source, e=e: self.failed(s, str(e)))
                        continue
                    ready.append((source, Photo.of(source.name, prepared.array, prepared.digest)))
                if not ready:
                    continue
                results = evaluate(
                    loaded,
                    [photo for _, photo in ready],
                    self.methods,
                    self.baselines,
                    self.settings,
                    batch_size,
                    progress.advance if progress else None,
                )
                for (source, _), result in zip(ready, results, strict=True):
                    self._aside(progress, lambda s=source, r=result: self.done(s, r))
        finally:
            if progress is not None:
                progress.close()

    def _aside(self, progress, say: Callable[[], None]) -> None:
        if progress is None:
            say()
        else:
            with progress.aside():
                say()

    def target(self, result) -> dict[str, object]:
        return {
            "index": result.target,
            "label": self.names[result.target],
            "probability": round(result.probability, 6),
        }

    def done(self, source: Source, result) -> None:
        """One input evaluated: its records with --json, its row on the page."""
        self.results.append(result)
        self.sources.append(source)
        scores = result.scores()
        if self.report:
            table = [[m, s, round(v, 6)] for (m, s), v in scores.items()]
            self.entries.append(
                {"input": str(source.path), "target": self.target(result), "table": table}
            )
        if not self.as_json:
            return
        for (name, metric), curves in result.curves.items():
            record = {
                "input": source.name,
                "map": name,
                "baseline": name in self.baselines,
                "metric": metric,
                "target": self.target(result),
                "fractions": [round(float(x), 8) for x in curves.fractions],
                "curves": {c: [float(p) for p in h] for c, h in curves.heights.items()},
                "scores": curves.scores(),
            }
            click.echo(json.dumps(record | self._about(), ensure_ascii=False))

    def _about(self) -> dict[str, object]:
        """What every JSON record says of the run: model, weights, backend, settings, seed."""
        info = self.info
        return {
            "backend": info.backend,
            "model": info.model,
            "weights": info.weights.describe(),
            "random_weights": info.weights.is_random,
            "precision": info.precision,
            "settings": self.record,
        }

    # --- the table, the plot, the page -------------------------------------------------------

    def finish(self) -> int:
        from gbp_cli.faithfulness.metrics import scores_of
        from gbp_cli.faithfulness.summary import best, summarize, wins

        kinds = scores_of(self.settings.metrics)
        maps = (*self.methods, *self.baselines)
        scores = [r.scores() for r in self.results]
        cells = summarize(scores, maps, kinds)
        winners = best(cells, kinds)
        beaten = wins(scores, self.methods, self.baselines, kinds)
        plot = None
        if self.results:
            if self.as_json:
                self._summary_records(cells, winners, beaten, kinds)
            else:
                for line in table_lines(cells, winners, kinds, maps, self.baselines):
                    click.echo(line)
                for line in wins_lines(beaten, self.methods, self.baselines, kinds, len(scores)):
                    click.echo(line)
            plot = self._plot(cells, maps)
        unwritten = 0
        if self.report:
            unwritten = self._page(cells, winners, kinds, plot)
        if not self.quiet:
            click.echo(self._closing_line(), err=True)
        return max(self.failures, unwritten)

    def _summary_records(
        self, cells, winners: dict[str, str], beaten: dict[tuple[str, str, str], int], kinds
    ) -> None:
        from gbp_cli.faithfulness.summary import INTERVAL

        direction = {k.name: k for k in kinds}
        for cell in cells:
            kind = direction[cell.score]
            record = {
                "summary": True,
                "map": cell.map,
                "baseline": cell.map in self.baselines,
                "score": cell.score,
                "metric": kind.metric,
                "direction": kind.direction,
                "mean": cell.mean,
                "interval": None if cell.low is None else [cell.low, cell.high],
                "interval_kind": INTERVAL,
                "inputs": cell.inputs,
                "best": winners.get(cell.score) == cell.map,
            }
            if cell.map not in self.baselines:  # on how many inputs it beat each baseline
                record["beats"] = {b: beaten[(cell.map, b, cell.score)] for b in self.baselines}
            click.echo(json.dumps(record | self._about(), ensure_ascii=False))

    def _plot(self, cells, maps: Sequence[str]) -> Path | None:
        """OUT/evaluate.png, atomically, with its record; it replaces the plot of an earlier
        run in OUT (as the page does), never a file gbp did not write."""
        import numpy as np

        from gbp_cli.faithfulness.plots import mean_curves
        from gbp_cli.outputs.records import Provenance
        from gbp_cli.outputs.store import Store
        from gbp_cli.render.encode import png_bytes

        info, n = self.info, len(self.results)
        title = (
            f"{info.model} ({info.backend}, weights {info.weights.describe()}): "
            f"{n} input{'s' if n != 1 else ''}, {self.settings.steps} steps, "
            f"seed {self.settings.seed}"
        )
        picture = mean_curves(self.results, maps, self.settings, cells, title)
        digests = sorted(str(r.photo.key) for r in self.results)
        source = hashlib.sha256("\n".join(digests).encode()).hexdigest()
        provenance = Provenance(f"{n} inputs", source, {**self.record, "kind": PLOT})
        tags = {"Software": "gbp evaluate", "gbp:weights": info.weights.describe()}
        store = Store(True, lambda message: click.echo(f"gbp: {message}", err=True), self.out_dir)
        path = self.out_dir / PLOT
        try:
            store.save(path, png_bytes(np.asarray(picture), tags | provenance.chunks()), provenance)
        except InputError as e:
            click.echo(f"gbp: {e}", err=True)
            self.failures += 1
            return None
        return path

    def _page(self, cells, winners: dict[str, str], kinds, plot: Path | None) -> int:
        """OUT/index.html with this run's section and rows; 1 if it could not be written."""
        from gbp_cli.faithfulness.summary import INTERVAL
        from gbp_cli.gallery import page as gallery

        summary = {
            "baselines": list(self.baselines),
            "metrics": list(self.settings.metrics),
            "steps": self.settings.steps,
            "seed": self.settings.seed,
            "interval": INTERVAL,
            "summary": [
                [c.map, c.score, c.mean, *(() if c.low is None else (c.low, c.high))] for c in cells
            ],
            "scores": [[k.name, k.direction, winners[k.name]] for k in kinds if k.name in winners],
        }
        seconds = time.perf_counter() - self.started
        header = gallery.evaluate_header(self.info, self.methods, seconds, summary, plot)
        try:
            gallery.update(self.out_dir, self.entries, header, self.wall_started, self._log)
        except gallery.ReportNotWritten as e:
            click.echo(f"gbp: {e}", err=True)
            return 1
        return 0

    @staticmethod
    def _log(message: str) -> None:
        click.echo(f"gbp: {message}", err=True)

    def _closing_line(self) -> str:
        done = len(self.results)
        inputs = done + self.failures + self.skipped
        noun = "input" if inputs == 1 else "inputs"
        text = (
            f"gbp: {inputs} {noun} ({done} evaluated, {self.failures} failed) in "
            f"{time.perf_counter() - self.started:.1f} s"
        )
        text += self.where
        if self.skipped:
            text += f"; {self.skipped} of gbp's own outputs skipped as inputs"
        return text


def table_lines(
    cells: Sequence, winners: dict[str, str], kinds: Sequence, maps: Sequence[str], baselines
) -> list[str]:
    """The table a person reads: a row per map (baselines last), a column per score, each cell
    the mean and its 95% interval, `*` on the best of each column; then what it all means."""
    from gbp_cli.faithfulness.summary import INTERVAL

    arrows = {True: "↓", False: "↑"}
    headers = ["map", *(f"{k.name} {arrows[k.lower_is_better]}" for k in kinds)]
    found = {(c.map, c.score): c for c in cells}
    rows = []
    for name in maps:
        row = [f"{name} (baseline)" if name in baselines else name]
        for kind in kinds:
            cell = found.get((name, kind.name))
            if cell is None:
                row.append("-")
                continue
            text = f"{cell.mean:.3f}"
            text += " [–]" if cell.low is None else f" [{cell.low:.3f}, {cell.high:.3f}]"
            row.append(text + (" *" if winners.get(kind.name) == name else ""))
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in
             [headers, *rows]]  # fmt: skip
    inputs = max((c.inputs for c in cells), default=0)
    lines.append(
        f"↓ lower is better, ↑ higher is better; [low, high]: {INTERVAL} ({inputs}); * best in "
        "its column"
    )
    return lines


def wins_lines(
    beaten: dict[tuple[str, str, str], int],
    methods: Sequence[str],
    baselines: Sequence[str],
    kinds: Sequence,
    inputs: int,
) -> list[str]:
    """Per baseline, on how many inputs each method's map did better than it, score by score:
    the comparison on the same photos, which the intervals above (wide with few photos, since
    photos differ more than maps do) cannot show."""
    lines = []
    for baseline in baselines:
        headers = [f"beats {baseline} on", *(k.name for k in kinds)]
        rows = [
            [method, *(f"{beaten[(method, baseline, k.name)]}/{inputs}" for k in kinds)]
            for method in methods
        ]
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in [headers, *rows]
        ]
    return lines
