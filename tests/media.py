"""Synthesised test media: tiny real videos with audio, made with PyAV, and ways to read them back."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import Interpolation
from safetensors.torch import save_file

from vidsr.models.arch import RRDBNet, SRVGGNetCompact

SAMPLE_RATE = 48000
# swscale's defaults skip chroma interpolation and accurate rounding (about 33 dB on saturated
# colours); with these flags it is an independent reference good to about 48 dB.
ACCURATE_SWSCALE = (
    Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
)
_MATRIX_TAGS = {"bt601": 6, "bt709": 1}


@dataclass
class ClipSpec:
    """What a synthesised clip contains; the defaults make a 1 s, 64x48, 24 fps mp4 with AAC."""

    width: int = 64
    height: int = 48
    frames: int = 24
    fps: int = 24
    pix_fmt: str = "yuv420p"
    matrix: str | None = "bt709"  # None: leave the stream untagged
    full_range: bool = False
    vfr: bool = False  # irregular frame durations
    audio: list[str] = field(default_factory=lambda: ["aac"])  # one codec per audio stream
    subtitles: Path | None = None  # an .srt file to carry as a subtitle stream
    chapters: bool = False
    rotation: int = 0
    sample_aspect_ratio: Fraction | None = None  # written by the encoder (H.264 VUI, and MP4 'pasp')
    start_seconds: Fraction = Fraction(0)  # where every stream starts (a cut from a longer recording)
    container_options: dict[str, str] = field(default_factory=dict)  # {"movflags": "+faststart"}


def pattern(index: int, width: int, height: int, *, deep: bool = False) -> np.ndarray:
    """An RGB frame with smooth gradients and saturated moving patches (where a wrong matrix shows).

    uint8 (H x W x 3), or uint16 with 16-bit precision when ``deep``.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = index / 12.0
    red = 0.5 + 0.4 * np.sin(x / width * np.pi * 2 + phase)
    green = 0.5 + 0.4 * np.cos(y / height * np.pi * 2 - phase)
    blue = 0.5 + 0.4 * np.sin((x + y) / (width + height) * np.pi * 2 + 2 * phase)
    image = np.stack((red, green, blue), axis=-1)
    # Saturated colour blobs moving over the gradients: soft-edged, so 4:2:0 chroma keeps them
    # and the colour checks measure the matrix and range, not the chroma filter.
    sigma = max(2.0, width / 12)
    for k, colour in enumerate(((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0))):
        cx = (index * 1.5 + (k + 0.5) * width / 4) % width
        cy = (k + 1) * height / 5 + 2 * np.sin(phase + k)
        weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))[..., None]
        image = image * (1 - weight) + np.array(colour, dtype=np.float64) * weight
    if deep:
        return np.round(image * 65535).astype(np.uint16)
    return np.round(image * 255).astype(np.uint8)


def frame_times(spec: ClipSpec) -> list[Fraction]:
    """Presentation times of each frame; a VFR clip alternates short and long frames."""
    if not spec.vfr:
        return [Fraction(i, spec.fps) for i in range(spec.frames)]
    times, now = [], Fraction(0)
    for i in range(spec.frames):
        times.append(now)
        now += Fraction(1, spec.fps) * (1 if i % 3 else 3)  # every third frame lasts three times longer
    return times


