"""Weight files that are wrong in the ways users' files are: each answered by one clear line.

The library functions are called directly (the CLI prints their message after `gbp: `).
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torchvision import models  # noqa: E402

from gbp_cli.backends.base import BackendError  # noqa: E402
from gbp_cli.backends.checkpoints import read_checkpoint  # noqa: E402
from gbp_cli.backends.reasons import WHOLE_MODEL, first_line  # noqa: E402
from gbp_cli.backends.twins.densenet import architecture_of  # noqa: E402
from gbp_cli.cli.convert import convert_command  # noqa: E402
from gbp_cli.errors import GbpError  # noqa: E402
from tests.conftest import seeded_densenet  # noqa: E402

TORCH_ADVICE = ("weights_only", "torch.load", "add_safe_globals", "trust")


def message(error: pytest.ExceptionInfo[BaseException]) -> str:
    """The error's text, checked to be one line without torch's advice."""
    text = str(error.value)
    assert "\n" not in text
    assert not any(advice in text for advice in TORCH_ADVICE), text
    return text


@pytest.fixture(scope="module")
def densenet121(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small fine-tuned-looking checkpoint: DenseNet121 with 7 classes."""
    path = tmp_path_factory.mktemp("weights") / "pets.pth"
    torch.save(seeded_densenet("densenet121", num_classes=7).state_dict(), path)
    return path


# --- gbp convert names its own arguments ------------------------------------------------------


def test_convert_names_the_missing_source_by_its_path(tmp_path: Path) -> None:
    source = tmp_path / "missing.pth"
    with pytest.raises(GbpError) as error:
        convert_command(source, tmp_path / "out.weights.h5", overwrite=False)
    assert message(error) == f"{source}: no such file"


def test_convert_names_an_unreadable_source_by_its_path(tmp_path: Path) -> None:
    source = tmp_path / "notes.pth"
    source.write_text("these are not weights\n")
    with pytest.raises(BackendError) as error:
        convert_command(source, tmp_path / "out.weights.h5", overwrite=False)
    text = message(error)
    assert text.startswith(f"{source}: not a readable PyTorch state_dict")
    assert "--weights" not in text and "SRC" not in text


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("a.pth", "b.pt"), "both torch files"),
        (("a.pth", "b.h5"), "name ending .weights.h5"),
    ],
)
def test_convert_usage_errors(names: tuple[str, str], expected: str, tmp_path: Path) -> None:
    with pytest.raises(GbpError) as error:
        convert_command(*(tmp_path / n for n in names), overwrite=False)
    assert expected in message(error)


def test_convert_leaves_an_existing_file_alone(densenet121: Path, tmp_path: Path) -> None:
    target = tmp_path / "d.weights.h5"
    target.write_bytes(b"precious")
    with pytest.raises(GbpError, match="--overwrite"):
        convert_command(densenet121, target, overwrite=False)
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["d.weights.h5"]


CONVERT_BOTH_WAYS = """
import sys
import warnings
from pathlib import Path
from gbp_cli.cli.convert import convert_command
source, there, back = map(Path, sys.argv[1:])
print(convert_command(source, there, overwrite=False))
print(convert_command(there, back, overwrite=False))
"""


