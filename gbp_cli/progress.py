"""A progress line on stderr — only for a person watching a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """`[#####-----] 32/64  2.1 images/s  ETA 0:15`, redrawn in place at most 10 times a second."""

    WIDTH = 24

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.monotonic()
        self.drawn = 0.0
        self.visible = False

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.drawn >= 0.1 or self.done == self.total:
            self.draw(now)

    def draw(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.drawn = now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            filled = int(self.WIDTH * self.done / self.total)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            eta = _clock((self.total - self.done) / rate) if rate > 0 else "?"
            text = f"[{bar}] {self.done}/{self.total}  {rate:.2f} images/s  ETA {eta}"
        else:
            text = f"{self.done} images  {rate:.2f} images/s  {_clock(elapsed)}"
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self.visible = True

    def clear(self) -> None:
        """Erase the line, so a message can be printed where it stood."""
        if self.visible:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.visible = False

    def close(self) -> None:
        self.clear()
