"""The twin registry (backends/twins/): every network that is the same function in torch and
Keras, DenseNet included, registered once with one table of its weighted layers, from which follow
torchvision's state_dict, the conversion, gbp sanity's stages and the seeded draw, alike for both
backends, and none of it needing a framework."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gbp_cli.backends.stages import split
from gbp_cli.backends.twins import table
from gbp_cli.backends.twins.registry import load_all
from tests.conftest import ROOT, blocking

NAMES = (
    *("densenet121", "densenet169", "densenet201", "vgg16", "vgg19", "efficientnet_lite0"),
    *("mobilenet_v2", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
)

WITHOUT_FRAMEWORKS = (
    blocking("torch", "torchvision", "tensorflow", "keras", "h5py")
    + """
import numpy as np
from gbp_cli.backends.twins import table
from gbp_cli.backends.twins.convert import architecture
from gbp_cli.backends.twins.registry import load_all
for name, twin in load_all().items():
    rows = twin.layers(5)
    stages = twin.stages(table.keys(rows))
    if name in ("resnet18", "mobilenet_v2", "efficientnet_lite0", "densenet121"):
        state = twin.random_state(5, seed=3)
        back = twin.from_keras(twin.to_keras(state))
        assert all(back[k].tobytes() == v.tobytes() for k, v in state.items()), name
        assert architecture(state, "x") == name
    print(name, len(rows), stages[0][0], stages[-1][0])
"""
)


def test_the_registry_holds_every_twin_and_needs_no_framework() -> None:
    """numpy alone: tables, draws, conversion both ways, recognition and stages."""
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_FRAMEWORKS], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line.split() for line in run.stdout.splitlines()]
    assert tuple(name for name, *_ in lines) == NAMES  # the order gbp models lists them in
    heads = {name: (first, last) for name, _, first, last in lines}
    assert heads["densenet201"] == ("classifier", "stem") and heads["vgg16"][0] == "classifier"
    assert heads["resnet50"] == ("fc", "stem") and heads["mobilenet_v2"] == ("classifier", "stem")


def torch_network(name: str, num_classes: int, device: str = "meta"):
    """The torch network a twin copies: torchvision's, or the Lite0 package's."""
    torch = pytest.importorskip("torch")
    if name == "efficientnet_lite0":
        package = pytest.importorskip("efficientnet_lite_pytorch", reason="needs [lite0]")
        with torch.device(device):
            return package.EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
    from torchvision import models

    with torch.device(device):
        return models.get_model(name, num_classes=num_classes)


# gbp sanity's stages from the top, as the README promises them (stated here, not read from code):
# DenseNet's blocks and transitions, ResNet's layers, VGG's conv groups, MobileNetV2's stages of
# the paper's table (by output width), and for Lite0 its weighted modules in eight groups.
STAGES = {
    "densenet": [
        *("classifier", "block4", "transition3", "block3", "transition2", "block2"),
        *("transition1", "block1", "stem"),
    ],
    "resnet": ["fc", "layer4", "layer3", "layer2", "layer1", "stem"],
    "vgg": ["classifier", "conv5", "conv4", "conv3", "conv2", "conv1"],
    "mobilenet": [
        *("classifier", "features.18", "features.17", "features.14-16", "features.11-13"),
        *("features.7-10", "features.4-6", "features.2-3", "features.1", "stem"),
    ],
}


@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
def test_a_twins_table_is_torchs_state_dict_and_its_stages_the_promised_ones(name: str) -> None:
    """Keys in torch's order and shapes, recognition, and the stages both backends cut from
    those keys, each key in exactly one. Lite0's groups are the ones the torch backend has
    always cut from its modules (generic_stages reads the network, not the keys)."""
    from gbp_cli.backends.torch.randomize import generic_stages

    twin = load_all()[name]
    model = torch_network(name, num_classes=7)
    state = model.state_dict()
    keys = table.keys(twin.layers(7))
    assert keys == {key: tuple(value.shape) for key, value in state.items()}
    assert list(keys) == list(state)
    assert twin.matches(state) and twin.num_classes(state) == 7
    assert [other for other in load_all().values() if other.matches(state)] == [twin]
    found = twin.stages(keys)
    for key in keys:
        assert sum(key.startswith(prefixes) for _, prefixes in found) == 1, key
    names = [stage for stage, _ in found]
    if twin.family is None:
        assert names == [stage for stage, _ in generic_stages(model)] and len(names) == 8
    else:
        assert names == STAGES[twin.family]


# One of each initialisation: Kaiming fan_out convs and torch's default Linear (ResNet), fan_out
# and N(0, 0.01) with a zero bias (MobileNetV2), fan_in (DenseNet), torch's defaults (Lite0).
SPREAD_CHECKED = ("resnet18", "mobilenet_v2", "densenet121", "efficientnet_lite0")


@pytest.mark.torch
@pytest.mark.parametrize("name", SPREAD_CHECKED)
def test_a_twins_draw_has_the_spread_torchs_own_initialisation_gives(name: str) -> None:
    """Layer by layer, the numpy draw has the spread and centre a freshly built torch network
    has (for tensors of 1,000 values or more), so a re-initialised layer is what torch users
    know: ResNet's fc is U(±1/√512), std 0.026, not Kaiming's 0.062. BatchNorm is torch's
    fresh one exactly."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    fresh = {k: v.numpy() for k, v in torch_network(name, 1000, "cpu").state_dict().items()}
    drawn = load_all()[name].random_state(1000, seed=0)
    assert drawn.keys() == fresh.keys()
    norms = {key.rsplit(".", 1)[0] for key in fresh if key.endswith("running_mean")}
    for key, value in fresh.items():
        assert drawn[key].shape == value.shape and drawn[key].dtype == value.dtype, key
        if key.rsplit(".", 1)[0] in norms:
            assert np.array_equal(drawn[key], value), key
        elif value.size >= 1000:
            spread = value.std()
            assert drawn[key].std() == pytest.approx(spread, rel=0.1), key
            assert abs(drawn[key].mean() - value.mean()) <= 10 * spread / np.sqrt(value.size), key


def test_the_splitter_covers_every_key_once_and_falls_back_to_groups() -> None:
    """A family's cut where it covers the keys; where a key falls outside it, the modules in
    about eight groups, each key in exactly one stage."""
    resnet = table.keys(load_all()["resnet18"].layers(10))
    for family, keys in (("resnet", resnet), ("resnet", {**resnet, "extra.weight": (3,)})):
        found = split(keys, family)
        for key in keys:
            assert sum(key.startswith(prefixes) for _, prefixes in found) == 1, key
    assert split(resnet, "resnet")[0] == ("fc", ("fc.",))
    fallback = split({**resnet, "extra.weight": (3,)}, "resnet")
    assert fallback[0] == ("extra", ("extra.weight",)) and len(fallback) == 8
