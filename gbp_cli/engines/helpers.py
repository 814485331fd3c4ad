"""CPU work beside the model on every core: decoding, rendering and encoding in worker processes
once they, not the model, set the pace.

Threads overlap this work with the model's pass, but the GIL holds much of it (numpy's small
steps, Python between Pillow's calls) to one core. When the model waits for it — the stand-in
backend, a fast model, an accelerator — a pool of processes takes it over, sized to the machine.
While the model is the slower side (a big network on the CPU, whose threads already use every
core) no process is started: they would only take cores from it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver, resource_tracker
from typing import TypeVar

from gbp_cli.engines.batching import helper_threads

T = TypeVar("T")

ENVIRONMENT = "GBP_HELPER_PROCESSES"  # a count forces the pool (0: never); unset: by the pace
PACED_BATCHES = 3  # batches in a row that waited for the CPU side before the pool starts


def planned_processes() -> int | None:
    """The processes GBP_HELPER_PROCESSES asks for, or None to decide by the pace."""
    value = os.environ.get(ENVIRONMENT, "").strip()
    if not value:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None


def machine_processes() -> int:
    """One per core this process may use: the model's thread waits while they work."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _quiet() -> None:
    """In each worker: a stop (Ctrl-C to the terminal's process group, a hang-up) is the main
    process's to handle; it shuts the pool down."""
    for stop in (signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if stop is not None:
            signal.signal(stop, signal.SIG_IGN)


class Helpers:
    """Runs the engine's CPU work here, or in the pool once it is started."""

    def __init__(self) -> None:
        forced = planned_processes()
        self.size = machine_processes() if forced is None else forced
        self.by_pace = forced is None
        self.pool: ProcessPoolExecutor | None = None
        self.slow_batches = 0
        if forced:
            self.start()

    def lane(self, work: Callable[..., T]) -> Callable[..., T]:
        """`work` as the engine's threads call it: in this process at most helper_threads() at
        a time (the threads beyond, there for the pool, wait), in the pool once it is started."""
        here = threading.BoundedSemaphore(helper_threads())

        def run(*args: object) -> T:
            pool = self.pool
            if pool is not None:
                return pool.submit(work, *args).result()
            with here:
                return work(*args)

        return run

    def paced(self, waited: float, computed: float) -> None:
        """After a batch: start the pool once the model has waited longer for this work than it
        computed, batch after batch (PACED_BATCHES): a CPU side that sets the pace, in a run
        long enough to repay the workers' start (about half a second)."""
        if self.pool is not None or not self.by_pace or self.size < 2:
            return
        self.slow_batches = self.slow_batches + 1 if waited > computed else 0
        if self.slow_batches >= PACED_BATCHES:
            self.start()

    def start(self) -> None:
        # forkserver: a fresh process forks the workers, never this one with its framework's
        # threads (a fork of those can deadlock)
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods else "spawn"
        self._start_servers(method)
        context = multiprocessing.get_context(method)
        self.pool = ProcessPoolExecutor(self.size, mp_context=context, initializer=_quiet)

    @staticmethod
    def _start_servers(method: str) -> None:
        """multiprocessing's own server processes (the resource tracker, the fork server),
        started with a hang-up ignored, as the workers ignore it: a SIGHUP to the process group
        is the main process's to handle, and a server it killed is relaunched with tracebacks."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals are set from the main thread only; the servers start on first use
        hangup = getattr(signal, "SIGHUP", None)
        previous = signal.signal(hangup, signal.SIG_IGN) if hangup is not None else None
        try:
            resource_tracker.ensure_running()
            if method == "forkserver":
                forkserver.ensure_running()
        finally:
            if hangup is not None:
                signal.signal(hangup, previous)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
