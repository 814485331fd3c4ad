"""keras.applications' own models with their own ImageNet weights, through Keras's own cache: for
`keras:NAME`, and for the twins TensorFlow explains with Keras's weights (DenseNet, VGG)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

from . import env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import keras
from keras.src.backend.config import keras_home
from keras.src.utils import file_utils

from ..base import BackendError
from ..downloads import quiet_download
from ..reasons import first_line

_get_file = file_utils.get_file  # Keras's own, which `imagenet_model` wraps


def keras_models_dir() -> Path:
    """Where keras.applications caches weights: $KERAS_HOME/models, as Keras itself decides."""
    base = os.path.expanduser(keras_home())
    if not os.access(base, os.W_OK):  # Keras falls back to /tmp/.keras
        base = os.path.join("/tmp", ".keras")
    return Path(base) / "models"


def imagenet_model(
    builder: str, files: str = "", make: Callable[[], keras.Model] | None = None
) -> keras.Model:
    """keras.applications.<builder> with its ImageNet weights through Keras's own cache, logits
    out (`make` builds it, if more than the builder's call is needed). Keras names the file it
    wants (seen by wrapping its get_file); offline, or with a damaged file that Keras would
    delete, the error is one line naming the file and its folder. `files` tells what else
    --weights PATH takes."""
    wanted: list[tuple[str, str]] = []

    def checked(fname: str, origin: str, *args: object, **kwargs: object) -> str:
        wanted.append((fname, origin))
        cached, digest = keras_models_dir() / fname, kwargs.get("file_hash")
        if digest and cached.is_file() and not file_utils.validate_file(str(cached), digest):
            check = "SHA-256" if len(str(digest)) == 64 else "MD5"
            raise BackendError(
                f"the cached ImageNet weights {cached} fail Keras's {check} check; replace the "
                f"file (from {origin}) or pass --weights PATH"
            )
        return _get_file(fname, origin, *args, **kwargs)

    def own() -> keras.Model:
        return getattr(keras.applications, builder)(weights="imagenet", classifier_activation=None)

    try:
        with mock.patch.object(file_utils, "get_file", checked), quiet_download():
            return (make or own)()
    except BackendError:
        raise
    except Exception as e:  # offline: Keras raises a plain Exception("URL fetch failure …")
        if not wanted:
            raise BackendError(f"keras.applications.{builder}: {first_line(e)}") from None
        fname, origin = wanted[-1]
        raise BackendError(
            f"ImageNet weights {fname} are not cached and could not be downloaded "
            f"({first_line(e)}): put {origin} in {keras_models_dir()}/ (set KERAS_HOME to move "
            f"it), or pass --weights PATH{files}, or --weights random to try the pipeline on an "
            f"untrained network"
        ) from None


@contextlib.contextmanager
def warnings_only_on_success() -> Iterator[None]:
    """Keras warns on its way to a load error ("Skipping nested container …"); a failed load is
    answered by gbp's one line alone, while a load that works passes its warnings on."""
    with warnings.catch_warnings(record=True) as caught:
        yield
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
