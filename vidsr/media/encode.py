"""Encode upscaled planes into a video-only work file, each frame at its source timestamp.

The work file is NUT, FFmpeg's own container: it holds any codec and keeps the source
time base exactly (no millisecond rounding, no shifting of negative timestamps), so
the final mux into the user's container sees the timestamps the source had.
"""

# Strict typing, less the unknown-type checks: PyAV types add_stream() and encode() only in part.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import IO

import av
import av.error
import av.video.plane
import av.video.stream
import numpy as np

from vidsr.errors import OutputError, SettingsError
from vidsr.media.aspect import SQUARE
from vidsr.media.container import close_output, failure_reason, open_output
from vidsr.media.frame_arrays import plane_rows
from vidsr.planes import ColourSpec, OutputBatch, PlaneLayout

WORK_FORMAT = "nut"

_MATRIX_TAGS = {"bt601": 6, "bt709": 1, "bt2020": 9}  # AVColorSpace: smpte170m, bt709, bt2020nc
_RANGE_TAGS = {False: 1, True: 2}  # AVColorRange: MPEG (limited), JPEG (full)
_PIX_FMT_LAYOUTS = {
    "yuv420p": PlaneLayout(kind="yuv", bit_depth=8, chroma_shift=(1, 1)),
    "yuv422p": PlaneLayout(kind="yuv", bit_depth=8, chroma_shift=(1, 0)),
    "yuv444p": PlaneLayout(kind="yuv", bit_depth=8, chroma_shift=(0, 0)),
    "yuv420p10le": PlaneLayout(kind="yuv", bit_depth=10, chroma_shift=(1, 1)),
    "yuv422p10le": PlaneLayout(kind="yuv", bit_depth=10, chroma_shift=(1, 0)),
    "yuv444p10le": PlaneLayout(kind="yuv", bit_depth=10, chroma_shift=(0, 0)),
}


# Encoder threads, fixed so that the same job gives the same file on any machine: x264 and x265
# code the video differently for each thread count, and left to themselves they choose it from
# the core count. 8 is about what x264 chooses itself on 5 or 6 cores; it covers the encoder's
# share of a CPU render (about a tenth of the network's CPU time) up to about 48 cores, and it
# keeps the memory of a 4K encode modest. Only where the encoder is the bottleneck on many
# cores (a GPU render of a light model) would the encoder's own choice be faster; 0 gives it back.
ENCODER_THREADS = 8


@dataclass(frozen=True)
class EncodeSettings:
    """What the user chooses about the output video; ``pix_fmt`` None follows the source depth."""

    codec: str = "libx264"
    crf: int = 18
    preset: str = "auto"  # see automatic_preset
    pix_fmt: str | None = None
    threads: int = ENCODER_THREADS  # fixed: the output does not depend on the machine (0: the encoder decides)


AUTO_PRESET = "auto"
ENCODER_SHARE = 0.10  # the most of the network's CPU time the encoder should take

# x264's CPU time per output pixel at each preset, as the network arithmetic (FLOP) the same CPU
# time computes in bf16. Measured side by side on a 2-core AVX512-BF16 CPU at 1280x720: medium 37,
# faster 23, veryfast 14 core-ns a pixel, against 2.2 core-ps a FLOP for the network.
_X264_PRESET_COST = {"medium": 17_000.0, "faster": 10_500.0, "veryfast": 6_400.0}


def automatic_preset(network_flops_per_pixel: float) -> str:
    """The best-compressing x264 preset whose CPU time stays within a tenth of the network's.

    The encoder shares the CPU with the network, so what a preset costs depends on the model:
    medium is 0.8 % of realesrgan-x4plus's work but about 20 % of realesr-animevideov3's, where
    veryfast (8 %) renders 10-15 % faster for files about 15 % larger at equal quality. With a
    GPU the network leaves the CPU, and a light network's frames come faster still.
    """
    for preset, cost in _X264_PRESET_COST.items():
        if cost <= ENCODER_SHARE * network_flops_per_pixel:
            return preset
    return "veryfast"


