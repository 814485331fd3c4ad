"""Any torch classifier: torchvision's zoo and a user's own factory, their weights and
preprocessing, every activation counted by kind, Grad-CAM's layer, and gbp sanity's stages."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torchvision import models  # noqa: E402

from gbp_cli.backends import BackendError, ModelSpec, WeightsSpec, open_backend  # noqa: E402
from gbp_cli.backends.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from gbp_cli.backends.checkpoints import checkpoint_bytes  # noqa: E402
from gbp_cli.backends.torch.backend import load  # noqa: E402
from gbp_cli.backends.torch.randomize import generic_stages, stages  # noqa: E402
from gbp_cli.backends.torch.zoo import zoo_preprocessing  # noqa: E402
from gbp_cli.backends.twins.densenet import random_weights  # noqa: E402
from tests.conftest import one_line  # noqa: E402

RANDOM = WeightsSpec("random")


def zoo(name: str, weights: WeightsSpec = RANDOM, **options):
    return load(weights, "cpu", model=ModelSpec(name=name, **options))


def photo(size: int = 224) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(1, size, size, 3)).astype(np.float32)


def in_one_stage_each(found, state) -> bool:
    counts = [sum(k.startswith(ps) for _, ps in found) for k in state]
    return set(counts) == {1}


@pytest.fixture(scope="module")
def resnet18():
    return zoo("resnet18")


def test_resnet18_counts_its_relus_and_finds_layer4(resnet18) -> None:
    info = resnet18.info
    assert (info.model, info.num_classes, info.twin) == ("resnet18", 1000, "resnet18")
    assert info.activations == {"ReLU": 17}  # the stem's, and two per BasicBlock (one module)
    assert info.unruled == {} and info.cam_layer == "layer4"
    result = resnet18.explain(photo(), ["guided", "vanilla", "deconv"], cam=True)
    assert result.relus == {"guided": 17, "vanilla": 17, "deconv": 17}
    assert result.activations["deconv"] == {"ReLU": 17} and result.ordinary == {}
    assert result.features.shape == (1, 7, 7, 512)


def test_resnet18_stages_and_seeded_reinitialisation(resnet18) -> None:
    found = resnet18.stages()
    assert [name for name, _ in found] == ["fc", "layer4", "layer3", "layer2", "layer1", "stem"]
    state = resnet18.state()
    assert in_one_stage_each(found, state)
    first, again, other = (resnet18.random_state(s) for s in (1, 1, 2))
    assert first.keys() == state.keys()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["fc.weight"], other["fc.weight"])
    assert not np.array_equal(first["conv1.weight"], state["conv1.weight"])


def test_mobilenet_v3_refuses_guided_for_its_hardswish_unless_told() -> None:
    backend = zoo("mobilenet_v3_small")
    info = backend.info
    assert info.activations == {"ReLU": 14, "Hardswish": 19, "Hardsigmoid": 9}
    assert info.unruled["Hardsigmoid"][0] == "features.1.block.1.scale_activation"
    assert info.cam_layer == "features"
    with pytest.raises(BackendError) as refused:
        backend.explain(photo(), ["vanilla", "deconv"])
    assert str(refused.value) == (
        "DeconvNet is not defined for 19 Hardswish, 9 Hardsigmoid (features.0.2, "
        "features.1.block.1.scale_activation, features.4.block.0.2, …): pass "
        "--other-activations gradient to let them keep their ordinary gradient, or use vanilla "
        "or gradcam"
    )
    assert backend.explain(photo(), ["vanilla"]).relus == {"vanilla": 14}
    backend.spec = ModelSpec("mobilenet_v3_small", other_activations="gradient")
    kept = backend.explain(photo(), ["guided"])
    assert kept.activations == {"guided": {"ReLU": 14}}
    assert kept.ordinary == {"Hardswish": 19, "Hardsigmoid": 9}
    found = backend.stages()
    assert found[0][0] == "classifier" and found[-1][0] == "stem"
    assert in_one_stage_each(found, backend.state())


def test_squeezenet_cam_is_its_last_spatial_map() -> None:
    backend = open_backend("torch", RANDOM, "cpu", model=ModelSpec("squeezenet1_0"))
    assert backend.info.activations == {"ReLU": 26}
    assert backend.info.cam_layer == "classifier.2"  # ReLU of the class-map conv, before pooling
    assert backend.explain(photo(), ["vanilla"], cam=True).features.shape == (1, 13, 13, 1000)
    assert in_one_stage_each(backend.stages(), backend.state())


TRANSFORMS = {  # the DEFAULT weights' crop, resize and interpolation
    "inception_v3": (299, 342, "bilinear"),
    "efficientnet_b0": (224, 256, "bicubic"),
    "mobilenet_v2": (224, 232, "bilinear"),  # its DEFAULT weights are IMAGENET1K_V2
    "vit_h_14": (518, 518, "bicubic"),
    "densenet201": (224, 256, "bilinear"),
}


def test_preprocessing_follows_the_weights_own_transforms(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(models, "get_model", None)  # known without building the network
    for arch, expected in TRANSFORMS.items():
        found = zoo_preprocessing(arch)
        assert (found.size, found.resize, found.interpolation) == expected, arch
        assert (found.mean, found.std, found.bgr) == (IMAGENET_MEAN, IMAGENET_STD, False)
        assert found.name == "imagenet"


def test_fine_tuned_head_of_any_size_and_mismatching_keys(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = models.resnet18(num_classes=5).state_dict()
    path = tmp_path / "pets.pth"
    torch.save(state, path)
    backend = zoo("resnet18", WeightsSpec("file", path))
    assert backend.info.num_classes == 5
    assert torch.equal(backend.model.fc.weight, state["fc.weight"])
    state["fc.1.weight"], state["fc.1.bias"] = state.pop("fc.weight"), state.pop("fc.bias")
    torch.save(state, path)
    with pytest.raises(BackendError) as wrong:
        zoo("resnet18", WeightsSpec("file", path))
    assert one_line(str(wrong.value)) == (
        f"--weights {path}: keys do not match (2 missing, e.g. fc.weight, fc.bias; "
        "2 unexpected, e.g. fc.1.weight, fc.1.bias)"
    )


def test_a_densenet_file_with_the_default_model_says_which_densenet(tmp_path: Path) -> None:
    path = tmp_path / "d121.pth"
    path.write_bytes(checkpoint_bytes(random_weights("densenet121", 3, seed=4)))
    info = load(WeightsSpec("file", path), "cpu").info  # --model densenet201, the default
    assert (info.model, info.num_classes, info.twin) == ("densenet121", 3, "densenet121")
    assert info.activations == {"ReLU": 121} and info.cam_layer == "features.denseblock4"


def test_a_zoo_models_imagenet_weights_offline_and_cached(
    offline_torch_home: Path, tmp_path: Path
) -> None:
    with pytest.raises(BackendError) as offline:
        zoo("resnet18", WeightsSpec("imagenet"))
    line = one_line(str(offline.value))
    cache = offline_torch_home / "hub" / "checkpoints"
    assert "resnet18-f37072fd.pth" in line and str(cache) in line
    assert "--weights PATH" in line and "--weights random" in line
    assert "--backend tf" not in line  # only DenseNets share their file with TF
    cache.mkdir(parents=True, exist_ok=True)  # the failed download made it
    torch.manual_seed(3)
    torch.save(models.resnet18().state_dict(), cache / "resnet18-f37072fd.pth")
    backend = zoo("resnet18", WeightsSpec("imagenet"))
    assert backend.info.weights.kind == "imagenet" and backend.info.num_classes == 1000


def test_cam_layer_by_name(resnet18) -> None:
    assert zoo("resnet18", cam_layer="layer3").info.cam_layer == "layer3"
    with pytest.raises(BackendError, match=r"runs no module of that name; did you mean layer4"):
        zoo("resnet18", cam_layer="layer5")
    with pytest.raises(BackendError, match=r"--cam-layer fc: its output is \(1, 1000\), not a"):
        zoo("resnet18", cam_layer="fc")


def test_names_that_are_not_torchvision_classifiers() -> None:
    with pytest.raises(BackendError, match=r"not a torchvision classifier \(did you mean resnet1"):
        zoo("resnet19")
    with pytest.raises(BackendError, match="use --backend tf"):
        zoo("keras:EfficientNetV2B0")
    with pytest.raises(BackendError, match="not a torchvision classifier"):
        zoo("fasterrcnn_resnet50_fpn")  # detection: not explained here


def test_stages_follow_vgg_and_mobilenet_blocks() -> None:
    with torch.device("meta"):  # structure only: no weights are made
        vgg, mobile = models.vgg11(), models.mobilenet_v2()
    found = stages(vgg, "vgg11")
    assert [n for n, _ in found] == ["classifier", "conv5", "conv4", "conv3", "conv2", "conv1"]
    assert dict(found)["conv5"] == ("features.16.", "features.18.")
    assert in_one_stage_each(found, vgg.state_dict())
    found = stages(mobile, "mobilenet_v2")
    names = [name for name, _ in found]
    assert names[:4] == ["classifier", "features.18", "features.17", "features.14-16"]
    assert found[-1] == ("stem", ("features.0.",))
    assert in_one_stage_each(found, mobile.state_dict())
    found = generic_stages(vgg)
    assert len(found) == 8 and in_one_stage_each(found, vgg.state_dict())


DENSENET_STAGES = {  # as gbp sanity has always cut a DenseNet (stated here, not read from code)
    "classifier": ("classifier.",),
    "block4": ("features.denseblock4.", "features.norm5."),
    "transition3": ("features.transition3.",),
    "block3": ("features.denseblock3.",),
    "transition2": ("features.transition2.",),
    "block2": ("features.denseblock2.",),
    "transition1": ("features.transition1.",),
    "block1": ("features.denseblock1.",),
    "stem": ("features.conv0.", "features.norm0."),
}


def test_densenet_stages_are_the_ones_gbp_sanity_always_used() -> None:
    with torch.device("meta"):
        densenet = models.densenet121()
    assert stages(densenet, "densenet121") == list(DENSENET_STAGES.items())


NETS = """
import torch
from torch import nn
from torchvision.models import SwinTransformer, VisionTransformer

