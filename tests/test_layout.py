"""The shape of the house: what the wheel installs, and which way the imports point."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

STAGES = [p for p in (ROOT / "gbp_cli").glob("*.py")]
COMMANDS = [p for p in (ROOT / "gbp_cli" / "commands").glob("*.py") if p.stem != "__init__"]
BACKENDS = list((ROOT / "backends").glob("*.py"))


def imported(path: Path) -> set[str]:
    """Every absolute module an import in `path` names at run time (relative imports, and
    imports for type hints only, under `if TYPE_CHECKING:`, left out)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):  # drop `if TYPE_CHECKING:` bodies before looking
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", BACKENDS, ids=lambda p: p.name)
def test_backends_import_nothing_of_the_cli(path: Path) -> None:
    assert not {n for n in imported(path) if n.split(".")[0] == "gbp_cli"}


@pytest.mark.parametrize("path", STAGES, ids=lambda p: p.name)
def test_stages_never_import_commands(path: Path) -> None:
    upward = {n for n in imported(path) if n.startswith(("gbp_cli.commands", "gbp_cli.cli"))}
    assert path.name in ("cli.py", "__main__.py") or not upward


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.name)
def test_no_command_imports_another(path: Path) -> None:
    others = {f"gbp_cli.commands.{p.stem}" for p in COMMANDS if p != path} - {
        "gbp_cli.commands.common"
    }
    assert not {n for n in imported(path) if n in others}


@pytest.mark.parametrize("path", [*STAGES, *COMMANDS, *BACKENDS], ids=lambda p: p.name)
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text("utf-8").splitlines()) <= 300


def test_the_wheel_installs_one_top_level_package_of_ours(tmp_path: Path) -> None:
    build = "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = tmp_path / done.stdout.strip().splitlines()[-1]
    assert wheel.name.startswith("gbp_saliency-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    top = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert top == {"gbp_cli"}
    for module in (
        "gbp_cli/backends/torch_backend.py",
        "gbp_cli/commands/explain.py",
        "gbp_cli/data/imagenet_classes.txt",
    ):
        assert module in names
    assert "gbp = gbp_cli.cli:main" in scripts
