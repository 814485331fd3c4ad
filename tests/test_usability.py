"""What a new user meets first: targets, default pictures, shards, --dry-run, names, feedback."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import FRAMEWORKS, gbp, make_photo, one_line, run_gbp

pytestmark = pytest.mark.usefixtures("fake")


def test_the_line_names_the_explained_class_and_the_top_1_beside_it(photos: Path) -> None:
    top = gbp("explain", photos / "a.png", "-o", photos.parent / "o1", "-q")
    top_class = top.stdout.split("\t")[1]
    assert "[top-1" not in top_class
    other = gbp("explain", photos / "a.png", "--target", "7", "-o", photos.parent / "o2", "-q")
    explained = other.stdout.split("\t")[1]
    assert explained.startswith("cock (7) ") and f"[top-1: {top_class}]" in explained


def test_a_class_name_resolves_loudly_and_ambiguity_is_listed(photos: Path) -> None:
    named = gbp("explain", photos / "a.png", "--target", "tiger cat", "-o", photos.parent / "o")
    assert named.exit_code == 0
    assert "--target 'tiger cat' is class 282, tiger cat" in named.stderr
    vague = run_gbp("explain", photos / "a.png", "--target", "dog", block=FRAMEWORKS)
    assert vague.returncode == 2
    assert "fits several classes: Maltese dog (153)" in one_line(vague.stderr)


def test_json_top_k_lists_the_k_most_likely_classes(photos: Path, tmp_path: Path) -> None:
    """`top_k` holds --top-k classes (one without it), most likely first; the --report page
    still offers the top 5."""
    photo = photos / "a.png"
    for k in (1, 3, 7):
        run = gbp("explain", photo, "--json", "--top-k", str(k), "-o", tmp_path / f"o{k}", "-q")
        record = json.loads(run.stdout)
        assert [t["index"] for t in record["top_k"]] == [t["index"] for t in record["targets"]]
        assert len(record["top_k"]) == k
    named = gbp("explain", photo, "--json", "--target", "7", "-o", tmp_path / "t", "-q")
    record = json.loads(named.stdout)
    assert len(record["top_k"]) == 1 and record["top_k"][0]["index"] != 7  # the top-1 class
    page = gbp("explain", photo, "--report", "-o", tmp_path / "page", "-q")
    assert page.exit_code == 0
    (row,) = json.loads((tmp_path / "page" / "index.json").read_text())["rows"]
    assert len(row["top"]) == 5


def test_gradcam_is_drawn_over_the_photo_by_default_and_the_line_is_whole(photos: Path) -> None:
    out = photos.parent / "out"
    result = gbp("explain", photos, "--method", "gradcam", "-o", out, "-q")
    assert result.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a.gradcam.overlay.png",
        "b.gradcam.overlay.png",
    ]
    for line in result.stdout.splitlines():
        fields = line.split("\t")
        assert len(fields) == 4 and fields[2] == "no ReLUs overridden"
    overlay = np.asarray(Image.open(out / "a.gradcam.overlay.png"), np.float64)
    assert overlay.std() > 20  # the photo under the heat, not a grey blur


def test_dry_run_lists_each_input_without_a_model(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (photos / "notes.txt").write_text("no image")
    assert gbp("explain", photos, "-o", out, "-q").exit_code == 0
    (out / "b.guided.color.png").write_text("a file gbp did not write")
    args = ["explain", photos, photos / "notes.txt", photos / "gone.png", "-o", out, "--dry-run"]
    plain = run_gbp(*args, block=FRAMEWORKS)  # no framework can be loaded: none is
    assert plain.returncode == 1, plain.stderr
    rows = {
        line.split("\t")[0].rsplit("/", 1)[-1]: line.split("\t")
        for line in plain.stdout.splitlines()
    }
    assert rows["a.png"][1] == "kept"
    assert rows["b.jpg"][1] == "refused" and "not a file gbp wrote" in rows["b.jpg"][-1]
    assert rows["notes.txt"][1:] == ["failed", "not an image PIL can read"]
    assert rows["gone.png"][1:] == ["failed", "no such file"]
    records = [
        json.loads(r) for r in run_gbp(*args, "--json", block=FRAMEWORKS).stdout.splitlines()
    ]
    assert {r["action"] for r in records} >= {"kept", "refused", "failed"}
    shares = [run_gbp(*args, "--shard", f"{i}/2", block=FRAMEWORKS).stdout for i in (1, 2)]
    assert sorted("".join(shares).splitlines()) == sorted(plain.stdout.splitlines())
    assert sorted(p.name for p in out.iterdir()) == ["a.guided.color.png", "b.guided.color.png"]
    # ...nothing written by a dry run


def test_images_that_share_a_stem_keep_their_extension(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for suffix in ("bmp", "tiff", "webp"):
        make_photo(folder / f"photo.{suffix}")
    make_photo(folder / "single.png")
    out = tmp_path / "out"
    result = gbp("explain", folder, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "photo.bmp.guided.color.png",
        "photo.tiff.guided.color.png",
        "photo.webp.guided.color.png",
        "single.guided.color.png",
    ]
    one = gbp("explain", "-", "-o", out, "-q", input=f"{folder / 'photo.tiff'}\n")
    assert "photo.tiff.guided.color.png" in one.stdout  # the same name whichever a run sees


def test_top_k_panel_is_one_grid_with_a_row_per_class(photos: Path, tmp_path: Path) -> None:
    args = ["explain", photos / "a.png", "--format", "panel", "--method", "guided"]
    args += ["--method", "gradcam", "-q"]
    one = gbp(*args, "-o", tmp_path / "one")
    three = gbp(*args, "--top-k", "3", "-o", tmp_path / "three")
    assert one.exit_code == three.exit_code == 0
    (single,) = (tmp_path / "one").rglob("*.panel.png")
    (grid,) = (tmp_path / "three").rglob("*.panel.png")
    assert Image.open(grid).height > 2.5 * Image.open(single).height
    assert Image.open(grid).width == Image.open(single).width
    assert Image.open(grid).text["gbp:target"].count(";") == 2


def test_smoothgrad_moves_the_progress_while_it_works(photos: Path) -> None:
    from gbp_cli.backends import WeightsSpec
    from gbp_cli.saliency.maps import explain_maps
    from gbp_cli.settings import Smoothing
    from tests.fake_backend import load

    images = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32)
    ticks: list[int] = []
    explain_maps(
        load(WeightsSpec("random"), "cpu"),
        images,
        ["guided"],
        smoothing=Smoothing(samples=5),
        on_sample=lambda: ticks.append(1),
    )
    assert len(ticks) == 5


def test_the_api_warns_once_about_random_weights(photos: Path) -> None:
    from gbp_cli import api

    api.clear_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api.explain(photos / "a.png", weights="random")
        api.explain(photos / "b.jpg", weights="random")
    messages = [str(w.message) for w in caught if issubclass(w.category, api.RandomWeightsWarning)]
    assert len(messages) == 1 and "untrained" in messages[0]
    assert caught[0].filename == __file__  # the warning points at the user's own line
    api.clear_cache()


def test_the_api_and_the_ray_callable_name_the_model_alike(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`model=` in both; explain's old `model_name=` still works, with a DeprecationWarning."""
    import inspect

    from gbp_cli import api, ray_api

    assert "model" in inspect.signature(ray_api.Saliency).parameters
    opened: list[str] = []
    real = api.models.open_backend

    def spy(*args: object, model, **kwargs: object):
        opened.append(model.name)
        return real(*args, model=model, **kwargs)

    monkeypatch.setattr(api.models, "open_backend", spy)
    api.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        api.explain(photos / "a.png", model="resnet18")
    with pytest.warns(DeprecationWarning, match=r"explain\(model=\.\.\.\)"):
        api.explain(photos / "a.png", model_name="vgg16")
    assert opened == ["resnet18", "vgg16"]
    api.clear_cache()


@pytest.mark.sanity
def test_sanity_reports_each_stage_as_it_goes() -> None:
    from gbp_cli.backends import WeightsSpec
    from gbp_cli.sanity.cascade import cascade
    from tests.fake_backend import load

    backend = load(WeightsSpec("random"), "cpu")
    images = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)
    stages: list[int] = []
    records, _ = cascade(backend, ["x"], images, ("guided",), lambda: stages.append(1))
    assert len(stages) == len(backend.stages()) == 2
    assert [r.stage for r in records] == ["head", "colours", "least-likely class"]
