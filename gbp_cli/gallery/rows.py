"""The gallery's rows: what the page shows of each input, and the thumbnails it shows.

Rows are plain dicts, stored as they are in OUT/index.json (see gbp_cli/gallery/page.py). Rows
are made from the real paths (a name may hold bytes that are not UTF-8), never from the printable
names on stdout: a link is the path relative to OUT, where the page lives, as percent-encoded raw
bytes, which a browser resolves back to those bytes from file:// wherever OUT is; the text shown
beside it is the printable name (such bytes as `\\xNN`).

A row's photo links to the photo itself where browsers show its format (JPEG, PNG, GIF, WebP,
BMP, AVIF); a photo they do not show (HEIC/HEIF, TIFF, …) links to a JPEG of it instead, at most
VIEW pixels on its longer side, under OUT/.thumbs/photos: made, stamped and kept as thumbnails
are, so the link always opens a picture.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageOps

from gbp_cli.errors import InputError
from gbp_cli.inputs.find import mirrored, printable
from gbp_cli.inputs.formats import open_image
from gbp_cli.inputs.preprocess import to_rgb
from gbp_cli.outputs.atomic import FULL_DISK, AtomicFile, remove_stale_temps
from gbp_cli.outputs.containment import ensure_inside

THUMBS = ".thumbs"
# its folders: the photos' thumbnails, the copies of photos browsers do not show, the maps'
THUMB_FOLDERS = ("inputs", "photos", "maps")
THUMB, WIDE_THUMB = 224, 1200  # longest side in pixels: a row's pictures; sanity's figures
VIEW = 2048  # longest side of the JPEG a photo's link opens where browsers cannot show the photo
BROWSER_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "AVIF", "ICO"})
STAMP = "gbp thumbnail of "  # + what identifies the picture it was made from (its JPEG comment)
_JPEG = {"format": "JPEG", "quality": 82, "optimize": True}
_VIEW_JPEG = {"format": "JPEG", "quality": 90}


# --- rows ------------------------------------------------------------------------------------


def explain_rows(out_dir: Path, records: list[dict], started: float) -> tuple[list[dict], int]:
    """One row per explain record (`gbp_cli.cli.results.result_record`, with the real paths the
    Reporter adds under "paths"), thumbnails made; and how many stale temp files were removed
    from the thumbnails' folders (a run that started at `started` judges them)."""
    rows, jobs = [], []
    for record in records:
        real = record.get("paths") or record  # without them (a caller's own records): as printed
        row = _base(out_dir, "explain", str(real["input"]))
        rows.append(row)
        if record.get("error") is not None:
            row.update(status="failed", error=str(record["error"]))
            continue
        files = [Path(p) for p in (*real.get("files", ()), *real.get("kept", ()))]
        row["status"] = "explained" if real.get("files") else "kept"
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
        row["files"] = [_link(f, out_dir) for f in files]
        row["maps"] = _maps(files, record.get("methods", ()), out_dir)
        jobs += _thumb_jobs(out_dir, row, Path(real["input"]), THUMB)
    return rows, _make_thumbnails(out_dir, jobs, started)


