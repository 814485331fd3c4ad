"""gbp sanity: the measures, the cascade's direction, both backends alike, and the command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("scipy")
pytest.importorskip("skimage")
torch = pytest.importorskip("torch")

from gbp_cli.backends import ModelSpec, WeightsSpec, open_backend  # noqa: E402
from gbp_cli.inputs.preprocess import prepare  # noqa: E402
from gbp_cli.sanity.cascade import CLASS_CHECK, cascade  # noqa: E402
from gbp_cli.sanity.similarity import similarity  # noqa: E402
from tests.conftest import ROOT, gbp, mirrored, one_line, seeded_densenet, without  # noqa: E402

METHODS = ("guided", "vanilla")
# DenseNet's stages from the top, as the paper randomizes them (stated here, not read from code).
STAGES = ("classifier", "block4", "transition3", "block3", "transition2", "block2")
STAGES += ("transition1", "block1", "stem")


def test_the_measures_on_known_pairs() -> None:
    rng = np.random.default_rng(0)
    smooth = np.add.outer(np.sin(np.arange(224) / 9), np.cos(np.arange(224) / 13))[..., None]
    same = similarity(smooth, smooth)
    assert (same.spearman_abs, same.spearman, same.ssim) == pytest.approx((1, 1, 1))
    assert same.hog_pearson == pytest.approx(1)
    flipped = similarity(smooth, -smooth)
    assert flipped.spearman == pytest.approx(-1) and flipped.spearman_abs == pytest.approx(1)
    noise = similarity(rng.normal(size=(224, 224, 3)), rng.normal(size=(224, 224, 3)))
    assert abs(noise.spearman) < 0.05 and abs(noise.spearman_abs) < 0.05


@pytest.fixture(scope="module")
def cascades(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """DenseNet121 (the cascade is the same for every DenseNet, 121 the cheapest), seeded, run
    through the cascade in both backends."""
    checkpoint = tmp_path_factory.mktemp("weights") / "densenet121-seeded.pth"
    torch.save(seeded_densenet("densenet121").state_dict(), checkpoint)
    images = prepare(ROOT / "sample_images" / "chelsea.png", "squash").array[None]
    results = {}
    for name in ("torch", "tf"):
        if name == "tf":
            pytest.importorskip("gbp_cli.backends.tf.env")
        backend = open_backend(name, WeightsSpec("file", checkpoint), "cpu")
        before = backend.state()
        records, maps = cascade(backend, ["chelsea"], images, METHODS)
        after = backend.state()
        assert all(np.array_equal(before[k], after[k]) for k in before)  # weights restored
        backend.load_state({k: np.zeros_like(v) for k, v in before.items()})
        assert not np.array_equal(backend.state()["classifier.weight"], before["classifier.weight"])
        results[name] = {(r.method, r.stage): r.similarity for r in records}
        results[name + " maps"] = maps
    return results


def test_vanilla_decorrelates_as_more_is_randomized_and_guided_holds_on(cascades) -> None:
    torch_records = cascades["torch"]
    vanilla = [torch_records[("vanilla", s)].spearman_abs for s in STAGES]
    guided = [torch_records[("guided", s)].spearman_abs for s in STAGES]
    assert vanilla[0] < 0.8 and vanilla[-1] < vanilla[0]  # the classifier alone already matters
    assert guided[0] > 0.95 and guided[-1] < guided[0]  # Adebayo et al.: edges survive the top
    assert guided[0] - vanilla[0] > 0.3
    assert len(torch_records) == len(METHODS) * (len(STAGES) + 1)
    assert ("guided", CLASS_CHECK) in torch_records


def test_both_backends_give_the_same_numbers(cascades) -> None:
    for key, mine in cascades["torch"].items():
        theirs = cascades["tf"][key]
        for field in ("spearman_abs", "spearman", "ssim", "hog_pearson"):
            assert getattr(mine, field) == pytest.approx(getattr(theirs, field), abs=0.01), key


def fingerprint(state: dict[str, np.ndarray]) -> dict[str, tuple[str, tuple, str]]:
    """Each array's dtype, shape and bytes, in little room: what a backend was made to hold."""
    return {
        key: (value.dtype.str, value.shape, hashlib.sha1(np.ascontiguousarray(value)).hexdigest())
        for key, value in state.items()
    }


@pytest.mark.tf
def test_a_twins_cascade_is_the_same_in_both_backends() -> None:
    """gbp sanity on a twin (resnet18, seeded): the same stages in both backends, the very same
    weights loaded at every stage (one numpy draw, in torchvision's layout), and so the same
    figures to float32's precision. (TensorFlow used to cut fc, layer4.0.downsample.1, …,
    conv1, and re-draw fc with std 0.062 where torch's is 0.026.)"""
    pytest.importorskip("gbp_cli.backends.tf.env")
    images = prepare(ROOT / "sample_images" / "chelsea.png", "squash").array[None]
    stages, loaded, figures = {}, {}, {}
    for name in ("torch", "tf"):
        backend = open_backend(name, WeightsSpec("random"), "cpu", model=ModelSpec("resnet18"))
        loads: list[dict] = []
        load_state = backend.load_state

        def spy(state: dict, loads: list = loads, load_state=load_state) -> None:
            loads.append(fingerprint(state))
            load_state(state)

        backend.load_state = spy  # type: ignore[method-assign]
        records, _ = cascade(backend, ["chelsea"], images, METHODS)
        stages[name], loaded[name] = backend.stages(), loads
        figures[name] = {(r.method, r.stage): r.similarity for r in records}
    resnet = ["fc", "layer4", "layer3", "layer2", "layer1", "stem"]  # as the paper cuts it
    assert [stage for stage, _ in stages["tf"]] == resnet
    assert stages["tf"] == stages["torch"]
    assert len(loaded["tf"]) == len(stages["tf"]) + 1  # each stage, then the original back
    for step, (mine, theirs) in enumerate(zip(loaded["torch"], loaded["tf"], strict=True)):
        assert mine == theirs, step
    assert figures["tf"].keys() == figures["torch"].keys()
    for key, mine in figures["torch"].items():
        for field in ("spearman_abs", "spearman", "ssim", "hog_pearson"):
            theirs = getattr(figures["tf"][key], field)
            assert getattr(mine, field) == pytest.approx(theirs, abs=1e-3), (key, field)


def test_the_command_writes_plots_and_named_records(tmp_path: Path) -> None:
    out = tmp_path / "out"
    photo = ROOT / "sample_images" / "coffee.png"
    cheap = ("--model", "densenet121", "--weights", "random")
    result = gbp("sanity", photo, *cheap, "--method", "vanilla", "--json", "-o", out)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["stage"] for r in records] == [*STAGES, CLASS_CHECK]
    for record in records:
        assert {"spearman_abs", "spearman", "ssim", "hog_pearson", "input", "method"} <= set(record)
        assert record["weights"].startswith("random")
    plot = Image.open(mirrored(out, photo, ".sanity.png"))
    grid = Image.open(mirrored(out, photo, ".sanity-maps.png"))
    assert plot.width > 2 * plot.height and grid.width > grid.height
    table = gbp("sanity", photo, *cheap, "--method", "guided", "-o", out)
    assert len(table.stdout.splitlines()) == len(STAGES) + 1 and "spearman_abs" in table.stdout


def test_missing_metric_libraries_name_the_extra(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", without("scipy", "skimage"), "sanity", str(ROOT / "sample_images")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2 and "pip install 'gbp-saliency[sanity]'" in one_line(run.stderr)
