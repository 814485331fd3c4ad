"""`gbp explain` end to end: what needs no framework, then DenseNet201 where a test is about it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gbp_cli import __version__
from tests.conftest import (
    FRAMEWORKS,
    ROOT,
    gbp,
    make_photo,
    mirrored,
    one_line,
    run_gbp,
    seeded_densenet,
)


def test_help_and_version_need_no_framework() -> None:
    help_run = run_gbp("--help", block=FRAMEWORKS)
    assert help_run.returncode == 0 and "explain" in help_run.stdout
    assert run_gbp("explain", "--help", block=FRAMEWORKS).returncode == 0
    version = run_gbp("--version", block=FRAMEWORKS)
    assert (version.returncode, version.stdout.strip()) == (0, f"gbp {__version__}")
    imports = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gbp_cli.cli.main; print(sorted({'torch', 'tensorflow', "
            "'matplotlib', 'PIL', 'tqdm'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert imports.stdout.strip() == "[]"


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_a_missing_framework_names_the_pip_extra(backend: str, tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png")
    run = run_gbp("explain", photo, "--backend", backend, "--weights", "random", block=FRAMEWORKS)
    assert run.returncode == 2
    assert f"pip install 'gbp-saliency[{backend}]'" in one_line(run.stderr)


def test_python_dash_m_works() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gbp_cli", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert run.stdout.strip() == f"gbp {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "notaclassname"], "not a class name"),
        (["--target", "1000"], "out of range"),
        (["--target", "tig"], "fits several classes"),
        (["--target", "lion", "--top-k", "2"], "alternatives"),
        (["--weights", "nowhere.pth"], "no such file"),
        (["--cmap", "nosuchmap"], "known: "),
        (["--shard", "0/4"], "1..N"),
        (["--clip", "nan"], "--clip nan: expected a finite number"),  # NaN passes any range
        (["--alpha", "NaN"], "--alpha NaN: expected a finite number"),
        (["--noise", "nan"], "--noise nan: expected a finite number"),
        (["--noise", "inf"], "--noise inf: expected a finite number"),
        (["--cpus-per-worker", "inf"], "--cpus-per-worker inf: expected a finite number"),
        (["--gpus-per-worker", "nan"], "--gpus-per-worker nan: expected a finite number"),
        (["--clip", "inf"], "inf is not in the range 50<=x<=100 (see 'gbp explain --help')"),
        (["--bogus"], "No such option '--bogus'"),  # Click's own checks: one line too
        (["--method", "guidedd"], "'guidedd' is not one of"),
    ],
)
def test_usage_errors_exit_2_before_any_work(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_gbp(
        "explain", make_photo(tmp_path / "p.png"), "--out", tmp_path / "out", *args,
        block=FRAMEWORKS,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in one_line(result.stderr)
    assert not (tmp_path / "out").exists()


def test_options_parse_to_the_values_the_commands_take(tmp_path: Path) -> None:
    """Each option's type hands its command the parsed value, not the text to parse again."""
    import click

    from gbp_cli.backends import WeightsSpec
    from gbp_cli.cli import options

    @click.command()
    @options.compose(options.WEIGHTS, options.SHARD, options.CMAP, options.TARGET)
    def chosen(**values: object) -> dict[str, object]:
        return values

    def parse(*args: str) -> dict[str, object]:
        return chosen.main(list(args), standalone_mode=False)

    checkpoint = tmp_path / "w.pth"
    checkpoint.write_bytes(b"weights")
    assert parse() == {
        "weights": WeightsSpec("imagenet"), "shard": None, "cmap": "inferno", "target": None
    }  # fmt: skip
    given = parse("--weights", str(checkpoint), "--shard", "3/8", "--cmap", "gray",
                  "--target", " tiger cat ")  # fmt: skip
    assert given == {
        "weights": WeightsSpec("file", checkpoint), "shard": (3, 8), "cmap": "gray",
        "target": "tiger cat",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("target", "message"),
    [("-3", "--target -3 is out of range"), ("  ", "expected a class index or a class name")],
)
def test_a_target_no_class_list_can_fit_is_refused_before_the_model(
    target: str, message: str, tmp_path: Path
) -> None:
    """A checkpoint's own classes are known only once the model is loaded; a target that no
    list of classes can hold is refused before that."""
    checkpoint = tmp_path / "w.pth"
    checkpoint.write_bytes(b"weights")
    result = run_gbp(
        "explain", make_photo(tmp_path / "p.png"), "--weights", checkpoint, "--target", target,
        block=FRAMEWORKS,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in one_line(result.stderr)


def test_a_bug_is_one_line_that_says_so_and_debug_shows_where(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An exception gbp did not expect is its own bug: one line that says so, exit 1; --debug
    or GBP_DEBUG=1 prints the traceback before that line."""
    from click.testing import CliRunner

    from gbp_cli.cli import explain
    from gbp_cli.cli.main import cli

    def broken(*args: object, **kwargs: object) -> int:
        return {}["planner"]

    monkeypatch.setattr(explain, "explain_command", broken)
    args = ["explain", str(make_photo(tmp_path / "p.png"))]
    plain = gbp(*args)
    assert plain.exit_code == 1
    line = one_line(plain.stderr)
    assert line.startswith("gbp: internal error (a bug in gbp, please report it): KeyError")
    assert "--debug" in line
    for flags, env in [(["--debug"], {}), ([], {"GBP_DEBUG": "1"})]:
        shown = CliRunner().invoke(cli, [*flags, *args], env=env)
        assert shown.exit_code == 1
        lines = shown.stderr.splitlines()
        assert lines[0] == "Traceback (most recent call last):"
        assert 'return {}["planner"]' in shown.stderr
        assert (
            lines[-1] == "gbp: internal error (a bug in gbp, please report it): KeyError: 'planner'"
        )


def test_debug_prints_the_traceback_of_a_user_error_too(tmp_path: Path) -> None:
    """Through the console entry point: without it one line, with GBP_DEBUG=1 the traceback
    first, then the same line."""
    photo = make_photo(tmp_path / "p.png")
    args = ["explain", photo, "-o", tmp_path / "o", "--top-k", "2000"]
    plain = run_gbp(*args, fake=True)
    line = one_line(plain.stderr)
    assert plain.returncode == 2 and "--top-k 2000 is more than the model's 1000 classes" in line
    debugged = run_gbp(*args, fake=True, env={"GBP_DEBUG": "1"})
    assert debugged.returncode == 2
    assert debugged.stderr.startswith("Traceback (most recent call last):")
    assert debugged.stderr.splitlines()[-1] == line


@pytest.mark.usefixtures("fake")
def test_a_bad_input_is_reported_and_the_run_goes_on(photos: Path, tmp_path: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    result = gbp("explain", photos, photos / "missing.png", "--out", out, "-q")
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert "missing.png: no such file" in errors[0]  # said before any model loads
    assert "broken.jpg" in errors[1]
    assert (out / "a.guided.color.png").exists() and (out / "b.guided.color.png").exists()


@pytest.mark.torch
def test_random_weights_write_every_method_and_format(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["explain", photos, "--weights", "random", "--out", out]
    args += ["--method", "guided", "--method", "vanilla", "--method", "guided"]
    args += ["--format", "color", "--format", "npy"]
    result = gbp(*args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(photos / "a.png"), str(photos / "b.jpg")]
    for line in lines:
        assert "[random weights]" in line and "\t201 ReLUs\t" in line
    assert "WARNING" in result.stderr and "random" in result.stderr
    for stem in ("a", "b"):
        for method in ("guided", "vanilla"):
            picture = Image.open(out / f"{stem}.{method}.color.png")
            photo = Image.open(next(photos.glob(f"{stem}.*")))
            assert (picture.size, picture.mode) == (photo.size, "RGB")  # the photo's geometry
            assert "random" in picture.text["gbp:weights"]
            assert picture.text["gbp:method"] == method
            raw = np.load(out / f"{stem}.{method}.npy")
            assert (raw.shape, raw.dtype) == ((224, 224, 3), np.float32)
    expected = {
        f"{s}.{m}.{f}" for s in "ab" for m in ("guided", "vanilla") for f in ("color.png", "npy")
    }
    expected |= {f"{s}.{m}.npy.json" for s in "ab" for m in ("guided", "vanilla")}  # records
    assert {p.name for p in out.iterdir()} == expected  # nothing else, no temp files

    stamp = (out / "a.guided.npy").stat().st_mtime_ns
    again = gbp(*args)
    assert again.exit_code == 0
    assert all("\tkept\t" in line for line in again.stdout.splitlines())
    assert (out / "a.guided.npy").stat().st_mtime_ns == stamp
    redo = gbp(*args, "--overwrite")
    assert redo.exit_code == 0 and "\tkept\t" not in redo.stdout
    assert (out / "a.guided.npy").stat().st_mtime_ns != stamp


@pytest.mark.torch
def test_npy_is_the_plain_autograd_gradient(densenet_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    from gbp_cli.inputs.preprocess import prepare

    photo = make_photo(tmp_path / "p.png", size=(300, 200))
    out = tmp_path / "out"
    result = gbp(
        "explain", photo, "--weights", densenet_checkpoint, "--out", out, "--format", "npy",
        "--method", "vanilla",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[random weights]" not in result.stdout
    model = seeded_densenet().to(memory_format=torch.channels_last)  # as gbp runs it
    x = torch.from_numpy(prepare(photo, "squash").array).permute(2, 0, 1)[None]
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    logits = model(x)
    (expected,) = torch.autograd.grad(logits[0, logits[0].argmax()], x)
    written = np.load(mirrored(out, photo, ".vanilla.npy"))
    expected = expected[0].permute(1, 2, 0).numpy()
    assert np.linalg.norm(written - expected) / np.linalg.norm(expected) < 1e-5


@pytest.mark.torch
def test_fine_tuned_head_with_its_own_labels(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "pets.pt"
    torch.save({"state_dict": seeded_densenet("densenet121", num_classes=3).state_dict()}, path)
    labels = tmp_path / "pets.txt"
    labels.write_text("cat\ndog\nhamster\n")
    photo = make_photo(tmp_path / "p.png")
    out = tmp_path / "out"
    result = gbp(
        "explain", photo, "--weights", path, "--labels", labels, "--target", "Dog", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "--target 'Dog' is class 1, dog" in result.stderr
    assert Image.open(mirrored(out, photo, ".guided.color.png")).text["gbp:target"] == "1 dog"
    bad = gbp("explain", photo, "--weights", path, "--target", "3", "--out", out)
    assert bad.exit_code == 2 and "out of range" in one_line(bad.stderr)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a checkpoint", "not a readable PyTorch state_dict"),
        ("wrong-arch", "DenseNet121/169/201"),
        ("missing-key", "keys do not match"),
        ("wrong-shape", "does not fit DenseNet"),
    ],
)
def test_bad_weight_files_get_one_line(content, message: str, tmp_path: Path) -> None:
    import torch

    path = tmp_path / "w.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        state = seeded_densenet("densenet121").state_dict()
        if content == "wrong-arch":
            state = {"linear.weight": torch.zeros(2, 2)}
        elif content == "missing-key":
            del state["features.norm5.running_var"]
        else:
            state["features.conv0.weight"] = torch.zeros(64, 3, 5, 5)
        torch.save(state, path)
    result = gbp("explain", make_photo(tmp_path / "p.png"), "--weights", path, "--out", tmp_path)
    assert result.exit_code == 2
    assert message in one_line(result.stderr)
    assert result.stdout == ""


@pytest.mark.torch
def test_missing_imagenet_weights_say_where_to_put_them(
    offline_torch_home: Path, tmp_path: Path
) -> None:
    result = gbp("explain", make_photo(tmp_path / "p.png"), "--out", tmp_path / "out")
    assert result.exit_code == 2 and result.stdout == ""
    line = one_line(result.stderr)
    assert "densenet201-c1103571.pth" in line and "--weights PATH" in line
    assert "--weights random" in line and "--backend tf" in line
    assert str(offline_torch_home / "hub" / "checkpoints") in line
    assert not (tmp_path / "out").exists()


@pytest.mark.torch
def test_cached_imagenet_weights_load_through_torchvision(
    offline_torch_home: Path, densenet_checkpoint: Path, tmp_path: Path
) -> None:
    cache = offline_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(densenet_checkpoint, cache / "densenet201-c1103571.pth")
    out = tmp_path / "out"
    photo = make_photo(tmp_path / "p.png")
    result = gbp("explain", photo, "--out", out)
    assert result.exit_code == 0, result.output
    assert Image.open(mirrored(out, photo, ".guided.color.png")).text["gbp:weights"] == "imagenet"


@pytest.mark.torch
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = gbp(
        "explain", make_photo(tmp_path / "p.png"), "--weights", "random", "--device", "cuda"
    )
    assert result.exit_code == 2 and "no CUDA device" in one_line(result.stderr)


@pytest.mark.torch
def test_bf16_runs_and_its_map_follows_fp32(tmp_path: Path) -> None:
    from gbp_cli.backends import WeightsSpec, open_backend
    from gbp_cli.inputs.preprocess import prepare

    image = prepare(ROOT / "sample_images" / "chelsea.png", "squash").array[None]
    maps = {}
    for precision in ("fp32", "bf16"):
        backend = open_backend("torch", WeightsSpec("random"), "cpu", precision)
        result = backend.explain(image, ["guided"], targets=np.array([[281]]))
        maps[precision] = result.saliency["guided"].ravel()
    assert np.corrcoef(maps["fp32"], maps["bf16"])[0, 1] > 0.9


def test_a_names_byte_and_a_names_backslash_never_print_alike() -> None:
    """Bytes that are not UTF-8 print as `\\xNN`; a backslash the name holds prints doubled,
    so `caf\\xe9.png` (a backslash) and café in Latin-1 (one byte) stay apart on stdout."""
    import os

    from gbp_cli.cli.results import field

    assert field(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert field("caf\\xe9.png") == "caf\\\\xe9.png"
    assert field("a\tb\nc") == "a\\tb\\nc"
