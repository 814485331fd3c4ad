"""The shape of the house: what the wheel installs, and the import-linter contracts in
pyproject.toml (which way the imports point, TYPE_CHECKING imports included, and no cycles)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_the_import_contracts_hold() -> None:
    """`lint-imports` reads gbp_cli/, where gbp_cli/backends links to the repo's backends/."""
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if linter is None:
        pytest.skip("import-linter is not installed: pip install -e '.[test]'")
    done = subprocess.run([linter], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "broken" not in done.stdout.lower().replace("0 broken", "")


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
    packages = {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    here = {
        str(p.parent.relative_to(ROOT)).replace("backends", "gbp_cli/backends", 1)
        for folder in ("gbp_cli", "backends")
        for p in (ROOT / folder).rglob("__init__.py")
        if "gbp_cli/backends" not in str(p.relative_to(ROOT))
    }
    assert packages == here  # every package of the tree, backends/ inside gbp_cli/
    assert "gbp_cli/data/imagenet_classes.txt" in names
    assert "gbp = gbp_cli.cli.main:main" in scripts
