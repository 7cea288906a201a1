"""probe and decode_batches: what vidsr knows about a file, and the frames it hands the network.

Every frame arrives once, in presentation order, with the pts the file gives it; the planes
are the decoder's own samples at full bit depth; formats that are not planar YUV are
repacked into the layout that describes them. Checked against PyAV's own decode of real files.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import ACCURATE_SWSCALE, ClipSpec, pattern, psnr, to_rgb, write_clip

from vidsr.media.decode import decode_batches
from vidsr.media.frame_arrays import frame_layout
from vidsr.media.probe import VideoInfo, probe
from vidsr.planes import ColourSpec, FrameBatch, PlaneLayout
from vidsr.upscale.colour import planes_to_rgb

# ---- media made here -----------------------------------------------------------------------------


def write_video(
    path: Path,
    codec: str,
    pix_fmt: str,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = 4,
    options: dict[str, str] | None = None,
    images: Callable[[int], np.ndarray] | None = None,
) -> Path:
    """A short silent clip of ``pattern`` frames (or ``images(index)``, gray or RGB) in ``pix_fmt``."""
    deep = any(tag in pix_fmt for tag in ("10", "12", "16", "48"))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for index in range(frames):
            image = images(index) if images else pattern(index, width, height, deep=deep)
            source_format = {(2, "uint8"): "gray", (3, "uint8"): "rgb24", (3, "uint16"): "rgb48le"}[
                (image.ndim, str(image.dtype))
            ]
            frame = av.VideoFrame.from_ndarray(image, format=source_format)
            frame = frame.reformat(format=pix_fmt, interpolation=ACCURATE_SWSCALE)
            frame.pts = index
            frame.time_base = Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def pyav_decode(path: Path) -> list[av.VideoFrame]:
    """Every frame as PyAV decodes it, for reference."""
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def pyav_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The frame's planes as numpy arrays without line padding (read independently of vidsr)."""
    dtype = np.dtype(np.uint8) if max(c.bits for c in frame.format.components) <= 8 else np.dtype("<u2")
    return [np.frombuffer(plane, dtype=dtype).reshape(plane.height, -1)[:, : plane.width] for plane in frame.planes[:3]]


def decode_all(info: VideoInfo, batch_size: int = 5) -> list[FrameBatch]:
    return list(decode_batches(info, batch_size=batch_size))


def vidsr_rgb(batches: list[FrameBatch], colour: ColourSpec) -> list[np.ndarray]:
    """vidsr's own view of each frame: H x W x 3 RGB, float 0..1."""
    images = []
    for batch in batches:
        planes = tuple(torch.from_numpy(plane.astype(np.int32)) for plane in batch.planes)
        rgb = planes_to_rgb(planes, batch.layout, colour)
        images.extend(frame.permute(1, 2, 0).double().numpy() for frame in rgb)
    return images


def ceil_shift(size: int, shift: int) -> int:
    return -(-size >> shift)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Callable[..., Path]:
    """``made(name, codec, pix_fmt, **options)``: a clip written once per module."""
    folder = tmp_path_factory.mktemp("formats")
    cache: dict[str, Path] = {}

    def make(name: str, codec: str, pix_fmt: str, **kwargs) -> Path:
        if name not in cache:
            cache[name] = write_video(folder / name, codec, pix_fmt, **kwargs)
        return cache[name]

    return make


@pytest.fixture(scope="module")
def hd_untagged_clip(tmp_path_factory) -> Path:
    """1280x720 with no colour tags: players read it as BT.709."""
    spec = ClipSpec(width=1280, height=720, frames=2, matrix=None, audio=[])
    return write_clip(tmp_path_factory.mktemp("hd") / "hd untagged.mp4", spec)


@pytest.fixture(scope="module")
def full_range_clip(tmp_path_factory) -> Path:
    """yuv420p tagged full range (x264 signals it; the decoder hands out yuvj420p)."""
    spec = ClipSpec(frames=4, full_range=True, audio=[])
    return write_clip(tmp_path_factory.mktemp("full") / "full range.mp4", spec)


