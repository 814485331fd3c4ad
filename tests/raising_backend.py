"""A stand-in backend that fails on a batch holding a white photo with a model's error (`load`);
see tests/buggy_backend.py for one that fails with a bug of its own. For the tests that both
engines end such a run alike: the batch is known by its content, not by when it comes (Ray's
workers take batches in no fixed order)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gbp_cli.backends.base import Backend, BackendError, Explanation, WeightsSpec
from tests import fake_backend

WHITE = 2.0  # a white photo, ImageNet-normalised, is above this in every channel (2.25 to 2.64)


def failing_on_white(error: Callable[[], Exception]) -> Callable[..., Backend]:
    def load(weights: WeightsSpec, device: str, precision: str = "fp32", mode: str = "auto",
             model: object = None) -> Backend:  # fmt: skip
        backend = fake_backend.load(weights, device, precision, mode)
        explain = backend.explain

        def failing(*args: Any, **kwargs: Any) -> Explanation:
            if any((image > WHITE).all() for image in args[0]):
                raise error()
            return explain(*args, **kwargs)

        backend.explain = failing  # type: ignore[method-assign]
        return backend

    return load


load = failing_on_white(lambda: BackendError("the model ran out of memory on this batch"))
