"""`gbp convert`: weights between torchvision .pth and Keras .weights.h5, either way, for every
network with a twin in both frameworks (DenseNet, VGG, ResNet, MobileNetV2, EfficientNet-Lite0).

The backends read and convert: a .pth through backends/checkpoints.py, a Keras file through the
TF backend's twins (imported only when a Keras file is involved, TensorFlow quietly first). This
module owns the file writing, so that a reader never sees half a file and nothing that exists is
replaced unless the user asked.
"""

from __future__ import annotations

from pathlib import Path

from gbp_cli.backends.checkpoints import checkpoint_bytes, read_checkpoint
from gbp_cli.backends.twins.convert import architecture, kind, num_classes
from gbp_cli.errors import GbpError
from gbp_cli.outputs.atomic import AtomicFile, write_atomic


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
    if destination.exists() and not overwrite:
        raise GbpError(f"{destination} exists; pass --overwrite to replace it")
    if direction[0] == "torch":
        state = read_checkpoint(source, str(source))
        arch = architecture(state, str(source))
        from gbp_cli.backends.tf.twins import save_keras

        target = AtomicFile(destination, overwrite, suffix=".weights.h5")
        with target as temp:
            save_keras(state, arch, temp, str(source))
        published = target.published
    else:
        from gbp_cli.backends.tf.twins import read_keras

        state, arch = read_keras(source, str(source))
        published = write_atomic(destination, checkpoint_bytes(state), overwrite)
    if not published:
        raise GbpError(f"{destination} appeared while converting; it was left alone")
    return f"{arch}, {num_classes(state, arch)} classes"
