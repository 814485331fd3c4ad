"""One-line reasons from the frameworks' many-line errors.

A user's error line should say what is wrong with their file. The frameworks' messages open with
preambles ("A total of 2 objects could not be loaded. Example error message for …:") or with
advice gbp must never pass on (torch: re-run with `weights_only=False`, which runs the file's
code). These functions keep the reason and drop the rest. Nothing here imports a framework.
"""

from __future__ import annotations

import pickletools
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

# Keras's preamble when some objects in a weights file do not fit; the reason is the next line.
_KERAS_PREAMBLE = re.compile(
    r"^(?:A total of \d+ objects could not be loaded\.\s*)?"
    r"Example error message for (?:object )?(?P<what>.*):$"
)
_KERAS_NAME = re.compile(r"\bname=([^,>\s]+)")
# A Keras variable's repr ends in its values, which can fill a screen on one line.
_VARIABLE_VALUE = re.compile(r", value=.*$")

WHOLE_MODEL = (
    "this file holds a whole pickled model, which gbp will not unpickle; "
    "save model.state_dict() instead"
)
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_MODULE_PACKAGE = "torch.nn.modules."  # where every nn.Module a whole model holds comes from


def first_line(error: BaseException) -> str:
    """An exception's first line: enough to say what went wrong, never a traceback.

    After a Keras preamble that only announces an example, the example is the reason; the
    object it is about is named in front of it.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    preamble = _KERAS_PREAMBLE.match(lines[0])
    if preamble is None or len(lines) < 2:
        return lines[0]
    reason = _VARIABLE_VALUE.sub(">", lines[1])
    name = _KERAS_NAME.search(preamble.group("what"))
    return f"{name.group(1)}: {reason}" if name else reason


def unpickling_reason(path: Path, error: BaseException) -> str:
    """Why `torch.load(path, weights_only=True)` failed, without torch's advice to unpickle
    with weights_only=False."""
    text = str(error)
    unsupported = _UNSUPPORTED_GLOBAL.search(text)
    if unsupported is not None:
        name = unsupported.group(1)
        if name.startswith(_MODULE_PACKAGE) or any(
            g.startswith(_MODULE_PACKAGE) for g in pickled_globals(path)
        ):
            return WHOLE_MODEL
        return f"it holds a {name}, which gbp will not unpickle"
    if isinstance(error, EOFError):
        return "the file is empty or cut short"
    if isinstance(error, KeyError) or "invalid load key" in text:
        return "not a file that torch.save wrote"
    detail = text.split("WeightsUnpickler error:", 1)[-1]
    return _first_sentence(first_line(RuntimeError(detail))) if detail.strip() else "unreadable"


def _first_sentence(line: str) -> str:
    """torch continues a reason with what it suspects and what to try; the reason is enough."""
    return re.split(r"(?<=[^.\s]{2})\.\s", line, maxsplit=1)[0].rstrip(".")


def pickled_globals(path: Path) -> Iterator[str]:
    """The classes and functions a torch.save file refers to, read from its pickle opcodes
    without running any of them (protocol 2, which torch.save writes)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("/data.pkl")]
                streams = [archive.read(names[0])] if names else []
        else:  # the legacy format: magic number, protocol, system info, then the object
            streams = [path.read_bytes()]
        for data in streams:
            yield from _globals(data)
    except Exception:  # a damaged file: what was found so far is all there is
        return


def _globals(data: bytes) -> Iterator[str]:
    start = 0
    for _ in range(4):  # the legacy format holds up to four pickles in a row
        stop = start
        for opcode, arg, position in pickletools.genops(data[start:]):
            if opcode.name in ("GLOBAL", "INST"):
                yield str(arg).replace(" ", ".")
            stop = start + position + 1
        if stop >= len(data):
            return
        start = stop