@pytest.fixture(scope="module")
def yuvj_untagged_clip(tmp_path_factory) -> Path:
    spec = ClipSpec(frames=4, pix_fmt="yuvj420p", matrix=None, audio=[])
    return write_clip(tmp_path_factory.mktemp("yuvj") / "yuvj.mp4", spec)


# ---- batches and timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(("batch_size", "sizes"), [(1, [1] * 24), (5, [5, 5, 5, 5, 4]), (24, [24]), (50, [24])])
def test_batches_have_the_requested_size_except_the_last(clip, batch_size, sizes):
    batches = decode_all(probe(clip), batch_size)
    assert [len(batch) for batch in batches] == sizes
    assert [batch.first_index for batch in batches] == [sum(sizes[:n]) for n in range(len(sizes))]
    for batch in batches:
        assert all(plane.shape[0] == len(batch) for plane in batch.planes)


def test_the_clip_fixture_really_has_b_frames(clip):
    """Else the order test below would not test reordering."""
    with av.open(str(clip)) as container:
        packets = [packet for packet in container.demux(video=0) if packet.size]
    assert any(packet.pts != packet.dts for packet in packets)
    assert [p.pts for p in packets] != sorted(p.pts for p in packets)  # stored out of presentation order


@pytest.mark.parametrize("fixture", ["clip", "vfr_clip", "ten_bit_clip", "rich_mkv"])
def test_every_frame_arrives_once_in_presentation_order_with_its_own_pts(request, fixture):
    path = request.getfixturevalue(fixture)
    reference = pyav_decode(path)
    batches = decode_all(probe(path), batch_size=5)
    pts = [p for batch in batches for p in batch.pts]
    assert pts == [frame.pts for frame in reference]
    assert all(later > earlier for earlier, later in zip(pts, pts[1:]))
    lumas = [batch.planes[0][i] for batch in batches for i in range(len(batch))]
    for luma, frame in zip(lumas, reference):  # the right picture at each pts, sample for sample
        assert np.array_equal(luma, pyav_planes(frame)[0])


def test_variable_frame_rate_timestamps_are_kept_as_they_are(vfr_clip):
    info = probe(vfr_clip)
    pts = [p for batch in decode_all(info) for p in batch.pts]
    seconds = [float(p * info.time_base) for p in pts]
    gaps = np.round(np.diff(seconds) * 24, 6)  # in 1/24 s
    assert set(gaps) == {1.0, 3.0}  # every third frame lasts three times longer: nothing evened out


# ---- bit depth -----------------------------------------------------------------------------------


def test_ten_bit_video_reaches_the_network_with_all_ten_bits(ten_bit_clip):
    info = probe(ten_bit_clip)
    batches = decode_all(info)
    assert all(batch.layout == PlaneLayout(kind="yuv", bit_depth=10, chroma_shift=(1, 1)) for batch in batches)
    for batch in batches:
        for plane in batch.planes:
            assert plane.dtype == np.uint16
            assert int(plane.max()) <= 1023
            assert np.any(plane % 4 != 0)  # not 8-bit samples shifted up
    first = pyav_decode(ten_bit_clip)[0]
    for ours, theirs in zip((plane[0] for plane in batches[0].planes), pyav_planes(first)):
        assert np.array_equal(ours, theirs)


# ---- formats that are not planar YUV, and planar ones read as they are ---------------------------

