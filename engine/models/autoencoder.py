"""Convolutional autoencoder whose reconstruction error flags anomalous pixels.

Trained only on normal scenes, it squeezes each patch through a narrow latent (few channels at
``1 / 2**depth`` of the resolution). What it has seen often survives the squeeze; what it has not
(a spill, a new building) comes back blurred, and the per-pixel error maps it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from engine.models.unet import check_input_size


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """A 3x3 convolution (strided to halve the size when ``stride`` is 2), batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def up_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 2x2 transposed convolution that doubles the size, batch norm and ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvAutoencoder(nn.Module):
    """Fully convolutional autoencoder: any tile size that is a multiple of ``2**depth``.

    Args:
        in_channels: number of input bands, also the number of reconstructed bands.
        base_width: channels after the first convolution; each downsampling doubles it.
        depth: number of stride-2 downsamplings.
        latent_channels: channels of the bottleneck; fewer means a harder squeeze, so anomalies
            stand out more but normal detail is lost too.
    """

    task: ClassVar[str] = "anomaly"

    def __init__(
        self, in_channels: int, base_width: int = 32, depth: int = 3, latent_channels: int = 8
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.size_multiple = 2**depth
        widths = [base_width * 2**level for level in range(depth + 1)]
        encoder = [conv_bn_relu(in_channels, widths[0])]
        for level in range(depth):
            encoder += [
                conv_bn_relu(widths[level], widths[level + 1], stride=2),
                conv_bn_relu(widths[level + 1], widths[level + 1]),
            ]
        encoder.append(nn.Conv2d(widths[-1], latent_channels, kernel_size=1))
        self.encoder = nn.Sequential(*encoder)
        decoder = [conv_bn_relu(latent_channels, widths[-1])]
        for level in reversed(range(depth)):
            decoder += [
                up_bn_relu(widths[level + 1], widths[level]),
                conv_bn_relu(widths[level], widths[level]),
            ]
        decoder.append(nn.Conv2d(widths[0], in_channels, kernel_size=3, padding=1))
        self.decoder = nn.Sequential(*decoder)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruct normalised ``(N, in_channels, H, W)`` images; the output is linear."""
        check_input_size(images, self.size_multiple)
        return self.decoder(self.encoder(images))
