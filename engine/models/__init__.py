"""The networks the engine trains, and the registry that rebuilds them from a model file."""

from engine.models.autoencoder import ConvAutoencoder
from engine.models.registry import ARCHITECTURES, build_model
from engine.models.unet import UNet

__all__ = ["ARCHITECTURES", "ConvAutoencoder", "UNet", "build_model"]