def write_clip(path: Path, spec: ClipSpec | None = None) -> Path:
    """Write a clip per ``spec`` and return its path."""
    spec = spec or ClipSpec()
    time_base = Fraction(1, 90000) if path.suffix != ".mkv" else Fraction(1, 1000)
    with av.open(str(path), "w", options=spec.container_options) as container:
        video = _add_video(container, spec, time_base)
        audio_streams = [_add_audio(container, codec, n) for n, codec in enumerate(spec.audio)]
        subtitle_source = av.open(str(spec.subtitles)) if spec.subtitles else None
        subtitle_out = container.add_stream_from_template(subtitle_source.streams[0]) if subtitle_source else None
        if spec.chapters:
            container.set_chapters(
                [
                    {"id": 1, "start": 0, "end": 500, "time_base": Fraction(1, 1000), "metadata": {"title": "Start"}},
                    {"id": 2, "start": 500, "end": 1000, "time_base": Fraction(1, 1000), "metadata": {"title": "End"}},
                ]
            )
        times = frame_times(spec)
        deep = "10" in spec.pix_fmt
        for index, moment in enumerate(times):
            image = pattern(index, spec.width, spec.height, deep=deep)
            frame = av.VideoFrame.from_ndarray(image, format="rgb48le" if deep else "rgb24")
            frame = frame.reformat(
                format=spec.pix_fmt,
                dst_colorspace=_MATRIX_TAGS.get(spec.matrix or "bt601"),
                dst_color_range=2 if spec.full_range else 1,
                interpolation=ACCURATE_SWSCALE,
            )
            frame.pts = round((spec.start_seconds + moment) / time_base)
            frame.time_base = time_base
            container.mux(video.encode(frame))
        container.mux(video.encode())
        duration = float(times[-1] + Fraction(1, spec.fps))
        for stream, n in zip(audio_streams, range(len(audio_streams))):
            _write_tone(container, stream, duration, frequency=440.0 * (n + 1), start=spec.start_seconds)
        if subtitle_source is not None:
            for packet in subtitle_source.demux(subtitle_source.streams[0]):
                if packet.size:
                    packet.stream = subtitle_out
                    container.mux(packet)
            subtitle_source.close()
    return path


def _add_video(container, spec: ClipSpec, time_base: Fraction):
    stream = container.add_stream("libx264", rate=spec.fps, options={"crf": "10", "preset": "fast"})
    stream.width, stream.height = spec.width, spec.height
    stream.pix_fmt = spec.pix_fmt
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    if spec.matrix is not None:
        stream.codec_context.colorspace = _MATRIX_TAGS[spec.matrix]
        stream.codec_context.color_range = 2 if spec.full_range else 1
    if spec.rotation:
        stream.set_display_rotation(spec.rotation)
    if spec.sample_aspect_ratio is not None:
        stream.codec_context.sample_aspect_ratio = spec.sample_aspect_ratio
    return stream


def _add_audio(container, codec: str, number: int):
    stream = container.add_stream(codec, rate=SAMPLE_RATE if codec != "libopus" else 48000)
    stream.layout = "stereo" if number == 0 else "mono"
    stream.metadata["language"] = ("eng", "fra", "deu")[number % 3]
    return stream


def _write_tone(container, stream, seconds: float, *, frequency: float, start: Fraction = Fraction(0)) -> None:
    context = stream.codec_context
    frame_size = context.frame_size or 1024
    rate = context.sample_rate
    total = int(round(seconds * rate))
    channels = len(context.layout.channels)
    for first in range(0, total, frame_size):
        count = min(frame_size, total - first)
        t = (np.arange(first, first + count) / rate).astype(np.float32)
        tone = 0.3 * np.sin(2 * np.pi * frequency * t)
        samples = np.tile(tone, (channels, 1)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=context.layout)
        frame.sample_rate = rate
        frame.pts = round(start * rate) + first
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def write_srt(path: Path) -> Path:
    path.write_text("1\n00:00:00,100 --> 00:00:00,400\nhello\n\n2\n00:00:00,500 --> 00:00:00,900\nworld\n")
    return path


# ---- reading back ------------------------------------------------------------------------------


@dataclass
class DecodedVideo:
    width: int
    height: int
    times: list[float]  # seconds, presentation order
    frames: list[np.ndarray]  # RGB, float 0..1, H x W x 3, converted by swscale with the stream's tags
    pix_fmt: str
    colorspace: int
    color_range: int
    rotation: int


