"""Class names and --target resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from gbp_cli.errors import GbpError
from gbp_cli.saliency.labels import imagenet_classes, load_labels, resolve_target
from tests.conftest import gbp, make_photo, one_line

NAMES = imagenet_classes()


def test_shipped_names_are_torchvisions() -> None:
    models = pytest.importorskip("torchvision.models")
    assert models.DenseNet201_Weights.IMAGENET1K_V1.meta["categories"] == NAMES


@pytest.mark.parametrize(
    ("spec", "index"),
    [
        ("291", 291),
        ("0", 0),
        ("lion", 291),
        ("LION", 291),
        ("tabb", 281),
        ("tiger", 292),  # exact beats the whole word in "tiger cat"
        ("espresso", 967),
        ("catamar", 484),  # a unique prefix, when nothing fits better
    ],
)
def test_targets_resolve_by_index_name_or_unique_prefix(spec: str, index: int) -> None:
    assert resolve_target(spec, NAMES) == index


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1000", "out of range"),
        ("-1", "out of range"),
        ("tig", "fits several classes: tiger shark"),
        ("cat", r"fits several classes: tiger cat \(282\), Persian cat"),
        ("liom", r"closest: lion \(291\)"),
        ("zzzzzz", "not a class name"),
        ("", "is empty"),  # no longer the first class whose name has a word boundary
        ("   ", "is empty"),
        ("\t\n", "is empty"),
    ],
)
def test_bad_targets_say_why(spec: str, message: str) -> None:
    with pytest.raises(GbpError, match=message):
        resolve_target(spec, NAMES)


def test_labels_file_must_match_the_class_count(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n")
    assert load_labels(path, 2) == ["cat", "dog"]
    with pytest.raises(GbpError, match="2 names but the model has 3"):
        load_labels(path, 3)
    assert load_labels(None, 3) == ["class 0", "class 1", "class 2"]


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_target_is_refused_before_anything_runs(blank: str, tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "a.png")
    result = gbp("explain", photo, "-o", tmp_path / "out", "--target", blank)
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert line.startswith(f"gbp: --target {blank!r}") and "a class index or a class name" in line
    assert not (tmp_path / "out").exists()
