"""Encoder settings are checked before any work, each refusal naming the valid choices; the encoder's
output is the same on any machine (fixed threads); decoding is exact whatever its threads; the media
library versions are there to record.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import av
import numpy as np
import pytest

from vidsr.errors import SettingsError
from vidsr.media.decode import decode_batches
from vidsr.media.encode import ENCODER_THREADS, EncodeSettings, check_encode_settings, video_encoders
from vidsr.media.probe import probe
from vidsr.media.versions import media_versions


@pytest.mark.parametrize(
    "settings",
    [
        EncodeSettings(),
        EncodeSettings(codec="libx264", preset="veryslow", crf=0, pix_fmt="yuv444p10le"),
        EncodeSettings(codec="libx265", preset="ultrafast", crf=51, pix_fmt="yuv422p"),
        EncodeSettings(codec="libsvtav1", preset="0", crf=63, pix_fmt="yuv420p10le"),
        EncodeSettings(codec="libsvtav1", preset="13", crf=1),
        EncodeSettings(codec="libvpx-vp9", preset="auto"),
        EncodeSettings(codec="libvpx-vp9", preset="default", threads=0),
    ],
)
def test_settings_that_work_pass(settings):
    check_encode_settings(settings)


@pytest.mark.parametrize(("codec", "kind"), [("aac", "an audio"), ("libopus", "an audio"), ("flac", "an audio")])
def test_an_audio_encoder_as_codec_is_refused_with_the_video_encoders(codec, kind):
    with pytest.raises(SettingsError) as refused:
        check_encode_settings(EncodeSettings(codec=codec))
    assert str(refused.value) == (
        f"--codec {codec} is {kind} encoder; choose a video encoder: {', '.join(video_encoders())}"
    )


def test_the_video_encoders_named_are_those_of_this_build():
    named = video_encoders()
    assert named[:2] == ["libx264", "libx265"]
    for name in named:
        assert av.Codec(name, "w").type == "video"


@pytest.mark.parametrize("codec", ["x264", "h265", "libx246"])
def test_an_unknown_encoder_is_refused_with_the_choices(codec):
    with pytest.raises(
        SettingsError, match=rf"^--codec {codec}: this PyAV build has no such encoder; choose one of libx264"
    ):
        check_encode_settings(EncodeSettings(codec=codec))


X26X_CHOICES = "auto, or ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, placebo"


@pytest.mark.parametrize(
    ("codec", "preset", "message"),
    [
        ("libx264", "slowest", f"--preset slowest: libx264 takes {X26X_CHOICES}"),
        ("libx264", "Medium", f"--preset Medium: libx264 takes {X26X_CHOICES}"),
        ("libx265", "8", f"--preset 8: libx265 takes {X26X_CHOICES}"),
        ("libsvtav1", "14", "--preset 14: libsvtav1 takes auto, or 0 (slowest, smallest) to 13 (fastest)"),
        ("libsvtav1", "-1", "--preset -1: libsvtav1 takes auto, or 0 (slowest, smallest) to 13 (fastest)"),
        ("libsvtav1", "medium", "--preset medium: libsvtav1 takes auto, or 0 (slowest, smallest) to 13 (fastest)"),
        ("libvpx-vp9", "slow", "--preset slow: vidsr sets no preset for libvpx-vp9; leave --preset at auto"),
    ],
)
def test_a_preset_the_encoder_does_not_take_is_refused_with_the_valid_ones(codec, preset, message):
    with pytest.raises(SettingsError) as refused:
        check_encode_settings(EncodeSettings(codec=codec, preset=preset))
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("codec", "crf", "message"),
    [
        ("libx264", 52, "--crf 52: libx264 takes 0 (best) to 51 (smallest)"),
        ("libx265", -1, "--crf -1: libx265 takes 0 (best) to 51 (smallest)"),
        ("libsvtav1", 0, "--crf 0: libsvtav1 takes 1 (best) to 63 (smallest)"),
        ("libsvtav1", 64, "--crf 64: libsvtav1 takes 1 (best) to 63 (smallest)"),
    ],
)
def test_a_crf_out_of_the_encoder_range_is_refused(codec, crf, message):
    with pytest.raises(SettingsError) as refused:
        check_encode_settings(EncodeSettings(codec=codec, crf=crf))
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "message"),
    [
        (
            "libx264",
            "rgb24",
            "--pix-fmt rgb24: vidsr does not write it; choose one of yuv420p, yuv422p, yuv444p, "
            "yuv420p10le, yuv422p10le, yuv444p10le",
        ),
        ("libsvtav1", "yuv422p", "--pix-fmt yuv422p: libsvtav1 cannot encode it; choose one of yuv420p, yuv420p10le"),
        (
            "libsvtav1",
            "yuv444p10le",
            "--pix-fmt yuv444p10le: libsvtav1 cannot encode it; choose one of yuv420p, yuv420p10le",
        ),
        ("libsvtav1", "nv12", "--pix-fmt nv12: vidsr does not write it; choose one of yuv420p, yuv420p10le"),
    ],
)
def test_a_pixel_format_that_cannot_be_written_is_refused_with_the_ones_that_can(codec, pix_fmt, message):
    with pytest.raises(SettingsError) as refused:
        check_encode_settings(EncodeSettings(codec=codec, pix_fmt=pix_fmt))
    assert str(refused.value) == message


def test_negative_threads_are_refused():
    with pytest.raises(SettingsError, match="give 1 or more, or 0"):
        check_encode_settings(EncodeSettings(threads=-1))


# ---- the same file on any machine ----------------------------------------------------------------

_ENCODE_ON_CORES = """
import os, sys
from fractions import Fraction
from pathlib import Path
os.sched_setaffinity(0, {int(core) for core in sys.argv[1].split(",")})  # before the encoder counts cores
import numpy as np
from vidsr.media.encode import EncodeSettings, VideoWriter
from vidsr.planes import ColourSpec, OutputBatch
y, x = np.mgrid[0:144, 0:256]
frames = [((x * 3 + y + 7 * i) % 256).astype(np.uint8) for i in range(24)]
planes = (np.stack(frames), np.full((24, 72, 128), 128, np.uint8), np.full((24, 72, 128), 120, np.uint8))
writer = VideoWriter(Path(sys.argv[2]), width=256, height=144, time_base=Fraction(1, 24), frame_rate=Fraction(24),
                     settings=EncodeSettings(codec=sys.argv[3], preset=sys.argv[4]), pix_fmt="yuv420p",
                     colour=ColourSpec("bt709", False))