def decode_video(path: Path) -> DecodedVideo:
    """Decode every frame with PyAV/swscale (independently of vidsr's own conversion)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, frames, first = [], [], None
        for frame in container.decode(stream):
            first = first or frame
            times.append(float(frame.pts * frame.time_base))
            frames.append(to_rgb(frame))
        context = stream.codec_context
        return DecodedVideo(
            width=stream.width,
            height=stream.height,
            times=times,
            frames=frames,
            pix_fmt=first.format.name,
            colorspace=int(context.colorspace),
            color_range=int(context.color_range),
            rotation=int(first.rotation or 0),
        )


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    colorspace = int(frame.colorspace) if int(frame.colorspace) in (1, 5, 6, 9) else 5
    rgb = frame.reformat(
        format="rgb48le",
        src_colorspace=colorspace,
        src_color_range=int(frame.color_range) or 1,
        interpolation=ACCURATE_SWSCALE,
    )
    return rgb.to_ndarray().astype(np.float64) / 65535.0


def audio_packets(path: Path) -> list[list[tuple[float, bytes]]]:
    """Per audio stream: (time in seconds, payload) of every packet, in order."""
    with av.open(str(path)) as container:
        streams = list(container.streams.audio)
        packets: list[list[tuple[float, bytes]]] = [[] for _ in streams]
        for packet in container.demux(streams):
            if packet.size:
                packets[streams.index(packet.stream)].append((float(packet.pts * packet.time_base), bytes(packet)))
        return packets


def area_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    height, width, channels = image.shape
    return image.reshape(height // factor, factor, width // factor, factor, channels).mean(axis=(1, 3))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


# ---- models --------------------------------------------------------------------------------------


def nearest_compact_model(path: Path, *, scale: int = 4) -> Path:
    """A real SRVGGNetCompact whose residual branch is zero: it enlarges by nearest neighbour,
    so its output downscaled back must equal its input, which makes colour errors measurable."""
    torch.manual_seed(0)
    network = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=scale)
    with torch.no_grad():
        network.body[-1].weight.zero_()
        network.body[-1].bias.zero_()
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    return path


def random_rrdb_model(path: Path, *, scale: int = 4) -> Path:
    """A small randomly initialised RRDBNet (real architecture, random weights), saved as .pth."""
    torch.manual_seed(1)
    network = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
    torch.save({"params_ema": network.state_dict()}, path)
    return path


# ---- files with several picture streams ---------------------------------------------------------


@dataclass
class Track:
    """One picture stream of a file made by ``write_tracks``.

    ``moving``: an H.264 clip of ``frames`` frames; ``still``: one ``codec`` picture (mjpeg or png) as
    an ordinary track, as a remux leaves it; ``cover``: one picture flagged as cover art.
    """

    kind: str = "moving"  # "moving" | "still" | "cover"
    codec: str = "mjpeg"  # for still and cover pictures
    width: int = 64
    height: int = 48
    frames: int = 24
    default: bool | None = None  # None: whatever the muxer does


def still_picture(codec: str = "mjpeg", width: int = 32, height: int = 32) -> bytes:
    """One encoded picture (a JPEG or PNG file's bytes)."""
    import io

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as container:
        stream = _add_picture_stream(container, codec, width, height)
        container.mux(stream.encode(_picture_frame(stream, 0)))
        container.mux(stream.encode())
    return buffer.getvalue()


def write_tracks(
    path: Path, tracks: list[Track], *, audio: bool = True, attached_jpeg: bool = False, fps: int = 24
) -> Path:
    """A file with the picture streams ``tracks`` in that order, then AAC (``audio``), then a
    Matroska cover attachment (``attached_jpeg``). MP4 lists cover art after the other streams."""
    with av.open(str(path), "w") as container:
        streams = []
        for track in tracks:
            if track.kind == "moving":
                stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
                stream.width, stream.height, stream.pix_fmt = track.width, track.height, "yuv420p"
            else:
                stream = _add_picture_stream(container, track.codec, track.width, track.height)
            disposition = av.stream.Disposition(0)
            if track.kind == "cover":
                disposition |= av.stream.Disposition.attached_pic
            if track.default:
                disposition |= av.stream.Disposition.default
            if track.default is not None or track.kind == "cover":
                stream.disposition = disposition
            streams.append(stream)
        audio_stream = _add_audio(container, "aac", 0) if audio else None
        if attached_jpeg:
            container.add_attachment("cover.jpg", "image/jpeg", still_picture("mjpeg", 40, 40))
        for track, stream in zip(tracks, streams):
            count = track.frames if track.kind == "moving" else 1
            for index in range(count):
                frame = _picture_frame(stream, index)
                frame.pts, frame.time_base = index, Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        if audio_stream is not None:
            seconds = max((t.frames for t in tracks if t.kind == "moving"), default=fps) / fps
            _write_tone(container, audio_stream, seconds, frequency=440.0)
    return path


def _add_picture_stream(container, codec: str, width: int, height: int):
    stream = container.add_stream(codec, rate=1)
    stream.width, stream.height = width, height
    stream.pix_fmt = "rgb24" if codec == "png" else "yuvj420p"
    return stream


def _picture_frame(stream, index: int) -> av.VideoFrame:
    image = pattern(index, stream.width, stream.height)
    return av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=stream.pix_fmt)