class Net(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2), nn.SiLU())
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        return self.head(torch.nn.functional.gelu(self.features(x).mean((2, 3))))

def build(): return Net()
def broken(): raise ValueError("no width given\\nsecond line")
def not_a_model(): return {"weights": 1}
def tiny_vit(): return VisionTransformer(32, 8, 1, 2, 8, 8, num_classes=3)
def tiny_swin(): return SwinTransformer([4, 4], 8, [1, 1], [1, 1], [2, 2], num_classes=3)
"""


@pytest.fixture
def user_nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """gbp_test_nets.py, importable from a folder on sys.path, as a user's own module is."""
    (tmp_path / "gbp_test_nets.py").write_text(textwrap.dedent(NETS))
    (tmp_path / "gbp_test_broken.py").write_text("import gbp_no_such_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("gbp_test_nets", "gbp_test_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_a_users_factory_with_its_own_or_saved_weights(user_nets: Path) -> None:
    backend = zoo("gbp_test_nets:build", other_activations="gradient")
    info = backend.info
    assert (info.model, info.num_classes, info.cam_layer) == ("gbp_test_nets:build", 3, "features")
    assert info.activations == {"ReLU": 1, "SiLU": 1, "GELU": 1}
    assert info.unruled == {"SiLU": ("features.3",), "GELU": ("Net.forward",)}
    assert info.preprocessing.size == 224 and info.preprocessing.name == "imagenet"
    assert "keeps the weights build() gave it" in one_line(info.warnings[0])
    result = backend.explain(photo(32), ["guided"], cam=True)
    assert result.activations == {"guided": {"ReLU": 1}}
    assert result.ordinary == {"SiLU": 1, "GELU": 1}
    assert result.features.shape == (1, 15, 15, 8)
    state = backend.random_state(5)
    assert state.keys() == backend.state().keys()
    assert not np.array_equal(state["head.weight"], backend.state()["head.weight"])
    assert in_one_stage_each(backend.stages(), state)
    path = user_nets / "net.pth"
    path.write_bytes(checkpoint_bytes(state))
    loaded = zoo("gbp_test_nets:build", WeightsSpec("file", path))
    assert np.array_equal(loaded.state()["head.weight"], state["head.weight"])
    assert loaded.info.warnings == ()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("gbp_test_missing:build", "cannot import gbp_test_missing (ModuleNotFoundError: No "),
        ("gbp_test_broken:f", "gbp_test_broken (ModuleNotFoundError: No module named 'gbp_no_"),
        ("gbp_test_nets:nothing", "gbp_test_nets has no attribute 'nothing'"),
        ("gbp_test_nets:broken", "broken() raised ValueError: no width given"),
        ("gbp_test_nets:not_a_model", "not_a_model() returned a dict, not a torch.nn.Module"),
    ],
)
def test_a_users_factory_that_fails_gets_one_line(user_nets: Path, name: str, message: str):
    with pytest.raises(BackendError) as failed:
        zoo(name)
    line = one_line(str(failed.value))
    assert line.startswith(f"--model {name}: ") and message in line


