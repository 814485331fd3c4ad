"""One input's result from a computed batch: its predictions, and every output rendered and
stored. The local engine's writer threads, the Ray workers and the Ray API all write this way,
so every engine writes the same bytes."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gbp_cli.backends.base import Explanation
from gbp_cli.engines.base import Job, Result
from gbp_cli.errors import InputError, RunStopped
from gbp_cli.inputs.find import Source
from gbp_cli.inputs.preprocess import Prepared
from gbp_cli.outputs.planning import Planned, predictions
from gbp_cli.outputs.store import Store
from gbp_cli.render.encode import Caption, encode


def write_result(
    i: int,
    source: Source,
    prepared: Prepared,
    explanation: Explanation,
    maps: dict[str, np.ndarray],
    planned: list[Planned],
    share: float,
    job: Job,
    store: Store,
    encoder: Callable[..., bytes] = encode,
) -> Result:
    """Image `i` of a computed batch: its predictions, and every planned output rendered and
    stored (or, for `-o -`, written to stdout). `encoder` is `encode`, maybe run in a worker
    process (engines.helpers)."""
    begun = time.perf_counter()
    logits = explanation.logits[i]
    result = Result(
        source,
        targets=predictions(logits, explanation.targets[i], job.labels),
        top=predictions(logits, np.argsort(-logits)[: max(5, job.top_k)], job.labels),
        relus=dict(explanation.relus),
        activations=dict(explanation.activations),
        ordinary=dict(explanation.ordinary),
    )
    info = job.planner.info
    try:
        for output in planned:
            image_maps = [{m: v[i, k] for m, v in maps.items()} for k in output.ranks]
            tags = [Caption(t.index, t.label, t.probability) for t in output.targets]
            data = encoder(
                output.method, output.format, image_maps, prepared, tags, info,
                job.planner.outputs, output.provenance, explanation.ordinary,
            )  # fmt: skip
            if job.to_stdout:
                to_stdout(data)
                result.files.append(Path("-"))
            elif store.save(output.path, data, output.provenance):
                result.files.append(output.path)
            else:
                result.kept.append(output.path)
    except InputError as e:
        return Result(source, error=str(e))
    result.seconds = share + time.perf_counter() - begun
    return result


def to_stdout(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise RunStopped(f"cannot write to stdout: {reason}") from None
