"""VGG19 features for the perceptual loss, defined here (no torchvision) and loaded from a file.

The layers sit at the same indices as torchvision's ``vgg19().features``, so its state dict
(``features.N.weight`` / ``features.N.bias``, e.g. ``vgg19-dcbb9e9d.pth``) loads unchanged.
Features are taken *before* the activation, as ESRGAN does: ``conv5_4`` is the output of
that convolution, not of the ReLU after it (the ReLU would zero most of those responses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidsr.errors import ModelError

# torchvision's configuration "E": conv widths, "M" for a 2x2 max-pool.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# ImageNet statistics the torchvision weights were trained with (inputs are normalised by them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> dict[str, int]:
    """``conv1_1`` ... ``conv5_4`` → index in ``features`` (the ReLU after each is index + 1)."""
    names: dict[str, int] = {}
    block, conv, index = 1, 1, 0
    for entry in _VGG19_LAYOUT:
        if entry == "M":
            block, conv, index = block + 1, 1, index + 1
        else:
            names[f"conv{block}_{conv}"] = index
            conv, index = conv + 1, index + 2
    return names


VGG19_CONV_INDEX = _layer_names()


class VGG19Features(nn.Module):
    """VGG19's convolutional part up to the deepest requested layer, frozen, in eval mode.

    Input: RGB NCHW in 0..1 (normalised with the ImageNet mean and std inside).
    Output: ``{layer name: features before its ReLU}``.

    Args:
        layers: conv names such as ``conv5_4`` (ESRGAN) or ``conv1_2`` ... (Real-ESRGAN).
    """

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, *, layers: Iterable[str] = ("conv5_4",)) -> None:
        super().__init__()
        self.layers = tuple(layers)
        unknown = [name for name in self.layers if name not in VGG19_CONV_INDEX]
        if unknown or not self.layers:
            raise ModelError(f"unknown VGG19 layer(s) {unknown}; use names from {', '.join(VGG19_CONV_INDEX)}")
        self._capture = {VGG19_CONV_INDEX[name]: name for name in self.layers}
        last = max(self._capture)
        modules: list[nn.Module] = []
        in_channels = 3
        for entry in _VGG19_LAYOUT:
            if len(modules) > last:
                break
            if entry == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # Not in-place: the captured conv output must survive the ReLU that follows it.
                modules += [nn.Conv2d(in_channels, entry, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_channels = entry
        self.features = nn.Sequential(*modules[: last + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = (images - self.mean) / self.std
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._capture:
                out[self._capture[index]] = x
        return out


def load_vgg19(path: Path, *, layers: Iterable[str] = ("conv5_4",)) -> VGG19Features:
    """A :class:`VGG19Features` with the weights of a torchvision-format VGG19 state dict.

    Reads .pth/.pt (``weights_only``) or .safetensors; ``classifier.*`` keys are ignored and a
    DataParallel ``module.`` prefix is stripped. Raises ModelError if the file is missing or
    is not a VGG19 (naming the first missing or misshapen key).
    """
    from vidsr.models import load_state_dict_file

    network = VGG19Features(layers=layers)
    state = load_state_dict_file(Path(path))
    network.features.load_state_dict(_features_only(state, network, Path(path)))
    return network


def _features_only(state: Mapping[str, Any], network: VGG19Features, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    tensors = {
        key.removeprefix("module.").removeprefix("features."): value
        for key, value in state.items()
        if isinstance(value, torch.Tensor) and key.removeprefix("module.").startswith("features.")
    }
    needed = network.features.state_dict()
    for key, expected in needed.items():
        if key not in tensors:
            raise ModelError(
                f"{path} is not a torchvision VGG19 state dict: features.{key} is missing "
                "(expected keys features.N.weight / features.N.bias, as in vgg19-dcbb9e9d.pth)"
            )
        if tuple(tensors[key].shape) != tuple(expected.shape):
            raise ModelError(
                f"{path} is not a VGG19: features.{key} has shape {tuple(tensors[key].shape)}, "
                f"VGG19 has {tuple(expected.shape)}"
            )
    return {key: tensors[key].float() for key in needed}
