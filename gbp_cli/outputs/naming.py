"""Where each output goes: `OUT/<input's path, mirrored>[.<class>].<method>.<format>.png`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePath

from gbp_cli.settings import Rendering, Smoothing

PANEL = "panel"
NPY = "npy"
# Without --format, each method gets the picture that shows it best: a gradient map's signed
# colours, or Grad-CAM's coarse heat laid over the photo (on its own it is a grey blur).
DEFAULT_FORMAT = {"gradcam": "overlay"}
# Which rendering settings shape each format's pixels (a change makes its old file stale).
DRAWN_WITH = {
    "color": ("contrast",),
    "gray": ("clip",),
    "heatmap": ("clip", "cmap"),
    "overlay": ("clip", "cmap", "alpha"),
    "pos": ("clip",),
    "neg": ("clip",),
    PANEL: ("clip", "cmap", "alpha", "contrast"),
    NPY: (),
}


def class_tag(index: int, label: str) -> str:
    """`281-tabby`: the class in a file name, readable and safe on every filesystem."""
    safe = re.sub(r"[^0-9A-Za-z]+", "_", label).strip("_")[:40]
    return f"{index}-{safe}" if safe else str(index)


def file_name(stem: str, method: str, fmt: str, tag: str | None = None) -> str:
    """`stem[.tag].method.fmt.png`, `stem[.tag].method.npy`, or `stem[.tag].panel.png`."""
    parts = [stem] if tag is None else [stem, tag]
    if fmt == PANEL:
        parts += [PANEL, "png"]
    elif fmt == NPY:
        parts += [method, NPY]
    else:
        parts += [method, fmt, "png"]
    return ".".join(parts)


@dataclass(frozen=True)
class Outputs:
    """What to write for every image: methods × formats, drawn how, and under which folder."""

    methods: tuple[str, ...]
    formats: tuple[str, ...]  # empty: each method's own default
    out_dir: Path
    resize: str
    rendering: Rendering
    smoothing: Smoothing | None = None

    def kinds(self) -> list[tuple[str, str]]:
        """(method, format) of every file one image and target gives, in writing order; the
        panel, which holds every method, comes last with the methods joined by commas."""
        if not self.formats:
            return [(m, DEFAULT_FORMAT.get(m, "color")) for m in self.methods]
        pairs = [(m, f) for m in self.methods for f in self.formats if f != PANEL]
        if PANEL in self.formats:
            pairs.append((",".join(self.methods), PANEL))
        return pairs

    def paths(self, stem: PurePath, tag: str | None = None) -> list[Path]:
        """The files for one image (`stem`: its mirrored path without extension) and target."""
        folder = self.out_dir / stem.parent
        return [folder / file_name(stem.name, m, f, tag) for m, f in self.kinds()]

    def settings(self, method: str, fmt: str) -> dict[str, str]:
        """What shapes one output's content besides the model and the target."""
        drawn = {name: str(getattr(self.rendering, name)) for name in DRAWN_WITH[fmt]}
        return {
            "method": method,
            "format": fmt,
            "resize": self.resize,
            "smoothing": self.smoothing.describe() if self.smoothing else "none",
            **drawn,
        }
