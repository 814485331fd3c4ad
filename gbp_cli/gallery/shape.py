"""The shape of OUT/index.json: what gbp writes, and what the merge and the page's script rely on.

A data file is checked whole before anything reads it, so one of another shape (hand-edited,
damaged, another program's) is refused in one line rather than met halfway through a merge or
in the browser.

Format 2 (this one) stores links as the percent-encoded raw bytes of a path relative to OUT
(`rows.py`); format 1 stored those paths as text, and is upgraded when read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

FORMAT = 2  # bump on an incompatible change
STATUSES = ("explained", "kept", "failed")
_HREF = re.compile(r"[A-Za-z0-9_.~/%-]*")  # what urllib.parse.quote leaves: no scheme, no quote


@dataclass(frozen=True)
class Shape:
    """A kind of JSON value, named for the line that refuses a data file."""

    what: str
    fits: Callable[[object], bool]


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object) -> bool:
    return isinstance(value, str)


def list_of(shape: Shape) -> Shape:
    return Shape(
        f"a list of {shape.what}", lambda v: isinstance(v, list) and all(map(shape.fits, v))
    )


def _items(
    what: str, *kinds: Callable[[object], bool], more: Callable[[object], bool] | None = None
) -> Shape:
    """A list of one value of each of `kinds`, in order, then any number of `more`."""

    def fits(v: object) -> bool:
        if not isinstance(v, list) or len(v) < len(kinds):
            return False
        head, rest = v[: len(kinds)], v[len(kinds) :]
        known = all(k(x) for k, x in zip(kinds, head, strict=True))
        return known and (all(map(more, rest)) if more else not rest)

    return Shape(what, fits)


TEXT = Shape("text", _text)
FLAG = Shape("true or false", lambda v: isinstance(v, bool))
WHOLE = Shape("a whole number", _whole)
NUMBER = Shape("a number", _number)
HREF = Shape("a link gbp wrote", lambda v: isinstance(v, str) and _HREF.fullmatch(v) is not None)
TOP = _items("[index, label, probability]", _whole, _text, _number)
MEASURES = _items("[method, stage, numbers…]", _text, _text, more=_number)
# gbp evaluate's run: each score's name, direction and best map.
VERDICT = _items("[score, direction, best map]", _text, _text, _text)

Fields = dict[str, Shape]


def fields_problem(value: object, required: Fields, optional: Fields) -> str | None:
    """The first field of `value` that is missing or of another kind, or None."""
    if not isinstance(value, dict):
        return "is not an object"
    for name in required:
        if name not in value:
            return f"has no {name!r}"
    for name, shape in {**required, **optional}.items():
        if name in value and not shape.fits(value[name]):
            return f"has {name!r} that is not {shape.what}"
    return None


def _record(what: str, required: Fields, optional: Fields) -> Shape:
    return Shape(what, lambda v: fields_problem(v, required, optional) is None)


RUN_FIELDS: Fields = {
    **dict.fromkeys(("command", "model", "backend", "device", "precision"), TEXT),
    **dict.fromkeys(("weights", "note", "version", "finished"), TEXT),
    "random": FLAG,
    "methods": list_of(TEXT),
    "formats": list_of(TEXT),
    "seconds": NUMBER,
    "counts": Shape("counts", lambda v: isinstance(v, dict) and all(map(_whole, v.values()))),
    # gbp evaluate: its settings, the mean (and interval) per map and score, the best per score,
    # and the plot of the mean curves (a file in OUT).
    **dict.fromkeys(("baselines", "metrics"), list_of(TEXT)),
    **dict.fromkeys(("steps", "seed"), WHOLE),
    "interval": TEXT,
    "summary": list_of(MEASURES),
    "scores": list_of(VERDICT),
    "plot": HREF,
}
ROW_REQUIRED: Fields = {
    "kind": Shape(
        '"explain", "sanity" or "evaluate"', lambda v: v in ("explain", "sanity", "evaluate")
    ),
    "key": TEXT,
    "input": TEXT,
    "status": Shape('"explained", "kept" or "failed"', lambda v: v in STATUSES),
}


def row_fields(link: Shape, file: Shape) -> Fields:
    """A row's optional fields, where a link is `link` and a listed file `file`."""
    return {
        "photo": link,
        "thumb": link,
        **dict.fromkeys(("error", "label"), TEXT),
        "index": WHOLE,
        "probability": NUMBER,
        "random": FLAG,
        "top": list_of(TOP),
        "files": list_of(file),
        "maps": list_of(
            _record(
                "a map {method, file}",
                {"method": TEXT, "file": link},
                {"format": TEXT, "thumb": link},
            )
        ),
        "table": list_of(MEASURES),
        "warnings": list_of(TEXT),
    }


ROW_FIELDS = {
    1: row_fields(TEXT, TEXT),
    FORMAT: row_fields(HREF, _items("[text, link]", _text, HREF.fits)),
}


def problem(data: object) -> str | None:
    """What makes `data` other than a data file of format 1 or this one, or None."""
    if not isinstance(data, dict):
        return "is not a JSON object"
    if data.get("generator") != "gbp":
        return "does not say gbp wrote it"
    for name in ("runs", "rows"):
        if not isinstance(data.get(name), list):
            return f"has {name!r} that is not a list" if name in data else f"has no {name!r}"
    for i, run in enumerate(data["runs"]):
        found = fields_problem(run, {}, RUN_FIELDS)
        if found is not None:
            return f"runs[{i}] {found}"
    for i, row in enumerate(data["rows"]):
        found = fields_problem(row, ROW_REQUIRED, ROW_FIELDS[data["format"]])
        if found is not None:
            return f"rows[{i}] {found}"
    return None


def upgraded(row: dict) -> dict:
    """A format-1 row in this format: its paths, text then, become links."""

    def link(text: str) -> str:
        return quote(text.encode("utf-8", "backslashreplace"))

    row = {**row}
    for name in ("photo", "thumb"):
        if name in row:
            row[name] = link(row[name])
    if "files" in row:
        row["files"] = [[f, link(f)] for f in row["files"]]
    if "maps" in row:
        row["maps"] = [
            {**m, **{k: link(m[k]) for k in ("file", "thumb") if k in m}} for m in row["maps"]
        ]
    return row