def test_a_users_factory_refuses_imagenet_and_wrong_weights(user_nets: Path) -> None:
    with pytest.raises(BackendError, match="gbp has no ImageNet weights for it"):
        zoo("gbp_test_nets:build", WeightsSpec("imagenet"))
    nets = __import__("gbp_test_nets")
    path = user_nets / "net.pth"
    torch.save(nets.Net(classes=4).state_dict(), path)
    with pytest.raises(BackendError, match=r"does not fit Net \(size mismatch for head.weight"):
        zoo("gbp_test_nets:build", WeightsSpec("file", path))
    state = nets.Net().state_dict()
    state["extra.weight"] = state.pop("features.0.weight")
    torch.save(state, path)
    with pytest.raises(BackendError) as wrong:
        zoo("gbp_test_nets:build", WeightsSpec("file", path))
    assert str(wrong.value) == (
        f"--weights {path}: keys do not match "
        "(1 missing, e.g. features.0.weight; 1 unexpected, e.g. extra.weight)"
    )


NORMALIZED = {  # --normalize → mean, std, BGR
    None: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False),
    "caffe": ((103.939 / 255, 116.779 / 255, 123.68 / 255), (1 / 255,) * 3, True),
    "tf": ((0.5,) * 3, (0.5,) * 3, False),
    "none": ((0.0,) * 3, (1.0,) * 3, False),
}


