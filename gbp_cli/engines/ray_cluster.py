"""Ray itself for `gbp explain --engine ray`: joining or starting it, what the cluster can hold,
whether -o is shared, and the spellings that changed across the supported Ray versions."""

from __future__ import annotations

import atexit
import contextlib
import inspect
import logging
import os
import re
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from gbp_cli.engines.ray_workers import remove_marker, write_marker
from gbp_cli.errors import GbpError

SUPPORTED = ">=2.9,<3"  # the `ray` extra's range; the actor-pool argument is chosen by version
MAX_RESTARTS = 8  # a model actor that dies (a node lost, an OOM kill) comes back this often
MAX_TASK_RETRIES = 3  # and a batch it was computing is retried this often


def actor_pool(ray: Any, size: int) -> dict[str, Any]:
    """A fixed pool of `size` actors, in the spelling this Ray wants: `concurrency=` from 2.9,
    `compute=ActorPoolStrategy(size=)` again from 2.51 (where `concurrency` is deprecated)."""
    if version(ray.__version__) >= (2, 51):
        return {"compute": ray.data.ActorPoolStrategy(size=size)}
    return {"concurrency": size}


def restarts(ray: Any) -> dict[str, int]:
    """Bounded restarts for the model actors: Ray Data's default is to restart and retry
    forever, which turns a batch that kills its actor every time into a run that never ends.
    `map_batches` takes them as named parameters or among its **ray_remote_args (Ray 2.60
    deprecates those, and says they go in 2.64; the caller silences that warning, and Ray 2.60
    does hand them to every model actor). A Ray that takes them neither way keeps its own
    default, and gbp says so once on stderr rather than promise a bound it cannot set."""
    parameters = inspect.signature(ray.data.Dataset.map_batches).parameters
    named = {"max_restarts", "max_task_retries"} <= parameters.keys()
    if named or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return {"max_restarts": MAX_RESTARTS, "max_task_retries": MAX_TASK_RETRIES}
    click.echo(
        f"gbp: Ray {ray.__version__} takes no restart limit for model workers: one that dies "
        "is restarted, and its batch retried, as Ray's own default decides (up to Ray 2.60: "
        "without limit)",
        err=True,
    )
    return {}


def version(text: str) -> tuple[int, int]:
    """`2.60.0` → (2, 60); `2.10.0rc1` → (2, 10)."""
    parts = [int("".join(c for c in part if c.isdigit()) or 0) for part in text.split(".")]
    return parts[0], parts[1] if len(parts) > 1 else 0


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise GbpError(
            "--engine ray needs Ray Data, which is not installed: pip install 'gbp-saliency[ray]'"
        ) from None
    if not (2, 9) <= version(ray.__version__) < (3, 0):
        raise GbpError(f"--engine ray needs ray[data]{SUPPORTED}; this is Ray {ray.__version__}")
    return ray


def worker_env() -> dict[str, Any]:
    """The job's runtime_env: the driver's GBP_* variables and its PYTHONPATH, so that workers
    started on this machine import what the driver imports (a backend or model of your own)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("GBP_") or k == "PYTHONPATH"}
    return {"env_vars": env} if env else {}


def connect(ray: Any, address: str | None, runtime_env: dict[str, Any] | None = None) -> bool:
    """Join the Ray already running in this process, the cluster at `address`, or start one
    on this machine's cores; True if gbp started (and so stops) it. Ray's logs stay quiet:
    gbp says what matters itself."""
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    errors_to_stderr(ray)
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    quiet.update(logging_level=logging.ERROR, runtime_env=runtime_env or None)
    with signals_held():
        NATIVE_LOGS.start()  # its thread, started now, never takes a stopping signal
        try:
            if address is None:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, **quiet)
            else:
                ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = "start Ray here" if address is None else f"join the Ray cluster at {address}"
            raise GbpError(f"cannot {where}: {e}") from e
    return address is None


STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait while Ray starts, then act as gbp's own handlers say.

    One that arrived inside ray.init would stop it halfway, leaving its agents running for
    minutes, or meet the handlers Ray's C++ core installs there (exit 15, or an abort). Held
    (blocked) here, in this thread and in every thread started meanwhile, which inherit the
    mask, it is delivered once Ray is up and gbp's handlers are back: the run then stops as
    any other, and Ray is shut down on the way out."""
    handlers = {signum: signal.getsignal(signum) for signum in STOPPING}
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)


def _cluster(ray: Any) -> dict[str, float]:
    return dict(ray.cluster_resources())