# name, codec, pix_fmt, options, expected layout
FORMATS = [
    ("yuv444p.mkv", "ffv1", "yuv444p", {}, PlaneLayout("yuv", 8, (0, 0))),
    ("yuv422p10le.mkv", "ffv1", "yuv422p10le", {}, PlaneLayout("yuv", 10, (1, 0))),
    ("gray.mkv", "ffv1", "gray", {}, PlaneLayout("yuv", 8, (1, 1))),
    ("gray10le.mkv", "ffv1", "gray10le", {}, PlaneLayout("yuv", 10, (1, 1))),
    ("nv12.nut", "rawvideo", "nv12", {}, PlaneLayout("yuv", 8, (1, 1))),
    ("yuyv422.nut", "rawvideo", "yuyv422", {}, PlaneLayout("yuv", 8, (1, 0))),
    ("yuv410p.mkv", "ffv1", "yuv410p", {}, PlaneLayout("yuv", 8, (0, 0))),  # exotic: made 4:4:4
    ("rgb24.mkv", "libx264rgb", "rgb24", {"qp": "0"}, PlaneLayout("gbr", 8, (0, 0))),
    ("rgb24.mov", "png", "rgb24", {}, PlaneLayout("gbr", 8, (0, 0))),
    ("rgb48be.mov", "png", "rgb48be", {}, PlaneLayout("gbr", 16, (0, 0))),
    ("gbrp10le.mkv", "ffv1", "gbrp10le", {}, PlaneLayout("gbr", 16, (0, 0))),
]


@pytest.mark.parametrize(("name", "codec", "pix_fmt", "options", "layout"), FORMATS, ids=[f[0] for f in FORMATS])
def test_each_pixel_format_decodes_to_the_layout_that_describes_it(made, name, codec, pix_fmt, options, layout):
    path = made(name, codec, pix_fmt, options=options)
    info = probe(path)
    batches = decode_all(info, batch_size=3)
    assert [len(b) for b in batches] == [3, 1]
    chroma = (ceil_shift(48, layout.chroma_shift[1]), ceil_shift(64, layout.chroma_shift[0]))
    for batch in batches:
        assert batch.layout == layout
        assert [plane.shape[1:] for plane in batch.planes] == [(48, 64), chroma, chroma]
        assert all(plane.dtype == (np.uint8 if layout.bit_depth <= 8 else np.uint16) for plane in batch.planes)


@pytest.mark.parametrize("name", ["yuv444p.mkv", "yuv422p10le.mkv"])
def test_planar_yuv_is_read_sample_for_sample(made, name):
    codec, pix_fmt, options = next((f[1], f[2], f[3]) for f in FORMATS if f[0] == name)
    path = made(name, codec, pix_fmt, options=options)
    batches = decode_all(probe(path), batch_size=4)
    for index, frame in enumerate(pyav_decode(path)):
        for ours, theirs in zip((plane[index] for plane in batches[0].planes), pyav_planes(frame)):
            assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("name", ["rgb24.mkv", "rgb24.mov"])
def test_lossless_rgb_comes_back_exactly_as_green_blue_red_planes(made, name):
    codec, pix_fmt, options = next((f[1], f[2], f[3]) for f in FORMATS if f[0] == name)
    path = made(name, codec, pix_fmt, options=options)
    info = probe(path)
    batch = decode_all(info, batch_size=4)[0]
    for index in range(4):
        source = pattern(index, 64, 48)
        green, blue, red = (plane[index] for plane in batch.planes)
        assert np.array_equal(np.stack((red, green, blue), axis=-1), source)
        rgb = vidsr_rgb([batch], info.colour)[index]
        assert np.array_equal(np.round(rgb * 255).astype(np.uint8), source)


def test_sixteen_bit_rgb_keeps_every_bit(made):
    path = made("rgb48be.mov", "png", "rgb48be")
    batch = decode_all(probe(path), batch_size=4)[0]
    for index in range(4):
        green, blue, red = (plane[index] for plane in batch.planes)
        assert np.array_equal(np.stack((red, green, blue), axis=-1), pattern(index, 64, 48, deep=True))


def test_ten_bit_rgb_is_widened_to_sixteen_bits_in_channel_order(made):
    path = made("gbrp10le.mkv", "ffv1", "gbrp10le")
    batch = decode_all(probe(path), batch_size=4)[0]
    for index, frame in enumerate(pyav_decode(path)):
        for ours, theirs in zip((plane[index] for plane in batch.planes), pyav_planes(frame)):  # both G, B, R
            # swscale widens by shifting (1023 -> 65472, plus dither): within 2 ten-bit steps
            assert np.abs(ours / 65535.0 - theirs / 1023.0).max() <= 2 / 1023


