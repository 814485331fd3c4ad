"""The library as a notebook user meets it (issue 29): their own model object, batches, strict
input checks, one exception family, a cache that cannot go stale, threads, pictures in the
cell, the process left alone, and the README's Python section run as written."""

from __future__ import annotations

import inspect
import io
import os
import re
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import BLOCKED_PROXY, ROOT, gbp, make_photo
from tests.tiny_nets import CLASSES, FACTORY

torch = pytest.importorskip("torch")
# torchvision pulls in triton, which must come before TensorFlow (backends/tf/env.py says why)
pytest.importorskip("torchvision")

pytestmark = [
    pytest.mark.torch,
    pytest.mark.filterwarnings("ignore:weights=random. tests.tiny_nets:UserWarning"),  # its own
]

SIZE = 64  # the tiny net's input: milliseconds per map
NAMES = [f"kind {i}" for i in range(CLASSES)]


@pytest.fixture(autouse=True)
def _fresh_cache():
    from gbp_cli import clear_cache

    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return make_photo(tmp_path / "photo.png", size=(90, 70), seed=3)


def pixels(seed: int, size: tuple[int, int] = (50, 40)) -> np.ndarray:
    return (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)


def trained_a_minute_ago():
    """A user's model as a notebook holds it mid-training: train mode, its first layer frozen,
    gradients accumulated on the rest."""
    from tests.tiny_nets import build

    net = build()
    net.train()
    net.features[0].weight.requires_grad_(False)
    loss = net(torch.rand(2, 3, SIZE, SIZE)).sum()
    loss.backward()
    return net


def state_of(net) -> dict:
    """Everything about a torch module that gbp must leave as it found it."""
    return {
        "training": {name: module.training for name, module in net.named_modules()},
        "parameters": {
            name: (
                p.requires_grad,
                p.data_ptr(),
                p.stride(),
                p.device,
                p.dtype,
                p.is_contiguous(),
                p.detach().clone(),
                None if p.grad is None else p.grad.clone(),
            )
            for name, p in net.named_parameters()
        },
        "buffers": {
            name: (b.data_ptr(), b.stride(), b.device, b.detach().clone())
            for name, b in net.named_buffers()
        },
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
            for m in net.modules()
        ),
        "grad_enabled": torch.is_grad_enabled(),
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["hooks"] == after["hooks"] and before["grad_enabled"] == after["grad_enabled"]
    for group in ("parameters", "buffers"):
        assert before[group].keys() == after[group].keys()
        for name, was in before[group].items():
            now = after[group][name]
            for a, b in zip(was, now, strict=True):
                if isinstance(a, torch.Tensor):
                    assert torch.equal(a, b), f"{group} {name} changed"
                else:
                    assert a == b, f"{group} {name}: {a} became {b}"


# Your model object, left as it was.


def test_a_torch_model_object_is_explained_and_left_exactly_as_it_was(photo: Path) -> None:
    from gbp_cli import Explained, Explainer

    net = trained_a_minute_ago()
    before = state_of(net)
    explainer = Explainer(net, input_size=SIZE, labels=NAMES)
    result = explainer.explain(photo, method=["guided", "gradcam"], target="kind 3")
    assert isinstance(result, Explained) and result.target.label == "kind 3"
    assert result.saliency["guided"].shape == (SIZE, SIZE, 3)
    assert result.saliency["gradcam"].shape == (SIZE, SIZE)
    assert_same_state(before, state_of(net))
    again = explainer.explain(photo, method="guided", target=3)  # dropout is off in gbp's copy
    np.testing.assert_array_equal(again.saliency["guided"], result.saliency["guided"])
    net.refuse_batches_of = 3  # a forward pass that fails halfway through a call
    explainer = Explainer(net, input_size=SIZE)
    with pytest.raises(RuntimeError, match="refuses batches of 3"):
        explainer.explain([photo] * 3, method=["guided", "gradcam"])
    assert_same_state(before, state_of(net))
    net.refuse_batches_of = None


