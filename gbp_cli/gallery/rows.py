"""The gallery's rows: what the page shows of each input, and the thumbnails it shows.

Rows are plain dicts, stored as they are in OUT/index.json (see gbp_cli/gallery.py). Paths in a
row are relative to OUT, where the page lives, so links work from file:// wherever OUT is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

from gbp_cli.inputs.find import mirrored
from gbp_cli.inputs.preprocess import to_rgb
from gbp_cli.outputs.atomic import AtomicFile

THUMBS = ".thumbs"
THUMB, WIDE_THUMB = 224, 1200  # longest side in pixels: a row's pictures; sanity's figures
_JPEG = {"format": "JPEG", "quality": 82, "optimize": True}


# --- rows ------------------------------------------------------------------------------------


def explain_rows(out_dir: Path, records: list[dict]) -> list[dict]:
    """One row per explain record (`gbp_cli.cli.results.result_record`), thumbnails made."""
    rows, jobs = [], []
    for record in records:
        row = _base(out_dir, "explain", str(record["input"]))
        rows.append(row)
        if record.get("error") is not None:
            row.update(status="failed", error=str(record["error"]))
            continue
        files = [Path(p) for p in (*record.get("files", ()), *record.get("kept", ()))]
        row["status"] = "explained" if record.get("files") else "kept"
        target = record.get("target") or _target_from_png(files)
        if target:
            row.update(label=target["label"], index=target["index"])
            row["probability"] = round(float(target["probability"]), 6)
        if record.get("top_k"):
            row["top"] = [
                [t["index"], t["label"], round(t["probability"], 6)] for t in record["top_k"]
            ]
        if record.get("random_weights"):
            row["random"] = True
        row["files"] = [_relative(f, out_dir) for f in files]
        row["maps"] = _maps(files, record.get("methods", ()), out_dir)
        jobs += _thumb_jobs(out_dir, row, THUMB)
    _make_thumbnails(out_dir, jobs)
    return rows


def sanity_rows(out_dir: Path, entries: list[dict]) -> list[dict]:
    """One row per `gbp sanity` input: {input, files: [plot, grid], records} or {input, error}."""
    from gbp_cli.sanity.cascade import CLASS_CHECK, NEARLY_THE_SAME

    rows, jobs = [], []
    for entry in entries:
        row = _base(out_dir, "sanity", str(entry["input"]))
        rows.append(row)
        if entry.get("error") is not None:
            row.update(status="failed", error=str(entry["error"]))
            continue
        plot, grid = (Path(p) for p in entry["files"])
        row.update(status="explained", files=[_relative(p, out_dir) for p in (plot, grid)])
        row["maps"] = [
            {"method": "similarity against depth", "file": row["files"][0], "_source": plot},
            {"method": "maps", "file": row["files"][1], "_source": grid},
        ]
        columns = ("spearman_abs", "spearman", "ssim", "hog_pearson")
        records = entry.get("records", ())
        row["table"] = [
            [r["method"], r["stage"], *(round(r[c], 4) for c in columns)] for r in records
        ]
        row["warnings"] = [
            f"the {r['method']} map of the least likely class is nearly the one of the top-1 "
            f"class (Spearman {r['spearman_abs']:.2f}): it shows the image, not the class"
            for r in records
            if r["stage"] == CLASS_CHECK and r["spearman_abs"] >= NEARLY_THE_SAME
        ]
        jobs += _thumb_jobs(out_dir, row, WIDE_THUMB)
    _make_thumbnails(out_dir, jobs)
    return rows


def _base(out_dir: Path, kind: str, name: str) -> dict:
    """Fields every row has: the key it merges by is the input's real path."""
    return {
        "kind": kind,
        "key": os.path.realpath(name),
        "input": name,
        "photo": _relative(Path(name), out_dir),
    }


def _relative(path: Path, out_dir: Path) -> str:
    """`path` as a link from the page, which lives in OUT."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))).as_posix()


def _maps(files: list[Path], methods: Iterable[str], out_dir: Path) -> list[dict]:
    """Each method's first picture (`stem[.class].method.format.png`); a panel if a method has
    none (only `npy`, or only `--format panel`)."""
    pictures = [(f, f.name.split(".")) for f in files if f.suffix == ".png"]
    maps, missing = [], False
    for method in methods:
        found = next(((f, p) for f, p in pictures if len(p) >= 4 and p[-3] == method), None)
        if found is None:
            missing = True
            continue
        file, parts = found
        maps.append(
            {
                "method": method,
                "format": parts[-2],
                "file": _relative(file, out_dir),
                "_source": file,
            }
        )
    panel = next((f for f, p in pictures if len(p) >= 3 and p[-2] == "panel"), None)
    if missing and panel is not None:
        maps.append({"method": "panel", "file": _relative(panel, out_dir), "_source": panel})
    return maps


def _target_from_png(files: list[Path]) -> dict | None:
    """The explained class of kept outputs, from the text chunks every gbp PNG carries."""
    for file in files:
        if file.suffix != ".png":
            continue
        try:
            with Image.open(file) as image:
                target, probability = image.info["gbp:target"], image.info["gbp:probability"]
            index, label = target.split(";")[0].split(" ", 1)
            return {
                "index": int(index),
                "label": label,
                "probability": float(probability.split(";")[0]),
            }
        except (OSError, KeyError, ValueError, SyntaxError):
            continue
    return None


# --- thumbnails ------------------------------------------------------------------------------

Job = tuple[Path, Path, int, dict]  # picture, its thumbnail, longest side, the dict to name it in


def _thumb_jobs(out_dir: Path, row: dict, size: int) -> list[Job]:
    """The photo's and each map's thumbnail: a map's mirrors its path under OUT/.thumbs/maps, a
    photo's its mirrored input path under OUT/.thumbs/inputs."""
    thumbs = out_dir / THUMBS
    jobs = [(Path(row["input"]), thumbs / "inputs" / f"{mirrored(row['input'])}.jpg", THUMB, row)]
    for entry in row.get("maps", ()):
        jobs.append((entry.pop("_source"), thumbs / "maps" / f"{entry['file']}.jpg", size, entry))
    return jobs


def _make_thumbnails(out_dir: Path, jobs: list[Job]) -> None:
    """Make every thumbnail (decoding and resizing release the GIL: threads help)."""
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        made = list(pool.map(lambda job: _thumbnail(*job[:3]), jobs))
    for (_, target, _, owner), ok in zip(jobs, made, strict=True):
        if ok:
            owner["thumb"] = _relative(target, out_dir)


def _thumbnail(source: Path, target: Path, size: int) -> bool:
    """A small JPEG of `source` at `target`, unless an up-to-date one is there; False if the
    picture cannot be read (the page then shows "no preview")."""
    try:
        made = target.stat() if target.exists() else None
        if made and made.st_size and made.st_mtime >= source.stat().st_mtime:
            return True
        with Image.open(source) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at 1/2 … 1/8 scale, much faster
            picture = to_rgb(ImageOps.exif_transpose(image))
        picture.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
        # Atomic, but not fsynced (5 ms a file here): a thumbnail is a cache, and an empty one
        # left by a crash is made again.
        with AtomicFile(target, overwrite=True) as temp:
            picture.save(temp, **_JPEG)
        return True
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return False
