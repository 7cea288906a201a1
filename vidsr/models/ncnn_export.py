"""Write vidsr's own networks (RRDBNet, SRVGGNetCompact) as ncnn ``.param`` + ``.bin`` files.

The ncnn engine runs what the torch engine runs: the graph is written from the loaded network's
own modules and fp32 weights, whatever layout the file came in (ESRGAN, BasicSR, ESRGAN+, x1 to x8,
pixel-unshuffle or pixel-shuffle, interpolated blends, the embedded models). The embedded models'
own ncnn files are not used: their graphs are Real-ESRGAN's, not vidsr's network op for op, and
one path for every model is one path to test. fp16 storage is ncnn's choice when it loads the
weights (``Option.use_fp16_storage``), so the files hold fp32 and serve every device.

ncnn's graph format, as written here: one line per layer, ``Type name inputs outputs blobs...
key=value...``; a blob read by two layers must go through a ``Split`` layer (added by
``_Graph.text``). The ``.bin`` holds, per weighted layer in ``.param`` order, a Convolution's
4-byte storage tag (0 = fp32 follows), its weights as [out][in][kh][kw] and its bias as raw fp32,
or a PReLU's slopes as raw fp32 (what :mod:`vidsr.models.ncnn` reads back).

Converted files are cached in :func:`vidsr.models.paths.cache_dir` under a name made of the
weights' content hash, the hyper-parameters and ``EXPORTER_VERSION``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vidsr.durable import atomic_write
from vidsr.errors import ModelError
from vidsr.models.arch.compact import SRVGGNetCompact
from vidsr.models.arch.rrdbnet import LEAKY_SLOPE, RESIDUAL_SCALE, RRDBNet
from vidsr.models.descriptor import LoadedModel
from vidsr.models.paths import cache_dir

__all__ = [
    "EXPORTABLE_ARCHITECTURES",
    "EXPORTER_VERSION",
    "INPUT_BLOB",
    "OUTPUT_BLOB",
    "NcnnFiles",
    "export_ncnn",
    "ncnn_graph",
]

# Bump when the graph written for a network changes, so older cached files are not reused.
EXPORTER_VERSION = 1
EXPORTABLE_ARCHITECTURES = ("RRDBNet", "SRVGGNetCompact")
INPUT_BLOB = "in0"
OUTPUT_BLOB = "out0"
PARAM_MAGIC = 7767517

# ncnn's fused activations (Convolution key 9) and its layer parameters, by their meaning.
_ACTIVATION_RELU = 1
_ACTIVATION_LEAKY = 2
_ELTWISE_SUM = 1
_INTERP_NEAREST = 1
_FP32_TAG = b"\0\0\0\0"


@dataclass(frozen=True)
class NcnnFiles:
    """An exported network: the two files ncnn loads, and the blobs to feed and extract."""

    param: Path
    bin: Path
    input_blob: str = INPUT_BLOB
    output_blob: str = OUTPUT_BLOB


@dataclass
class _Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: list[str]


@dataclass
class _Graph:
    """Layers in order, and their weights in the same order (what the .bin holds)."""

    layers: list[_Layer] = field(default_factory=list[_Layer])
    weights: list[bytes] = field(default_factory=list[bytes])

    def add(self, kind: str, inputs: Sequence[str], params: Sequence[str] = (), weights: Sequence[bytes] = ()) -> str:
        """Append a layer with one output; returns its output blob's name."""
        name = f"{kind.lower()}{len(self.layers)}"
        self.layers.append(_Layer(kind, name, list(inputs), [name], list(params)))
        self.weights.extend(weights)
        return name

    def text(self) -> str:
        """The .param file: a Split after every blob that more than one layer reads."""
        layers = _with_splits(self.layers)
        blobs = {blob for layer in layers for blob in layer.outputs}
        lines = [str(PARAM_MAGIC), f"{len(layers)} {len(blobs)}"]
        for layer in layers:
            head = [layer.type, layer.name, str(len(layer.inputs)), str(len(layer.outputs))]
            lines.append(" ".join([*head, *layer.inputs, *layer.outputs, *layer.params]))
        return "\n".join(lines) + "\n"

    def binary(self) -> bytes:
        return b"".join(self.weights)


