"""`gbp convert`: weights between torchvision .pth and Keras .weights.h5, either way, for every
network with a twin in both frameworks (DenseNet, VGG, ResNet, MobileNetV2, EfficientNet-Lite0).

The backends read and convert: a .pth through backends/checkpoints.py, a Keras file through the
TF backend's twins (imported only when a Keras file is involved, TensorFlow quietly first). This
module owns the file writing, so that a reader never sees half a file and nothing that exists is
replaced unless the user asked.

What --overwrite may replace: DST is one file the user names, so --overwrite is their word to
replace it, whoever wrote it (as `cp -f`), but only if it holds weights of the kind its name
says: an HDF5 file for a Keras name, a PyTorch checkpoint (zip or pickle) for a .pth. Anything
else there (a photo or notes under a weights name, a link) is left alone, as everywhere in gbp.
"""

from __future__ import annotations

import os
from pathlib import Path

from gbp_cli.backends.checkpoints import checkpoint_bytes, read_checkpoint
from gbp_cli.backends.twins.convert import architecture, kind, num_classes
from gbp_cli.errors import GbpError
from gbp_cli.outputs.atomic import AtomicFile

# How each kind of weights file begins: HDF5's signature; a PyTorch checkpoint's zip archive, or
# the pickle (protocol 2 or later) of torch's legacy format.
SIGNATURES = {"keras": (b"\x89HDF\r\n\x1a\n",), "torch": (b"PK\x03\x04", b"\x80")}
WHAT = {"keras": "an HDF5 (Keras weights) file", "torch": "a PyTorch checkpoint"}


def convert_command(source: Path, destination: Path, overwrite: bool) -> str:
    """Convert one file; returns what was converted, e.g. 'densenet201, 1000 classes'.

    Errors name each file by the path the user typed (convert has no --weights flag). Usage
    problems raise GbpError; problems with the weights themselves raise BackendError.
    """
    direction = (kind(source), kind(destination))
    if direction[0] == direction[1]:
        raise GbpError(f"{source} and {destination} are both {direction[0]} files: nothing to do")
    if direction[1] == "keras" and not destination.name.lower().endswith(".weights.h5"):
        raise GbpError(f"{destination}: Keras writes weights only to a name ending .weights.h5")
    if not source.is_file():
        raise GbpError(f"{source}: no such file")
    if os.path.lexists(destination):
        if not overwrite:
            raise GbpError(f"{destination} exists; pass --overwrite to replace it")
        replaceable(destination, direction[1])
    target = AtomicFile(destination, suffix=".weights.h5" if direction[1] == "keras" else ".part")
    try:
        if direction[0] == "torch":
            state = read_checkpoint(source, str(source))
            arch = architecture(state, str(source))
            from gbp_cli.backends.tf.twins import save_keras

            os.close(target.stage())
            save_keras(state, arch, target.temp, str(source))
        else:
            from gbp_cli.backends.tf.twins import read_keras

            state, arch = read_keras(source, str(source))
            target.fill(checkpoint_bytes(state))
        if not target.publish(overwrite=False):  # something is there now: the same rule again
            if not overwrite:
                raise GbpError(f"{destination} appeared while converting; it was left alone")
            replaceable(destination, direction[1])
            target.publish(overwrite=True)
    finally:
        target.discard()
    return f"{arch}, {num_classes(state, arch)} classes"


def replaceable(destination: Path, wanted: str) -> None:
    """Refuse (GbpError) to replace `destination` unless it is a file of weights of the kind
    `wanted` ("torch" or "keras"): --overwrite replaces the user's weights file, nothing else."""
    if destination.is_symlink() or not destination.is_file():
        raise GbpError(f"{destination} is not a regular file; it was left alone")
    try:
        with destination.open("rb") as handle:
            head = handle.read(8)
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise GbpError(f"cannot read {destination}: {reason}") from None
    if not head.startswith(SIGNATURES[wanted]):
        raise GbpError(
            f"{destination} is not {WHAT[wanted]}; --overwrite replaces only a weights file of "
            "the kind its name says, so it was left alone"
        )
