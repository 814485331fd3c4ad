"""Framework downloads announce themselves on stdout, which carries only gbp's data."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator


class _HeldBack(io.TextIOBase):
    """Passes text to stderr once a second write shows bytes are flowing, so that an offline
    failure leaves only gbp's own one-line error, while a real download still shows progress."""

    def __init__(self) -> None:
        self.real = sys.stderr
        self.held: list[str] = []
        self.flowing = False

    def write(self, text: str) -> int:
        if self.flowing:
            self.real.write(text)
        else:
            self.held.append(text)
            if len(self.held) > 1:
                self.flowing = True
                self.real.write("".join(self.held))
        return len(text)

    def flush(self) -> None:
        self.real.flush()


@contextlib.contextmanager
def quiet_download() -> Iterator[None]:
    """Route stdout and stderr to a held-back stderr while weights load."""
    held = _HeldBack()
    with contextlib.redirect_stdout(held), contextlib.redirect_stderr(held):
        yield