def test_a_model_object_gives_the_maps_gbp_explain_gives_for_its_saved_weights(
    photo: Path, tmp_path: Path
) -> None:
    """The notebook user's model and the same weights through the command line: same maps."""
    from gbp_cli import Explainer

    net = trained_a_minute_ago()
    torch.save(net.state_dict(), tmp_path / "ft.pth")
    args = ["--model", FACTORY, "--weights", tmp_path / "ft.pth", "--input-size", str(SIZE)]
    methods = ["--method", "guided", "--method", "gradcam", "--format", "npy"]
    result = gbp("explain", photo, "-o", tmp_path / "out", "-q", *args, *methods)
    assert result.exit_code == 0, result.output
    (guided,) = (tmp_path / "out").rglob("*.guided.npy")
    (gradcam,) = (tmp_path / "out").rglob("*.gradcam.npy")
    mine = Explainer(net, input_size=SIZE).explain(photo, method=["guided", "gradcam"])
    np.testing.assert_allclose(mine.saliency["guided"], np.load(guided), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(mine.saliency["gradcam"], np.load(gradcam), rtol=1e-5, atol=1e-7)


@pytest.mark.tf
def test_a_keras_model_object_is_explained_and_left_as_it_was(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    from gbp_cli import Explainer, explain

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.ReLU(name="relu")(keras.layers.Conv2D(8, 3, name="late")(x))
    outputs = keras.layers.Dense(4, activation="softmax", name="head")(
        keras.layers.GlobalAveragePooling2D()(x)
    )
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").trainable = False
    weights = [w.copy() for w in model.get_weights()]
    probe = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    answer = model(probe).numpy()
    result = Explainer(model, labels=["a", "b", "c", "d"]).explain(
        pixels(1), method=["guided", "gradcam"], target="c"
    )
    assert result.target.index == 2 and result.saliency["gradcam"].shape == (32, 32)
    assert model.get_layer("head").activation.__name__ == "softmax"
    assert model.get_layer("conv").activation.__name__ == "relu"
    assert not model.get_layer("conv").trainable and model.get_layer("late").trainable
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    np.testing.assert_array_equal(model(probe).numpy(), answer)
    model.save(tmp_path / "m.keras")  # Keras cannot save a model whose activations gbp swapped
    by_file = explain(pixels(1), method="guided", model=tmp_path / "m.keras", target=2)
    np.testing.assert_allclose(by_file.saliency["guided"], result.saliency["guided"], atol=1e-6)


def test_the_preprocessing_is_stated_and_is_what_the_model_sees(photo: Path) -> None:
    from torchvision import transforms

    from gbp_cli import Explainer
    from gbp_cli.errors import ArgumentError
    from tests.tiny_nets import build

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    stated = Explainer(build(), input_size=SIZE, mean=mean, std=std).explain(photo)
    view = np.asarray(Image.open(photo).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
    expected = (view / np.float32(255) - np.float32(mean)) / np.float32(std)
    np.testing.assert_allclose(stated.model_input, expected, atol=1e-6)
    transform = transforms.Compose(
        [transforms.Resize((SIZE, SIZE)), transforms.ToTensor(), transforms.Normalize(mean, std)]
    )  # a 3×H×W tensor, as torchvision transforms give
    called = Explainer(build(), input_size=SIZE, preprocess=transform).explain(photo)
    photo_rgb = Image.open(photo).convert("RGB")
    np.testing.assert_allclose(
        called.model_input, transform(photo_rgb).permute(1, 2, 0).numpy(), atol=1e-6
    )
    with pytest.raises(ArgumentError, match=r"a 64×64 input, but input_size is 32"):
        Explainer(build(), input_size=32, preprocess=transform).explain(photo)
    with pytest.raises(ArgumentError, match="mean= and std= go together"):
        Explainer(build(), mean=mean)
    with pytest.raises(ArgumentError, match="labels: 3 names, but the model has 10 classes"):
        Explainer(build(), labels=["a", "b", "c"])


def test_labels_and_weights_may_be_given_as_plain_strings(photo: Path, tmp_path: Path) -> None:
    from gbp_cli import explain
    from tests.tiny_nets import build

    (tmp_path / "classes.txt").write_text("\n".join(NAMES))
    torch.save(build().state_dict(), tmp_path / "w.pth")
    result = explain(
        photo,
        model=FACTORY,
        weights=str(tmp_path / "w.pth"),
        labels=str(tmp_path / "classes.txt"),
        input_size=SIZE,
        target="kind 7",
    )
    assert result.target.index == 7 and result.target.label == "kind 7"


# Batches.


def test_a_list_or_a_batch_gives_one_result_per_image_as_one_by_one(photo: Path) -> None:
    from gbp_cli import Explainer, Results
    from tests.tiny_nets import build

    explainer = Explainer(build(), input_size=SIZE, batch_size=2)
    calls: list[int] = []
    backend = explainer.current().backend
    real = backend.explain

    def counted(images, *args, **kwargs):
        calls.append(len(images))
        return real(images, *args, **kwargs)

    backend.explain = counted  # type: ignore[method-assign]
    rgb = pixels(5)
    items = [
        str(photo),
        Image.open(photo),
        rgb,
        rgb / 255.0,
        torch.from_numpy(rgb).permute(2, 0, 1).float() / 255,
    ]
    methods = ["guided", "gradcam"]
    results = explainer.explain(items, method=methods)
    assert isinstance(results, Results) and len(results) == 5
    assert calls == [2, 2, 1]  # through the backend two at a time
    for item, result in zip(items, results, strict=True):
        single = explainer.explain(item, method=methods)
        for m in methods:
            np.testing.assert_allclose(result.saliency[m], single.saliency[m], atol=1e-6)
    np.testing.assert_allclose(results[2].saliency["guided"], results[3].saliency["guided"])
    stack = np.stack([pixels(i) for i in range(3)])
    as_array = explainer.explain(stack, method=methods)
    as_tensor = explainer.explain(torch.from_numpy(stack).permute(0, 3, 1, 2), method=methods)
    for a, b, i in zip(as_array, as_tensor, range(3), strict=True):
        single = explainer.explain(pixels(i), method=methods)
        for m in methods:
            np.testing.assert_allclose(a.saliency[m], single.saliency[m], atol=1e-6)
            np.testing.assert_array_equal(a.saliency[m], b.saliency[m])
    per_image = explainer.explain(stack, target=[1, "class 4", np.int64(9)])
    assert [r.target.index for r in per_image] == [1, 4, 9]


def test_explain_and_the_ray_callable_take_the_same_names_and_give_the_same_shapes() -> None:
    from gbp_cli import Explainer, explain
    from gbp_cli.ray_api import Saliency
    from tests.tiny_nets import build

    model_keywords = set(inspect.signature(Explainer).parameters) - {"batch_size"}
    assert model_keywords <= set(inspect.signature(Saliency).parameters)
    assert model_keywords <= set(inspect.signature(explain).parameters)
    net = build()
    stack = np.stack([pixels(i) for i in range(3)])
    methods = ["guided", "gradcam", "guided-gradcam"]
    rows = Saliency(methods, model=net, input_size=SIZE)({"image": stack})
    results = explain(stack, method=methods, model=net, input_size=SIZE)
    assert rows["gradcam"].shape == (3, SIZE, SIZE) and rows["guided"].shape == (3, SIZE, SIZE, 3)
    for i, result in enumerate(results):
        assert rows["class"][i] == result.target.index
        for m in methods:
            assert result.saliency[m].shape == rows[m].shape[1:]
            np.testing.assert_allclose(rows[m][i], result.saliency[m], atol=1e-6)
    bad = Saliency("guided", model=net, input_size=SIZE)({"image": [stack[0] / 1.0, stack[1]]})
    assert "float pixels lie in [0, 1]" in bad["error"][0] and bad["error"][1] == ""


# Input checking as strict as the command line.


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (pixels(0).astype(np.float32), r"floats from 0 to 25\d.*divide by 255"),
        (pixels(0) / 255 * 2 - 1, r"look like a normalized model input"),
        (pixels(0).astype(np.int16), r"int16 pixels: .*astype\(np.uint8\)"),
        (pixels(0).astype(np.uint16) * 257, r"uint16 pixels: .*65535"),
        (pixels(0) > 128, r"a bool array is a mask"),
        (np.zeros((0, 0, 3), np.uint8), r"an empty image \(0×0\)"),
        (np.full((8, 8, 3), np.nan, np.float32), r"NaN or infinite"),
        (np.zeros((8, 28, 28), np.uint8), r"shape \(8, 28, 28\) is no image layout"),
        (np.zeros((5, 5, 2), np.uint8), r"is no image layout"),
        (np.zeros((1, 2, 5, 5, 3), np.uint8), r"a 5-D array"),
        ({"pixels": 1}, r"a dict is no image"),
        ([], r"no images"),
        ([np.zeros((2, 5, 5, 3), np.uint8)], r"a batch of 2 inside a list"),
    ],
    ids=[
        "float-0-255", "normalized", "int16", "uint16", "bool", "empty", "nan", "n-gray",
        "two-channels", "5d", "dict", "empty-list", "nested-batch",
    ],
)  # fmt: skip
def test_images_that_do_not_say_what_they_are_are_refused_with_how_to_convert(
    image: object, message: str
) -> None:
    from gbp_cli import GbpError, ImageError, explain

    with pytest.raises(ImageError, match=message) as refused:
        explain(image, model=FACTORY, weights="random")
    assert isinstance(refused.value, GbpError) and isinstance(refused.value, ValueError)
    assert "--" not in str(refused.value)


def test_every_layout_is_recognised_and_gives_the_rgb_image_s_map() -> None:
    from gbp_cli import Explainer
    from tests.tiny_nets import build

    explainer = Explainer(build(), input_size=SIZE)
    rgb = pixels(2)
    expected = explainer.explain(Image.fromarray(rgb)).saliency["guided"]
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=-1)
    for same in (rgb.transpose(2, 0, 1), rgba, torch.from_numpy(rgb.transpose(2, 0, 1))):
        np.testing.assert_array_equal(explainer.explain(same).saliency["guided"], expected)
    gray = rgb[..., 0]
    expected_gray = explainer.explain(Image.fromarray(gray, "L")).saliency["guided"]
    for same in (gray, gray[..., None], gray[None], gray / np.float64(255)):
        np.testing.assert_array_equal(explainer.explain(same).saliency["guided"], expected_gray)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "guidedd"}, r"^method='guidedd': expected one of .*did you mean 'guided'"),
        ({"method": []}, r"^method=\[\]"),
        ({"backend": "jax"}, r"^backend='jax': expected 'torch', 'tf'"),
        ({"device": "gpu"}, r"^device='gpu': expected one of 'auto', 'cpu', 'cuda'"),
        ({"precision": "fp16"}, r"^precision='fp16'"),
        ({"smooth": 0}, r"^smooth=0: expected a whole number of at least 1"),
        ({"smooth": True}, r"^smooth=True"),
        ({"noise": -1}, r"^noise=-1: expected a finite number above 0"),
        ({"noise": float("nan")}, r"^noise=nan"),
        ({"resize": "fit"}, r"^resize='fit'"),
        ({"target": True}, r"^target=True"),
        ({"target": [1, 2]}, r"^target: .*one per image"),
        ({"batch_size": 0}, r"^batch_size=0"),
        ({"other_activations": "ignore"}, r"^other_activations='ignore'"),
        ({"labels": 7}, r"^labels: a int"),
        ({"mean": (0.5, 0.5), "std": (1, 1, 1)}, r"^mean=\(0.5, 0.5\): expected three"),
        ({"mean": (0, 0, 0), "std": (1, 0, 1)}, r"^std=\(1, 0, 1\): every channel"),
        ({"normalize": "zscore"}, r"^normalize='zscore'"),
        ({"model": 3}, r"^model=int: expected a torch.nn.Module, a Keras model, or a name"),
    ],
)
def test_options_out_of_range_are_refused_in_the_api_s_own_terms(
    options: dict, message: str
) -> None:
    from gbp_cli import ArgumentError, GbpError, explain

    with pytest.raises(ArgumentError, match=message) as refused:
        explain(pixels(0), **{"model": FACTORY, "weights": "random", **options})
    assert isinstance(refused.value, GbpError) and isinstance(refused.value, ValueError)
    assert "--" not in str(refused.value)