# ---- the render's media path without a network ---------------------------------------------------


def render_like_vidsr(
    source: Path,
    output: Path,
    *,
    repeat: tuple[int, int] = (1, 1),
    codec: str = "libx264",
    sample_aspect_ratio: Fraction | None = None,
    warn=None,
    probe_options: dict | None = None,
    decode_options: dict | None = None,
) -> Path:
    """What a render does to the media, with pixel repetition (``repeat`` = x, y) as the "network":
    probe, decode_batches, VideoWriter into a NUT work file, finalize into ``output``."""
    from vidsr.media.decode import decode_batches
    from vidsr.media.encode import EncodeSettings, VideoWriter, output_pix_fmt
    from vidsr.media.probe import probe
    from vidsr.media.remux import finalize
    from vidsr.planes import OutputBatch

    info = probe(source, **(probe_options or {}))
    settings = EncodeSettings(codec=codec, preset="veryfast" if codec.startswith("libx26") else "auto")
    part = output.with_name(f".{output.name}.part.nut")
    writer_options = {} if sample_aspect_ratio is None else {"sample_aspect_ratio": sample_aspect_ratio}
    writer = VideoWriter(
        part,
        width=info.width * repeat[0],
        height=info.height * repeat[1],
        time_base=info.time_base,
        frame_rate=info.frame_rate,
        settings=settings,
        pix_fmt=output_pix_fmt(settings, info.bit_depth),
        colour=info.colour,
        **writer_options,
    )
    for batch in decode_batches(info, batch_size=8, **(decode_options or {})):
        planes = tuple(np.repeat(np.repeat(p, repeat[1], axis=1), repeat[0], axis=2) for p in batch.planes)
        writer.write(OutputBatch(planes=planes, pts=batch.pts, first_index=batch.first_index, segment=batch.segment))
    writer.close()
    finalize([part], info, output, warn=warn or (lambda message: None), sample_aspect_ratio=sample_aspect_ratio)
    part.unlink()
    return output


# ---- interlaced video ----------------------------------------------------------------------------


def moving_bar(seconds: float, width: int, height: int) -> np.ndarray:
    """The luma a progressive camera would film at ``seconds``: a bar moving fast to the right."""
    image = np.full((height, width), 40, np.uint8)
    left = int(8 + seconds * 60) % width
    image[:, left : left + 6] = 220
    return image


def interlaced_luma(index: int, fps: int, width: int, height: int, order: str) -> np.ndarray:
    """Frame ``index`` of an interlaced camera filming ``moving_bar``: the field shown first (even
    lines for "tff") at t, the other half a frame later. Shown whole, it combs."""
    start = index / fps
    first, second = moving_bar(start, width, height), moving_bar(start + 0.5 / fps, width, height)
    frame = first.copy()
    later_lines = slice(1, None, 2) if order == "tff" else slice(0, None, 2)
    frame[later_lines] = second[later_lines]
    return frame