def test_a_users_model_says_its_input_size_and_normalization(user_nets: Path) -> None:
    for normalize, (mean, std, bgr) in NORMALIZED.items():
        found = zoo("gbp_test_nets:build", input_size=64, normalize=normalize).info.preprocessing
        assert (found.size, found.resize, found.bgr) == (64, 73, bgr)  # 73 = 64 / 0.875
        assert found.name == (normalize or "imagenet")
        np.testing.assert_allclose(found.mean + found.std, mean + std)
    with pytest.raises(BackendError, match="--normalize lab: expected one of imagenet, caffe"):
        zoo("gbp_test_nets:build", normalize="lab")


def test_a_factory_in_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gbp_test_here.py").write_text(textwrap.dedent(NETS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "gbp_test_here", raising=False)
    assert zoo("gbp_test_here:build", other_activations="gradient").info.num_classes == 3


def test_a_vision_transformer_has_no_cam_layer_and_guided_is_refused(user_nets: Path) -> None:
    backend = zoo("gbp_test_nets:tiny_vit", input_size=32)
    info = backend.info
    assert info.cam_layer is None and info.activations == {"GELU": 1}
    assert info.unruled == {"GELU": ("encoder.layers.encoder_layer_0.mlp.1",)}
    with pytest.raises(BackendError) as no_map:
        backend.explain(photo(32), ["vanilla"], cam=True)
    assert str(no_map.value) == (
        "Grad-CAM needs a spatial feature map, and gbp_test_nets:tiny_vit has none (a vision "
        "transformer?): use vanilla, or guided or deconv with --other-activations gradient"
    )
    with pytest.raises(BackendError, match=r"1 GELU \(encoder.*\): pass .*, or use vanilla$"):
        backend.explain(photo(32), ["guided"])
    assert backend.explain(photo(32), ["vanilla"]).relus == {"vanilla": 0}


def test_a_swin_transformer_ends_in_a_real_feature_map(user_nets: Path) -> None:
    """torchvision's Swin permutes its last stage back to (N, C, h, w) before pooling: a map
    Grad-CAM can use, unlike ViT's patch embedding."""
    backend = zoo("gbp_test_nets:tiny_swin", input_size=32, other_activations="gradient")
    assert backend.info.cam_layer == "permute"
    assert backend.explain(photo(32), ["vanilla"], cam=True).features.shape == (1, 4, 4, 16)