# One exception family.


def test_every_library_error_is_a_gbp_error_and_speaks_the_api_s_terms(
    tmp_path: Path, photo: Path
) -> None:
    import gbp_cli
    from gbp_cli import errors
    from gbp_cli.backends import BackendError

    family = [errors.ArgumentError, BackendError, errors.InputError, errors.ImageError]
    family += [errors.NotAnInput, errors.RunStopped]
    assert all(issubclass(kind, gbp_cli.GbpError) for kind in family)
    assert gbp_cli.GbpError is errors.GbpError and gbp_cli.BackendError is BackendError
    assert issubclass(errors.ArgumentError, ValueError)
    assert issubclass(errors.ImageError, ValueError)
    assert {"GbpError", "ArgumentError", "BackendError", "InputError", "ImageError"} <= set(
        gbp_cli.__all__
    )
    cases = [
        ({"images": photo, "model": "resnet9", "weights": "random"}, BackendError, "model=resnet9"),
        ({"images": photo, "weights": tmp_path / "no.pth"}, BackendError, "weights="),
        ({"images": tmp_path / "gone.jpg"}, errors.InputError, "gone.jpg: no such file"),
        ({"images": b"not a photo"}, errors.InputError, "image: not an image PIL can read"),
        ({"images": photo, "target": "zebra-ish"}, gbp_cli.GbpError, "target='zebra-ish'"),
        ({"images": photo, "target": 99}, gbp_cli.GbpError, "target=99 is out of range"),
    ]
    for arguments, kind, words in cases:
        options = {"model": FACTORY, "weights": "random", **arguments}
        images = options.pop("images")
        with pytest.raises(kind) as raised:
            gbp_cli.explain(images, **options)
        assert words in str(raised.value) and "--" not in str(raised.value), str(raised.value)