def with_automatic_preset(settings: EncodeSettings, network_flops_per_pixel: float) -> EncodeSettings:
    """``settings`` with "auto" replaced by the preset chosen for this network."""
    if settings.preset != AUTO_PRESET:
        return settings
    if settings.codec in ("libx264", "libx265"):
        return replace(settings, preset=automatic_preset(network_flops_per_pixel))
    if settings.codec == "libsvtav1":
        return replace(settings, preset="8")
    return replace(settings, preset="default")


def output_pix_fmt(settings: EncodeSettings, source_bit_depth: int) -> str:
    """The output pixel format: the user's, or 4:2:0 at 8 bits (10 for a deeper source)."""
    codec = _codec(settings.codec)
    if settings.pix_fmt is not None:
        _check_pix_fmt(settings.pix_fmt, codec)
        return settings.pix_fmt
    if source_bit_depth > 8 and "yuv420p10le" in _writable_formats(codec):
        return "yuv420p10le"
    return "yuv420p"


# ---- settings checked before any work, each refusal with the choices -----------------------------

_X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
_SVTAV1_PRESETS = tuple(str(preset) for preset in range(14))  # 0 slowest and best .. 13 fastest
_CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (1, 63)}  # SVT-AV1 takes 0 as "unset"
_NVENC_CQ_RANGE = (0, 51)
# The video encoders worth suggesting, in order; a message lists those this PyAV build has.
_SUGGESTED_ENCODERS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "h264_nvenc", "hevc_nvenc", "av1_nvenc")


def check_encode_settings(settings: EncodeSettings) -> None:
    """Refuse, before any work, encoder settings that cannot work, naming the valid choices: an
    encoder that is not a video encoder of this build, a preset or CRF the encoder does not take,
    a pixel format it cannot encode or vidsr cannot write, a negative thread count."""
    codec = _codec(settings.codec)
    _check_preset(settings)
    _check_crf(settings)
    if settings.pix_fmt is not None:
        _check_pix_fmt(settings.pix_fmt, codec)
    if settings.threads < 0:
        raise SettingsError(f"encoder threads {settings.threads}: give 1 or more, or 0 to let the encoder choose")


def video_encoders() -> list[str]:
    """The video encoders vidsr suggests that this PyAV build has, best known first."""
    return [name for name in _SUGGESTED_ENCODERS if name in av.codecs_available]


def _check_preset(settings: EncodeSettings) -> None:
    name, preset = settings.codec, settings.preset
    if preset == AUTO_PRESET:
        return
    if name in ("libx264", "libx265"):
        if preset not in _X26X_PRESETS:
            raise SettingsError(f"--preset {preset}: {name} takes auto, or {', '.join(_X26X_PRESETS)}")
    elif name == "libsvtav1":
        if preset not in _SVTAV1_PRESETS:
            raise SettingsError(f"--preset {preset}: libsvtav1 takes auto, or 0 (slowest, smallest) to 13 (fastest)")
    elif preset != "default":
        raise SettingsError(f"--preset {preset}: vidsr sets no preset for {name}; leave --preset at auto")


def _check_crf(settings: EncodeSettings) -> None:
    name = settings.codec
    low, high = _NVENC_CQ_RANGE if name.endswith("_nvenc") else _CRF_RANGES.get(name, (None, None))
    if low is None or high is None or low <= settings.crf <= high:
        return
    raise SettingsError(f"--crf {settings.crf}: {name} takes {low} (best) to {high} (smallest)")


def _check_pix_fmt(pix_fmt: str, codec: av.Codec) -> None:
    writable = _writable_formats(codec)
    if pix_fmt in writable:
        return
    if pix_fmt not in _PIX_FMT_LAYOUTS:
        reason = "vidsr does not write it"
    else:
        reason = f"{codec.name} cannot encode it"
    raise SettingsError(f"--pix-fmt {pix_fmt}: {reason}; choose one of {', '.join(writable)}")


def _writable_formats(codec: av.Codec) -> list[str]:
    """The pixel formats vidsr writes that ``codec`` encodes (all of vidsr's if it does not say)."""
    supported = {fmt.name for fmt in codec.video_formats or ()}
    return [name for name in _PIX_FMT_LAYOUTS if not supported or name in supported]


def pix_fmt_layout(pix_fmt: str) -> PlaneLayout:
    return _PIX_FMT_LAYOUTS[pix_fmt]


