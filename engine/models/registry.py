"""Architecture names and hyper-parameters → ``nn.Module``.

A model file stores a name and a dict of hyper-parameters instead of code, so loading never runs
anything the file supplies. The values come from a file that may be damaged or hand-edited, so every
one is checked, and bounded so that a typo cannot ask for a network that exhausts memory.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from engine.errors import ModelFileError
from engine.models.autoencoder import ConvAutoencoder
from engine.models.unet import UNet

ARCHITECTURES: dict[str, type[nn.Module]] = {"unet": UNet, "conv_autoencoder": ConvAutoencoder}

# Upper bounds of every integer hyper-parameter; far above any sensible value, far below harmful ones.
HYPERPARAMETER_LIMITS = {
    "in_channels": 1024,
    "num_classes": 1024,
    "base_width": 512,
    "depth": 6,
    "latent_channels": 1024,
    "pixel_width": 1024,
}
# The deepest level has base_width * 2**depth channels; a 3x3 convolution there has ~9 * widest**2
# weights, so this bounds a single layer to about 150 MB of float32.
WIDEST_LAYER_LIMIT = 2048


def build_model(architecture: str, hyperparameters: dict[str, Any]) -> nn.Module:
    """Build an untrained network from its registry name and constructor arguments.

    Raises:
        ModelFileError: the name is unknown, or an argument is missing, unexpected, not an integer
            or out of range. The message names the argument.
    """
    model_class = ARCHITECTURES.get(architecture) if isinstance(architecture, str) else None
    if model_class is None:
        raise ModelFileError(
            f"Unknown model architecture {architecture!r}; this version of ModelAI knows "
            f"{', '.join(sorted(ARCHITECTURES))}. The model may come from a newer ModelAI: update the app."
        )
    if not isinstance(hyperparameters, dict):
        raise ModelFileError(
            f"Hyper-parameters of {architecture!r} must be a JSON object, "
            f"not {type(hyperparameters).__name__}."
        )
    _check_names(architecture, model_class, hyperparameters)
    for name, value in hyperparameters.items():
        limit = HYPERPARAMETER_LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ModelFileError(
                f"Bad hyper-parameter for {architecture!r}: {name}={value!r} "
                f"must be an integer from 1 to {limit}."
            )
    arguments = inspect.signature(model_class).bind(**hyperparameters)
    arguments.apply_defaults()
    widest = arguments.arguments["base_width"] * 2 ** arguments.arguments["depth"]
    if widest > WIDEST_LAYER_LIMIT:
        raise ModelFileError(
            f"Bad hyper-parameters for {architecture!r}: base_width * 2**depth = {widest} channels is more "
            f"than {WIDEST_LAYER_LIMIT}; lower base_width or depth."
        )
    return model_class(**hyperparameters)


def _check_names(architecture: str, model_class: type[nn.Module], hyperparameters: dict[str, Any]) -> None:
    """Refuse unknown and missing constructor arguments with their names, not a TypeError."""
    parameters = inspect.signature(model_class).parameters
    unknown = sorted(set(hyperparameters) - set(parameters))
    if unknown:
        raise ModelFileError(
            f"Unknown hyper-parameter(s) for {architecture!r}: {', '.join(map(str, unknown))}; "
            f"it accepts {', '.join(parameters)}."
        )
    missing = [name for name, p in parameters.items() if p.default is p.empty and name not in hyperparameters]
    if missing:
        raise ModelFileError(f"Missing hyper-parameter(s) for {architecture!r}: {', '.join(missing)}.")
