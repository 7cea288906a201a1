"""The final mux: the upscaled video joined with the input's audio, subtitles and chapters.

Nothing is re-encoded here unless the output container cannot hold a codec. Packets of
the two sources are merged by time, so the muxer never has to buffer a whole stream.
"""

# Strict typing, less the unknown-type checks: PyAV types add_stream(), encode() and mux() only in part.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeAlias

import av
import av.audio.stream
import av.codec.context
import av.container
import av.error
import av.packet
import av.stream
import av.video.stream

from vidsr.errors import InputError, OutputError
from vidsr.media.aspect import SQUARE, source_sample_aspect_ratio
from vidsr.media.container import (
    close_output,
    container_refusal,
    failure_reason,
    format_accepts,
    open_input,
    open_output,
)
from vidsr.media.probe import VideoInfo

Warn = Callable[[str], None]
Packet: TypeAlias = "av.packet.Packet[Any]"  # a packet of any kind of stream (not subscriptable at run time)
_TRANSCODE_AUDIO_TO = ("aac", "libopus", "flac")  # in order of preference; the first the container takes
_STREAM_TAGS_KEPT = ("language", "title", "handler_name")


def finalize(
    video_parts: Sequence[Path],
    info: VideoInfo,
    output: Path,
    *,
    output_format: str | None = None,
    warn: Warn = lambda message: None,
    sample_aspect_ratio: Fraction | None = None,
) -> None:
    """Write ``output``: the video packets of ``video_parts`` (in order), plus every other
    stream of the input that the output container can carry.

    ``sample_aspect_ratio`` is the output's pixel shape (None: what the parts' encoder wrote);
    MP4 and MOV store it beside the bitstream too, so it survives codecs that have no place for it.
    """
    with open_input(info.path) as source:
        container = open_output(output, output_format, _MUXER_OPTIONS)
        try:
            _refuse_without_timestamps(container, output)
            _mux_all(container, source, video_parts, info, _VideoOptions(sample_aspect_ratio, warn))
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(f"cannot write {output}: {failure_reason(exc)}") from None
        finally:
            close_output(container, output)


# The muxer's default (auto) shifts every stream so the smallest timestamp is 0: the AAC priming
# packet (-21.3 ms) moved Matroska output 21 ms later, and the B-frame decode times before 0 moved
# MPEG-TS output 83 ms later. Disabled, every container keeps the source's times, as `ffmpeg -c copy`.
_MUXER_OPTIONS = {"avoid_negative_ts": "disabled"}


def _refuse_without_timestamps(container: av.container.OutputContainer, output: Path) -> None:
    refusal = container_refusal(container.format.name)
    if refusal is not None:  # check_output_container says so before any work; this is the backstop
        raise OutputError(f"output {output}: {refusal}; write .mkv or .mp4 instead")


def count_video_packets(path: Path) -> int:
    """Video packets in a finished file: a cheap check that everything written is readable."""
    with open_input(path) as container:
        return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


def _mux_all(
    container: av.container.OutputContainer,
    source: av.container.InputContainer,
    video_parts: Sequence[Path],
    info: VideoInfo,
    options: _VideoOptions,
) -> None:
    container.metadata.update(_container_tags(source))
    with open_input(video_parts[0]) as first_part:
        video_out = _add_video_stream(container, first_part.streams.video[0], info, options)
    carried = _plan_other_streams(container, source, options.warn)
    chapters = source.chapters()
    if chapters:
        container.set_chapters(chapters)
    video_packets = _video_packets(video_parts, video_out)
    other_packets = _other_packets(source, carried)
    for packet in heapq.merge(video_packets, other_packets, key=_packet_seconds):
        container.mux(packet)
    for out_stream in carried.values():
        if isinstance(out_stream, _Transcoder):
            for packet in out_stream.flush():
                container.mux(packet)


@dataclass(frozen=True)
class _VideoOptions:
    sample_aspect_ratio: Fraction | None
    warn: Warn


