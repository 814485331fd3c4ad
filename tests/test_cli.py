"""`gbp explain` end to end, through Click, with weights and photos the tests make."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gbp_cli import __version__
from gbp_cli.cli import cli
from tests.conftest import make_photo, seeded_densenet

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "torchvision", "tensorflow", "keras")


def without(*modules: str) -> str:
    """Python code that runs gbp's main with `modules` made unimportable (None in sys.modules)."""
    return (
        f"import sys\nsys.modules.update(dict.fromkeys({list(modules)}))\n"
        "from gbp_cli.cli import main; main(sys.argv[1:])"
    )


NO_FRAMEWORKS = without(*FRAMEWORKS)


def gbp(*args: str | Path, input: str | None = None):
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    assert "Traceback" not in result.output
    return result


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def blocked(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_FRAMEWORKS, *args], capture_output=True, text=True, cwd=ROOT
    )


def test_help_and_version_need_no_framework() -> None:
    help_run = blocked("--help")
    assert help_run.returncode == 0 and "explain" in help_run.stdout
    assert blocked("explain", "--help").returncode == 0
    version = blocked("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"gbp {__version__}")
    imports = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gbp_cli.cli; print(sorted({'torch', 'tensorflow', "
            "'matplotlib'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert imports.stdout.strip() == "[]"


@pytest.mark.parametrize(("backend", "extra"), [("torch", "gbp[torch]"), ("tf", "gbp[tf]")])
def test_a_missing_framework_names_the_pip_extra(backend: str, extra: str, tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png")
    run = blocked("explain", str(photo), "--backend", backend, "--weights", "random")
    assert run.returncode == 2
    assert f"pip install '{extra}'" in one_line(run.stderr)


def test_python_dash_m_works() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gbp_cli", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert run.stdout.strip() == f"gbp {__version__}"


torch = pytest.importorskip("torch")


def test_random_weights_write_every_method_and_format(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "explain",
        photos,
        "--weights",
        "random",
        "--out",
        out,
        "--method",
        "guided",
        "--method",
        "vanilla",
        "--method",
        "guided",
        "--format",
        "color",
        "--format",
        "npy",
    ]
    result = gbp(*args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(photos / "a.png"), str(photos / "b.jpg")]
    for line in lines:
        assert "[random weights]" in line and "201 ReLUs" in line
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
    assert sorted(p.name for p in out.iterdir()) == sorted(  # nothing else, no temp files
        f"{s}.{m}.{f}" for s in "ab" for m in ("guided", "vanilla") for f in ("color.png", "npy")
    )

    stamp = (out / "a.guided.npy").stat().st_mtime_ns
    again = gbp(*args)
    assert again.exit_code == 0
    assert all("\tkept\t" in line for line in again.stdout.splitlines())
    assert (out / "a.guided.npy").stat().st_mtime_ns == stamp
    redo = gbp(*args, "--overwrite")
    assert redo.exit_code == 0 and "\tkept\t" not in redo.stdout
    assert (out / "a.guided.npy").stat().st_mtime_ns != stamp


def test_npy_is_the_exact_input_gradient(densenet_checkpoint: Path, tmp_path: Path) -> None:
    from backends.torch_backend import explain_module
    from gbp_cli.preprocess import prepare

    photo = make_photo(tmp_path / "p.png", size=(300, 200))
    out = tmp_path / "out"
    result = gbp(
        "explain", photo, "--weights", densenet_checkpoint, "--out", out, "--format", "npy"
    )
    assert result.exit_code == 0, result.output
    assert "[random weights]" not in result.stdout
    model = seeded_densenet()
    x = torch.from_numpy(prepare(photo, "squash").array).permute(2, 0, 1)[None]
    _, _, saliency, _, *_ = explain_module(model, x, ["guided"])
    expected = saliency["guided"][0, 0].permute(1, 2, 0).numpy()
    written = np.load(out / "p.guided.npy")
    assert np.linalg.norm(written - expected) / np.linalg.norm(expected) < 1e-5


def test_fine_tuned_head_with_its_own_labels(tmp_path: Path) -> None:
    path = tmp_path / "pets.pt"
    torch.save({"state_dict": seeded_densenet(num_classes=3).state_dict()}, path)
    labels = tmp_path / "pets.txt"
    labels.write_text("cat\ndog\nhamster\n")
    photo = make_photo(tmp_path / "p.png")
    out = tmp_path / "out"
    result = gbp(
        "explain", photo, "--weights", path, "--labels", labels, "--target", "Dog", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out / "p.guided.color.png").text["gbp:target"] == "1 dog"
    bad = gbp("explain", photo, "--weights", path, "--target", "3", "--out", out)
    assert bad.exit_code == 2 and "out of range" in one_line(bad.stderr)


def test_top_k_puts_the_class_in_file_names(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = gbp("explain", photos / "a.png", "--weights", "random", "--top-k", "3", "--out", out)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and all(
        n.startswith("a.") and n.endswith(".guided.color.png") for n in names
    )
    classes = {int(n.split(".")[1]) for n in names}
    assert len(classes) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a checkpoint", "not a readable PyTorch state_dict"),
        ("wrong-arch", "not a torchvision DenseNet121/169/201"),
        ("missing-key", "keys do not match"),
        ("wrong-shape", "does not fit DenseNet"),
    ],
)
def test_bad_weight_files_get_one_line(content, message: str, tmp_path: Path) -> None:
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


def test_missing_imagenet_weights_say_where_to_put_them(
    offline_torch_home: Path, tmp_path: Path
) -> None:
    result = gbp("explain", make_photo(tmp_path / "p.png"), "--out", tmp_path / "out")
    assert result.exit_code == 2 and result.stdout == ""
    line = one_line(result.stderr)
    assert "densenet201-c1103571.pth" in line and "--weights PATH" in line
    assert str(offline_torch_home / "hub" / "checkpoints") in line
    assert not (tmp_path / "out").exists()


def test_cached_imagenet_weights_load_through_torchvision(
    offline_torch_home: Path, densenet_checkpoint: Path, tmp_path: Path
) -> None:
    cache = offline_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(densenet_checkpoint, cache / "densenet201-c1103571.pth")
    out = tmp_path / "out"
    result = gbp("explain", make_photo(tmp_path / "p.png"), "--out", out)
    assert result.exit_code == 0, result.output
    assert Image.open(out / "p.guided.color.png").text["gbp:weights"] == "imagenet"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "notaclassname"], "not a class name"),
        (["--target", "1000"], "out of range"),
        (["--target", "tig"], "ambiguous"),
        (["--target", "lion", "--top-k", "2"], "alternatives"),
        (["--weights", "nowhere.pth"], "no such file"),
    ],
)
def test_usage_errors_exit_2_before_any_work(
    args: list[str], message: str, offline_torch_home: Path, tmp_path: Path
) -> None:
    result = gbp("explain", make_photo(tmp_path / "p.png"), "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in one_line(result.stderr)
    assert not (tmp_path / "out").exists()


def test_a_bad_input_is_reported_and_the_run_goes_on(photos: Path, tmp_path: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    result = gbp(
        "explain", photos, photos / "missing.png", "--weights", "random", "--out", out, "-q"
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if not line.startswith("gbp: WARN")]
    assert len(errors) == 2
    assert "broken.jpg" in errors[0] and "missing.png: no such file" in errors[1]
    assert (out / "a.guided.color.png").exists() and (out / "b.guided.color.png").exists()


def test_same_name_from_two_folders(tmp_path: Path) -> None:
    first = make_photo(tmp_path / "one" / "x.png", seed=1)
    second = make_photo(tmp_path / "two" / "x.png", seed=2)
    out = tmp_path / "out"
    named = gbp("explain", first, second, "--weights", "random", "--out", out)
    assert named.exit_code == 1 and "would overwrite" in named.stderr
    walked = gbp("explain", tmp_path, "--weights", "random", "--out", out)
    assert walked.exit_code == 0, walked.output  # found in one folder: mirrored, no collision
    assert (out / "one" / "x.guided.color.png").exists()
    assert (out / "two" / "x.guided.color.png").exists()


def test_output_folder_inside_the_input_is_not_explained(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(photos)
    assert gbp("explain", ".", "--weights", "random").exit_code == 0
    rerun = gbp("explain", ".", "--weights", "random")
    assert len(rerun.stdout.splitlines()) == 2  # saliency/ was not walked


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path: Path) -> None:
    result = gbp(
        "explain", make_photo(tmp_path / "p.png"), "--weights", "random", "--device", "cuda"
    )
    assert result.exit_code == 2 and "no CUDA device" in one_line(result.stderr)
