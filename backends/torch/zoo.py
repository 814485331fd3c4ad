"""Where a torch model comes from: torchvision's zoo (its cache, a seed, or a state_dict) or the
user's own factory, with the preprocessing its weights were trained with."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision import models

from ..base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NORMALIZATIONS,
    BackendError,
    ModelSpec,
    Preprocessing,
    WeightsSpec,
)
from ..checkpoints import read_checkpoint
from ..downloads import quiet_download
from ..reasons import first_line
from ..twins.densenet import BLOCKS, DEFAULT, architecture_of
from ..twins.registry import load_all
from . import lite0 as lite0_torch
from .weights import load_strict

AUX = ("AuxLogits.", "aux1.")  # Inception v3's and GoogLeNet's auxiliary classifiers
CROP = 0.875  # torchvision's and Keras's crop: 224 of a 256 resize


@dataclass(frozen=True)
class Built:
    """A model ready to probe, and what describes it."""

    module: nn.Module
    name: str  # the architecture ("densenet121"), or the factory as the user named it
    preprocessing: Preprocessing
    rebuild: Callable[..., nn.Module] | None = None  # (num_classes=) a fresh init of the network
    warnings: tuple[str, ...] = ()
    twin: str | None = None  # the same network in the TF backend


def build(spec: ModelSpec, weights: WeightsSpec) -> Built:
    """The model `--model` names, with the weights `--weights` asks for."""
    if spec.kind in ("keras-file", "keras-app"):
        raise BackendError(f"--model {spec.name} is a Keras model: use --backend tf")
    if spec.kind == "factory":
        return factory_model(spec, weights)
    if spec.name == lite0_torch.NAME:
        module = lite0_torch.build(weights)
        if weights.kind == "random":  # numpy-seeded: the TF twin holds the very same network
            twin = load_all()[lite0_torch.NAME]
            load_strict(module, twin.random_state(1000, weights.seed), "random weights")
        return Built(
            module,
            lite0_torch.NAME,
            lite0_torch.PREPROCESSING,
            twin=lite0_torch.NAME,  # its twin re-draws it for gbp sanity: no rebuild
        )
    return zoo_model(spec, weights)


def classifiers() -> list[str]:
    """torchvision's image classifiers (not its detection, segmentation or video models)."""
    return models.list_models(module=models)


