"""The kinds of failure a user can meet, so the CLI can answer each with one line."""

from __future__ import annotations


class GbpError(Exception):
    """A usage or configuration problem that stops the whole run (exit 2)."""

    exit_code = 2


class InputError(Exception):
    """One input cannot be used; it is reported and the run goes on (exit 1 at the end)."""


class NotAnInput(Exception):
    """A file gbp wrote itself: never explained again, only counted."""


class RunStopped(Exception):
    """Going on would only fail every remaining input (a full disk, a closed stdout): stop now."""

    exit_code = 1