def _with_splits(layers: list[_Layer]) -> list[_Layer]:
    readers: dict[str, int] = {}
    for layer in layers:
        for blob in layer.inputs:
            readers[blob] = readers.get(blob, 0) + 1
    copies: dict[str, list[str]] = {}
    result: list[_Layer] = []
    for layer in layers:
        inputs = [copies[blob].pop(0) if blob in copies else blob for blob in layer.inputs]
        result.append(_Layer(layer.type, layer.name, inputs, layer.outputs, layer.params))
        for blob in layer.outputs:
            count = readers.get(blob, 0)
            if count > 1:
                outputs = [f"{blob}_{index}" for index in range(count)]
                copies[blob] = list(outputs)
                result.append(_Layer("Split", f"split_{blob}", [blob], outputs, []))
    return result


# ---------------------------------------------------------------------------- layers


def _fp32(tensor: torch.Tensor) -> bytes:
    return tensor.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()


def _conv(graph: _Graph, source: str, conv: nn.Conv2d, *, activation: int = 0, slope: float = 0.0) -> str:
    """A Convolution layer (stride 1, symmetric padding: all these networks have), with an
    optional fused ReLU (``slope`` 0) or LeakyReLU."""
    kernel_h, kernel_w = conv.kernel_size
    if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or kernel_h != kernel_w:
        raise ModelError(f"a {conv} cannot be written for ncnn by vidsr")
    pad_h, pad_w = conv.padding  # pyright: ignore[reportGeneralTypeIssues]
    params = [
        f"0={conv.out_channels}",
        f"1={kernel_w}",
        f"11={kernel_h}",
        f"4={pad_w}",
        f"14={pad_h}",
        f"5={int(conv.bias is not None)}",
        f"6={conv.weight.numel()}",
    ]
    if activation == _ACTIVATION_LEAKY:
        params += [f"9={activation}", f"-23310=1,{slope:e}"]
    elif activation:
        params.append(f"9={activation}")
    weights = [_FP32_TAG, _fp32(conv.weight)] + ([_fp32(conv.bias)] if conv.bias is not None else [])
    return graph.add("Convolution", [source], params, weights)


def _sum(graph: _Graph, first: str, second: str, *, first_coefficient: float = 1.0) -> str:
    """``first * first_coefficient + second``."""
    params = ["0=1"] if first_coefficient == 1.0 else ["0=1", f"-23301=2,{first_coefficient:e},{1.0:e}"]
    return graph.add("Eltwise", [first, second], params)


def _concat(graph: _Graph, sources: Sequence[str]) -> str:
    return graph.add("Concat", sources, ["0=0"])  # axis 0 of C x H x W: the channels


def _nearest(graph: _Graph, source: str, factor: int) -> str:
    return graph.add("Interp", [source], [f"0={_INTERP_NEAREST}", f"1={float(factor):e}", f"2={float(factor):e}"])


# ---------------------------------------------------------------------------- networks


def _dense_block(graph: _Graph, x: str, block: nn.Module) -> str:
    """ResidualDenseBlock (see vidsr.models.arch.rrdbnet), ESRGAN+'s extra residuals included."""
    convs: list[nn.Conv2d] = [getattr(block, f"conv{index}") for index in range(1, 6)]
    conv1x1: nn.Conv2d | None = block.conv1x1  # pyright: ignore[reportAssignmentType]
    features = [x]
    for index, conv in enumerate(convs[:4], start=1):
        source = features[0] if len(features) == 1 else _concat(graph, features)
        out = _conv(graph, source, conv, activation=_ACTIVATION_LEAKY, slope=LEAKY_SLOPE)
        if conv1x1 is not None and index == 2:
            out = _sum(graph, out, _conv(graph, x, conv1x1))
        if conv1x1 is not None and index == 4:
            out = _sum(graph, out, features[2])
        features.append(out)
    x5 = _conv(graph, _concat(graph, features), convs[4])
    return _sum(graph, x5, x, first_coefficient=RESIDUAL_SCALE)


