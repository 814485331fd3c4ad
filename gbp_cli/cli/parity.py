"""`gbp parity`: the same photo and weights through both backends, and how far apart they land."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import click
import numpy as np

from gbp_cli.backends import Backend, WeightsSpec, open_backend
from gbp_cli.backends.base import BackendError, ModelSpec
from gbp_cli.backends.checkpoints import checkpoint_bytes
from gbp_cli.backends.rules import LOGITS_TOLERANCE, METHODS
from gbp_cli.cli.checks import model_spec, unique
from gbp_cli.engines.batching import batched
from gbp_cli.errors import GbpError, InputError
from gbp_cli.inputs.find import discover
from gbp_cli.inputs.preprocess import prepare
from gbp_cli.outputs.atomic import write_atomic
from gbp_cli.saliency.maps import check_methods, explain_maps
from gbp_cli.saliency.model import announce
from gbp_cli.settings import Smoothing

# Relative L2 per method (backends/rules.py), and max |Δ logit|.
TOLERANCE = {"logits": LOGITS_TOLERANCE} | {name: m.tolerance for name, m in METHODS.items()}


# --precision fp64: the same network in both frameworks agrees to float64's rounding.
EXACT = 1e-9


@dataclass(frozen=True)
class Float64:
    """The same image and method with both frameworks in float64, run where a float32 figure
    missed its tolerance. Where they agree there within EXACT, the float32 miss is float32's
    rounding (a deep network's ReLU gates at x ≈ 0 flip with the last bit of a sum) or max-pool
    tie routing (flat regions: each kernel sends the gradient to another of the tied
    positions), not a different network."""

    logits: float  # max |Δ logit|, torch vs tf, both in float64
    saliency: float  # ‖torch − tf‖ / ‖torch‖, both in float64
    torch: float  # how far torch's float32 map lies from its float64 one
    tf: float  # how far TF's float32 map lies from its float64 one

    @property
    def agrees(self) -> bool:
        return self.logits <= EXACT and self.saliency <= EXACT


@dataclass(frozen=True)
class Agreement:
    """How closely the two backends agree on one image and method, and, where a float32 figure
    missed its tolerance, what both frameworks in float64 say about it (`float64`), or why they
    could not say (`unavailable`)."""

    image: str
    method: str
    target: int
    logits: float  # max |Δ logit|
    saliency: float  # ‖torch − tf‖ / ‖torch‖
    precision: str = "fp32"
    float64: Float64 | None = None
    unavailable: str | None = None  # why float64 could not run

    @property
    def tolerance(self) -> float:
        return EXACT if self.precision == "fp64" else TOLERANCE[self.method]

    @property
    def within(self) -> bool:
        """Both figures within this precision's tolerances."""
        logits = EXACT if self.precision == "fp64" else TOLERANCE["logits"]
        return self.logits <= logits and self.saliency <= self.tolerance

    @property
    def ok(self) -> bool:
        """Within tolerance, or missed only in float32: float64 shows the same network."""
        return self.within or (self.float64 is not None and self.float64.agrees)


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
    exact: Callable[[], tuple[Backend, Backend]] | None = None,
) -> list[Agreement]:
    """Explain with torch, then with TF for torch's targets, so both explain the same class.
    Where a figure misses its tolerance and `exact` gives both backends in float64, explain
    those images and methods again with them, for the same targets."""
    first, first_maps = explain_maps(torch, images, methods, smoothing=smoothing)
    second, second_maps = explain_maps(tf, images, methods, first.targets, smoothing=smoothing)
    precision = torch.info.precision
    rows, where = [], []  # where: (image index, method) of each row
    for i, name in enumerate(names):
        logits = float(np.abs(first.logits[i] - second.logits[i]).max())
        for method in methods:
            error = relative_l2(first_maps[method][i], second_maps[method][i])
            target = int(first.targets[i, 0])
            rows.append(Agreement(name, method, target, logits, error, precision))
            where.append((i, method))
    missed = {at for row, at in zip(rows, where, strict=True) if not row.within}
    if exact is None or not missed:
        return rows
    # Only the images and methods that missed: float64 costs two to three float32 passes.
    images_missed = sorted({i for i, _ in missed})
    methods_missed = tuple(m for m in methods if any(m == n for _, n in missed))
    targets = first.targets[images_missed]
    pairs = list(zip(rows, where, strict=True))
    try:
        torch64, tf64 = exact()
        clean, torch_truth = explain_maps(
            torch64, images[images_missed], methods_missed, targets, smoothing=smoothing
        )
        other, tf_truth = explain_maps(
            tf64, images[images_missed], methods_missed, targets, smoothing=smoothing
        )
    except (BackendError, GbpError) as e:
        return [replace(row, unavailable=str(e)) if at in missed else row for row, at in pairs]
    position = {i: j for j, i in enumerate(images_missed)}

    def checked(i: int, m: str) -> Float64:
        j = position[i]
        return Float64(
            logits=float(np.abs(clean.logits[j] - other.logits[j]).max()),
            saliency=relative_l2(torch_truth[m][j], tf_truth[m][j]),
            torch=relative_l2(torch_truth[m][j], first_maps[m][i]),
            tf=relative_l2(tf_truth[m][j], second_maps[m][i]),
        )

    return [replace(row, float64=checked(*at)) if at in missed else row for row, at in pairs]