def sanity_rows(out_dir: Path, entries: list[dict], started: float) -> tuple[list[dict], int]:
    """One row per `gbp sanity` input: {input, files: [plot, grid], records} or {input, error},
    with the input's real path; and how many stale temp files were removed (see explain_rows)."""
    from gbp_cli.sanity.cascade import CLASS_CHECK, NEARLY_THE_SAME

    rows, jobs = [], []
    for entry in entries:
        row = _base(out_dir, "sanity", str(entry["input"]))
        rows.append(row)
        if entry.get("error") is not None:
            row.update(status="failed", error=str(entry["error"]))
            continue
        plot, grid = (Path(p) for p in entry["files"])
        row.update(status="explained", files=[_link(p, out_dir) for p in (plot, grid)])
        row["maps"] = [
            {"method": "similarity against depth", "file": _href(plot, out_dir), "_source": plot},
            {"method": "maps", "file": _href(grid, out_dir), "_source": grid},
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
        jobs += _thumb_jobs(out_dir, row, Path(entry["input"]), WIDE_THUMB)
    return rows, _make_thumbnails(out_dir, jobs, started)


def evaluate_rows(out_dir: Path, entries: list[dict], started: float) -> tuple[list[dict], int]:
    """One row per `gbp evaluate` input: {input, target, table: [[map, score, value]…]} or
    {input, error}, with the input's real path: the photo, the class its maps explain and each
    map's scores; and how many stale temp files were removed (see explain_rows)."""
    rows, jobs = [], []
    for entry in entries:
        row = _base(out_dir, "evaluate", str(entry["input"]))
        rows.append(row)
        if entry.get("error") is not None:
            row.update(status="failed", error=str(entry["error"]))
            continue
        target = entry["target"]
        row.update(status="explained", label=target["label"], index=target["index"])
        row["probability"] = round(float(target["probability"]), 6)
        row["table"] = [list(cells) for cells in entry.get("table", ())]
        jobs += _thumb_jobs(out_dir, row, Path(entry["input"]), THUMB)
    return rows, _make_thumbnails(out_dir, jobs, started)


def _base(out_dir: Path, kind: str, path: str) -> dict:
    """Fields every row has: the key it merges by is the input's real path (printable, so the
    data file is plain UTF-8); the name shown is the printable one stdout shows."""
    return {
        "kind": kind,
        "key": printable(os.path.realpath(path)),
        "input": printable(path),
        "photo": _href(Path(path), out_dir),
    }


def _relative(path: Path, out_dir: Path) -> str:
    """`path` relative to OUT, where the page lives."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))).as_posix()


def _href(path: Path, out_dir: Path) -> str:
    """`path` as a link from the page: its raw bytes relative to OUT, percent-encoded (`#`, `?`,
    `%`, spaces and bytes that are not UTF-8 alike), which a browser resolves to those bytes."""
    return quote(os.fsencode(_relative(path, out_dir)))


def _link(path: Path, out_dir: Path) -> list[str]:
    """[the text shown, the link] of a file the page lists."""
    return [printable(_relative(path, out_dir)), _href(path, out_dir)]


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
                "file": _href(file, out_dir),
                "_source": file,
            }
        )
    panel = next((f for f, p in pictures if len(p) >= 3 and p[-2] == "panel"), None)
    if missing and panel is not None:
        maps.append({"method": "panel", "file": _href(panel, out_dir), "_source": panel})
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

# picture, its JPEG, longest side, the dict to link it from, and under which key ("thumb", or
# "photo" for the copy of a photo that browsers do not show)
Job = tuple[Path, Path, int, dict, str]


def _thumb_jobs(out_dir: Path, row: dict, photo: Path, size: int) -> list[Job]:
    """The photo's and each map's thumbnail, and the photo's copy for its link where browsers do
    not show it: a map's mirrors its path under OUT/.thumbs/maps, a photo's its mirrored input
    path under OUT/.thumbs/inputs (thumbnail) and OUT/.thumbs/photos (copy)."""
    thumbs, name = out_dir / THUMBS, f"{mirrored(str(photo))}.jpg"
    jobs = [
        (photo, thumbs / "inputs" / name, THUMB, row, "thumb"),
        (photo, thumbs / "photos" / name, VIEW, row, "photo"),
    ]
    for entry in row.get("maps", ()):
        source = entry.pop("_source")
        target = thumbs / "maps" / f"{mirrored(_relative(source, out_dir))}.jpg"
        jobs.append((source, target, size, entry, "thumb"))
    return jobs


def _make_thumbnails(out_dir: Path, jobs: list[Job], started: float) -> int:
    """Make every thumbnail (decoding and resizing release the GIL: threads help), after
    checking that each stays inside OUT (containment.Outside: a link planted in OUT/.thumbs is
    never written or tidied through) and removing the temp files a killed run left in its
    folder; how many it removed."""
    removed = 0
    for folder, target in {job[1].parent: job[1] for job in jobs}.items():
        ensure_inside(out_dir, target)
        removed += remove_stale_temps(folder, started)
    if not jobs:
        return removed
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        made = list(pool.map(lambda job: _thumbnail(*job[:3], out_dir, job[4] == "photo"), jobs))
    for (_, target, _, owner, key), ok in zip(jobs, made, strict=True):
        if ok:
            owner[key] = _href(target, out_dir)
    return removed


def stamp(source: Path, size: int) -> str:
    """What identifies the picture a thumbnail is made from, cheaply and reliably: a picture
    replaced by another changes its size, inode or change time even when its modification time
    is set back (ctime cannot be), so a stale thumbnail is never kept."""
    s = source.stat()
    return f"{STAMP}{size}px {s.st_size} {s.st_mtime_ns} {s.st_ctime_ns} {s.st_ino}"


def _thumbnail(
    source: Path, target: Path, size: int, out_dir: Path, photo_link: bool = False
) -> bool:
    """A small JPEG of `source` at `target`, unless the one there was made from this very
    picture (its stamp, in the JPEG's comment); False if the picture cannot be read (the page
    then shows "no preview"). With `photo_link`, the larger copy a photo's link opens, made only
    for a format browsers do not show (False otherwise: the link stays the photo's). A full disk
    is raised: the page cannot be written either."""
    try:
        made_from = stamp(source, size)
        if not photo_link and _stamp_of(target) == made_from:
            return True
        with open_image(source) as image:  # HEIC: pillow-heif, loaded here if not yet
            if photo_link and image.format in BROWSER_FORMATS:
                return False
            if photo_link and _stamp_of(target) == made_from:
                return True
            image.draft("RGB", (size, size))  # JPEG: decode at 1/2 … 1/8 scale, much faster
            picture = to_rgb(ImageOps.exif_transpose(image))
        picture.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
        # Atomic, but not fsynced (5 ms a file here): a thumbnail is a cache, and an empty one
        # left by a crash has no stamp, so it is made again.
        with AtomicFile(target, overwrite=True, root=out_dir) as temp:
            picture.save(temp, **(_VIEW_JPEG if photo_link else _JPEG), comment=made_from.encode())
        return True
    except OSError as e:
        if e.errno in FULL_DISK:
            raise
        return False
    except (ValueError, SyntaxError, EOFError, Image.DecompressionBombError, InputError):
        return False


def _stamp_of(thumbnail: Path) -> str | None:
    """The stamp a thumbnail gbp made carries; None if there is none or it cannot be read."""
    try:
        with Image.open(thumbnail) as image:
            comment = image.info.get("comment", b"")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None
    return comment.decode("utf-8", "replace") if isinstance(comment, bytes) else None
