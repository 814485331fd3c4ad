"""TF backend weights: Keras's own cache offline, files of every kind, and no torch needed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gbp_cli.backends.tf.env")  # TensorFlow, imported safely

from tests.conftest import BLOCKED_PROXY, gbp, make_photo, mirrored, one_line, run_gbp

KERAS_FILE = "densenet201_weights_tf_dim_ordering_tf_kernels.h5"


def offline(keras_home: Path) -> dict[str, str]:
    proxies = dict.fromkeys(
        ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"], BLOCKED_PROXY
    )
    return {"KERAS_HOME": str(keras_home), **proxies, "no_proxy": "", "NO_PROXY": ""}


def test_missing_imagenet_weights_are_one_line_and_nothing_on_stdout(tmp_path: Path) -> None:
    home = tmp_path / "keras-home"
    run = run_gbp(
        "explain",
        make_photo(tmp_path / "p.png"),
        "--backend",
        "tf",
        "--out",
        tmp_path / "out",
        env=offline(home),
    )
    assert run.returncode == 2 and run.stdout == ""
    line = one_line(run.stderr)
    assert KERAS_FILE in line and str(home / "models") in line and "--weights PATH" in line


def test_a_damaged_cached_file_is_reported_and_kept(tmp_path: Path) -> None:
    home = tmp_path / "keras-home"
    cached = home / "models" / KERAS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")
    run = run_gbp("explain", make_photo(tmp_path / "p.png"), "--backend", "tf", env=offline(home))
    assert run.returncode == 2 and "MD5" in one_line(run.stderr)
    assert cached.read_bytes() == b"half a download"


def test_tf_backend_needs_no_torch(tmp_path: Path) -> None:
    out = tmp_path / "out"
    photo = make_photo(tmp_path / "p.png")
    run = run_gbp(
        "explain",
        photo,
        "--backend",
        "tf",
        "--weights",
        "random",
        "--out",
        out,
        block=("torch", "torchvision"),
    )
    assert run.returncode == 0, run.stderr
    assert "201 ReLUs" in run.stdout and mirrored(out, photo, ".guided.color.png").exists()


def test_torch_backend_needs_no_tensorflow(tmp_path: Path) -> None:
    run = run_gbp(
        "explain",
        make_photo(tmp_path / "p.png"),
        "--weights",
        "random",
        "--out",
        tmp_path / "out",
        block=("tensorflow", "keras"),
    )
    assert run.returncode == 0, run.stderr


def test_a_pth_for_tf_without_torch_names_the_extra(
    densenet_checkpoint: Path, tmp_path: Path
) -> None:
    run = run_gbp(
        "explain",
        make_photo(tmp_path / "p.png"),
        "--backend",
        "tf",
        "--weights",
        densenet_checkpoint,
        block=("torch", "torchvision"),
    )
    assert run.returncode == 2 and "gbp-saliency[torch]" in one_line(run.stderr)


def test_a_keras_model_file_loads_in_safe_mode_and_counts_unreachable_relus(tmp_path: Path) -> None:
    import keras

    @keras.saving.register_keras_serializable(package="gbp_tests")
    class HiddenRelu(keras.layers.Layer):
        def call(self, x):
            return keras.ops.relu(x)

    x = keras.Input((224, 224, 3))
    h = keras.layers.Conv2D(4, 8, strides=8, activation="relu")(x)
    h = HiddenRelu(name="hidden")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(x, keras.layers.Dense(3, activation="softmax")(h))
    path = tmp_path / "small.keras"
    model.save(path)
    photo = make_photo(tmp_path / "p.png")
    args = ("explain", photo, "--backend", "tf", "--weights", path, "--format", "npy")
    refused = gbp(*args, "--out", tmp_path / "refused")
    assert refused.exit_code == 2
    assert "1 ReLU (unreachable) (hidden" in one_line(refused.stderr)  # never silently wrong
    result = gbp(*args, "--out", tmp_path / "out", "--other-activations", "gradient")
    assert result.exit_code == 0, result.output
    assert "1 ReLU (unreachable) left with their ordinary gradient" in result.stdout
    assert "1 ReLUs" in result.stdout  # the Conv2D's; the hidden one is named above, not counted

    unsafe = tmp_path / "lambda.keras"
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2)(x)).save(unsafe)
    refused = gbp("explain", photo, "--backend", "tf", "--weights", unsafe)
    assert refused.exit_code == 2 and "it holds a Lambda layer" in one_line(refused.stderr)


def test_a_twin_without_torch_says_how_to_make_its_file_once(tmp_path: Path) -> None:
    run = run_gbp(
        "explain", make_photo(tmp_path / "p.png"), "--backend", "tf", "--model", "resnet18",
        block=("torch", "torchvision"),
    )  # fmt: skip
    assert run.returncode == 2
    line = one_line(run.stderr)
    assert "needs PyTorch" in line and "gbp convert" in line and "resnet18.weights.h5" in line


@pytest.mark.torch
def test_imagenet_for_a_twin_is_torchvisions_cached_file_converted(
    offline_torch_home: Path, tmp_path: Path
) -> None:
    """--backend tf --weights imagenet for a twin whose Keras side has no weights of its own:
    torchvision's cached file, converted through the twin's table, bit for bit."""
    import numpy as np
    import torch
    from torchvision import models

    from gbp_cli.backends import ModelSpec, WeightsSpec, open_backend
    from tests.conftest import randomize_batchnorm

    cache = offline_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(0)
    network = models.resnet18().eval()
    randomize_batchnorm(network)
    file_name = models.get_model_weights("resnet18").DEFAULT.url.rsplit("/", 1)[-1]
    torch.save(network.state_dict(), cache / file_name)
    backend = open_backend("tf", WeightsSpec("imagenet"), "cpu", model=ModelSpec("resnet18"))
    assert backend.info.twin == "resnet18" and backend.info.cam_layer == "layer4"
    state, expected = backend.state(), network.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert np.array_equal(state[key], value.numpy()), key