def verdict(row: Agreement) -> str:
    """`ok`; or for a float32 miss, what float64 says of it, with both figures; else `OVER`."""
    if row.within:
        return "ok"
    over = f"{row.tolerance:g}"
    if row.unavailable is not None:
        return f"OVER {over} (float64 could not run: {row.unavailable})"
    exact = row.float64
    if exact is None:
        return f"OVER {over}"
    distances = f"from float64: torch {exact.torch:.1e}, tf {exact.tf:.1e}"
    if exact.agrees:
        return (
            f"ok: float32 rounding or max-pool tie routing, not a different network (over "
            f"{over} in float32; float64 agrees to {exact.saliency:.1e}, logits "
            f"{exact.logits:.1e}; {distances})"
        )
    return (
        f"OVER {over}: float64 disagrees too ({exact.saliency:.1e}, logits {exact.logits:.1e}"
        f" over {EXACT:g}): a different network ({distances})"
    )


def row_line(row: Agreement) -> str:
    return (
        f"{row.image}\t{row.method}\tclass {row.target}\tlogits {row.logits:.2e}\t"
        f"saliency {row.saliency:.2e}\t{verdict(row)}"
    )


def parity_weights(
    spec: WeightsSpec, folder: Path, device: str, model: ModelSpec, precision: str = "fp32"
) -> tuple[Backend, Backend, WeightsSpec]:
    """Both backends, TensorFlow's with exactly the torch model's weights (written to a
    torchvision file it converts), whatever `--weights` named; and that torchvision file."""
    from gbp_cli.backends.tf.twins import read_keras
    from gbp_cli.backends.twins.convert import kind

    def load(backend: str, weights: WeightsSpec) -> Backend:
        return open_backend(backend, weights, device, precision, model=model)

    if spec.kind == "file" and spec.path is not None and kind(spec.path) == "keras":
        state, _ = read_keras(spec.path)
        shared = WeightsSpec("file", folder / "weights.pth")
        write_atomic(shared.path, checkpoint_bytes(state))  # type: ignore[arg-type]
        return load("torch", shared), load("tf", spec), shared
    torch_backend = load("torch", spec)
    if spec.kind != "file":  # ImageNet's or seeded weights: hand TF the very same numbers
        spec = WeightsSpec("file", folder / "weights.pth")
        write_atomic(spec.path, checkpoint_bytes(torch_backend.state()))  # type: ignore[arg-type]
    return torch_backend, load("tf", spec), spec


def parity_command(
    inputs: tuple[str, ...],
    *,
    weights: WeightsSpec,
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
    precision: str = "fp32",
) -> int:
    """Run `gbp parity`; returns the number of failures: inputs that could not be read, and
    figures over tolerance in float32 that float64 does not clear."""
    spec = weights
    network = model_spec(model, input_size, normalize, cam_layer, other_activations)
    methods = unique(methods, "guided")
    smoothing = None if smooth is None else Smoothing(samples=smooth, noise=noise)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="gbp-parity-") as folder:
        torch_backend, tf_backend, shared = parity_weights(
            spec, Path(folder), device, network, precision
        )
        for backend in (torch_backend, tf_backend):
            check_methods(backend.info, methods, network)
        announce(torch_backend)

        @functools.cache
        def reference() -> tuple[Backend, Backend]:
            """Both backends in float64, loaded the first time a figure misses, then kept."""
            torch64 = open_backend("torch", shared, device, "fp64", model=network)
            return torch64, open_backend("tf", shared, device, "fp64", model=network)

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
                exact = reference if precision == "fp32" else None
                rows = compare(
                    names, np.stack(arrays), methods, torch_backend, tf_backend, smoothing, exact
                )
                for row in rows:
                    click.echo(row_line(row))
                    failures += not row.ok
    return failures