def write_interlaced(
    path: Path,
    *,
    codec: str = "libx264",
    order: str = "tff",
    frames: int = 25,
    fps: int = 25,
    size: int = 64,
    keyframe_every: int = 250,
) -> Path:
    """Interlaced video as cameras and broadcasts make it: field-coded H.264 or MPEG-2, flagged
    ``order`` ("tff" or "bff") in the bitstream and on every frame."""
    x264 = f"interlaced=1:{order}=1:keyint={keyframe_every}"
    options = {"preset": "ultrafast", "x264-params": x264} if codec == "libx264" else {"g": str(keyframe_every)}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        flags = av.codec.context.Flags
        stream.codec_context.flags |= flags.interlaced_dct | flags.interlaced_me
        stream.codec_context.field_order = 2 if order == "tff" else 3
        if codec == "mpeg2video":
            stream.codec_context.bit_rate = 2_000_000
        tag = av.filter.Graph()  # PyAV cannot flag a frame interlaced; the setfield filter can
        source = tag.add("buffer", video_size=f"{size}x{size}", pix_fmt="yuv420p", time_base=f"1/{fps}")
        tag.link_nodes(source, tag.add("setfield", mode=order), tag.add("buffersink")).configure()
        for index in range(frames):
            luma = interlaced_luma(index, fps, size, size, order)
            grey = np.full((size // 2, size // 2), 128, np.uint8)
            frame = av.VideoFrame.from_ndarray(
                np.concatenate([luma.ravel(), grey.ravel(), grey.ravel()]).reshape(-1, size), format="yuv420p"
            )
            frame.pts, frame.time_base = index, Fraction(1, fps)
            tag.vpush(frame)
            container.mux(stream.encode(tag.vpull()))
        container.mux(stream.encode())
    return path


def combing(luma: np.ndarray) -> float:
    """How much a picture combs: the mean step between neighbouring lines beyond the step between
    lines two apart (about 0 for a whole picture, large where two fields disagree)."""
    y = luma.astype(np.int32)
    return float(np.abs(np.diff(y, axis=0)).mean() - np.abs(y[2:] - y[:-2]).mean() / 2)


# ---- audio and video sync ------------------------------------------------------------------------

SYNC_EVENT = Fraction(1, 2)  # seconds after the start: a white frame and a click


def write_sync_clip(
    path: Path,
    *,
    start_seconds: Fraction = Fraction(0),
    audio_codec: str = "aac",
    frames: int = 24,
    fps: int = 24,
    size: tuple[int, int] = (64, 48),
) -> Path:
    """Grey H.264 video (with B-frames) with one white frame at SYNC_EVENT, and audio (``audio_codec``,
    48 kHz mono, with its encoder's priming) silent but for a click at the same moment; every stream
    starts at ``start_seconds``. The source time base is 1/12288 in MP4 and MOV, as FFmpeg's own."""
    time_base = Fraction(1, 1000) if path.suffix in (".mkv", ".webm") else Fraction(1, fps * 512)
    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        audio = container.add_stream(audio_codec, rate=SAMPLE_RATE)
        audio.layout = "mono"
        for index in range(frames):
            level = 235 if Fraction(index, fps) == SYNC_EVENT else 60
            image = np.full((height, width, 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = round((start_seconds + Fraction(index, fps)) / time_base)
            frame.time_base = time_base
            container.mux(video.encode(frame))
        container.mux(video.encode())
        total, click = SAMPLE_RATE * frames // fps, int(SAMPLE_RATE * SYNC_EVENT)
        samples = np.zeros(total, np.float32)
        samples[click : click + 480] = 0.8 * np.sin(np.arange(480) / 3)
        frame_size = audio.codec_context.frame_size or 1024
        for first in range(0, total, frame_size):
            chunk = samples[None, first : first + frame_size]
            sound = av.AudioFrame.from_ndarray(
                chunk, format="fltp" if audio_codec != "libopus" else "flt", layout="mono"
            )
            sound.sample_rate = SAMPLE_RATE
            sound.pts, sound.time_base = round(start_seconds * SAMPLE_RATE) + first, Fraction(1, SAMPLE_RATE)
            container.mux(audio.encode(sound))
        container.mux(audio.encode())
    return path


@dataclass
class SyncMarks:
    first_video: float  # seconds: the first frame's pts
    flash: float  # seconds: the white frame's pts
    click: float | None  # seconds: where the click starts in the decoded audio
    frames: int
    video_tick: Fraction  # the video stream's time base

    @property
    def audio_after_video(self) -> float:
        """How far the click lands after the flash: 0 in a file in sync."""
        assert self.click is not None
        return self.click - self.flash


def sync_marks(path: Path) -> SyncMarks:
    """Where a file made by write_sync_clip (or its render) shows the flash and plays the click."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        flash = next(f.time for f in frames if f.to_ndarray()[: f.height].mean() > 150)
        marks = SyncMarks(frames[0].time, flash, None, len(frames), stream.time_base)
    with av.open(str(path)) as container:
        for sound in container.decode(audio=0):
            loud = np.nonzero(np.abs(sound.to_ndarray()).max(axis=0) > 0.3)[0]
            if loud.size:
                marks.click = sound.time + loud[0] / sound.sample_rate
                break
    return marks


def with_default_sigint() -> None:
    """``preexec_fn`` for the tests' child processes: Ctrl-C reaches them as it does from a terminal,
    even when the suite itself runs as a background job (``cmd &``, many CI runners), which starts
    every child with SIGINT ignored; vidsr keeps an inherited "ignore", as background jobs should."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
