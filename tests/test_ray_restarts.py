"""The model actors' restart policy on the installed Ray, and what gbp says where a Ray cannot
take one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gbp_cli.engines.ray_cluster import MAX_RESTARTS, MAX_TASK_RETRIES, restarts

BOUNDED = {"max_restarts": MAX_RESTARTS, "max_task_retries": MAX_TASK_RETRIES}


def ray_whose_map_batches(function) -> SimpleNamespace:
    dataset = SimpleNamespace(map_batches=function)
    return SimpleNamespace(__version__="2.64.0", data=SimpleNamespace(Dataset=dataset))


def test_the_installed_ray_takes_the_bounded_restarts(capsys: pytest.CaptureFixture) -> None:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    assert restarts(ray) == BOUNDED
    assert capsys.readouterr().err == ""


def test_a_ray_that_takes_them_by_name_gets_them(capsys: pytest.CaptureFixture) -> None:
    def map_batches(fn, *, compute=None, max_restarts=-1, max_task_retries=-1):
        return None

    assert restarts(ray_whose_map_batches(map_batches)) == BOUNDED
    assert capsys.readouterr().err == ""


def test_a_ray_that_takes_none_is_said_to_restart_without_limit(
    capsys: pytest.CaptureFixture,
) -> None:
    def map_batches(fn, *, compute=None, num_cpus=None):
        return None

    assert restarts(ray_whose_map_batches(map_batches)) == {}
    line = capsys.readouterr().err.strip()
    assert line.startswith("gbp: Ray 2.64.0 takes no restart limit for model workers")
    assert len(line.splitlines()) == 1
