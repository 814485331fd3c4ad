"""What every engine shares: the run's description (Job), what became of each input (Result), the
run's totals (Summary), and the Engine protocol that `gbp explain` drives."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gbp_cli.backends.base import Backend
from gbp_cli.inputs.find import Source
from gbp_cli.outputs.model_record import model_record
from gbp_cli.outputs.planning import Planner, Prediction
from gbp_cli.outputs.store import Store
from gbp_cli.saliency.model import ModelChoice


@dataclass(frozen=True)
class Job:
    """Everything the user asked for that applies to every input."""

    planner: Planner
    labels: list[str]
    resize: str
    target: int | None = None
    top_k: int = 1
    batch_size: int = 8
    to_stdout: bool = False  # `-o -`: the single output's bytes go to stdout instead of a file


@dataclass
class Result:
    """What happened to one input."""

    source: Source
    error: str | None = None
    files: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # identical outputs that already existed
    targets: list[Prediction] = field(default_factory=list)
    top: list[Prediction] = field(default_factory=list)
    relus: dict[str, int] = field(default_factory=dict)
    activations: dict[str, dict[str, int]] = field(default_factory=dict)  # method → kind → n
    ordinary: dict[str, int] = field(default_factory=dict)  # kinds left with their own gradient
    seconds: float = 0.0
    skipped: bool = False  # a file gbp wrote, met as an input: not explained, only counted


@dataclass
class Summary:
    """What a run did, for the closing line on stderr and the exit code."""

    inputs: int = 0
    explained: int = 0
    failed: int = 0
    kept: int = 0
    skipped: int = 0
    compute_seconds: float = 0.0

    def add(self, result: Result) -> None:
        if result.skipped:
            self.skipped += 1
            return
        self.inputs += 1
        if result.error is not None:
            self.failed += 1
        elif result.files:
            self.explained += 1
        else:
            self.kept += 1


def record_of(choice: ModelChoice) -> dict[str, str]:
    """What every output records about the chosen model (its weights by name and content), read
    in this process: where the model loads, its weights file is there."""
    return model_record(choice.backend, choice.model, choice.weights, choice.precision)


Progress = Callable[[float], None]  # advance the progress display by a fraction of images
Report = Callable[[Result], None]  # called once per input, in input order


class Engine(Protocol):
    """Where the explain stage runs: `open` the model where the work will happen, then `run`
    every source through it, reporting each input once, in order. `record` is what every output
    records of the model, read where the model loaded."""

    def open(self, choice: ModelChoice) -> Backend: ...

    def record(self, choice: ModelChoice) -> dict[str, str]: ...

    def run(
        self,
        sources: Iterable[Source],
        model: Backend,
        job: Job,
        report: Report,
        store: Store,
        progress: Progress | None = None,
    ) -> Summary: ...