@pytest.mark.parametrize(
    ("error", "code"),
    [("ArgumentError", 2), ("BackendError", 2), ("ImageError", 1), ("RunStopped", 1)],
)
def test_the_command_line_still_answers_each_error_with_one_line(error: str, code: int) -> None:
    """Group.invoke: InputError and RunStopped (exit 1) are GbpErrors now, caught first."""
    from click.testing import CliRunner

    import gbp_cli
    from gbp_cli.cli.main import Group
    from gbp_cli.errors import RunStopped

    group = Group()
    kind = RunStopped if error == "RunStopped" else getattr(gbp_cli, error)

    @group.command()
    def fail() -> None:
        raise kind("what went wrong")

    result = CliRunner().invoke(group, ["fail"])
    assert result.exit_code == code and result.output.strip() == "gbp: what went wrong"


# A cache that cannot go stale.


def test_weights_saved_anew_under_the_same_name_are_explained_anew(
    photo: Path, tmp_path: Path
) -> None:
    from gbp_cli import explain
    from tests.tiny_nets import build

    path = tmp_path / "ft.pth"
    torch.save(build(seed=1).state_dict(), path)
    first = explain(photo, model=FACTORY, weights=str(path))
    torch.save(build(seed=2).state_dict(), path)  # fine-tuned further, saved over it
    second = explain(photo, model=FACTORY, weights=str(path))
    assert not np.allclose(first.saliency["guided"], second.saliency["guided"])
    assert first.target.logit != second.target.logit
    torch.save(build(seed=1).state_dict(), tmp_path / "other.pth")
    again = explain(photo, model=FACTORY, weights=str(tmp_path / "other.pth"))
    np.testing.assert_array_equal(again.saliency["guided"], first.saliency["guided"])


