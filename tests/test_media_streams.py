"""Which stream is the video: the one a player shows, never cover art or a one-frame picture track.

Files are made with a still picture or cover before the real video, in MP4 and Matroska, the
way taggers and remuxes leave them; the chosen stream must decode to the whole clip, and every
stream left out must be named with the reason, so the user can be told.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from media import Track, write_tracks

from vidsr.errors import InputError, SettingsError
from vidsr.media.decode import decode_batches
from vidsr.media.probe import probe

CLIP_FRAMES = 24


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("streams")


def frames_decoded(path: Path, **probe_options) -> int:
    info = probe(path, **probe_options)
    return sum(len(batch) for batch in decode_batches(info, batch_size=8))


@pytest.mark.parametrize(
    ("name", "tracks", "attached_jpeg", "left_out"),
    [
        ("mp4 jpeg cover.mp4", [Track("cover"), Track()], False, "cover art"),
        ("mp4 png cover.mp4", [Track("cover", codec="png"), Track()], False, "cover art"),
        ("mkv attached cover.mkv", [Track()], True, "cover art"),
        ("mkv jpeg track first.mkv", [Track("still"), Track()], False, "a still image (one frame)"),
        ("mkv jpeg track marked default.mkv", [Track("still", default=True), Track(default=False)], False, "still"),
        ("mkv large jpeg track.mkv", [Track("still", width=256, height=192), Track()], False, "still"),
        ("mp4 png track first.mp4", [Track("still", codec="png"), Track()], False, "still"),
    ],
)
def test_a_picture_before_the_video_is_never_chosen(folder, name, tracks, attached_jpeg, left_out):
    path = write_tracks(folder / name, tracks, attached_jpeg=attached_jpeg)
    info = probe(path)
    assert (info.codec, info.width, info.height) == ("h264", 64, 48)
    assert frames_decoded(path) == CLIP_FRAMES
    assert len(info.videos_left_out) == 1
    picture = info.videos_left_out[0]
    assert picture.index != info.video_index
    assert picture.codec in ("mjpeg", "png")
    assert left_out in picture.reason
    assert f"stream {picture.index} ({picture.codec}" in picture.describe()


@pytest.mark.parametrize(
    ("name", "tracks", "chosen_width", "reason"),
    [
        ("no flags, larger second.mkv", [Track(), Track(width=128, height=96)], 128, "smaller than stream 1"),
        (
            "default on the smaller.mkv",
            [Track(default=True), Track(width=128, height=96, default=False)],
            64,
            "default",
        ),
        ("mp4 marks its first default.mp4", [Track(), Track(width=128, height=96)], 64, "default"),
        ("default on the second.mkv", [Track(default=False), Track(default=True, width=32, height=24)], 32, "default"),
    ],
)
def test_between_real_videos_the_default_flag_wins_then_the_size(folder, name, tracks, chosen_width, reason):
    info = probe(write_tracks(folder / name, tracks))
    assert info.width == chosen_width
    assert len(info.videos_left_out) == 1
    assert reason in info.videos_left_out[0].reason


def test_a_single_video_leaves_nothing_out(clip):
    info = probe(clip)
    assert (info.video_index, info.videos_left_out) == (0, ())


def test_the_user_can_choose_another_video_stream(folder):
    path = write_tracks(folder / "choose.mkv", [Track(), Track(width=128, height=96, frames=12)])
    assert probe(path).width == 128
    info = probe(path, stream=0)
    assert (info.video_index, info.width) == (0, 64)
    assert [(left.index, left.reason) for left in info.videos_left_out] == [(1, "not the stream asked for")]
    assert frames_decoded(path, stream=0) == CLIP_FRAMES
    assert frames_decoded(path, stream=1) == 12


def test_the_user_can_even_choose_the_cover(folder):
    path = write_tracks(folder / "cover chosen.mp4", [Track("cover", width=40, height=40), Track()])
    cover = probe(path).videos_left_out[0].index
    assert (probe(path, stream=cover).codec, frames_decoded(path, stream=cover)) == ("mjpeg", 1)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (1, "stream 1 of {path} is audio, not video; its video streams: 0 (h264 64x48)"),
        (7, "{path} has no stream 7; its video streams: 0 (h264 64x48)"),
        (-1, "{path} has no stream -1; its video streams"),
    ],
)
def test_a_chosen_stream_that_is_not_video_is_refused_with_the_choices(folder, stream, message):
    path = write_tracks(folder / "one video.mkv", [Track()])
    with pytest.raises(SettingsError) as refused:
        probe(path, stream=stream)
    assert message.format(path=path) in str(refused.value)


def test_cover_art_alone_is_not_a_video(folder):
    song = write_tracks(folder / "song with cover.mp4", [Track("cover")])
    with pytest.raises(InputError, match=r"has no video stream \(found: audio, cover art\)"):
        probe(song)
