"""The kinds of failure a user can meet: one family, so the CLI answers each with one line and a
library user catches them all with `except gbp_cli.GbpError`.

    GbpError                       every error gbp raises on purpose (backends/base.py)
    ├── ArgumentError (ValueError) an argument the library cannot take: name, option, value
    ├── BackendError               a model, weights, device or framework problem
    ├── InputError                 one input cannot be used (a missing or corrupt file)
    │   └── ImageError (ValueError)  an image argument that is no photo as it stands
    ├── NotAnInput                 a file gbp wrote itself
    └── RunStopped                 going on would fail every remaining input
"""

from __future__ import annotations

from gbp_cli.backends.base import BackendError, GbpError

__all__ = [
    "ArgumentError",
    "BackendError",
    "GbpError",
    "ImageError",
    "InputError",
    "NotAnInput",
    "RunStopped",
]


class ArgumentError(GbpError, ValueError):
    """A bad argument to the library: an unknown method, backend or device, an option out of
    range, a value of the wrong kind. A ValueError too, as Python's own functions raise."""


class InputError(GbpError):
    """One input cannot be used; it is reported and the run goes on (exit 1 at the end)."""

    exit_code = 1


class ImageError(InputError, ValueError):
    """An image argument that is not a photo as it stands (its dtype, range, shape or values);
    the message says how to convert it. Never clipped or guessed at silently."""


class NotAnInput(GbpError):
    """A file gbp wrote itself: never explained again, only counted."""


class RunStopped(GbpError):
    """Going on would only fail every remaining input (a full disk, a closed stdout): stop now.
    An engine hands on what the run had done by then (`summary`), for the closing line."""

    exit_code = 1
    summary: object = None  # the engine's Summary so far