writer.write(OutputBatch(planes=planes, pts=tuple(range(24)), first_index=0))
writer.close()
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
@pytest.mark.parametrize(
    ("codec", "preset"), [("libx264", "veryfast"), ("libx264", "medium"), ("libx265", "ultrafast")]
)
def test_the_encoder_writes_the_same_file_on_one_core_as_on_two(tmp_path, codec, preset):
    """x264 and x265 choose their threads from the core count, and their threads change the video."""
    cores = sorted(os.sched_getaffinity(0))
    made: list[bytes] = []
    for name, allowed in (("one", str(cores[0])), ("two", f"{cores[0]},{cores[1]}")):
        path = tmp_path / f"{name}.nut"
        subprocess.run([sys.executable, "-c", _ENCODE_ON_CORES, allowed, str(path), codec, preset], check=True)
        made.append(path.read_bytes())
    assert made[0] == made[1]
    if codec == "libx264":
        assert f"threads={ENCODER_THREADS} ".encode() in made[0]  # x264 records its options in the file


@pytest.mark.parametrize("fixture", ["clip", "ten_bit_clip"])
def test_decoding_is_exact_whatever_the_decoder_threads(request, fixture):
    info = probe(request.getfixturevalue(fixture))
    decoded = [list(decode_batches(info, batch_size=8, decoder_threads=threads)) for threads in (1, 2, 4, 0)]
    for other in decoded[1:]:
        assert [b.pts for b in other] == [b.pts for b in decoded[0]]
        for ours, theirs in zip(other, decoded[0]):
            assert all(np.array_equal(a, b) for a, b in zip(ours.planes, theirs.planes))


def test_the_media_versions_are_there_to_record():
    versions = media_versions()
    assert versions["pyav"] == av.__version__
    assert versions["ffmpeg"] == av.ffmpeg_version_info
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions["libavcodec"])
    assert {"libavformat", "libavfilter", "libswscale"} <= versions.keys()
    assert re.fullmatch(r"core \d+( r\d+ [0-9a-f]+)?", versions["libx264"])


def test_reading_the_x264_version_prints_nothing(capfd):
    media_versions.cache_clear()
    media_versions()
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")
