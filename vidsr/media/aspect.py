"""Pixel aspect ratio: the shape of one stored pixel, so anamorphic video keeps its shape.

DVD and broadcast video store a 16:9 picture in 720x480 or 720x576 pixels that are wider than
tall; the file says so with a sample aspect ratio (SAR), and players stretch the picture to its
display aspect, width x SAR : height. An output that loses the SAR shows the picture squeezed.
"""

from __future__ import annotations

from fractions import Fraction

import av.video.stream

__all__ = ["SQUARE", "display_aspect_ratio", "output_sample_aspect_ratio", "source_sample_aspect_ratio"]

SQUARE = Fraction(1)
_LARGEST_TERM = 65535  # H.264/HEVC store the SAR in two 16-bit numbers


def source_sample_aspect_ratio(stream: av.video.stream.VideoStream) -> Fraction:
    """The SAR a player uses: the container's (Matroska display size, MP4 'pasp') before the
    bitstream's, as FFmpeg's av_guess_sample_aspect_ratio; 1 where neither says (square)."""
    for value in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if value is not None and value > 0:
            return Fraction(value)
    return SQUARE


def display_aspect_ratio(width: int, height: int, sample_aspect_ratio: Fraction) -> Fraction:
    """The shape of the picture as shown: 64x48 stored with SAR 4:3 shows as 16:9."""
    return Fraction(width, height) * sample_aspect_ratio


def output_sample_aspect_ratio(
    source_width: int, source_height: int, sample_aspect_ratio: Fraction, output_width: int, output_height: int
) -> Fraction:
    """The SAR that shows an ``output_width`` x ``output_height`` picture at the source's display aspect.

    Equal scaling keeps the SAR; scaling width and height differently (``--width`` and ``--height``
    both given, or a size rounded to even) changes it by the difference. Bounded to 16-bit terms,
    which is what H.264 and HEVC can store (closer than a part in a billion).
    """
    display = display_aspect_ratio(source_width, source_height, sample_aspect_ratio)
    return _bounded(display * Fraction(output_height, output_width))


def _bounded(value: Fraction) -> Fraction:
    if value.numerator <= _LARGEST_TERM and value.denominator <= _LARGEST_TERM:
        return value
    if value >= _LARGEST_TERM:
        return Fraction(_LARGEST_TERM)
    if value > 1:
        return 1 / (1 / value).limit_denominator(_LARGEST_TERM)
    return value.limit_denominator(_LARGEST_TERM)
