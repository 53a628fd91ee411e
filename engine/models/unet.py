"""U-Net for per-pixel classification of multispectral patches.

The classic encoder-decoder of Ronneberger et al. (2015): two 3x3 convolutions per level, max-pooling
down, a 2x2 transposed convolution up and the encoder's features concatenated back in, so the decoder
recovers the fine boundaries that pooling loses. Padding keeps every level the size of its input, so
a tile of H x W gives logits of H x W.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two conv3x3-BN-ReLU layers: one U-Net level.

    The convolutions carry no bias because the batch norm that follows cancels it.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def check_input_size(images: torch.Tensor, size_multiple: int) -> None:
    """Refuse tiles whose height or width the network cannot halve ``depth`` times.

    Failing here names the fix; failing later would be a cryptic concatenation error or, for the
    autoencoder, an output silently smaller than the input.
    """
    height, width = images.shape[-2:]
    if height % size_multiple or width % size_multiple:
        raise ValueError(
            f"Input height and width ({height}, {width}) must be multiples of {size_multiple}; "
            "pad the tile (inference does this) or choose a patch size that is such a multiple."
        )


class UNet(nn.Module):
    """U-Net producing ``num_classes`` logits per pixel from any number of input bands.

    Args:
        in_channels: number of input bands.
        num_classes: number of output classes (logits, no softmax).
        base_width: channels of the first level; each level below doubles it.
        depth: number of pooling steps; inputs must be multiples of ``2**depth``.
        pixel_width: hidden channels of a per-pixel path (two 1x1 convolutions from the bands
            straight to the logits, added to the U-Net's); 0 for none.
    """

    task: ClassVar[str] = "segmentation"

    def __init__(
        self, in_channels: int, num_classes: int, base_width: int = 32, depth: int = 4, pixel_width: int = 0
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.size_multiple = 2**depth
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList([double_conv(in_channels, widths[0])])
        self.encoder.extend(double_conv(widths[level], widths[level + 1]) for level in range(depth))
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(widths[level + 1], widths[level], kernel_size=2, stride=2)
            for level in reversed(range(depth))
        )
        self.decoder = nn.ModuleList(
            double_conv(2 * widths[level], widths[level]) for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.pixel = (
            nn.Sequential(
                nn.Conv2d(in_channels, pixel_width, kernel_size=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(pixel_width, num_classes, kernel_size=1),
            )
            if pixel_width
            else None
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_channels, H, W)`` images to ``(N, num_classes, H, W)`` logits."""
        check_input_size(images, self.size_multiple)
        skips = []
        features = self.encoder[0](images)
        for level in self.encoder[1:]:
            skips.append(features)
            features = level(self.pool(features))
        for upsample, level, skip in zip(self.upsample, self.decoder, reversed(skips), strict=True):
            features = level(torch.cat([skip, upsample(features)], dim=1))
        logits = self.head(features)
        return logits if self.pixel is None else logits + self.pixel(images)