def _add_video_stream(
    container: av.container.OutputContainer,
    part: av.video.stream.VideoStream,
    info: VideoInfo,
    options: _VideoOptions,
) -> av.video.stream.VideoStream:
    """The output's video stream, a copy of the work file's, with the source's time base, rotation
    and pixel shape."""
    # opaque: copy the parameters without opening a codec; by default PyAV opens the template's
    # decoder as an encoder, and AV1's decoder (libdav1d) cannot encode.
    video_out = container.add_stream_from_template(part, opaque=True)
    # NUT raises time bases coarser than 1/48000 (1/12288 becomes 1/49152); the muxer may keep the
    # source's again (MP4, MOV) or impose its own (Matroska 1/1000, MPEG-TS 1/90000).
    video_out.time_base = info.time_base
    if info.rotation:
        video_out.set_display_rotation(info.rotation)
    _carry_aspect(video_out, part, container.format.name, options)
    return video_out


_MOV_FAMILY = ("mp4", "mov", "ipod", "3gp", "3g2", "psp", "ismv", "f4v")  # muxers that write 'pasp'


def _carry_aspect(
    video_out: av.video.stream.VideoStream, part: av.video.stream.VideoStream, format_name: str, options: _VideoOptions
) -> None:
    in_bitstream = source_sample_aspect_ratio(part)
    wanted = options.sample_aspect_ratio if options.sample_aspect_ratio is not None else in_bitstream
    if wanted == SQUARE:
        return
    video_out.codec_context.sample_aspect_ratio = wanted  # becomes 'pasp' in MP4 and MOV
    if in_bitstream != wanted and format_name not in _MOV_FAMILY:
        codec = part.codec_context.name
        options.warn(
            f"{format_name} output cannot keep the pixel aspect ratio {wanted.numerator}:{wanted.denominator}: "
            f"{codec} has no place for it and the container takes it from there, so players will show the "
            "picture squeezed; write .mp4, or use --codec libx264 or libx265"
        )


class _Transcoder:
    """Re-encodes one audio stream the output container cannot hold as it is."""

    def __init__(
        self, container: av.container.OutputContainer, in_stream: av.audio.stream.AudioStream, codec: str
    ) -> None:
        rate = in_stream.codec_context.sample_rate or 48000
        if codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
            rate = 48000
        stream = container.add_stream(codec, rate=rate)
        if not isinstance(stream, av.audio.stream.AudioStream):
            raise ValueError(f"{codec} is not an audio encoder")
        self.stream = stream
        self.stream.layout = in_stream.codec_context.layout
        self.stream.metadata.update(_stream_tags(in_stream))
        self.resampler = av.AudioResampler(format=self.stream.format, layout=self.stream.layout, rate=rate)
        self.in_stream = in_stream

    def packets_for(self, packet: Packet) -> list[Packet]:
        produced: list[Packet] = []
        for frame in packet.decode():
            if not isinstance(frame, av.AudioFrame):
                continue
            for resampled in self.resampler.resample(frame):
                produced.extend(self.stream.encode(resampled))
        return produced

    def flush(self) -> list[Packet]:
        produced: list[Packet] = []
        for resampled in self.resampler.resample(None):
            produced.extend(self.stream.encode(resampled))
        produced.extend(self.stream.encode(None))
        return produced


def _plan_other_streams(
    container: av.container.OutputContainer, source: av.container.InputContainer, warn: Warn
) -> dict[int, av.stream.Stream | _Transcoder]:
    """For each non-video input stream: an output stream to copy into, a transcoder, or nothing."""
    carried: dict[int, av.stream.Stream | _Transcoder] = {}
    format_name = container.format.name
    for stream in source.streams:
        if stream.type == "video":
            continue
        codec = _codec_name(stream)
        copyable = stream.type in ("audio", "subtitle") and format_accepts(
            format_name, lambda probe, stream=stream: probe.add_stream_from_template(stream)
        )
        if copyable:
            out = container.add_stream_from_template(stream)
            out.metadata.update(_stream_tags(stream))
            carried[stream.index] = out
        elif isinstance(stream, av.audio.stream.AudioStream) and (target := _audio_codec_for(format_name)):
            warn(
                f"audio stream {stream.index} ({codec}) cannot go into {format_name} as it is; "
                f"re-encoding it as {target}"
            )
            carried[stream.index] = _Transcoder(container, stream, target)
        elif stream.type == "subtitle":
            warn(f"subtitle stream {stream.index} ({codec}) cannot go into {container.format.name}; left out")
        else:
            warn(f"{stream.type} stream {stream.index} ({codec or 'unknown'}) left out")
    return carried