def zoo_model(spec: ModelSpec, weights: WeightsSpec) -> Built:
    """A torchvision classifier: its DEFAULT ImageNet weights, seeded (a twin in numpy, so that
    the TF twin is the same network), or a state_dict; --model densenet201, the default, takes
    any torchvision DenseNet file for the DenseNet it is."""
    arch = spec.name
    if arch not in classifiers():
        close = difflib.get_close_matches(arch, classifiers(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BackendError(
            f"--model {arch}: not a torchvision classifier{hint}; "
            "for your own model pass package.module:factory"
        )
    if weights.kind == "imagenet":
        module = imagenet_model(arch)
    elif weights.kind == "random" and arch in load_all():  # numpy-seeded: the TF twin matches
        random = load_all()[arch].random_state(1000, weights.seed)
        module = from_state(arch, random, "random weights")
    elif weights.kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.seed)
            module = models.get_model(arch, **arch_kwargs(arch, aux=False))
    else:
        assert weights.path is not None
        source = f"--weights {weights.path}"
        state = read_checkpoint(weights.path, source)
        if arch == DEFAULT:  # the default model: any torchvision DenseNet file says which
            arch = architecture_of(state, source)
        module = from_state(arch, state, source)
    aux = any(key.startswith(AUX) for key in module.state_dict())
    rebuild = functools.partial(models.get_model, arch, **arch_kwargs(arch, aux))
    return Built(
        module,
        arch,
        zoo_preprocessing(arch, spec),
        rebuild,
        twin=arch if arch in load_all() else None,
    )


def arch_kwargs(arch: str, aux: bool) -> dict[str, Any]:
    """What torchvision's own weights impose on the builder, so that a seeded or fine-tuned
    network is the one those weights describe (ViT's image size, Inception's input transform)."""
    meta = models.get_model_weights(arch).DEFAULT.meta
    if arch.startswith("vit_"):
        return {"image_size": meta["min_size"][0]}
    if arch == "maxvit_t":
        return {"input_size": meta["min_size"]}
    if arch in ("inception_v3", "googlenet"):
        return {"transform_input": True, "aux_logits": aux, "init_weights": True}
    return {}


def zoo_preprocessing(arch: str, spec: ModelSpec = ModelSpec()) -> Preprocessing:  # noqa: B008
    """The DEFAULT weights' own transforms (known offline): crop, resize, interpolation, mean,
    std. `--input-size` and `--normalize`, if given, override them."""
    transform = models.get_model_weights(arch).DEFAULT.transforms()
    mean, std = tuple(transform.mean), tuple(transform.std)
    imagenet = np.allclose(mean, IMAGENET_MEAN) and np.allclose(std, IMAGENET_STD)
    given = Preprocessing(
        size=transform.crop_size[0],
        resize=transform.resize_size[0],
        interpolation=transform.interpolation.value,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        name="imagenet" if imagenet else "torchvision",
    )
    if spec.input_size is None and spec.normalize is None:
        return given
    return user_preprocessing(spec, given)


def user_preprocessing(spec: ModelSpec, base: Preprocessing | None = None) -> Preprocessing:
    """--input-size (default 224) and --normalize imagenet|caffe|tf|none (default imagenet)."""
    base = base or Preprocessing()
    size = spec.input_size or base.size
    resize = base.resize if size == base.size else round(size / CROP)
    if spec.normalize is None:
        return dataclasses.replace(base, size=size, resize=resize)
    if spec.normalize not in NORMALIZATIONS:
        raise BackendError(
            f"--normalize {spec.normalize}: expected one of {', '.join(NORMALIZATIONS)}"
        )
    mean, std, bgr = NORMALIZATIONS[spec.normalize]
    return dataclasses.replace(
        base, size=size, resize=resize, mean=mean, std=std, bgr=bgr, name=spec.normalize
    )


def from_state(arch: str, state: Mapping[str, np.ndarray], source: str) -> nn.Module:
    """torchvision's `arch`, sized by the file: its head's rows give the class count (a
    fine-tuned head of any size), its auxiliary classifiers whether Inception keeps them."""
    kwargs = arch_kwargs(arch, aux=any(key.startswith(AUX) for key in state))
    model = _empty(arch, kwargs)
    heads = [k for k, v in model.state_dict().items() if v.ndim and v.shape[0] == 1000]
    given = [k for k in heads if k in state]
    if given and state[given[-1]].shape[0] != 1000:
        model = _empty(arch, kwargs | {"num_classes": int(state[given[-1]].shape[0])})
    load_strict(model, state, source)
    return model


def _empty(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    """The network with no time spent initialising weights about to be replaced (on the meta
    device), unless its builder computes with tensors (RegNet): then on the CPU."""
    try:
        with torch.device("meta"):
            return models.get_model(arch, **kwargs)
    except (NotImplementedError, RuntimeError):
        return models.get_model(arch, **kwargs)


def imagenet_model(arch: str) -> nn.Module:
    """The DEFAULT ImageNet weights through torchvision's cache ($TORCH_HOME), or one error."""
    spec = models.get_model_weights(arch).DEFAULT
    filename = spec.url.rsplit("/", 1)[-1]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    was_cached = (folder / filename).is_file()
    try:
        with quiet_download():
            return models.get_model(arch, weights=spec)
    except Exception as e:  # offline: URLError/OSError; a damaged cache: RuntimeError and others
        if was_cached:
            raise BackendError(
                f"the cached ImageNet weights {folder / filename} cannot be loaded "
                f"({first_line(e)}); delete the file to download it again, or pass --weights PATH"
            ) from None
        shared = " (set TORCH_HOME to move it; the same file serves --backend tf)"
        raise BackendError(
            f"ImageNet weights {filename} are not cached and could not be downloaded "
            f"({first_line(e)}): put {spec.url} in {folder}/"
            f"{shared if arch in BLOCKS else ' (set TORCH_HOME to move it)'}, "
            "or pass --weights PATH, or --weights random to try the pipeline on an untrained "
            "network"
        ) from None


def imagenet_state(name: str) -> dict[str, np.ndarray]:
    """A twin's ImageNet weights as torch loads them, as arrays: what the TF backend converts."""
    if name == lite0_torch.NAME:
        module = lite0_torch.build(WeightsSpec("imagenet"))
    else:
        module = imagenet_model(name)
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def given_model(module: nn.Module, spec: ModelSpec) -> Built:
    """A user's model object (the Python API's `model=net`), deep-copied: gbp puts its copy in
    eval mode, freezes its parameters and moves it to the device and to channels-last, while
    the user's own model, which may be training, keeps all of that as it was. Its weights are
    its own; `spec` gives its input size and normalisation."""
    if not isinstance(module, nn.Module):
        raise BackendError(f"model={type(module).__name__}: not a torch.nn.Module")
    try:
        own = copy.deepcopy(module)
    except Exception as e:
        raise BackendError(
            f"model={type(module).__name__}: cannot be copied ({_raised(e)}); gbp explains a "
            "copy so that your model is left as it is: save its state_dict and pass "
            "model='package.module:factory' with weights=PATH"
        ) from e
    for parameter in own.parameters():
        parameter.grad = None  # the copy needs no accumulated gradients
    return Built(own, spec.name, user_preprocessing(spec))


def factory_model(spec: ModelSpec, weights: WeightsSpec) -> Built:
    """`package.module:factory`, imported as uvicorn does (the current folder first on the path),
    called with no arguments; its weights from --weights PATH, or its own with --weights random."""
    module_name, _, attr = spec.name.rpartition(":")
    if weights.kind == "imagenet":
        raise BackendError(
            f"--model {spec.name} is your own model, and gbp has no ImageNet weights for it: "
            "pass --weights PATH (its state_dict), or --weights random to keep the factory's own"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    importlib.invalidate_caches()
    try:
        found: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as e:  # a module that calls sys.exit() must not end gbp
        raise BackendError(
            f"--model {spec.name}: cannot import {module_name} ({_raised(e)})"
        ) from e
    for part in attr.split("."):
        if not hasattr(found, part):
            raise BackendError(f"--model {spec.name}: {module_name} has no attribute {attr!r}")
        found = getattr(found, part)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weights.seed)
        try:
            model = found()
        except (Exception, SystemExit) as e:
            raise BackendError(f"--model {spec.name}: {attr}() {_verb(e)} {_raised(e)}") from e
    if not isinstance(model, nn.Module):
        raise BackendError(
            f"--model {spec.name}: {attr}() returned a {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    notes: tuple[str, ...] = ()
    if weights.kind == "file":
        assert weights.path is not None
        source = f"--weights {weights.path}"
        load_strict(model, read_checkpoint(weights.path, source), source)
    else:
        notes = (
            f"--weights random: {spec.name} keeps the weights {attr}() gave it (called after "
            f"torch.manual_seed({weights.seed})); gbp does not re-initialise them",
        )
    return Built(model, spec.name, user_preprocessing(spec), None, notes)


def _verb(error: BaseException) -> str:
    return "called" if isinstance(error, SystemExit) else "raised"


def _raised(error: BaseException) -> str:
    """What user code did, in a few words: sys.exit(2), or ValueError: its first line."""
    if isinstance(error, SystemExit):
        return f"sys.exit({error.code!r})" if error.code is not None else "sys.exit()"
    return f"{type(error).__name__}: {first_line(error)}"
