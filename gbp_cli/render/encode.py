"""The render stage's last step: maps → PNG or .npy bytes, each saying exactly what made it."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from gbp_cli.backends.base import ModelInfo
from gbp_cli.fingerprints import with_image_digest
from gbp_cli.inputs.preprocess import Prepared
from gbp_cli.outputs.naming import NPY, PANEL, Outputs
from gbp_cli.outputs.records import Provenance
from gbp_cli.render.png import encode_png
from gbp_cli.version import __version__

RANDOM_NOTE = "RANDOM weights (untrained network): labels and maps say nothing about ImageNet"


@dataclass(frozen=True)
class Caption:
    """The class a map explains, as the picture's caption and metadata name it."""

    index: int
    label: str
    probability: float


def png_bytes(pixels: np.ndarray, metadata: dict[str, str]) -> bytes:
    """Encode an RGB/L image with text chunks saying exactly what produced it (gbp_cli.render.png
    says how, and why not Pillow's encoder)."""
    # The record covers the pixels too: a cut or changed file is never taken as kept.
    return with_image_digest(encode_png(pixels, metadata))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
    return buffer.getvalue()


def metadata(
    info: ModelInfo,
    outputs: Outputs,
    targets: list[Caption],
    method: str,
    fmt: str,
    provenance: Provenance,
    ordinary: dict[str, int] | None = None,
) -> dict[str, str]:
    """Text chunks that say exactly what produced a PNG, and the record a rerun checks."""
    activations = ", ".join(f"{n} {kind}" for kind, n in info.activations.items()) or "-"
    left = ", ".join(f"{n} {kind}" for kind, n in (ordinary or {}).items()) or "none"
    return {
        "Software": f"gbp {__version__}",
        "gbp:backend": info.backend,
        "gbp:model": info.model,
        "gbp:weights": info.weights.describe(),
        "gbp:precision": info.precision,
        "gbp:method": method,
        "gbp:target": "; ".join(f"{t.index} {t.label}" for t in targets),
        "gbp:probability": "; ".join(f"{t.probability:.6f}" for t in targets),
        "gbp:preprocess": f"{outputs.resize} to {info.input_size}x{info.input_size}, "
        f"{info.normalization}",
        "gbp:format": fmt,
        "gbp:render": outputs.rendering.describe(),
        "gbp:smoothing": outputs.smoothing.describe() if outputs.smoothing else "none",
        "gbp:activations": activations,
        "gbp:ordinary-gradient": left,
        **provenance.chunks(),
    }


def encode(
    method: str,
    fmt: str,
    maps: list[dict[str, np.ndarray]],
    prepared: Prepared,
    targets: list[Caption],
    info: ModelInfo,
    outputs: Outputs,
    provenance: Provenance,
    ordinary: dict[str, int] | None = None,
) -> bytes:
    """One output's bytes. `maps` and `targets` hold one entry per explained class: one for a
    per-class file, every class for the panel (one row each)."""
    from gbp_cli.render.panel import panel
    from gbp_cli.render.pictures import render

    if fmt == NPY:
        saliency = maps[0][method]
        return npy_bytes(saliency[..., 0] if saliency.shape[-1] == 1 else saliency)
    if fmt == PANEL:
        assert prepared.photo is not None
        rows = [(t.label, t.probability, m) for t, m in zip(targets, maps, strict=True)]
        notes = [RANDOM_NOTE] if info.weights.is_random else []
        if ordinary:
            left = ", ".join(f"{n} {kind}" for kind, n in ordinary.items())
            notes.append(f"{left} kept their ordinary gradient (--other-activations gradient)")
        note = "\n".join(notes) or None
        picture = panel(prepared.photo, prepared.geometry, rows, note, outputs.rendering)
    else:
        picture = render(fmt, maps[0][method], prepared.geometry, prepared.photo, outputs.rendering)
    tags = metadata(info, outputs, targets, method, fmt, provenance, ordinary)
    return png_bytes(np.asarray(picture), tags)