def _audio_codec_for(format_name: str) -> str | None:
    for codec in _TRANSCODE_AUDIO_TO:
        if format_accepts(format_name, lambda probe, codec=codec: probe.add_stream(codec, rate=48000)):
            return codec
    return None


def _video_packets(parts: Sequence[Path], out_stream: av.video.stream.VideoStream) -> Iterator[Packet]:
    """The packets of every part, in order, with decode timestamps made valid across the joins."""
    schedule = DtsSchedule(_presentation_times(parts))
    for part in parts:
        with open_input(part) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.size == 0:
                    continue
                packet.dts = schedule.next_dts()
                packet.stream = out_stream
                yield packet


def _presentation_times(parts: Sequence[Path]) -> list[array[int]]:
    """Each part's packet pts, in decode order (a demux pass: no decoding, no payload kept;
    8 bytes a frame, about 1.4 MB for a two-hour film)."""
    times: list[array[int]] = []
    for part in parts:
        with open_input(part) as container:
            packets = container.demux(container.streams.video[0])
            times.append(array("q", (p.pts for p in packets if p.size and p.pts is not None)))
    return times


class DtsSchedule:
    """Decode timestamps for segments encoded separately and joined.

    Each segment's encoder starts its own decode clock, and a container may not even store
    the first few (NUT leaves them out), so they are derived again for the joined stream:
    the i-th packet in decode order gets the (i - delay)-th smallest pts, where ``delay`` is
    the deepest frame reordering in any segment. That is increasing, never after its pts, and
    what an encoder that had seen the whole video would have written.
    """

    def __init__(self, segments_pts: Sequence[Sequence[int]]) -> None:
        self.sorted_pts = array("q")
        for segment in segments_pts:
            self.sorted_pts.extend(sorted(segment))
        self.delay = max((_reorder_delay(segment) for segment in segments_pts), default=0)
        self.position = 0

    def next_dts(self) -> int:
        index = self.position - self.delay
        self.position += 1
        if index >= 0:
            return self.sorted_pts[index]
        first = self.sorted_pts[0]
        step = self.sorted_pts[1] - first if len(self.sorted_pts) > 1 else 1
        return first + index * step  # before the first frame, one frame interval apart


def _reorder_delay(pts_in_decode_order: Sequence[int]) -> int:
    """How many packets at most come before a frame that is shown earlier (0 without B-frames)."""
    rank = {pts: position for position, pts in enumerate(sorted(pts_in_decode_order))}
    return max((position - rank[pts] for position, pts in enumerate(pts_in_decode_order)), default=0)


def _other_packets(
    source: av.container.InputContainer, carried: dict[int, av.stream.Stream | _Transcoder]
) -> Iterator[Packet]:
    streams = [source.streams[index] for index in carried]
    if not streams:
        return
    try:
        for packet in source.demux(streams):
            if packet.size == 0:
                continue
            target = carried[packet.stream.index]
            if isinstance(target, _Transcoder):
                yield from target.packets_for(packet)
            else:
                packet.stream = target
                yield packet
    except av.error.FFmpegError as exc:
        raise InputError(f"{source.name}: cannot read its audio or subtitles: {exc}") from None


def _codec_name(stream: av.stream.Stream) -> str | None:
    """The codec's canonical name ("subrip"), which is what supported_codecs lists."""
    # Typed as always there, but attachment and data streams come without a codec context.
    context: av.codec.context.CodecContext | None = stream.codec_context
    if context is None or context.codec is None:  # pyright: ignore[reportUnnecessaryComparison]
        return None
    return context.codec.canonical_name


def _packet_seconds(packet: Packet) -> float:
    timestamp = packet.dts if packet.dts is not None else packet.pts
    if timestamp is None:
        return float("-inf")  # mux as soon as possible; the muxer interleaves the rest
    return float(timestamp * packet.time_base)


def _container_tags(source: av.container.InputContainer) -> dict[str, str]:
    return {
        key: value
        for key, value in source.metadata.items()
        if key.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands")
    }


def _stream_tags(stream: av.stream.Stream) -> dict[str, str]:
    return {key: value for key, value in stream.metadata.items() if key in _STREAM_TAGS_KEPT}
