"""Where each output goes: `OUT/<input's path, mirrored>[.<class>].<method>.<format>.png`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePath

from gbp_cli.errors import InputError
from gbp_cli.outputs.containment import ensure_inside
from gbp_cli.settings import Rendering, Smoothing

PANEL = "panel"
NPY = "npy"
PHOTO_FORMATS = ("overlay", PANEL)  # these are drawn over the photo
# Without --format, each method gets the picture that shows it best: a gradient map's signed
# colours, or Grad-CAM's coarse heat laid over the photo (on its own it is a grey blur).
DEFAULT_FORMAT = {"gradcam": "overlay"}
# Which rendering settings shape each format's pixels (a change makes its old file stale).
DRAWN_WITH = {
    "color": ("contrast", "max_size"),
    "gray": ("clip", "max_size"),
    "heatmap": ("clip", "cmap", "max_size"),
    "overlay": ("clip", "cmap", "alpha", "max_size"),
    "pos": ("clip", "max_size"),
    "neg": ("clip", "max_size"),
    PANEL: ("clip", "cmap", "alpha", "contrast", "max_size"),
    NPY: (),  # the raw map: no picture, no size
}


# The longest name gbp makes from an output's name, `.<name>.json.<8 random>.part` (a `.npy`'s
# record's temp file), is 20 bytes longer; a map's thumbnail's temp file under .thumbs, 19.
HEADROOM = 20
NAME_MAX, PATH_MAX = 255, 4096  # where the file system does not say


def too_long(path: Path, least: bool = False) -> str | None:
    """Why the file system cannot hold `path` with every name gbp derives from it (its temp file,
    its record, its thumbnail), or None. Limits are in bytes, as the file system counts them,
    read from the nearest folder that exists (NAME_MAX, PATH_MAX). `least`: `path` is the
    shortest the name can be (--top-k, before the class is known)."""
    name_max, path_max = _limits(path.parent)
    name = os.fsencode(path.name)
    if len(name) + HEADROOM > name_max:
        return (
            f"the name of its output {_short(path.name)} would be {'at least ' * least}"
            f"{len(name)} bytes long; this file system allows {name_max} bytes per name "
            f"(NAME_MAX) and gbp needs {HEADROOM} more for its temp and record files, so at most "
            f"{name_max - HEADROOM}: give the photo a name {len(name) + HEADROOM - name_max} "
            f"bytes shorter"
        )
    for part in path.parent.parts:
        if len(os.fsencode(part)) > name_max:
            return (
                f"its output folder {_short(part)} would have a {len(os.fsencode(part))}-byte "
                f"name; this file system allows {name_max} bytes per name (NAME_MAX)"
            )
    whole = len(os.fsencode(os.path.abspath(path)))
    if whole + HEADROOM >= path_max:
        return (
            f"its output's path would be {whole} bytes long; this file system allows "
            f"{path_max - 1} (PATH_MAX) and gbp needs {HEADROOM} more: choose a shorter -o"
        )
    return None


def writable(path: Path, root: Path | None, least: bool = False) -> None:
    """Refuse (InputError, one line for its input) an output the file system cannot name, with
    the temp and record files gbp derives from it, or one that would land outside `root` (`-o`)
    through a link. `least`: as for too_long."""
    why = too_long(path, least)
    if why is not None:
        raise InputError(why)
    if root is not None:
        ensure_inside(root, path)


def _limits(folder: Path) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the file system `folder` will be on (its nearest existing
    ancestor's)."""
    existing = os.path.abspath(folder)
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    try:
        name_max, path_max = (
            os.pathconf(existing, "PC_NAME_MAX"),
            os.pathconf(existing, "PC_PATH_MAX"),
        )
    except (OSError, ValueError):
        return NAME_MAX, PATH_MAX
    return name_max if name_max > 0 else NAME_MAX, path_max if path_max > 0 else PATH_MAX


def _short(name: str) -> str:
    """A long name as a message shows it: its start and end."""
    return name if len(name) <= 60 else f"{name[:24]}…{name[-32:]}"


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

    @property
    def keeps_photo(self) -> bool:
        """Whether a picture is drawn over the photo (an overlay, the panel), so the decoded
        photo must wait beside the model's input."""
        return any(fmt in PHOTO_FORMATS for _, fmt in self.kinds())

    @property
    def passes(self) -> int:
        """The model's passes per image: one, and one per SmoothGrad sample."""
        return 1 + (self.smoothing.samples if self.smoothing else 0)

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
