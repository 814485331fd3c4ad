"""`gbp models`: what the installed backends can explain, and what each network holds."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
from collections.abc import Iterator
from types import ModuleType

import click

from gbp_cli.backends import BUILT_IN, ModelInfo
from gbp_cli.backends.rules import RULED_ACTIVATIONS
from gbp_cli.errors import GbpError

CATALOGS = {"torch": ".torch.catalog", "tf": ".tf.catalog"}
COLUMNS = (
    "name",
    "backend",
    "input",
    "overridden",
    "other activations",
    "grad-cam layer",
    "twin",
    "--weights imagenet",
)


def catalogs(backend: str | None) -> Iterator[tuple[str, ModuleType]]:
    """(backend, its catalog module) for every installed backend (or the one asked for)."""
    for name, module in CATALOGS.items():
        if backend not in (None, name):
            continue
        if any(importlib.util.find_spec(f) is None for f in BUILT_IN[name][1]):
            click.echo(f"gbp: {name} is not installed: its models are not listed", err=True)
            continue
        if name == "tf":
            importlib.import_module(".tf.env", "gbp_cli.backends")  # TF's start-up log held back
        yield name, importlib.import_module(module, "gbp_cli.backends")


def record(info: ModelInfo, imagenet: str) -> dict[str, object]:
    ruled = {k: n for k, n in info.activations.items() if k in RULED_ACTIVATIONS}
    other = {k: n for k, n in info.activations.items() if k not in RULED_ACTIVATIONS}
    return {
        "name": info.model,
        "backend": info.backend,
        "input_size": info.input_size,
        "preprocessing": info.normalization,
        "overridden": ruled,
        "other_activations": other,
        "probed": bool(info.activations),
        "refused": info.warnings[0] if info.warnings and not info.activations else None,
        "cam_layer": info.cam_layer,
        "twin": info.twin,
        "imagenet_weights": imagenet,
    }


def line(entry: dict[str, object]) -> str:
    def kinds(counts: object) -> str:
        return ", ".join(f"{n} {k}" for k, n in counts.items()) or "-"  # type: ignore[union-attr]

    probed = entry["probed"]
    cells = [
        entry["name"],
        entry["backend"],
        f"{entry['input_size']}px" if entry["input_size"] else "?",
        kinds(entry["overridden"]) if probed else entry["refused"] or "not probed: name it",
        kinds(entry["other_activations"]) if probed else "?",
        entry["cam_layer"] or ("none" if probed else "?"),
        entry["twin"] or "-",
        entry["imagenet_weights"],
    ]
    return "\t".join(map(str, cells))


def check_names(names: tuple[str, ...], found: list[tuple[str, ModuleType]]) -> None:
    """Refuse, before any output, a name that none of these backends knows: one line, with
    the known names closest to it."""
    known = {name for _, catalog in found for name in catalog.names()}
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if not found or not unknown:
        return
    shown = []
    for name in unknown:
        close = difflib.get_close_matches(name.lower(), sorted(known), n=3, cutoff=0.6)
        shown.append(f"{name} (did you mean {', '.join(close)}?)" if close else name)
    where = " or ".join(backend for backend, _ in found)
    raise GbpError(f"no model named {', '.join(shown)} in {where}; `gbp models` lists every name")


def models_command(names: tuple[str, ...], backend: str | None, as_json: bool) -> int:
    """List (or describe the named) models of each installed backend."""
    found = list(catalogs(backend))
    check_names(names, found)
    if not as_json:
        click.echo("\t".join(COLUMNS))
    for _, catalog in found:
        wanted = [n for n in names if n in catalog.names()] if names else None
        if names and not wanted:
            continue
        for info in catalog.catalog(wanted):
            entry = record(info, catalog.imagenet_weights(info.model))
            click.echo(json.dumps(entry) if as_json else line(entry))
    return 0
