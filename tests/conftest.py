"""Shared fixtures: seeded checkpoints and photos the tests make themselves (no network here)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BLOCKED_PROXY = "http://127.0.0.1:9"  # discard port: any download attempt fails at once
FRAMEWORKS = ("torch", "torchvision", "tensorflow", "keras")

# The tiny five-layer net of test_torch_rules.py / test_tf_rules.py (four ReLUs, each spelled
# differently), explained for x = [1, 2] and target 0; R at each ReLU, top to bottom:
#   vanilla  R·[x>0]:        [1,-1]→[1,0]; [-1,2]→[-1,2]; [1,4]→[1,0]; [1,1]→[0,1]; dx = [-1, 2]
#   guided   R·[x>0]·[R>0]:  [1,-1]→[1,0]; [-1,2]→[0,2];  [2,2]→[2,0]; [2,2]→[0,2]; dx = [-2, 4]
#   deconv   R·[R>0]:        [1,-1]→[1,0]; [-1,2]→[0,2];  [2,2]→[2,2]; [6,0]→[6,0]; dx = [6, -6]
HAND_COMPUTED = {"vanilla": [-1.0, 2.0], "guided": [-2.0, 4.0], "deconv": [6.0, -6.0]}


def gbp(*args: str | Path, input: str | None = None) -> Result:
    """`gbp ARGS` in this process, through Click; a user never sees a traceback."""
    from gbp_cli.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    assert "Traceback" not in result.output
    return result


def mirrored(out: Path, photo: Path, suffix: str) -> Path:
    """Where gbp puts an output of `photo`, named by its absolute path: below `out`, mirrored."""
    return out.joinpath(*photo.parent.parts[1:], photo.stem + suffix)


def one_line(text: str) -> str:
    """The only line of `text` (asserting there is exactly one)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


FAKE = (
    f"sys.path.insert(0, {str(ROOT)!r})\n"
    "from gbp_cli import backends\n"
    "backends.register('torch', 'tests.fake_backend')\n"
)


def interruptible() -> None:
    """For Popen's preexec_fn: Ctrl-C's default back in the child. A suite started in the
    background (`pytest &`) passes SIGINT on ignored, and Python then never raises
    KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def blocking(*modules: str) -> str:
    """Python code after which `modules` (and their submodules) are not found, as if not installed:
    `import` raises ModuleNotFoundError and importlib.util.find_spec says None.

    Every finder is wrapped, rather than None put in sys.modules: libraries that probe sys.modules
    (scipy's array-API check, which Keras reaches through scikit-learn) take None for a module."""
    return (
        "import sys\n"
        "class _NotInstalled:\n"
        "    def __init__(self, finder):\n"
        "        self.finder = finder\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if any(name == m or name.startswith(m + '.') for m in {sorted(modules)!r}):\n"
        "            return None\n"
        "        return self.finder.find_spec(name, path, target)\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(self.finder, name)\n"
        "sys.meta_path[:] = [_NotInstalled(finder) for finder in sys.meta_path]\n"
    )


def without(*modules: str, fake: bool = False) -> str:
    """Python code that runs gbp's main with `modules` made unimportable, and with `fake`, the
    stand-in backend in place of torch's."""
    return (
        blocking(*modules)
        + (FAKE if fake else "")
        + "from gbp_cli.cli.main import main; main(sys.argv[1:])"
    )


def run_gbp(
    *args: str | Path,
    env: dict[str, str] | None = None,
    block: tuple[str, ...] = (),
    cwd: Path = ROOT,
    input: str | bytes | None = None,
    text: bool = True,
    fake: bool = False,
) -> subprocess.CompletedProcess:
    """gbp in a fresh process (for exit codes, streams and imports), maybe without some modules,
    maybe with the stand-in backend."""
    return subprocess.run(
        [sys.executable, "-c", without(*block, fake=fake), *map(str, args)],
        capture_output=True,
        text=text,
        cwd=cwd,
        # a blocked module is hidden in this process only: no worker processes beside it
        env={**os.environ, **({"GBP_HELPER_PROCESSES": "0"} if block else {}), **(env or {})},
        input=input,
        timeout=300,
    )


def make_photo(
    path: Path, size: tuple[int, int] = (96, 64), seed: int = 0, mode: str = "RGB"
) -> Path:
    """A smooth random photo-like image, so saliency has structure to follow."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [np.sin(xx / (5 + 3 * c) + rng.uniform(0, 6)) * np.cos(yy / (7 + c)) for c in range(3)], -1
    )
    noise = rng.normal(0, 0.1, (h, w, 3))
    pixels = np.clip((base + noise) * 100 + 128, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").convert(mode).save(path)
    return path


def randomize_batchnorm(model, seed: int = 1) -> None:
    """Give every BatchNorm non-trivial statistics and affine terms, as a trained model has."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def seeded_densenet(arch: str = "densenet201", num_classes: int = 1000, seed: int = 0):
    """A torchvision DenseNet with seeded random weights and non-trivial BatchNorm statistics."""
    import torch
    from torchvision import models

    torch.manual_seed(seed)
    model = getattr(models, arch)(num_classes=num_classes).eval()
    randomize_batchnorm(model, seed + 1)
    return model


@pytest.fixture(scope="session")
def densenet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded DenseNet201 state_dict on disk, as a user's --weights PATH would be."""
    torch = pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("weights") / "densenet201-seeded.pth"
    torch.save(seeded_densenet().state_dict(), path)
    return path


@pytest.fixture
def offline_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME with every download blocked."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, BLOCKED_PROXY)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    return home


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of two small generated photos."""
    folder = tmp_path / "photos"
    make_photo(folder / "a.png", seed=1)
    make_photo(folder / "b.jpg", size=(80, 120), seed=2)
    return folder


def _missing(*modules: str) -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is None for m in modules)


NEEDS = {"torch": ("torch", "torchvision"), "tf": ("tensorflow",), "sanity": ("scipy", "skimage")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.torch` (tf, sanity): skip just that test where the framework is missing."""
    for item in items:
        for marker, modules in NEEDS.items():
            if item.get_closest_marker(marker) and _missing(*modules):
                item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(modules)}"))


@pytest.fixture(autouse=True)
def _quiet_threads() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """gbp's digest cache in a folder of the suite's, not the user's ~/.cache (subprocesses
    inherit it)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture
def stand_in() -> Iterator[Callable[..., None]]:
    """`stand_in(name, module)`: the backend `name` loads `module` (by default the stand-in of
    tests/fake_backend.py) for one test, through gbp's own `register`; restored after."""
    from gbp_cli import backends

    undo: list[tuple[str, object]] = []

    def use(name: str, module: str = "tests.fake_backend") -> None:
        undo.append((name, backends.register(name, module)))

    yield use
    for name, before in reversed(undo):
        backends.restore(name, before)  # type: ignore[arg-type]


@pytest.fixture
def fake(stand_in: Callable[..., None]) -> None:
    """`--backend torch` gives the milliseconds-fast stand-in of tests/fake_backend.py."""
    stand_in("torch")


@pytest.fixture(autouse=True, scope="module")
def _release_models() -> Iterator[None]:
    """Free what a test module built (Keras keeps every model in its global graph state), so
    that the suite's memory stays flat on a 24 GB machine."""
    yield
    import gc
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()
