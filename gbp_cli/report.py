"""How results reach the user: data on stdout (lines or JSON), problems and progress on stderr."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from backends.base import ModelInfo
from gbp_cli.pipeline import Prediction, Result
from gbp_cli.progress import Progress


def result_line(result: Result, random_weights: bool) -> str:
    """`input<TAB>label (index) probability<TAB>N ReLUs<TAB>files…`, for people and for `cut`."""
    if not result.targets:  # every output already existed
        return "\t".join([result.source.name, "kept", "-", *map(str, result.kept)])
    top = result.top[0]
    prediction = f"{top.label} ({top.index}) {top.probability:.1%}"
    if random_weights:
        prediction += " [random weights]"
    relus = ",".join(sorted({str(n) for n in result.relus.values()}))
    files = [str(p) for p in result.files] + [f"{p} (kept)" for p in result.kept]
    return "\t".join([result.source.name, prediction, f"{relus} ReLUs", *files])


def _prediction(p: Prediction) -> dict[str, object]:
    return asdict(p)


def result_record(result: Result, info: ModelInfo, methods: tuple[str, ...]) -> dict[str, object]:
    """One JSON object per input: what was explained and written, or why not."""
    record: dict[str, object] = {
        "input": result.source.name,
        "backend": info.backend,
        "model": info.model,
        "weights": info.weights.describe(),
        "random_weights": info.weights.is_random,
        "precision": info.precision,
        "methods": list(methods),
    }
    if result.error is not None:
        record["error"] = result.error
        return record
    record.update(
        files=[str(p) for p in result.files],
        kept=[str(p) for p in result.kept],
        target=_prediction(result.targets[0]) if result.targets else None,
        targets=[_prediction(t) for t in result.targets],
        top_k=[_prediction(t) for t in result.top],
        relus=result.relus,
        seconds=round(result.seconds, 4),
    )
    return record


class Reporter:
    """Prints each result as it finishes, keeping a progress line (if any) out of the way."""

    def __init__(
        self,
        info: ModelInfo,
        methods: tuple[str, ...],
        as_json: bool = False,
        data_to_stdout: bool = True,
        progress: Progress | None = None,
    ) -> None:
        self.info = info
        self.methods = methods
        self.as_json = as_json
        self.data_to_stdout = data_to_stdout
        self.progress = progress

    def __call__(self, result: Result) -> None:
        if self.progress is not None:
            self.progress.clear()
        if result.error is not None:
            click.echo(f"gbp: {result.source.name}: {result.error}", err=True)
        if self.as_json:
            record = result_record(result, self.info, self.methods)
            click.echo(json.dumps(record, ensure_ascii=False))
        elif result.error is None:
            line = result_line(result, self.info.weights.is_random)
            click.echo(line, err=not self.data_to_stdout)
        if self.progress is not None:
            self.progress.advance()

    def log(self, message: str) -> None:
        if self.progress is not None:
            self.progress.clear()
        click.echo(f"gbp: {message}", err=True)