def default_workers(ray: Any, gpus: float) -> int:
    """One model worker per G GPUs of the cluster; without GPUs, one per machine."""
    if gpus > 0:
        return max(1, int(_cluster(ray).get("GPU", 0) // gpus))
    return max(1, sum(1 for node in ray.nodes() if node.get("Alive")))


def check_resources(ray: Any, workers: int, gpus: float, cpus: float) -> None:
    """Refuse a pool the cluster cannot hold: Ray Data would wait for it forever."""
    have = _cluster(ray)
    if workers * gpus > have.get("GPU", 0):
        raise GbpError(
            f"--workers {workers} × --gpus-per-worker {gpus:g} needs {workers * gpus:g} GPUs; "
            f"the Ray cluster has {have.get('GPU', 0):g}"
        )
    if workers * cpus > have.get("CPU", 0) - 1:
        raise GbpError(
            f"--workers {workers} × --cpus-per-worker {cpus:g} leaves no CPU of the Ray "
            f"cluster's {have.get('CPU', 0):g} for decoding and writing"
        )


def shared_folder_problem(ray: Any, out: Path, writer: Callable | None = None) -> str | None:
    """On a cluster, -o must be one folder that every machine sees: a marker written by a
    worker on each machine must appear here. None if it does, else the one line to refuse with."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out.mkdir(parents=True, exist_ok=True)
    folder = os.path.abspath(out)
    token = uuid.uuid4().hex
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    names = {node: f".gbp-ray-check-{token[:8]}-{node[:8]}" for node in nodes}

    def on(node: str, function: Callable) -> Any:
        strategy = NodeAffinitySchedulingStrategy(node, soft=False)
        return ray.remote(function).options(num_cpus=0, scheduling_strategy=strategy)

    write = writer or write_marker
    replies = ray.get([on(n, write).remote(folder, names[n], token) for n in nodes])
    problem = None
    for node, reply in zip(nodes, replies, strict=True):
        marker = Path(folder, names[node])
        seen = marker.is_file() and marker.read_text("utf-8") == token
        if not seen and problem is None:
            where = reply or f"a worker on node {node[:8]}"
            problem = (
                f"-o {out} is not a folder every Ray worker shares ({where}: its marker file "
                "did not appear here); put -o on storage all machines mount at the same path"
            )
    ray.get([on(n, remove_marker).remote(folder, names[n]) for n in nodes])
    return problem


def cause(error: Exception) -> Exception:
    """A worker's own exception, out of Ray's wrapper, to be handled as the local engine would
    handle it there (a user's problem is one line; a bug of gbp's is an internal error); where
    Ray itself failed (a worker lost for good), its last line as a GbpError."""
    found = getattr(error, "cause", None)
    while isinstance(found, Exception) and type(found).__module__.startswith("ray."):
        found = found.__cause__  # Ray Data's UserCodeException wraps the worker's own
    if isinstance(found, Exception):
        return found
    return GbpError(str(error).strip().splitlines()[-1])


RUN_ENDED = threading.Event()  # set when a run ends: Ray's notes on its teardown are not news


def errors_to_stderr(ray: Any) -> None:
    """Ray prints its raylet's messages (a worker died, a task will be retried) on the driver's
    stdout, which carries gbp's data: they go to stderr instead, one `gbp: Ray:` line each,
    while a run lasts (after its last line, one on the actors it cancelled would follow it)."""
    RUN_ENDED.clear()
    module = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(module, "print_to_stdstream", None)
    if original is None or getattr(original, "gbp", False):
        return

    def rerouted(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet" or data.get("is_err"):
            return original(data, ignore_prefix)
        if RUN_ENDED.is_set():
            return
        for message in data.get("lines", []):
            click.echo(f"gbp: Ray: {' '.join(str(message).split())}", err=True)

    rerouted.gbp = True  # type: ignore[attr-defined]
    module.print_to_stdstream = rerouted  # type: ignore[union-attr]


_CPP_LOG = re.compile(rb"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] ")


class NativeLogFilter:
    """Ray's C++ core writes notes of its own straight to file descriptor 2 (one per model actor
    it creates: "constructor arguments in the object store"); gbp's stderr carries gbp's lines.
    While active, fd 2 is a pipe whose reader drops those lines and passes everything else on
    at once (progress-bar updates too). Started once, before Ray; stopped at exit, after Ray's
    own shutdown, so nothing written is lost."""

    def __init__(self) -> None:
        self.saved: int | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.saved is not None:
            return
        sys.stderr.flush()
        self.saved = os.dup(2)
        reader, writer = os.pipe()
        os.dup2(writer, 2)
        os.close(writer)
        self.thread = threading.Thread(target=self._pump, args=(reader,), daemon=True)
        self.thread.start()
        atexit.register(self.stop)  # after Ray's atexit shutdown (handlers run last-in first)

    def _pump(self, reader: int) -> None:
        assert self.saved is not None
        pending = b""
        while chunk := os.read(reader, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not _CPP_LOG.match(line))
            if pending and not pending.startswith(b"["):  # a progress bar's \r update: now
                kept, pending = kept + pending, b""
            if kept:
                os.write(self.saved, kept)
        if pending and not _CPP_LOG.match(pending):
            os.write(self.saved, pending)
        os.close(reader)

    def stop(self) -> None:
        if self.saved is None or self.thread is None:
            return
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # the pipe's last writer here is gone: the reader sees its end
        self.thread.join(timeout=2)  # unless a process gbp started still holds it
        self.saved = None


NATIVE_LOGS = NativeLogFilter()
