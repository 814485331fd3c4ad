"""How results reach the user: data on stdout (lines or JSON), problems and progress on stderr."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict

import click

from gbp_cli.backends.base import ModelInfo
from gbp_cli.cli.progress import Progress
from gbp_cli.engines.base import Result, Summary
from gbp_cli.inputs.find import printable
from gbp_cli.outputs.planning import Prediction

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def field(text: object) -> str:
    """One tab-separated field: tabs, newlines and backslashes escaped as `\\t`, `\\n`, `\\\\`,
    then bytes that are not UTF-8 as `\\xNN` (so a name holding a backslash and one holding such
    a byte never read alike)."""
    return printable(str(text).translate(_ESCAPES))


def counts(result: Result) -> str:
    """`201 ReLUs`, `35 ReLU6`, `17 ReLUs, 3 ReLU6`; `no ReLUs overridden` for methods that
    override none (Grad-CAM); and what kept its ordinary gradient under --other-activations."""
    kinds: dict[str, int] = {}
    for per_kind in result.activations.values():
        for kind, n in per_kind.items():
            kinds[kind] = max(kinds.get(kind, 0), n)
    if not kinds and any(result.relus.values()):
        kinds = {"ReLU": max(result.relus.values())}
    shown = [f"{n} {kind}s" if kind == "ReLU" else f"{n} {kind}" for kind, n in kinds.items() if n]
    text = ", ".join(shown) if shown else "no ReLUs overridden"
    if result.ordinary:
        left = ", ".join(f"{n} {kind}" for kind, n in result.ordinary.items())
        text += f"; {left} left with their ordinary gradient"
    return text


def prediction_text(p: Prediction) -> str:
    return f"{p.label} ({p.index}) {p.probability:.1%}"


def result_line(result: Result, random_weights: bool) -> str:
    """`input<TAB>explained class<TAB>N ReLUs<TAB>files…`, for people and for `cut`."""
    name = field(result.source.path)
    if not result.targets:  # every output already existed
        return "\t".join([name, "kept", "-", *(field(p) for p in result.kept)])
    explained = "; ".join(prediction_text(t) for t in result.targets)
    top = result.top[0]
    if [t.index for t in result.targets] != [top.index]:
        explained += f" [top-1: {prediction_text(top)}]" if len(result.targets) == 1 else ""
    if random_weights:
        explained += " [random weights]"
    files = [field(p) for p in result.files] + [f"{field(p)} (kept)" for p in result.kept]
    return "\t".join([name, field(explained), counts(result), *files])


def result_record(
    result: Result, info: ModelInfo, methods: tuple[str, ...], top: int | None = None
) -> dict[str, object]:
    """One JSON object per input: what was explained and written, or why not. `top_k` lists the
    `top` most likely classes: by default the K of --top-k (one, with --target or without
    --top-k), as many as the explained `targets`."""
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
        files=[printable(str(p)) for p in result.files],
        kept=[printable(str(p)) for p in result.kept],
        target=asdict(result.targets[0]) if result.targets else None,
        targets=[asdict(t) for t in result.targets],
        top_k=[asdict(t) for t in result.top[: len(result.targets) if top is None else top]],
        relus=result.relus,
        activations=result.activations,
        ordinary=result.ordinary,
        seconds=round(result.seconds, 4),
    )
    return record


def real_paths(result: Result) -> dict[str, object]:
    """The paths of a result as they are, not printable (the record's are `\\xNN`-escaped): the
    --report page links to the files, so it needs the bytes of their names."""
    return {
        "input": str(result.source.path),
        "files": [str(p) for p in result.files],
        "kept": [str(p) for p in result.kept],
    }


class Reporter:
    """Prints each result as it finishes, keeping a progress bar (if any) out of the way."""

    def __init__(
        self,
        info: ModelInfo,
        methods: tuple[str, ...],
        as_json: bool = False,
        data_to_stdout: bool = True,
        progress: Progress | None = None,
        share: float = 1.0,
        sink: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        self.info = info
        self.methods = methods
        self.as_json = as_json
        self.data_to_stdout = data_to_stdout
        self.progress = progress
        self.share = share  # of an image, left to count when its result comes (SmoothGrad)
        self.sink = sink  # given each result's JSON record and real paths (--report's rows)

    def _aside(self) -> contextlib.AbstractContextManager[None]:
        return self.progress.aside() if self.progress else contextlib.nullcontext()

    def __call__(self, result: Result) -> None:
        if result.skipped:
            if self.progress is not None:
                self.progress.advance(1.0)
            return
        if self.sink is not None:  # the --report page offers the top 5 whatever --top-k
            record = result_record(result, self.info, self.methods, top=len(result.top))
            self.sink({**record, "paths": real_paths(result)})
        with self._aside():
            if result.error is not None:
                click.echo(f"gbp: {result.source.name}: {result.error}", err=True)
            if self.as_json:
                record = result_record(result, self.info, self.methods)
                click.echo(json.dumps(record, ensure_ascii=False))
            elif result.error is None:
                line = result_line(result, self.info.weights.is_random)
                click.echo(line, err=not self.data_to_stdout)
        if self.progress is not None:
            self.progress.advance(self.share if result.targets or result.error else 1.0)

    def log(self, message: str) -> None:
        with self._aside():
            click.echo(f"gbp: {message}", err=True)


def summary_line(summary: Summary, seconds: float, device: str) -> str:
    """The closing line on stderr: counts, and end-to-end against compute-only throughput."""
    noun = "input" if summary.inputs == 1 else "inputs"
    text = (
        f"gbp: {summary.inputs} {noun} ({summary.explained} explained, {summary.failed} failed, "
        f"{summary.kept} kept) in {seconds:.1f} s with {device}"
    )
    if summary.skipped:
        text += f"; {summary.skipped} of gbp's own outputs skipped as inputs"
    if summary.explained:
        text += (
            f": {summary.explained / seconds:.2f} images/s end to end, "
            f"{summary.explained / max(summary.compute_seconds, 1e-9):.2f} images/s compute"
        )
    return text
