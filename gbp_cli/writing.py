"""The last stages for one image: each target's maps → renderings with metadata → files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from backends.base import ModelInfo
from gbp_cli import __version__
from gbp_cli.methods import Smoothing
from gbp_cli.output import npy_bytes, output_path, png_bytes
from gbp_cli.panel import panel
from gbp_cli.preprocess import SIZE, Prepared
from gbp_cli.render import render

PHOTO_FORMATS = ("overlay", "panel")  # these need the decoded photo kept beside the model input


@dataclass(frozen=True)
class Rendering:
    """How maps are drawn (`--clip`, `--cmap`, `--alpha`, and the colour rendering's contrast)."""

    clip: float = 99.0
    cmap: str = "inferno"
    alpha: float = 0.5
    contrast: float = 0.1

    def describe(self) -> str:
        return (
            f"clip={self.clip:g} cmap={self.cmap} alpha={self.alpha:g} contrast={self.contrast:g}"
        )


@dataclass(frozen=True)
class Target:
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class Outputs:
    """What to write for every image: methods × formats, how, and where."""

    methods: tuple[str, ...]
    formats: tuple[str, ...]
    out_dir: Path
    resize: str
    rendering: Rendering
    smoothing: Smoothing | None = None

    def planned(self, relative: PurePath, target: int | None = None) -> list[Path]:
        """The files one image (and target) gives, in the order they are written."""
        paths = [
            output_path(self.out_dir, relative, method, fmt, target)
            for method in self.methods
            for fmt in self.formats
            if fmt != "panel"
        ]
        if "panel" in self.formats:
            paths.append(output_path(self.out_dir, relative, "", "panel", target))
        return paths


def metadata(info: ModelInfo, outputs: Outputs, target: Target, method: str, fmt: str) -> dict:
    """Text chunks that say exactly what produced a PNG."""
    return {
        "Software": f"gbp {__version__}",
        "gbp:backend": info.backend,
        "gbp:model": info.model,
        "gbp:weights": info.weights.describe(),
        "gbp:precision": info.precision,
        "gbp:method": method,
        "gbp:target": f"{target.index} {target.label}",
        "gbp:probability": f"{target.probability:.6f}",
        "gbp:preprocess": f"{outputs.resize} to {SIZE}x{SIZE}, ImageNet mean/std",
        "gbp:format": fmt,
        "gbp:render": outputs.rendering.describe(),
        "gbp:smoothing": outputs.smoothing.describe() if outputs.smoothing else "none",
    }


def encode(
    maps: dict[str, np.ndarray],
    prepared: Prepared,
    target: Target,
    info: ModelInfo,
    outputs: Outputs,
) -> Iterator[tuple[str, str, bytes]]:
    """(method, format, bytes) for every output of one image and target, in `planned` order."""
    style = outputs.rendering
    for method in outputs.methods:
        saliency = maps[method]
        for fmt in outputs.formats:
            if fmt == "npy":
                raw = saliency[..., 0] if saliency.shape[-1] == 1 else saliency
                yield method, fmt, npy_bytes(raw)
            elif fmt != "panel":
                picture = render(
                    fmt,
                    saliency,
                    prepared.geometry,
                    prepared.photo,
                    style.clip,
                    style.cmap,
                    style.alpha,
                    style.contrast,
                )
                yield (
                    method,
                    fmt,
                    png_bytes(np.asarray(picture), metadata(info, outputs, target, method, fmt)),
                )
    if "panel" in outputs.formats:
        assert prepared.photo is not None
        note = None
        if info.weights.is_random:
            note = "RANDOM weights (untrained network): labels and maps say nothing about ImageNet"
        figure = panel(
            prepared.photo,
            prepared.geometry,
            maps,
            target.label,
            target.probability,
            note,
            style.clip,
            style.cmap,
            style.alpha,
            style.contrast,
        )
        tags = metadata(info, outputs, target, ",".join(outputs.methods), "panel")
        yield "", "panel", png_bytes(np.asarray(figure), tags)
