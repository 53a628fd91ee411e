"""Starting a new training run from an earlier model's weights (``TrainConfig.init_model``).

Interactive labelling trains many short runs on slowly growing labels; each run should start from
what the previous one learnt instead of from random weights. Unlike ``resume`` (which continues one
run: same data, schedule and epoch count), a warm start is a new run with its own data, schedule and
epochs. Weights are copied where name and shape match, so a class added since the earlier model
only leaves the final layer to learn anew; the earlier model's normalisation is kept when it read the
same bands, so the copied weights see inputs scaled as they were trained on.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from engine.errors import ModelFileError
from engine.models.file import load_model
from engine.progress import Reporter
from engine.rasters.normalize import Normalization


def warm_start(
    model: nn.Module, init_model: Path, task: str, bands: list[int], reporter: Reporter
) -> Normalization | None:
    """Copies matching weights of the model file ``init_model`` into ``model``.

    Returns:
        The earlier model's normalisation when it read the same bands, else None (compute anew).

    Raises:
        ModelFileError: the file is not a model, or a model of another task or architecture.
    """
    earlier, metadata = load_model(init_model)
    if metadata.task != task or type(earlier) is not type(model):
        raise ModelFileError(
            f"{init_model} is a {metadata.task} model ({metadata.architecture}); it cannot start a {task} "
            "training. Choose a model of the same task, or train from scratch."
        )
    target = model.state_dict()
    matching = {
        name: tensor for name, tensor in earlier.state_dict().items()
        if name in target and target[name].shape == tensor.shape
    }  # fmt: skip
    if not matching:
        raise ModelFileError(
            f"{init_model} has no weights that fit this network (another width, depth or band count). "
            "Train from scratch, or use the same network settings as that model."
        )
    model.load_state_dict(matching, strict=False)
    reporter.on_message(
        "info", f"Starting from the weights of {init_model.name} ({len(matching)} of {len(target)} tensors)."
    )
    if metadata.bands != bands:
        return None
    return Normalization.from_dict(metadata.normalization)