# PSNR floors (dB) of vidsr's RGB against swscale's, measured with ~3 dB margin: repacking
# must not change the picture beyond the two converters' chroma filters (yuv410p's 4x4
# chroma is where they differ most).
REPACKED_FLOOR = {"nv12.nut": 46.0, "yuyv422.nut": 47.5, "yuv410p.mkv": 34.0, "gray.mkv": 49.0}


@pytest.mark.parametrize("name", list(REPACKED_FLOOR))
def test_repacked_yuv_shows_the_same_picture_as_ffmpeg(made, name):
    codec, pix_fmt, options = next((f[1], f[2], f[3]) for f in FORMATS if f[0] == name)
    path = made(name, codec, pix_fmt, options=options)
    info = probe(path)
    ours = vidsr_rgb(decode_all(info), info.colour)
    theirs = [to_rgb(frame) for frame in pyav_decode(path)]
    assert len(ours) == len(theirs) == 4
    assert min(psnr(a, b) for a, b in zip(ours, theirs)) > REPACKED_FLOOR[name]


def test_grey_video_has_neutral_chroma(made):
    path = made("gray.mkv", "ffv1", "gray")
    for batch in decode_all(probe(path)):
        assert set(np.unique(batch.planes[1])) == {128} and set(np.unique(batch.planes[2])) == {128}


def test_grey_video_keeps_every_grey_level(made):
    ramp = (np.arange(48 * 64) % 256).astype(np.uint8).reshape(48, 64)
    path = made("gray ramp.mkv", "ffv1", "gray", frames=1, images=lambda index: ramp)
    info = probe(path)
    rgb = vidsr_rgb(decode_all(info), info.colour)[0]
    assert np.array_equal(np.round(rgb[..., 1] * 255).astype(np.uint8), ramp)


# ---- odd frame sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pix_fmt", "shift", "bit_depth"),
    [("yuv420p", (1, 1), 8), ("yuv422p10le", (1, 0), 10), ("yuv444p", (0, 0), 8), ("gray", (1, 1), 8)],
)
def test_odd_frame_sizes_give_chroma_planes_rounded_up(made, pix_fmt, shift, bit_depth):
    path = made(f"odd {pix_fmt}.mkv", "ffv1", pix_fmt, width=63, height=47, frames=3)
    info = probe(path)
    assert (info.width, info.height) == (63, 47)
    batches = decode_all(info, batch_size=3)
    chroma = (ceil_shift(47, shift[1]), ceil_shift(63, shift[0]))  # 4:2:0 of 63x47 is 32x24
    assert batches[0].layout == PlaneLayout("yuv", bit_depth, shift)
    assert [plane.shape for plane in batches[0].planes] == [(3, 47, 63), (3, *chroma), (3, *chroma)]
    if pix_fmt != "gray":  # read as they are: every sample, the line padding dropped
        for index, frame in enumerate(pyav_decode(path)):
            for ours, theirs in zip((plane[index] for plane in batches[0].planes), pyav_planes(frame)):
                assert np.array_equal(ours, theirs)


