"""The ncnn engine: vidsr's network as ncnn files, run by ncnn on the CPU or a Vulkan device.

Frames stay torch tensors on the CPU (colour, padding, tiles and their blending are the
runner's, as for torch); each image of a batch goes through one ncnn extractor. On the CPU it
computes in fp32 (ncnn's own threads, as many as torch is given); on a Vulkan device in fp16
storage and arithmetic where the device stores fp16 and the precision asked is fp16, else fp32.
A failed allocation (ncnn's -100) is :class:`DeviceOutOfMemory`, which the runner recovers from
like torch's: smaller batches, then smaller tiles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping
from typing import Any, Literal

import numpy as np
import torch

from vidsr.errors import ModelError, VidsrError
from vidsr.models import LoadedModel
from vidsr.models.ncnn_export import NcnnFiles, export_ncnn
from vidsr.upscale.memory import DeviceOutOfMemory
from vidsr.upscale.vulkan import ncnn_module, vulkan_device

__all__ = ["NCNN_OUT_OF_MEMORY", "NcnnEngine"]

NCNN_OUT_OF_MEMORY = -100  # what ncnn's layers return when an allocation fails
_FP16_OPTIONS = ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic")
_BF16_OPTIONS = ("use_bf16_storage", "use_bf16_packed")


class NcnnEngine:
    """``model`` in ncnn: on Vulkan device ``gpu``, or on the CPU where ``gpu`` is None.

    Args:
        model: one of vidsr's own networks (RRDBNet, SRVGGNetCompact); exported once and cached.
        gpu: the Vulkan device's index, or None for the CPU.
        fp16: fp16 storage and arithmetic (Vulkan only; the CPU computes in fp32).
        options: ncnn ``Option`` fields set over vidsr's own (bench/engines.py measures them).
    """

    name: Literal["ncnn"] = "ncnn"
    tensor_device = torch.device("cpu")

    def __init__(
        self,
        model: LoadedModel,
        *,
        gpu: int | None,
        fp16: bool = False,
        options: Mapping[str, int | bool] | None = None,
    ) -> None:
        self._ncnn = ncnn_module()
        self.files: NcnnFiles = export_ncnn(model)
        self.gpu = gpu
        if gpu is not None:
            vulkan_device(gpu)  # SettingsError for a device that is not there
        # The engine's own memory pools, so a failed pass's memory can be given back (release_memory):
        # ncnn's pools keep what they allocated for reuse, and reuse only for requests of about its size.
        ncnn = self._ncnn
        if gpu is None:
            pools: tuple[Any, ...] = (ncnn.UnlockedPoolAllocator(), ncnn.PoolAllocator())
        else:
            device = ncnn.get_gpu_device(gpu)
            pools = (ncnn.VkBlobAllocator(device), ncnn.VkBlobAllocator(device), ncnn.VkStagingAllocator(device))
        self._net = self._load(model.name, gpu=gpu, fp16=fp16 and gpu is not None, pools=pools, options=options or {})
        self._pools = pools  # after the net: the net (and its blobs) go before their pools when the engine goes

    def _load(
        self, name: str, *, gpu: int | None, fp16: bool, pools: tuple[Any, ...], options: Mapping[str, int | bool]
    ) -> Any:
        net = self._ncnn.Net()
        own = net.opt
        if gpu is None:
            own.blob_allocator, own.workspace_allocator = pools
        else:
            own.blob_vkallocator, own.workspace_vkallocator, own.staging_vkallocator = pools
        own.use_vulkan_compute = gpu is not None
        own.lightmode = True  # intermediate blobs are freed as soon as they are read
        own.num_threads = torch.get_num_threads()  # the process's share of the CPU, as torch's
        for flag in _FP16_OPTIONS:
            setattr(own, flag, fp16)
        for flag in _BF16_OPTIONS:
            setattr(own, flag, False)
        for field, value in options.items():
            if not hasattr(own, field):
                raise VidsrError(f"ncnn has no option {field!r}")
            setattr(own, field, value)
        if gpu is not None:
            net.set_vulkan_device(gpu)
        if net.load_param(str(self.files.param)) != 0 or net.load_model(str(self.files.bin)) != 0:
            raise ModelError(f"ncnn could not load {name} from {self.files.param} (a damaged cache? delete it)")
        return net

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Each image through its own extractor, its output copied once, straight into the batch."""
        batch: torch.Tensor | None = None
        for index, image in enumerate(images):
            with self._extracted(image) as output:
                if batch is None:
                    batch = torch.empty((len(images), *output.shape), dtype=torch.float32)
                batch[index].numpy()[...] = output
        assert batch is not None, "an empty batch"
        return batch

    @contextlib.contextmanager
    def _extracted(self, image: torch.Tensor) -> Generator[np.ndarray, None, None]:
        """The network's output for ``image`` as a view of ncnn's own memory, valid inside the block."""
        # ncnn.Mat does not keep the array alive: this name does, until extract has returned.
        pixels = np.ascontiguousarray(image.detach().to("cpu", torch.float32).numpy())
        extractor = self._net.create_extractor()
        try:
            extractor.input(self.files.input_blob, self._ncnn.Mat(pixels))
            status, output = extractor.extract(self.files.output_blob)
            if status == NCNN_OUT_OF_MEMORY:
                raise DeviceOutOfMemory(f"ncnn could not allocate on {self._where()} for a {tuple(image.shape)} input")
            if status != 0:
                raise VidsrError(f"ncnn failed on {self._where()} with code {status}")
            yield np.asarray(output)
            del output
        finally:
            extractor.clear()
            del extractor, pixels

    def _where(self) -> str:
        return "the CPU" if self.gpu is None else f"vulkan:{self.gpu}"

    def release_memory(self) -> None:
        """Give back what the pools hold, so smaller tiles find the memory the failed pass took."""
        for pool in self._pools:
            pool.clear()
