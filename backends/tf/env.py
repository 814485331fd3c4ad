"""Import TensorFlow safely, and quietly where asked to.

- Its native libraries log INFO lines to stderr at import, which TF_CPP_MIN_LOG_LEVEL no longer
  reaches. Where that level is set above 0 (the `gbp` command sets 3 unless the user chose),
  they are held back; anything else is passed on. The library itself sets nothing for the
  process: a notebook's TensorFlow logs stay the user's.
- Importing triton (which torch pulls in) *after* TensorFlow crashes the process (seen with
  tensorflow 2.21 and triton 3.8); importing it first is safe and takes about 0.1 s.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator

_NOISE = ("I0000 ", "WARNING: All log messages before absl::InitializeLog()")
_CUDA_PROBE = "failed call to cuInit"  # TF looking for a GPU on a machine that has none


@contextlib.contextmanager
def native_info_held_back() -> Iterator[None]:
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":  # TensorFlow's default: all of it
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if not line.startswith(_NOISE) and _CUDA_PROBE not in line:
                    print(line, file=sys.stderr)


def _triton_installed() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


if "tensorflow" not in sys.modules and "triton" not in sys.modules and _triton_installed():
    import triton  # noqa: F401

with native_info_held_back():
    import tensorflow  # noqa: F401
