"""No explanation outlives its pass: once a batch's maps are returned, nothing of its autograd
graph is alive — no hooked node (tests/watched_net.py's canaries die with their nodes) and no
tensor the graph saved (each is packed into a holder we keep a weak reference to). A graph kept
alive by a reference cycle through autograd's C++ nodes is one Python's collector cannot free: a
folder of photos then grows memory with every batch."""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import gbp, make_photo

pytestmark = [
    pytest.mark.torch,
    pytest.mark.filterwarnings("ignore:weights='random':UserWarning"),  # the net is untrained
]

FACTORY = "tests.watched_net:build"
METHODS = ("guided", "vanilla", "deconv", "gradcam", "guided-gradcam")
CASES = [([m], None) for m in METHODS] + [(list(METHODS), None), (["guided", "gradcam"], 2)]
IDS = [*METHODS, "all", "smoothgrad"]


class Saved:
    """What the graph holds in place of a tensor it saved for the backward pass."""

    def __init__(self, tensor) -> None:
        self.tensor = tensor.detach()  # not the tensor itself: its grad_fn would hold the graph


@contextlib.contextmanager
def watched() -> Iterator[list[weakref.ref]]:
    """Weak references to every tensor any graph built inside saves, and to every ReLU node of
    tests.watched_net's passes (load-time probes included)."""
    import torch

    from tests import watched_net

    saved: list[weakref.ref] = []

    def pack(tensor):
        holder = Saved(tensor)
        saved.append(weakref.ref(holder))
        return holder

    watched_net.NODES.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda holder: holder.tensor):
        yield saved
    gc.collect()
    assert watched_net.NODES and saved, "the watch saw no pass"
    alive_nodes = sum(ref() is not None for ref in watched_net.NODES)
    alive_saved = sum(ref() is not None for ref in saved)
    assert (alive_nodes, alive_saved) == (0, 0), (
        f"{alive_nodes} of {len(watched_net.NODES)} hooked nodes and {alive_saved} of "
        f"{len(saved)} saved tensors outlived their pass"
    )


@pytest.mark.parametrize(("methods", "smooth"), CASES, ids=IDS)
def test_the_library_call_leaves_no_graph_behind(methods: list[str], smooth: int | None) -> None:
    from gbp_cli import api

    api.model.cache_clear()  # the load-time probe's pass is watched too
    photo = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    with watched():
        explained = api.explain(
            photo, method=methods, model=FACTORY, weights="random", smooth=smooth
        )
    assert set(explained.saliency) == set(methods)


@pytest.mark.parametrize(("methods", "smooth"), CASES, ids=IDS)
def test_the_batch_pipeline_leaves_no_graph_behind(
    methods: list[str], smooth: int | None, tmp_path: Path
) -> None:
    for i in range(5):  # two batches of 3 and 2
        make_photo(tmp_path / "in" / f"p{i}.png", seed=i)
    args = ["--batch-size", "3", "--format", "npy", "--weights", "random", "--model", FACTORY]
    args += [a for m in methods for a in ("--method", m)]
    args += ["--smooth", str(smooth)] if smooth else []
    with watched():
        result = gbp("explain", tmp_path / "in", "-o", tmp_path / "out", "-q", *args)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").rglob("*.npy"))) == 5 * len(methods)


@pytest.mark.parametrize("methods", [["guided"], ["gradcam"], list(METHODS)], ids=str)
def test_the_ray_api_callable_leaves_no_graph_behind(methods: list[str]) -> None:
    """What each Ray Data actor runs per batch, called here without Ray."""
    from gbp_cli.ray_api import Saliency

    images = (np.random.default_rng(1).random((3, 40, 48, 3)) * 255).astype(np.uint8)
    with watched():
        out = Saliency(methods, model=FACTORY, weights="random")({"image": images})
    assert all(out[m].shape[0] == 3 for m in methods)


@pytest.mark.sanity
def test_the_sanity_cascade_leaves_no_graph_behind(tmp_path: Path) -> None:
    """`gbp sanity` re-weights the model stage after stage and explains at each: no stage's
    pass may outlive it either."""
    photo = make_photo(tmp_path / "p.png")
    args = ["--model", FACTORY, "--weights", "random", "-o", tmp_path / "out", "-q"]
    with watched():
        result = gbp("sanity", photo, *args, "--method", "guided", "--method", "vanilla")
    assert result.exit_code == 0, result.output