def _rrdbnet(graph: _Graph, x: str, network: RRDBNet) -> str:
    if network.unshuffle > 1:
        x = graph.add("Reorg", [x], [f"0={network.unshuffle}"])  # mode 0: torch's pixel_unshuffle
    feat = _conv(graph, x, network.conv_first)
    trunk = feat
    for rrdb in network.body:
        block_input = trunk
        for name in ("rdb1", "rdb2", "rdb3"):
            trunk = _dense_block(graph, trunk, getattr(rrdb, name))
        trunk = _sum(graph, trunk, block_input, first_coefficient=RESIDUAL_SCALE)
    feat = _sum(graph, _conv(graph, trunk, network.conv_body), feat)
    for conv in network.upsampling_convs:
        if network.upsampler == "pixelshuffle":
            shuffled = graph.add("PixelShuffle", [_conv(graph, feat, conv)], [f"0={network.stage_factor}"])
            feat = graph.add("ReLU", [shuffled], [f"0={LEAKY_SLOPE:e}"])
        else:
            feat = _conv(graph, _nearest(graph, feat, 2), conv, activation=_ACTIVATION_LEAKY, slope=LEAKY_SLOPE)
    feat = _conv(graph, feat, network.conv_hr, activation=_ACTIVATION_LEAKY, slope=LEAKY_SLOPE)
    return _conv(graph, feat, network.conv_last)


def _compact(graph: _Graph, x: str, network: SRVGGNetCompact) -> str:
    layers = list(network.body)
    out = x
    for index, layer in enumerate(layers):
        if not isinstance(layer, nn.Conv2d):
            continue
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(following, nn.PReLU):
            out = _conv(graph, out, layer)
            out = graph.add("PReLU", [out], [f"0={following.num_parameters}"], [_fp32(following.weight)])
        elif isinstance(following, nn.LeakyReLU):
            out = _conv(graph, out, layer, activation=_ACTIVATION_LEAKY, slope=following.negative_slope)
        elif isinstance(following, nn.ReLU):
            out = _conv(graph, out, layer, activation=_ACTIVATION_RELU)
        else:
            out = _conv(graph, out, layer)
    shuffled = graph.add("PixelShuffle", [out], [f"0={network.upscale}"])
    return _sum(graph, shuffled, _nearest(graph, x, network.upscale))


def ncnn_graph(model: LoadedModel) -> tuple[str, bytes]:
    """The .param text and .bin bytes of ``model``'s network; ModelError for a network vidsr
    does not write (spandrel's architectures)."""
    network = model.module
    graph = _Graph()
    source = graph.add("Input", [])
    if isinstance(network, RRDBNet):
        output = _rrdbnet(graph, source, network)
    elif isinstance(network, SRVGGNetCompact):
        output = _compact(graph, source, network)
    else:
        raise ModelError(
            f"{model.name} is a {model.architecture}; the ncnn engine runs {' and '.join(EXPORTABLE_ARCHITECTURES)}"
        )
    graph.layers[0] = _Layer("Input", INPUT_BLOB, [], [INPUT_BLOB], [])
    for layer in graph.layers:
        layer.inputs = [INPUT_BLOB if blob == source else blob for blob in layer.inputs]
    last = graph.layers[-1]
    assert last.name == output, "the network's output is its last layer's"
    last.outputs = [OUTPUT_BLOB]
    return graph.text(), graph.binary()


def export_key(model: LoadedModel) -> str:
    """The cache name of ``model``'s files: its weights, its hyper-parameters, this exporter."""
    described = json.dumps(
        {"architecture": model.architecture, "hyperparameters": model.hyperparameters, "weights": model.content_hash},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(f"{described}\0exporter {EXPORTER_VERSION}".encode()).hexdigest()
    return digest[:24]


def export_ncnn(model: LoadedModel, folder: Path | None = None) -> NcnnFiles:
    """``model``'s network as ncnn files, written once into ``folder`` (the cache's ``ncnn-export``)
    and reused while the weights are the same. The .bin is written first and the .param last,
    each atomically, so a .param present means both are whole."""
    folder = folder or cache_dir() / "ncnn-export"
    key = export_key(model)
    files = NcnnFiles(param=folder / f"{key}.param", bin=folder / f"{key}.bin")
    if files.param.is_file() and files.bin.is_file():
        return files
    param_text, bin_data = ncnn_graph(model)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(files.bin, lambda handle: handle.write(bin_data))
    atomic_write(files.param, lambda handle: handle.write(param_text.encode("ascii")))
    return files