def test_convert_both_ways_is_exact_and_says_nothing_on_stderr(
    densenet121: Path, tmp_path: Path
) -> None:
    """A fresh process, so that TensorFlow's start-up log would show if it leaked."""
    there, back = tmp_path / "pets.weights.h5", tmp_path / "back.pth"
    run = subprocess.run(
        [sys.executable, "-c", CONVERT_BOTH_WAYS, densenet121, there, back],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.stdout.splitlines() == ["densenet121, 7 classes"] * 2
    original = torch.load(densenet121, weights_only=True)
    returned = torch.load(back, weights_only=True)
    assert original.keys() == returned.keys()
    assert all(torch.equal(original[k], returned[k]) for k in original)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.pth", "pets.weights.h5"]


# --- Keras: the reason, not the preamble ------------------------------------------------------


def test_a_keras_preamble_gives_way_to_the_reason() -> None:
    error = ValueError(
        "A total of 2 objects could not be loaded. Example error message for object "
        "<Dense name=dense_2, built=True>:\n\nLayer 'dense_2' expected 2 variables, but received "
        "0 variables during loading.\n\nList of objects that could not be loaded:\n[...]"
    )
    assert first_line(error) == (
        "dense_2: Layer 'dense_2' expected 2 variables, but received 0 variables during loading."
    )
    short = ValueError("Example error message for layer_x:\n\nthe real reason")
    assert first_line(short) == "the real reason"
    assert first_line(ValueError("one line")) == "one line"
    assert first_line(ValueError("")) == "ValueError"


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_a_real_keras_mismatch_reports_its_reason(tmp_path: Path) -> None:
    pytest.importorskip("gbp_cli.backends.tf.env")
    import keras

    def model(width: int) -> keras.Model:
        x = keras.Input((4,))
        return keras.Model(x, keras.layers.Dense(2)(keras.layers.Dense(width)(x)))

    path = tmp_path / "small.weights.h5"
    model(5).save_weights(path)
    with pytest.raises(ValueError) as error:
        model(6).load_weights(path)
    reason = first_line(error.value)
    assert not reason.startswith(("A total", "Example"))
    assert "shape" in reason and "value=[" not in reason


def test_a_damaged_keras_file_is_named_with_its_reason(densenet121: Path, tmp_path: Path) -> None:
    """Same architecture and classes, but one kernel of the wrong shape."""
    pytest.importorskip("gbp_cli.backends.tf.env")
    import h5py

    keras_file = tmp_path / "pets.weights.h5"
    convert_command(densenet121, keras_file, overwrite=False)
    with h5py.File(keras_file, "r+") as f:
        variables = f["layers"]["conv2d"]["vars"]
        del variables["0"]
        variables["0"] = torch.zeros(7, 7, 3, 32).numpy()  # 32 filters instead of 64
    with warnings.catch_warnings(record=True) as caught, pytest.raises(BackendError) as error:
        warnings.simplefilter("always")
        convert_command(keras_file, tmp_path / "back.pth", overwrite=False)
    assert [str(w.message) for w in caught] == []  # Keras's warnings on the way: not shown
    text = message(error)
    assert text.startswith(f"{keras_file}: does not fit Keras DenseNet121 (")
    assert "Example error message" not in text and "A total of" not in text
    assert "shape" in text


def test_a_file_keras_wrote_itself_is_told_apart_by_its_convolutions(tmp_path: Path) -> None:
    """No gbp attribute says which network it is: a Keras DenseNet121's own `save_weights`
    converts by its 120 convolutions and its head, through the DenseNet table."""
    pytest.importorskip("gbp_cli.backends.tf.env")
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.DenseNet121(weights=None, classes=5, classifier_activation=None)
    own, back = tmp_path / "own.weights.h5", tmp_path / "own.pth"
    model.save_weights(own)
    assert convert_command(own, back, overwrite=False) == "densenet121, 5 classes"
    state = torch.load(back, weights_only=True)
    models.densenet121(num_classes=5).load_state_dict(state)  # strict: every key, every shape
    stem, head = model.get_layer("conv1_conv"), model.get_layer("predictions")
    assert torch.equal(
        state["features.conv0.weight"].permute(2, 3, 1, 0), torch.from_numpy(stem.get_weights()[0])
    )
    assert torch.equal(state["classifier.weight"].T, torch.from_numpy(head.get_weights()[0]))


# --- torch: never torch's advice --------------------------------------------------------------


class UsersNet(nn.Module):
    """A user's own model class: its pickle names this module, not torch.nn."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)


@pytest.mark.parametrize(
    ("model", "zipped"),
    [
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), True),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), False),
        (UsersNet(), True),
    ],
)
def test_a_whole_pickled_model_is_refused_with_the_fix(
    model: nn.Module, zipped: bool, tmp_path: Path
) -> None:
    path = tmp_path / "model.pth"
    torch.save(model, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(BackendError) as error:
        read_checkpoint(path)
    assert message(error) == f"--weights {path}: {WHOLE_MODEL}"


def test_other_unpickling_failures_are_short(tmp_path: Path) -> None:
    dated = tmp_path / "dated.pth"
    torch.save({"saved": datetime.date(2024, 1, 1)}, dated)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.pth"
    torch.save({"w": torch.ones(3)}, cut)
    cut.write_bytes(cut.read_bytes()[:300])
    expected = {
        dated: "it holds a datetime.date, which gbp will not unpickle",
        empty: "the file is empty or cut short",
        cut: "failed finding central directory",
    }
    for path, reason in expected.items():
        with pytest.raises(BackendError) as error:
            read_checkpoint(path, str(path))
        text = message(error)
        assert text.startswith(f"{path}: not a readable PyTorch state_dict (")
        assert reason in text
        assert len(text) < len(str(path)) + 120, text


# --- another architecture's state_dict --------------------------------------------------------


def keys_of(builder: str, **kwargs: object) -> dict[str, object]:
    """A torchvision model's state_dict keys, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = getattr(models, builder)(**kwargs)
    return dict.fromkeys(model.state_dict())


@pytest.mark.parametrize(
    ("builder", "looks"),
    [
        ("resnet18", "a ResNet"),
        ("resnext50_32x4d", "a ResNet"),
        ("vgg16", "a VGG"),
        ("alexnet", "an AlexNet"),
        ("mobilenet_v2", "a MobileNetV2"),
        ("mobilenet_v3_small", "a MobileNet/EfficientNet-family"),
        ("efficientnet_b0", "a MobileNet/EfficientNet-family"),
        ("convnext_tiny", "a ConvNeXt"),
        ("vit_b_16", "a Vision Transformer"),
        ("swin_t", "a Swin Transformer"),
        ("squeezenet1_0", "a SqueezeNet"),
        ("shufflenet_v2_x0_5", "a ShuffleNet"),
    ],
)
def test_another_architecture_is_named(builder: str, looks: str) -> None:
    with pytest.raises(BackendError) as error:
        architecture_of(keys_of(builder), "--weights x.pth")
    assert message(error) == (
        f"--weights x.pth: not a torchvision DenseNet121/169/201 state_dict; "
        f"it looks like {looks} state_dict"
    )


def test_other_densenets_and_unknown_files_are_described() -> None:
    with pytest.raises(BackendError, match=r"a DenseNet with dense layers per block \(6, 12, 36"):
        architecture_of(keys_of("densenet161"), "x")
    headless = {k: v for k, v in keys_of("densenet121").items() if not k.startswith("classifier")}
    with pytest.raises(BackendError, match=r"it has no classifier\.weight"):
        architecture_of(headless, "x")
    with pytest.raises(BackendError, match=r"unknown architecture \(first keys: a.w, b.w, c.w\)"):
        architecture_of(dict.fromkeys(["a.w", "b.w", "c.w", "d.w"]), "x")
    with pytest.raises(BackendError, match="it is empty"):
        architecture_of({}, "x")


def test_a_resnet_file_given_to_convert_is_named(tmp_path: Path) -> None:
    source = tmp_path / "resnet.pth"
    state = {k: torch.zeros(1) for k in list(keys_of("resnet18"))[:12]}  # its keys, tiny tensors
    torch.save(state, source)
    with pytest.raises(BackendError) as error:
        convert_command(source, tmp_path / "out.weights.h5", overwrite=False)
    assert message(error).startswith(f"{source}: not a torchvision DenseNet121/169/201")
    assert message(error).endswith("it looks like a ResNet state_dict")
    assert not (tmp_path / "out.weights.h5").exists()
