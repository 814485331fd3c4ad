"""Planning one input's outputs: their paths, the record each will carry, and whether what is
already on disk can be kept, must be redone, or is in the way."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gbp_cli.backends.base import ModelInfo
from gbp_cli.errors import InputError
from gbp_cli.inputs.find import Source
from gbp_cli.inputs.preprocess import Prepared
from gbp_cli.outputs.naming import NPY, PANEL, Outputs, class_tag, file_name, writable
from gbp_cli.outputs.records import Provenance, Undecided, conflict, decide, look, undecided


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    logit: float
    probability: float


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return exp / exp.sum(axis=-1, keepdims=True)


def predictions(logits: np.ndarray, indices: Iterable[int], labels: list[str]) -> list[Prediction]:
    probabilities = softmax(logits)
    return [
        Prediction(int(c), labels[int(c)], float(logits[c]), float(probabilities[c]))
        for c in indices
    ]


@dataclass(frozen=True)
class Planned:
    """One file to write: where, what it shows, and the record it carries."""

    path: Path
    method: str
    format: str
    ranks: tuple[int, ...]  # which of the image's explained classes it shows (the panel: all)
    targets: tuple[Prediction, ...]
    provenance: Provenance


@dataclass
class Planner:
    """Plans every input's outputs for one run, and makes sure no two inputs share one."""

    outputs: Outputs
    model: dict[str, str]  # backend, model, weights, precision: in every output's record
    target: int | None = None
    top_k: int = 1
    info: ModelInfo | None = None  # the loaded model, once there is one
    overwrite: bool = False
    inputs: frozenset[str] = frozenset()  # real paths of the run's inputs
    # How pictures are drawn (gbp_cli.render's DRAWING, which this layer cannot import): in
    # every PNG's record, so that pictures drawn otherwise by an older gbp are conflicts.
    drawing: str | None = None
    _claims: dict[str, Source] = field(default_factory=dict)

    @property
    def per_class(self) -> bool:
        """Several classes per image put each class into its files' names."""
        return self.target is None and self.top_k > 1

    def target_setting(self, rank: int | None) -> str:
        if self.target is not None:
            return f"class {self.target}"
        if self.top_k == 1:
            return "top-1"
        return f"top-{self.top_k}" if rank is None else f"top-{self.top_k} rank {rank}"

    def provenance(self, source: Source, digest: str, method: str, fmt: str, rank: int | None):
        settings = {
            **self.model,
            **self.outputs.settings(method, fmt),
            "target": self.target_setting(rank),
        }
        if self.drawing is not None and fmt != NPY:
            settings["drawing"] = self.drawing
        return Provenance(source.name, digest, settings)

    def plan(self, source: Source, prepared: Prepared, targets: list[Prediction]) -> list[Planned]:
        """Every file for one image, now that its explained classes are known."""
        folder = self.outputs.out_dir / source.stem.parent
        planned = []
        for method, fmt in self.outputs.kinds():
            if fmt == PANEL:  # one figure, a row per class
                ranks: list[tuple[int, ...]] = [tuple(range(len(targets)))]
            else:
                ranks = [(k,) for k in range(len(targets))]
            for shown in ranks:
                single = len(shown) == 1 and fmt != PANEL
                tag = class_tag(targets[shown[0]].index, targets[shown[0]].label)
                name = file_name(source.stem.name, method, fmt, tag if self.per_class else None)
                rank = shown[0] + 1 if single and self.per_class else None
                planned.append(
                    Planned(
                        folder / name,
                        method,
                        fmt,
                        shown,
                        tuple(targets[k] for k in shown),
                        self.provenance(source, prepared.digest, method, fmt, rank),
                    )
                )
        return planned

    def unnamed(self) -> list[Prediction]:
        """The target before the model has named it: --target's class, or any (without --top-k
        a file's name and record do not hold the class, so planning them needs none)."""
        return [Prediction(self.target or 0, "", 0.0, 0.0)]

    def claimed(self) -> list[str]:
        """The absolute paths this run has claimed so far."""
        return list(self._claims)

    def unclaimed(self) -> Planner:
        """A copy that knows no claims: for a Ray worker, whose run's claims are the driver's."""
        return dataclasses.replace(self, _claims={})

    def claim(self, source: Source, planned: list[Planned]) -> list[Planned]:
        """Refuse the input if another input of this run already has one of these paths, if one
        is an input, or if one cannot be written: a name too long for the file system, or a
        path that a link inside `-o` sends outside it."""
        for output in planned:
            writable(output.path, self.outputs.out_dir)
            key = os.path.abspath(output.path)
            other = self._claims.setdefault(key, source)
            if other is not source:
                raise InputError(
                    f"its output {output.path} would overwrite that of {other.name}; "
                    "rename one of them or explain them into different -o folders"
                )
            if os.path.realpath(output.path) in self.inputs and not look(output.path).ours:
                raise InputError(
                    f"its output {output.path} is an input of this run; it was left alone "
                    "(choose another -o)"
                )
        return planned

    def existing(self, source: Source, prepared: Prepared) -> list[Path] | None:
        """Every output's path if all are there and identical (kept), None if there is work to
        do; an InputError if something that may not be replaced is in the way. Undecided
        (--dry-run only) if they match in all it can know, but not in what it cannot yet."""
        if self.per_class:
            return self._existing_per_class(source, prepared)
        placeholder = self.unnamed()
        planned = self.claim(source, self.plan(source, prepared, placeholder))
        verdicts = [decide(o.path, o.provenance, self.overwrite) for o in planned]
        if "unknown" in verdicts:
            output = planned[verdicts.index("unknown")]
            raise Undecided(undecided(look(output.path), output.provenance) or "")
        return [o.path for o in planned] if set(verdicts) == {"kept"} else None

    def _existing_per_class(self, source: Source, prepared: Prepared) -> list[Path] | None:
        """With --top-k the names hold the classes, unknown until the model runs: look for
        files of this stem whose record is this input, these settings and this rank."""
        folder = self.outputs.out_dir / source.stem.parent
        for method, fmt in self.outputs.kinds():  # the class joins the names once it is known
            shortest = folder / file_name(source.stem.name, method, fmt, "0")
            writable(shortest, self.outputs.out_dir, least=True)
        if self.overwrite:
            return None
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        kept = []
        why = None  # what --dry-run cannot know yet, if the matches depend on it
        for method, fmt in self.outputs.kinds():
            ranks = [None] if fmt == PANEL else list(range(1, self.top_k + 1))
            suffix = file_name("", method, fmt)  # ".guided.color.png"
            tag = r"\.\d+(?:-[^.]*)?"  # `.281-tabby`, or `.281` where a label has no letters
            tagged = re.compile(re.escape(source.stem.name) + tag + re.escape(suffix))
            candidates = {  # each looked at once: a PNG's look reads it whole
                folder / n: look(folder / n)
                for n in names
                if tagged.fullmatch(n) or n == file_name(source.stem.name, method, fmt)
            }
            for rank in ranks:
                wanted = self.provenance(source, prepared.digest, method, fmt, rank)
                fits = (p for p, found in candidates.items() if conflict(found, wanted) is None)
                match = next(fits, None)
                if match is None:
                    return None
                kept.append(match)
                why = undecided(candidates[match], wanted) or why
        if why is not None:
            raise Undecided(why)
        return kept
