"""Anamorphic video keeps its shape: the pixel aspect ratio is read, carried, and adjusted for the output size.

The sources are 64x48 frames shown at 16:9 (SAR 4:3), as DVDs store widescreen; after the render
path (decode, encode into the work file, final mux) every container must show the same 16:9,
whether the output is scaled evenly or only in width.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from media import ClipSpec, render_like_vidsr, write_clip

from vidsr.media.aspect import display_aspect_ratio, output_sample_aspect_ratio
from vidsr.media.probe import probe

WIDESCREEN = Fraction(16, 9)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("aspect")


def anamorphic(folder: Path, suffix: str) -> Path:
    spec = ClipSpec(frames=6, sample_aspect_ratio=Fraction(4, 3), audio=[])
    return write_clip(folder / f"anamorphic.{suffix}", spec)


def shown(path: Path) -> tuple[int, int, Fraction]:
    """Width, height and display aspect as a player reads them back."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        sar = stream.sample_aspect_ratio or Fraction(1)
        return width, height, display_aspect_ratio(width, height, Fraction(sar))


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# ---- the arithmetic ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "sar", "output", "expected"),
    [
        ((64, 48), Fraction(4, 3), (256, 192), Fraction(4, 3)),  # even x4 keeps the SAR
        ((64, 48), Fraction(4, 3), (128, 48), Fraction(2, 3)),  # only the width doubled
        ((720, 480), Fraction(8, 9), (2880, 1920), Fraction(8, 9)),  # NTSC DVD 4:3
        ((720, 576), Fraction(64, 45), (1024, 576), Fraction(1)),  # PAL 16:9 made square
        ((1920, 1080), Fraction(1), (3840, 2160), Fraction(1)),  # square stays square
    ],
)
def test_the_output_sar_keeps_the_display_aspect(source, sar, output, expected):
    assert output_sample_aspect_ratio(*source, sar, *output) == expected


@pytest.mark.parametrize("output", [(2881, 1920), (1442, 1151), (4097, 2305)])
def test_awkward_sizes_give_a_sar_an_encoder_can_store_at_the_same_shape(output):
    sar = output_sample_aspect_ratio(720, 480, Fraction(32, 27), *output)
    assert sar.numerator <= 65535 and sar.denominator <= 65535
    assert float(display_aspect_ratio(*output, sar)) == pytest.approx(16 / 9, rel=1e-8)


# ---- reading it ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "mov"])
def test_probe_reads_the_sar_of_each_container(folder, suffix):
    info = probe(anamorphic(folder, suffix))
    assert info.sample_aspect_ratio == Fraction(4, 3)
    assert display_aspect_ratio(info.width, info.height, info.sample_aspect_ratio) == WIDESCREEN


@pytest.mark.parametrize("suffix", ["mp4", "mov"])
def test_a_sar_given_only_by_the_container_wins_as_in_players(folder, suffix):
    """The MP4/MOV 'pasp' box says 3:2 while the bitstream says nothing: players use 3:2."""
    plain = write_clip(folder / f"plain.{suffix}", ClipSpec(frames=3, audio=[]))
    tagged = folder / f"pasp only.{suffix}"
    with av.open(str(plain)) as source, av.open(str(tagged), "w") as output:
        stream = output.add_stream_from_template(source.streams.video[0])
        stream.codec_context.sample_aspect_ratio = Fraction(3, 2)
        for packet in source.demux(source.streams.video[0]):
            if packet.size:
                packet.stream = stream
                output.mux(packet)
    assert probe(tagged).sample_aspect_ratio == Fraction(3, 2)


def test_square_pixels_are_one(clip):
    assert probe(clip).sample_aspect_ratio == 1


# ---- carrying it to the output -------------------------------------------------------------------


@pytest.mark.parametrize("source_suffix", ["mp4", "mkv", "mov"])
@pytest.mark.parametrize("output_suffix", ["mp4", "mkv", "mov"])
@pytest.mark.parametrize("repeat", [(2, 2), (2, 1)])
def test_every_container_shows_the_output_at_the_source_display_aspect(folder, source_suffix, output_suffix, repeat):
    source = anamorphic(folder, source_suffix)
    info = probe(source)
    width, height = info.width * repeat[0], info.height * repeat[1]
    sar = output_sample_aspect_ratio(info.width, info.height, info.sample_aspect_ratio, width, height)
    name = f"from {source_suffix} x{repeat[0]}x{repeat[1]}.{output_suffix}"
    output = render_like_vidsr(source, folder / name, repeat=repeat, sample_aspect_ratio=sar)
    assert shown(output) == (width, height, WIDESCREEN)
    assert frame_count(output) == 6


def test_a_square_source_gives_a_square_output_as_before(folder, clip):
    output = render_like_vidsr(clip, folder / "square.mp4", repeat=(2, 2))
    assert shown(output) == (128, 96, Fraction(4, 3))


@pytest.mark.parametrize(("suffix", "kept"), [("mp4", True), ("mkv", False), ("webm", False)])
def test_a_codec_without_a_sar_field_keeps_it_in_mp4_and_warns_elsewhere(folder, suffix, kept):
    """VP9 has no SAR in its bitstream: MP4 keeps it beside the stream; Matroska cannot, and the user is told."""
    warnings: list[str] = []
    output = render_like_vidsr(
        anamorphic(folder, "mp4"),
        folder / f"vp9.{suffix}",
        codec="libvpx-vp9",
        sample_aspect_ratio=Fraction(4, 3),
        warn=warnings.append,
    )
    aspect_warnings = [w for w in warnings if "pixel aspect ratio 4:3" in w]
    if kept:
        assert shown(output)[2] == WIDESCREEN and not aspect_warnings
    else:
        assert len(aspect_warnings) == 1 and "write .mp4" in aspect_warnings[0]