def test_a_model_object_trained_further_is_explained_anew_and_the_cache_can_be_cleared(
    photo: Path,
) -> None:
    from gbp_cli import Explainer, clear_cache, explain
    from gbp_cli.api.models import CACHE
    from tests.tiny_nets import build

    net = build()
    explainer = Explainer(net, input_size=SIZE)
    before = explainer.explain(photo)
    assert explain(photo, model=net, input_size=SIZE).target.logit == before.target.logit
    with torch.no_grad():
        net.head.weight.mul_(-1)  # a step of training, in place
    after = explainer.explain(photo)
    trained = build()
    with torch.no_grad():
        trained.head.weight.mul_(-1)
    expected = Explainer(trained, input_size=SIZE).explain(photo)
    assert after.target.logit == expected.target.logit != before.target.logit
    np.testing.assert_array_equal(after.saliency["guided"], expected.saliency["guided"])
    untrained = Explainer(build(), input_size=SIZE).explain(photo)
    np.testing.assert_array_equal(untrained.saliency["guided"], before.saliency["guided"])
    net.head = torch.nn.Linear(16, 3)  # a new head: a new network, with 3 classes
    assert len(explain(photo, model=net, input_size=SIZE).top) == 3
    assert CACHE._entries
    clear_cache()
    assert not CACHE._entries


# Thread-safe.


def test_threads_sharing_one_model_get_the_serial_maps_grad_cam_included() -> None:
    from gbp_cli import explain

    images = [pixels(seed) for seed in range(8)]
    methods = ["guided", "gradcam"]
    serial = [explain(image, method=methods, model=FACTORY, weights="random") for image in images]
    results: list[object] = [None] * len(images)
    start = threading.Barrier(len(images))

    def work(i: int) -> None:
        start.wait()
        try:
            results[i] = explain(images[i], method=methods, model=FACTORY, weights="random")
        except Exception as e:  # reported below, with the others
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    failed = [r for r in results if isinstance(r, Exception)]
    assert not failed, failed
    for alone, together in zip(serial, results, strict=True):
        for m in methods:
            np.testing.assert_array_equal(together.saliency[m], alone.saliency[m])  # type: ignore[attr-defined]