def _codec(name: str) -> av.Codec:
    """The video encoder ``name``; SettingsError naming the video encoders there are otherwise."""
    choices = ", ".join(video_encoders())
    try:
        codec = av.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        raise SettingsError(f"--codec {name}: this PyAV build has no such encoder; choose one of {choices}") from None
    if codec.type != "video":
        raise SettingsError(f"--codec {name} is {_a(codec.type)} encoder; choose a video encoder: {choices}")
    return codec


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _codec_options(settings: EncodeSettings) -> dict[str, str]:
    """Quality and speed options in each encoder family's own words."""
    name = settings.codec
    if name in ("libx264", "libx265"):
        preset = {} if settings.preset == AUTO_PRESET else {"preset": settings.preset}  # the codec's own default
        return {"crf": str(settings.crf), **preset}
    if name == "libsvtav1":
        return {"crf": str(settings.crf), "preset": settings.preset if settings.preset.isdigit() else "8"}
    if name.endswith("_nvenc"):
        return {"cq": str(settings.crf), "rc": "vbr"}
    return {}


class VideoWriter:
    """A video-only work file (or in-memory file) that receives OutputBatches in presentation order."""

    def __init__(
        self,
        path: Path | IO[bytes],
        *,
        width: int,
        height: int,
        time_base: Fraction,
        frame_rate: Fraction | None,
        settings: EncodeSettings,
        pix_fmt: str,
        colour: ColourSpec,
        sample_aspect_ratio: Fraction = SQUARE,
    ) -> None:
        """``sample_aspect_ratio`` is the output's pixel shape (see ``output_sample_aspect_ratio``);
        the encoder writes it into the bitstream, where every container finds it."""
        self.path = path
        self.width, self.height = width, height
        self.time_base = time_base
        self.pix_fmt = pix_fmt
        self._container = open_output(path, WORK_FORMAT, {"avoid_negative_ts": "disabled"})
        self.sample_aspect_ratio = sample_aspect_ratio
        try:
            self._stream = self._add_stream(settings, frame_rate, colour)
        except BaseException:
            self._container.close()
            raise

    def _add_stream(
        self, settings: EncodeSettings, frame_rate: Fraction | None, colour: ColourSpec
    ) -> av.video.stream.VideoStream:
        stream = self._container.add_stream(settings.codec, rate=frame_rate, options=_codec_options(settings))
        if not isinstance(stream, av.video.stream.VideoStream):
            raise SettingsError(f"--codec {settings.codec} is not a video encoder")
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        context = stream.codec_context
        context.time_base = self.time_base
        # x264 in frame-thread mode: its coded video then does not depend on the thread count up to
        # 4 (PyAV's default, slice threads, puts one slice a thread into the bitstream).
        context.thread_type = "FRAME"
        context.thread_count = settings.threads
        context.colorspace = _MATRIX_TAGS[colour.matrix]
        context.color_range = _RANGE_TAGS[colour.full_range]
        context.color_primaries = colour.primaries
        context.color_trc = colour.transfer
        if self.sample_aspect_ratio != SQUARE:  # square pixels stay unsaid, as before
            context.sample_aspect_ratio = self.sample_aspect_ratio
        return stream

    def write(self, batch: OutputBatch) -> None:
        batch.wait()
        for slot, pts in enumerate(batch.pts):
            frame = self._frame(tuple(plane[slot] for plane in batch.planes), pts)
            self._mux(self._stream.encode(frame))

    def _frame(self, planes: tuple[np.ndarray, ...], pts: int) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, self.pix_fmt)
        for target, source in zip(frame.planes, planes):
            _copy_into_plane(target, source)
        frame.pts = pts
        frame.time_base = self.time_base
        return frame

    def _mux(self, packets: list[av.Packet[av.video.stream.VideoStream]]) -> None:
        try:
            self._container.mux(packets)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {failure_reason(exc)}") from None

    def close(self) -> None:
        """Flush the encoder and close the file; the file is complete only after this."""
        try:
            self._mux(self._stream.encode())
        finally:
            close_output(self._container, self.path)

    def abort(self) -> None:
        """Close without flushing, after an error elsewhere; the file is left incomplete."""
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError):
            pass


def _copy_into_plane(plane: av.video.plane.VideoPlane, source: np.ndarray) -> None:
    plane_rows(plane, source.dtype)[: source.shape[0], : source.shape[1]] = source
