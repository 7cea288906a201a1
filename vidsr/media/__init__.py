"""The media layer: what a file holds, decoding it to planes, encoding planes, the final mux.

PyAV (FFmpeg in-process) only: nothing here imports torch or another vidsr layer, so reading
and writing video stays cheap and usable on its own. It may import ``vidsr.errors`` and
``vidsr.planes``, the data every layer shares.
"""

from __future__ import annotations

from vidsr.media.aspect import display_aspect_ratio, output_sample_aspect_ratio
from vidsr.media.container import (
    accepts_video_codec,
    check_output_container,
    close_output,
    container_refusal,
    format_accepts,
    open_input,
    open_output,
    output_format_name,
    rewind,
    seek_before,
    video_stream,
)
from vidsr.media.decode import Segmentation, decode_batches, frames_from
from vidsr.media.deinterlace import Deinterlacer, FieldOrder
from vidsr.media.encode import (
    ENCODER_THREADS,
    EncodeSettings,
    VideoWriter,
    automatic_preset,
    check_encode_settings,
    output_pix_fmt,
    pix_fmt_layout,
    video_encoders,
    with_automatic_preset,
)
from vidsr.media.frame_arrays import frame_planes
from vidsr.media.probe import StreamSummary, VideoInfo, probe
from vidsr.media.remux import count_video_packets, finalize
from vidsr.media.streams import LeftOutVideo, choose_video_stream
from vidsr.media.truncation import Truncation
from vidsr.media.versions import media_versions
from vidsr.timecode import name_time, parse_time, show_time

__all__ = [
    "Deinterlacer",
    "ENCODER_THREADS",
    "EncodeSettings",
    "FieldOrder",
    "LeftOutVideo",
    "accepts_video_codec",
    "Segmentation",
    "StreamSummary",
    "Truncation",
    "VideoInfo",
    "VideoWriter",
    "automatic_preset",
    "check_encode_settings",
    "check_output_container",
    "choose_video_stream",
    "close_output",
    "container_refusal",
    "count_video_packets",
    "decode_batches",
    "display_aspect_ratio",
    "finalize",
    "format_accepts",
    "frame_planes",
    "frames_from",
    "media_versions",
    "name_time",
    "open_input",
    "open_output",
    "output_format_name",
    "output_pix_fmt",
    "output_sample_aspect_ratio",
    "parse_time",
    "pix_fmt_layout",
    "probe",
    "rewind",
    "seek_before",
    "show_time",
    "video_encoders",
    "video_stream",
    "with_automatic_preset",
]
