"""`gbp parity`: the same photo and weights through both backends, and how far apart they land."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from gbp_cli.atomic import write_atomic
from gbp_cli.backends import Backend, WeightsSpec, open_backend
from gbp_cli.backends.base import ModelSpec
from gbp_cli.backends.checkpoints import checkpoint_bytes
from gbp_cli.backends.rules import LOGITS_TOLERANCE, METHODS
from gbp_cli.batching import batched
from gbp_cli.commands.common import model_spec, unique, weights_spec
from gbp_cli.errors import InputError
from gbp_cli.inputs import discover
from gbp_cli.loading import announce
from gbp_cli.methods import check_methods, explain_maps
from gbp_cli.preprocess import prepare
from gbp_cli.settings import Smoothing

# Relative L2 per method (backends/rules.py), and max |Δ logit|.
TOLERANCE = {"logits": LOGITS_TOLERANCE} | {name: m.tolerance for name, m in METHODS.items()}


@dataclass(frozen=True)
class Agreement:
    """How closely the two backends agree on one image and method."""

    image: str
    method: str
    target: int
    logits: float  # max |Δ logit|
    saliency: float  # ‖torch − tf‖ / ‖torch‖

    @property
    def ok(self) -> bool:
        return self.logits <= TOLERANCE["logits"] and self.saliency <= TOLERANCE[self.method]


def relative_l2(reference: np.ndarray, other: np.ndarray) -> float:
    scale = float(np.linalg.norm(reference))
    return float(np.linalg.norm(reference - other)) / max(scale, np.finfo(np.float32).tiny)


def compare(
    names: list[str],
    images: np.ndarray,
    methods: tuple[str, ...],
    torch: Backend,
    tf: Backend,
    smoothing: Smoothing | None = None,
) -> list[Agreement]:
    """Explain with torch, then with TF for torch's targets, so both explain the same class."""
    first, first_maps = explain_maps(torch, images, methods, smoothing=smoothing)
    second, second_maps = explain_maps(tf, images, methods, first.targets, smoothing=smoothing)
    rows = []
    for i, name in enumerate(names):
        logits = float(np.abs(first.logits[i] - second.logits[i]).max())
        for method in methods:
            error = relative_l2(first_maps[method][i], second_maps[method][i])
            rows.append(Agreement(name, method, int(first.targets[i, 0]), logits, error))
    return rows


def row_line(row: Agreement) -> str:
    verdict = "ok" if row.ok else f"OVER {TOLERANCE[row.method]:g}"
    return (
        f"{row.image}\t{row.method}\tclass {row.target}\tlogits {row.logits:.2e}\t"
        f"saliency {row.saliency:.2e}\t{verdict}"
    )


def parity_weights(
    spec: WeightsSpec, folder: Path, device: str, model: ModelSpec
) -> tuple[Backend, Backend]:
    """Both backends, TensorFlow's with exactly the torch model's weights (written to a
    torchvision file it converts), whatever `--weights` named."""
    from gbp_cli.backends.convert import kind, read_keras

    if spec.kind == "file" and spec.path is not None and kind(spec.path) == "keras":
        state, _ = read_keras(spec.path)
        shared = folder / "weights.pth"
        write_atomic(shared, checkpoint_bytes(state))
        torch_backend = open_backend("torch", WeightsSpec("file", shared), device, model=model)
        return torch_backend, open_backend("tf", spec, device, model=model)
    torch_backend = open_backend("torch", spec, device, model=model)
    if spec.kind != "file":  # ImageNet's or seeded weights: hand TF the very same numbers
        spec = WeightsSpec("file", folder / "weights.pth")
        write_atomic(spec.path, checkpoint_bytes(torch_backend.state()))  # type: ignore[arg-type]
    return torch_backend, open_backend("tf", spec, device, model=model)


def parity_command(
    inputs: tuple[str, ...],
    *,
    weights: str,
    methods: tuple[str, ...],
    resize: str,
    device: str,
    batch_size: int,
    smooth: int | None = None,
    noise: float = Smoothing.noise,
    model: str = "densenet201",
    input_size: int | None = None,
    normalize: str | None = None,
    cam_layer: str | None = None,
    other_activations: str = "refuse",
) -> int:
    """Run `gbp parity`; returns the number of failures (inputs and figures over tolerance)."""
    spec = weights_spec(weights)
    network = model_spec(model, input_size, normalize, cam_layer, other_activations)
    methods = unique(methods, "guided")
    smoothing = None if smooth is None else Smoothing(samples=smooth, noise=noise)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="gbp-parity-") as folder:
        torch_backend, tf_backend = parity_weights(spec, Path(folder), device, network)
        for backend in (torch_backend, tf_backend):
            check_methods(backend.info, methods, network)
        announce(torch_backend)
        sources = list(discover(inputs))
        tf_backend.plan(len(sources), batch_size)
        for batch in batched(sources, batch_size):
            names, arrays = [], []
            for source in batch:
                try:
                    pre = torch_backend.info.preprocessing  # TF gets the same input
                    arrays.append(prepare(source.path, resize, pre=pre).array)
                    names.append(source.name)
                except InputError as e:
                    click.echo(f"gbp: {source.name}: {e}", err=True)
                    failures += 1
            if arrays:
                rows = compare(
                    names, np.stack(arrays), methods, torch_backend, tf_backend, smoothing
                )
                for row in rows:
                    click.echo(row_line(row))
                    failures += not row.ok
    return failures