# ---- frame_layout --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pix_fmt", "layout", "convert_to"),
    [
        ("yuv420p", PlaneLayout("yuv", 8, (1, 1)), None),
        ("yuvj420p", PlaneLayout("yuv", 8, (1, 1)), None),  # the range lives in the ColourSpec
        ("yuv422p", PlaneLayout("yuv", 8, (1, 0)), None),
        ("yuv444p", PlaneLayout("yuv", 8, (0, 0)), None),
        ("yuv420p10le", PlaneLayout("yuv", 10, (1, 1)), None),
        ("yuv444p12le", PlaneLayout("yuv", 12, (0, 0)), None),
        ("nv12", PlaneLayout("yuv", 8, (1, 1)), "yuv420p"),
        ("p010le", PlaneLayout("yuv", 10, (1, 1)), "yuv420p10le"),
        ("yuyv422", PlaneLayout("yuv", 8, (1, 0)), "yuv422p"),
        ("yuva420p", PlaneLayout("yuv", 8, (1, 1)), "yuv420p"),
        ("yuv411p", PlaneLayout("yuv", 8, (0, 0)), "yuv444p"),
        ("gray", PlaneLayout("yuv", 8, (1, 1)), "yuv420p"),
        ("gray10le", PlaneLayout("yuv", 10, (1, 1)), "yuv420p10le"),
        ("rgb24", PlaneLayout("gbr", 8, (0, 0)), "gbrp"),
        ("bgr0", PlaneLayout("gbr", 8, (0, 0)), "gbrp"),
        ("rgb48le", PlaneLayout("gbr", 16, (0, 0)), "gbrp16le"),
        ("gbrp10le", PlaneLayout("gbr", 16, (0, 0)), "gbrp16le"),
        ("pal8", PlaneLayout("gbr", 8, (0, 0)), "gbrp"),
    ],
)
def test_frame_layout_names_the_planes_and_the_repacking(pix_fmt, layout, convert_to):
    assert frame_layout(av.VideoFormat(pix_fmt)) == (layout, convert_to)


# ---- probe ---------------------------------------------------------------------------------------


def test_probe_reports_the_basic_facts_of_a_clip(clip):
    info = probe(clip)
    assert (info.width, info.height) == (64, 48)
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("h264", "yuv420p", 8)
    assert (info.frames, info.frames_exact) == (24, True)
    assert info.frame_rate == 24
    assert info.duration == pytest.approx(1.0, abs=1e-3)
    assert info.time_base == Fraction(1, 90000)
    assert [stream.codec for stream in info.audio] == ["aac"]


def test_probe_of_a_variable_frame_rate_clip_counts_every_frame(vfr_clip):
    info = probe(vfr_clip)
    assert (info.frames, info.frames_exact) == (18, True)
    assert info.duration == pytest.approx(1.25, abs=1e-3)  # 6 x (3 + 1 + 1) / 24 s
    assert info.frame_rate == Fraction(18) / Fraction(5, 4)  # the average, 14.4 fps


def test_probe_of_a_ten_bit_mkv(ten_bit_clip):
    info = probe(ten_bit_clip)
    assert (info.pix_fmt, info.bit_depth) == ("yuv420p10le", 10)
    assert info.frames == 12  # Matroska stores no count: estimated from duration and rate
    assert info.duration == pytest.approx(0.5, abs=1e-3)
    assert info.colour == ColourSpec(matrix="bt709", full_range=False) and info.colour_tagged


def test_probe_of_an_mkv_estimates_the_frame_count(rich_mkv):
    info = probe(rich_mkv)
    assert (info.frames, info.frames_exact) == (24, False)
    assert info.duration == pytest.approx(1.0, abs=1e-3)
    assert info.frame_rate == 24


@pytest.mark.parametrize(
    ("fixture", "colour", "tagged"),
    [
        ("clip", ColourSpec(matrix="bt709", full_range=False), True),  # SD but tagged 709: the tag wins
        ("sd_untagged_clip", ColourSpec(matrix="bt601", full_range=False), False),
        ("hd_untagged_clip", ColourSpec(matrix="bt709", full_range=False), False),
        ("full_range_clip", ColourSpec(matrix="bt709", full_range=True), True),
        ("yuvj_untagged_clip", ColourSpec(matrix="bt601", full_range=True), False),
    ],
)
def test_probe_reads_the_colour_tags_or_guesses_like_players(request, fixture, colour, tagged):
    info = probe(request.getfixturevalue(fixture))
    assert info.colour == colour
    assert info.colour_tagged is tagged
