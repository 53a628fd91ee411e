"""The networks: output shapes, real learning, and the registry's refusal of bad hyper-parameters."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from engine.errors import ModelFileError
from engine.models import ARCHITECTURES, ConvAutoencoder, UNet, build_model
from engine.models.registry import HYPERPARAMETER_LIMITS


@pytest.mark.parametrize("bands", [1, 4, 13])
@pytest.mark.parametrize(("base_width", "depth"), [(4, 2), (8, 3)])
def test_unet_gives_one_logit_per_class_and_pixel(bands: int, base_width: int, depth: int) -> None:
    model = UNet(bands, num_classes=3, base_width=base_width, depth=depth).eval()
    size = 2 * model.size_multiple
    with torch.no_grad():
        logits = model(torch.randn(2, bands, size, size + model.size_multiple))
    assert model.size_multiple == 2**depth
    assert logits.shape == (2, 3, size, size + model.size_multiple)


@pytest.mark.parametrize("bands", [1, 4, 13])
@pytest.mark.parametrize(("base_width", "depth", "latent"), [(4, 2, 2), (8, 3, 8)])
def test_autoencoder_reconstructs_the_input_shape(
    bands: int, base_width: int, depth: int, latent: int
) -> None:
    model = ConvAutoencoder(bands, base_width=base_width, depth=depth, latent_channels=latent).eval()
    images = torch.randn(3, bands, 2 * model.size_multiple, model.size_multiple)
    with torch.no_grad():
        reconstruction = model(images)
    assert model.size_multiple == 2**depth
    assert reconstruction.shape == images.shape


def test_autoencoder_latent_is_a_real_bottleneck() -> None:
    model = ConvAutoencoder(4, base_width=8, depth=3, latent_channels=2).eval()
    images = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        latent = model.encoder(images)
    assert latent.shape == (1, 2, 4, 4)
    assert latent.numel() * 128 == images.numel()


def test_autoencoder_output_is_linear_so_it_can_reach_negative_values() -> None:
    assert isinstance(ConvAutoencoder(3, base_width=4, depth=1).decoder[-1], nn.Conv2d)


@pytest.mark.parametrize(
    "model", [UNet(2, 2, base_width=4, depth=2), ConvAutoencoder(2, base_width=4, depth=2)]
)
def test_size_that_is_not_a_multiple_is_refused_with_the_fix(model: nn.Module) -> None:
    with pytest.raises(ValueError, match="multiples of 4; pad the tile"):
        model(torch.randn(1, 2, 12, 10))


@pytest.mark.parametrize(
    "model", [UNet(3, 2, base_width=4, depth=2), ConvAutoencoder(3, base_width=4, depth=2)]
)
def test_channels_last_gives_the_same_result(model: nn.Module) -> None:
    model.eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(images)
        model.to(memory_format=torch.channels_last)
        actual = model(images.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_unet_overfits_one_small_batch() -> None:
    torch.manual_seed(0)
    images = torch.randn(2, 3, 16, 16)
    # Labels that depend on the pixels (a threshold on band 0) and on position (a square).
    labels = (images[:, 0] > 0).long()
    labels[:, 4:12, 4:12] = 2
    model = UNet(3, num_classes=3, base_width=8, depth=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5


def test_registry_builds_each_architecture() -> None:
    unet = build_model("unet", {"in_channels": 5, "num_classes": 4, "base_width": 4, "depth": 2})
    autoencoder = build_model("conv_autoencoder", {"in_channels": 5, "base_width": 4, "depth": 2})
    assert isinstance(unet, UNet)
    assert (unet.in_channels, unet.num_classes, unet.size_multiple) == (5, 4, 4)
    assert isinstance(autoencoder, ConvAutoencoder)
    assert set(ARCHITECTURES) == {"unet", "conv_autoencoder"}
    assert {cls.task for cls in ARCHITECTURES.values()} == {"segmentation", "anomaly"}


def test_every_constructor_argument_has_a_limit() -> None:
    for model_class in ARCHITECTURES.values():
        assert set(inspect.signature(model_class).parameters) <= set(HYPERPARAMETER_LIMITS)


@pytest.mark.parametrize(
    ("architecture", "hyperparameters", "message"),
    [
        ("resnet", {"in_channels": 3}, "Unknown model architecture 'resnet'.*conv_autoencoder, unet"),
        (None, {}, "Unknown model architecture None"),
        ("unet", [3, 2], "must be a JSON object, not list"),
        ("unet", {"in_channels": 3}, "Missing hyper-parameter.*num_classes"),
        ("unet", {"in_channels": 3, "num_classes": 2, "dropout": 1}, "Unknown hyper-parameter.*dropout"),
        ("unet", {"in_channels": 0, "num_classes": 2}, "in_channels=0 must be an integer from 1 to 1024"),
        ("unet", {"in_channels": 3, "num_classes": 2, "depth": 7}, "depth=7 must be"),
        ("unet", {"in_channels": 3, "num_classes": 2, "depth": True}, "depth=True must be"),
        ("unet", {"in_channels": 3.0, "num_classes": 2}, "in_channels=3.0 must be"),
        ("unet", {"in_channels": "3", "num_classes": 2}, "in_channels='3' must be"),
        ("conv_autoencoder", {"in_channels": 3, "base_width": 512, "depth": 6}, "32768 channels.*lower"),
    ],
)
def test_registry_names_what_is_wrong(architecture: object, hyperparameters: object, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        build_model(architecture, hyperparameters)  # type: ignore[arg-type]
