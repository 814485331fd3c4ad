"""The library's arguments, checked as strictly as the command line checks its options, and its
messages in the library's own terms: `target=`, not `--target`."""

from __future__ import annotations

import contextlib
import difflib
import math
import numbers
import re
from collections.abc import Iterator, Sequence

from gbp_cli.backends.base import PRECISIONS
from gbp_cli.backends.rules import METHODS, OTHER_ACTIVATIONS
from gbp_cli.errors import ArgumentError, GbpError
from gbp_cli.settings import Smoothing

DEVICES = ("auto", "cpu", "cuda")
RESIZES = ("squash", "crop")
# The command line's options that take a value, and the keyword each is in the library (the
# same name: only the spelling differs). Messages shared with the CLI are reworded with this.
KEYWORDS = {
    "backend": "backend",
    "batch-size": "batch_size",
    "cam-layer": "cam_layer",
    "device": "device",
    "format": "formats",
    "input-size": "input_size",
    "labels": "labels",
    "method": "method",
    "model": "model",
    "noise": "noise",
    "normalize": "normalize",
    "other-activations": "other_activations",
    "precision": "precision",
    "resize": "resize",
    "smooth": "smooth",
    "target": "target",
    "weights": "weights",
}
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?: ('[^']*'|\"[^\"]*\"|[^\s,;:()]+))?")


def in_api_terms(message: str) -> str:
    """A message written for the command line, with each option the library also takes as a
    keyword spelled as that keyword: `--weights PATH` → `weights=PATH`."""

    def keyword(match: re.Match[str]) -> str:
        name = KEYWORDS.get(match[1])
        if name is None:
            return match[0]
        return f"{name}={match[2]}" if match[2] else f"{name}="

    return _FLAG.sub(keyword, message)


@contextlib.contextmanager
def api_terms() -> Iterator[None]:
    """Every GbpError raised inside reworded in the library's terms, its type and traceback
    kept."""
    try:
        yield
    except GbpError as e:
        if e.args and isinstance(e.args[0], str):
            e.args = (in_api_terms(e.args[0]), *e.args[1:])
        raise


def choice(name: str, value: object, choices: Sequence[str]) -> str:
    """`value` if it is one of `choices`, else an ArgumentError that lists them."""
    if not isinstance(value, str) or value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ArgumentError(
            f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}{hint}"
        )
    return value


def methods(method: str | Sequence[str]) -> tuple[str, ...]:
    """The methods asked for, each one gbp knows, in order and once each."""
    asked = (method,) if isinstance(method, str) else tuple(method)
    if not asked:
        raise ArgumentError(f"method=[]: name at least one of {', '.join(METHODS)}")
    for name in asked:
        choice("method", name, tuple(METHODS))
    return tuple(dict.fromkeys(asked))


def count(name: str, value: object, minimum: int = 1) -> int:
    """A whole number of at least `minimum` (a bool is no number here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ArgumentError(f"{name}={value!r}: expected a whole number of at least {minimum}")
    return int(value)


def positive(name: str, value: object) -> float:
    """A finite number above zero."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ArgumentError(f"{name}={value!r}: expected a finite number above 0")
    return float(value)


def triple(name: str, value: object, above_zero: bool = False) -> tuple[float, float, float]:
    """Three finite numbers, one per RGB channel (for `std`, each above zero)."""
    try:
        values = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ArgumentError(f"{name}={value!r}: expected three finite numbers, one per RGB channel")
    if above_zero and min(values) <= 0:
        raise ArgumentError(f"{name}={value!r}: every channel's value must be above 0")
    return values  # type: ignore[return-value]


def smoothing(smooth: int | None, noise: float) -> Smoothing | None:
    """SmoothGrad's settings: `smooth` noisy copies (None: no SmoothGrad), `noise` their σ as a
    fraction of each image's input range."""
    sigma = positive("noise", noise)
    if smooth is None:
        return None
    return Smoothing(samples=count("smooth", smooth), noise=sigma)


def other_activations(value: object) -> str:
    return choice("other_activations", value, OTHER_ACTIVATIONS)


def device(value: object) -> str:
    return choice("device", value, DEVICES)


def precision(value: object) -> str:
    return choice("precision", value, PRECISIONS)


def resize(value: object) -> str:
    return choice("resize", value, RESIZES)


def backend_name(value: object) -> str:
    """torch, tf, or the dotted path of a backend module of your own (package.module), as the
    command line's --backend takes."""
    text = value if isinstance(value, str) else ""
    dotted = "." in text and all(part.isidentifier() for part in text.split("."))
    if text not in ("torch", "tf") and not dotted:
        raise ArgumentError(
            f"backend={value!r}: expected 'torch', 'tf' or 'package.module' (a backend of your own)"
        )
    return text
