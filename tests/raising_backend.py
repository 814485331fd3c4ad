"""A stand-in backend that fails on its second batch with a model's error (`load`); see
tests/buggy_backend.py for one that fails with a bug of its own. For the tests that both engines
end such a run alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gbp_cli.backends.base import Backend, BackendError, Explanation, WeightsSpec
from tests import fake_backend


def failing_on_batch_2(error: Callable[[], Exception]) -> Callable[..., Backend]:
    def load(weights: WeightsSpec, device: str, precision: str = "fp32", mode: str = "auto",
             model: object = None) -> Backend:  # fmt: skip
        backend = fake_backend.load(weights, device, precision, mode)
        explain = backend.explain

        def failing(*args: Any, **kwargs: Any) -> Explanation:
            if backend.calls == 1:
                raise error()
            return explain(*args, **kwargs)

        backend.explain = failing  # type: ignore[method-assign]
        return backend

    return load


load = failing_on_batch_2(lambda: BackendError("the model ran out of memory on this batch"))
