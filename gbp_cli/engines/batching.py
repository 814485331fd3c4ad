"""Overlap decoding with compute: inputs are prepared in a background thread, a window ahead."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


def helper_threads() -> int:
    """Threads for decoding (and as many for writing) beside the compute: one on a small machine,
    where the framework already keeps every core busy; up to four on a large one, say beside a
    GPU."""
    return max(1, min(4, (os.cpu_count() or 2) // 4))


def prefetch(
    items: Iterable[T], work: Callable[[T], U], ahead: int, workers: int = 1
) -> Iterator[tuple[T, Future[U]]]:
    """Yield (item, finished future) in order, while up to `ahead` later items are worked on."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gbp-prepare")
    window: deque[tuple[T, Future[U]]] = deque()
    try:
        for item in items:
            window.append((item, pool.submit(work, item)))
            if len(window) > ahead:
                item0, future0 = window.popleft()
                future0.exception()  # wait without raising
                yield item0, future0
        while window:
            item0, future0 = window.popleft()
            future0.exception()
            yield item0, future0
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items, the last one possibly shorter."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
