"""Running batches of tiles through a network as fast as the device allows, backing off on memory.

Inference-only settings live here: ``torch.inference_mode`` (no autograd bookkeeping), batch norms
folded into the convolutions before them (a fifth of a U-Net's CPU time otherwise), channels-last
memory layout (oneDNN and cuDNN convolutions run much faster on it: 2.6x for a U-Net on this
project's CPU), autocast to the chosen precision, and on CUDA pinned host memory with non-blocking
copies (the direct DMA path). On a CPU the activations freed by one pass are reused by the next
where the program tuned malloc (`engine.host_memory`). When the device runs out of memory the batch
is halved and the work continues, and the user is told once.

Test-time augmentation (``tta``) averages the blended values of the eight flips and quarter turns of
each tile, each turned back first: eight times the computation for a smoother, less orientation-
biased map.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from engine.device import is_out_of_memory
from engine.errors import DeviceError
from engine.progress import Reporter

# On a CPU one 512² tile's activations already overflow the caches: larger passes only thrash them
# (a U-Net of base width 16 ran 2.1 MPix/s one 512² tile at a time, 1.7 with 8 tiles per pass), so
# a CPU pass holds at most this many pixels; small tiles are still grouped.
CPU_PASS_PIXELS = 128 * 128 * 8

# Turns a batch of network inputs and the network's raw outputs into the values that get blended.
TileTransform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Folds each eval-mode batch norm that directly follows a convolution in a Sequential into it.

    In eval mode a batch norm is a fixed per-channel affine map, so the convolution can absorb it:
    same outputs (to rounding), one pass over the activations fewer.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(1, len(module)):
            conv, norm = module[index - 1], module[index]
            if isinstance(norm, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d | nn.ConvTranspose2d):
                module[index - 1] = fuse_conv_bn_eval(
                    conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d)
                )
                module[index] = nn.Identity()
    return model


class TileForward:
    """Calls ``model`` on ``(N, bands, H, W)`` numpy batches and returns blended-value arrays.

    A GPU computes ``batch_size`` tiles per pass; a CPU fewer when they are large (see
    ``CPU_PASS_PIXELS``).

    Args:
        model: a network in eval mode, already on ``device``; its batch norms get folded in place.
        device: where it runs.
        autocast: the autocast dtype, or None for float32.
        batch_size: tiles per forward pass; halved (and kept halved) on out-of-memory.
        transform: maps ``(inputs, outputs)`` to ``(N, channels, H, W)`` float32 on the device.
        reporter: told once when the batch size had to shrink.
        tta: average the values over the eight flips and quarter turns of each tile.
    """

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        autocast: torch.dtype | None,
        batch_size: int,
        transform: TileTransform,
        reporter: Reporter,
        tta: bool = False,
    ) -> None:
        self.model = fold_batch_norms(model).to(memory_format=torch.channels_last)
        self.device = device
        self.autocast = autocast
        self.batch_size = batch_size
        self.transform = transform
        self.reporter = reporter
        self.tta = tta
        self._warned = False

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Values for every tile, computed a pass of at most ``batch_size`` tiles at a time."""
        results = []
        start = 0
        while start < len(tiles):
            chunk = tiles[start : start + self.tiles_per_pass(tiles.shape[-2] * tiles.shape[-1])]
            try:
                results.append(self._forward(chunk))
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                self._shrink(exc)
                continue
            start += len(chunk)
        return np.concatenate(results) if len(results) > 1 else results[0]

    def tiles_per_pass(self, tile_pixels: int) -> int:
        """How many tiles of ``tile_pixels`` pixels one forward pass takes (see the class)."""
        if self.device.type == "cuda":
            return self.batch_size
        return max(1, min(self.batch_size, CPU_PASS_PIXELS // tile_pixels))

    def _forward(self, chunk: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(chunk)
        if self.device.type == "cuda":
            inputs = inputs.pin_memory()
        inputs = inputs.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None),
        ):
            values = self._augmented(inputs) if self.tta else self.transform(inputs, self.model(inputs))
        return values.float().contiguous().cpu().numpy()

    def _augmented(self, inputs: torch.Tensor) -> torch.Tensor:
        """The mean of the values of the 8 dihedral views of ``inputs``, each turned back."""
        total = None
        for turns in range(4):
            for flip in (False, True):
                view = torch.rot90(inputs, turns, dims=(-2, -1))
                view = (view.flip(-1) if flip else view).contiguous(memory_format=torch.channels_last)
                values = self.transform(view, self.model(view)).float()
                values = torch.rot90(values.flip(-1) if flip else values, -turns, dims=(-2, -1))
                total = values if total is None else total + values
        assert total is not None
        return total / 8

    def _shrink(self, exc: RuntimeError) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size == 1:
            raise DeviceError(
                f"The {self.device.type.upper()} ran out of memory even for a single tile. "
                "Use a smaller --tile, or --device cpu."
            ) from exc
        self.batch_size //= 2
        if not self._warned:
            self._warned = True
            self.reporter.on_message(
                "warning",
                f"The {self.device.type.upper()} ran out of memory; continuing with batch size "
                f"{self.batch_size} (use --batch-size to start there next time).",
            )
