"""A progress bar on stderr for a person watching a terminal: tqdm's, which people know."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm


class Progress:
    """Counts images (fractions too: a SmoothGrad pass is a share of an image), with rate and
    ETA; shown only when stderr is a terminal."""

    def __init__(self, total: int | None, unit: str = "image") -> None:
        shown = "{n:.0f}/{total_fmt}" if total else "{n:.0f}"
        self.bar = tqdm(
            total=total,
            unit=unit,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            bar_format="{l_bar}{bar}| " + shown + " [{elapsed}<{remaining}, {rate_fmt}]"
            if total
            else shown + " {unit}s [{elapsed}, {rate_fmt}]",
        )

    def advance(self, amount: float = 1.0) -> None:
        self.bar.update(amount)

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """Print a line where the bar stands; the bar comes back below it."""
        with self.bar.external_write_mode(file=sys.stderr):
            yield

    def close(self) -> None:
        self.bar.close()