@pytest.mark.filterwarnings("ignore:weights='random':UserWarning")  # the stand-in backend's
def test_a_cold_cache_loads_a_model_once_however_many_threads_ask(
    monkeypatch: pytest.MonkeyPatch, stand_in: Callable[..., None]
) -> None:
    from gbp_cli import explain
    from tests import fake_backend

    loads: list[int] = []

    def slow_load(*args: object, **kwargs: object):
        loads.append(1)
        time.sleep(0.3)
        return fake_backend.load(*args, **kwargs)

    module = types.ModuleType("tests_slow_backend")
    module.load = slow_load  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_slow_backend", module)
    stand_in("torch", "tests_slow_backend")
    explained: list[object] = []
    failed: list[BaseException] = []

    def work(i: int) -> None:
        try:
            explained.append(explain(pixels(i), weights="random"))
        except BaseException as e:  # a thread's failure must fail the test, not vanish
            failed.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert failed == [] and len(explained) == 4
    assert len(loads) == 1


@pytest.mark.tf
def test_threads_sharing_a_keras_model_get_the_serial_maps() -> None:
    keras = pytest.importorskip("keras")
    from gbp_cli import Explainer

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.ReLU()(keras.layers.Conv2D(8, 3)(x))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    explainer = Explainer(model)
    images = [pixels(seed, (40, 40)) for seed in range(6)]
    serial = [explainer.explain(i, method=["guided", "gradcam"]) for i in images]
    results: list[object] = [None] * len(images)

    def work(i: int) -> None:
        try:
            results[i] = explainer.explain(images[i], method=["guided", "gradcam"])
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for alone, together in zip(serial, results, strict=True):
        assert not isinstance(together, Exception), together
        for m in ("guided", "gradcam"):
            np.testing.assert_array_equal(together.saliency[m], alone.saliency[m])  # type: ignore[attr-defined]


# Pictures in the cell.


def test_a_result_shows_its_panel_in_a_notebook_cell(photo: Path) -> None:
    from gbp_cli import Explainer
    from tests.tiny_nets import build

    explainer = Explainer(build(), input_size=SIZE, labels=NAMES)
    result = explainer.explain(photo, method=["guided", "gradcam"], target="kind 2")
    png = Image.open(io.BytesIO(result._repr_png_()))
    assert png.format == "PNG" and png.width > 2 * png.height  # photo, guided, gradcam
    page = result._repr_html_()
    assert page.count('<img src="data:image/png;base64,') == 1 and "kind 2 (2)" in page
    assert len(repr(result)) < 200 and "kind 2" in repr(result)
    many = explainer.explain([photo, photo])
    assert many._repr_html_().count("<img ") == 2
    assert result.picture().size == png.size


# The process left alone.

ENVIRONMENT = """
import logging, os, sys, warnings
os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
levels = (logging.getLogger().level, logging.getLogger("tensorflow").level)
import keras
inputs = keras.Input((16, 16, 3))
x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
from gbp_cli import explain
import numpy as np
explain(np.zeros((20, 20, 3), np.uint8), model=model, method=["guided", "gradcam"])
after = (logging.getLogger().level, logging.getLogger("tensorflow").level)
print(os.environ.get("TF_CPP_MIN_LOG_LEVEL"), levels == after, file=sys.stderr)
"""


@pytest.mark.tf
def test_the_library_leaves_the_process_s_settings_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ENVIRONMENT], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == "None True"


def test_a_library_call_changes_no_global_setting_of_torch_or_python(photo: Path) -> None:
    from gbp_cli import Explainer
    from tests.tiny_nets import build

    def settings() -> tuple:
        return (
            torch.is_grad_enabled(),
            torch.get_num_threads(),
            torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32,
            list(warnings.filters),
            dict(os.environ),
        )

    before = settings()
    Explainer(build(), input_size=SIZE).explain([photo, photo], method=["guided", "gradcam"])
    assert settings() == before


# The README's Python section, run as written.


def readme_python_blocks(readme: Path = ROOT / "README.md") -> list[str]:
    """The ```python blocks of the README's "## Python API" section, in order."""
    text = readme.read_text("utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.tf
def test_the_readme_python_section_runs_offline_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Every block, in order, in one namespace, from the repository's root as a user who
    cloned it would, with no network; nothing printed on stdout by the library."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, BLOCKED_PROXY)
    monkeypatch.chdir(ROOT)
    blocks = readme_python_blocks()
    assert len(blocks) >= 3, "the README's Python API section lost its examples"
    scope: dict = {"__name__": "__readme__"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)
    assert capfd.readouterr().out == ""
    assert scope["result"].target.label == "Egyptian cat"  # trained weights: what it says
