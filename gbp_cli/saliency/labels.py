"""Class names and `--target` resolution, shared by both backends and needing no network."""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path

from gbp_cli.errors import GbpError


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k names in index order, shipped with gbp so no framework is needed."""
    text = resources.files("gbp_cli").joinpath("data/imagenet_classes.txt").read_text("utf-8")
    return text.splitlines()


def load_labels(path: Path | None, num_classes: int | None) -> list[str]:
    """Names for a model's classes: a user's file, ImageNet's, or plain indices as a last resort."""
    if path is not None:
        try:
            names = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise GbpError(f"cannot read --labels {path}: {e}") from None
        if num_classes is not None and len(names) != num_classes:
            raise GbpError(
                f"--labels {path} has {len(names)} names but the model has {num_classes} classes"
            )
        return names
    if num_classes == 1000:
        return imagenet_classes()
    return [f"class {i}" for i in range(num_classes)]


def resolve_target(spec: str, labels: list[str]) -> int:
    """Turn `--target` into a class index: an index, else the class whose name is the text
    (case-insensitive), else the one with the text as a whole word, else the one it is a unique
    prefix of. Where several classes fit at the first level that matches, they are listed."""
    text = spec.strip()
    if not text:
        raise GbpError(f"--target {spec!r} is empty: give a class index or a class name")
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(labels):
            raise GbpError(
                f"--target {index} is out of range: the model has classes 0-{len(labels) - 1}"
            )
        return index
    wanted = text.casefold()
    folded = [name.casefold() for name in labels]
    word = re.compile(r"(?<![0-9a-z])" + re.escape(wanted) + r"(?![0-9a-z])")
    levels = (
        [i for i, name in enumerate(folded) if name == wanted],
        [i for i, name in enumerate(folded) if word.search(name)],
        [i for i, name in enumerate(folded) if name.startswith(wanted)],
    )
    for matches in levels:
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(f"{labels[i]} ({i})" for i in matches[:8])
            more = f" and {len(matches) - 8} more" if len(matches) > 8 else ""
            raise GbpError(f"--target {spec!r} fits several classes: {shown}{more}; pick one")
    close = difflib.get_close_matches(wanted, folded, n=5, cutoff=0.5)
    hint = ", ".join(f"{labels[folded.index(n)]} ({folded.index(n)})" for n in close)
    raise GbpError(
        f"--target {spec!r} is not a class name" + (f"; closest: {hint}" if hint else "")
    )
