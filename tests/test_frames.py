"""`vidsr frames`: the exact source frame at the time asked for, found by seeking, named by time and number.

Every check compares with an independent decode: PyAV decodes all frames in order and
swscale converts them, and the frame expected at a time is the last one starting at or before it.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import ACCURATE_SWSCALE, ClipSpec, area_downscale, decode_video, pattern, psnr, write_clip
from PIL import Image
from typer.testing import CliRunner

from vidsr.cli.app import app
from vidsr.inspect.frames import frame_to_rgb
from vidsr.media.decode import decode_batches, frames_from
from vidsr.media.probe import probe
from vidsr.upscale.colour import planes_to_rgb

runner = CliRunner()


def vidsr(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def run(*args: str | Path) -> None:
    result = vidsr(*args)
    assert result.exit_code == 0, result.output


def assert_refused(result, *fragments: str) -> None:
    """Exit 1 and one line on stderr that names the problem, no traceback."""
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert message.startswith("error: ") and len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory) -> Path:
    """6 s at 24 fps with a keyframe every 12 frames and B-frames: seeking has keyframes to land on."""
    path = tmp_path_factory.mktemp("gop") / "gop clip.mp4"
    time_base = Fraction(1, 90000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=24, options={"crf": "10", "preset": "fast", "g": "12", "bf": "2", "sc_threshold": "0"}
        )
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1
        for index in range(144):
            frame = av.VideoFrame.from_ndarray(pattern(index, 64, 48), format="rgb24")
            frame = frame.reformat(
                format="yuv420p", dst_colorspace=1, dst_color_range=1, interpolation=ACCURATE_SWSCALE
            )
            frame.pts, frame.time_base = index * 3750, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def references(request):
    """Independent decodes, one per clip, made once."""
    cache: dict[Path, object] = {}

    def get(path: Path):
        if path not in cache:
            cache[path] = decode_video(path)
        return cache[path]

    return get


def expected_index(decoded, seconds: float) -> int:
    """The frame on screen at ``seconds`` from the first frame: the last that starts at or before it."""
    times = [t - decoded.times[0] for t in decoded.times]
    return max(i for i, t in enumerate(times) if t <= seconds + 1e-9)


def read_png(path: Path) -> np.ndarray:
    """RGB 0..1 through FFmpeg's PNG decoder (reads 16-bit PNGs as 16-bit, unlike Pillow)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    if frame.format.name in ("rgb24", "rgba"):
        return frame.to_ndarray(format="rgb24").astype(np.float64) / 255.0
    return frame.reformat(format="rgb48le").to_ndarray().astype(np.float64) / 65535.0


def only_png(folder: Path, suffix: str = "") -> Path:
    pngs = sorted(
        p for p in folder.iterdir() if p.name.endswith(f"{suffix}.png") and (suffix or "_" not in p.name[20:])
    )
    assert len(pngs) == 1, pngs
    return pngs[0]


def written(folder: Path) -> list[tuple[int, str]]:
    """(frame number, time) of the source PNGs in ``folder``, from their names."""
    found = []
    for path in sorted(folder.iterdir()):
        match = re.fullmatch(r"frame_(\d{6})_t(\d+-\d\d-\d\d\.\d{3})\.png", path.name)
        if match:
            found.append((int(match.group(1)), match.group(2)))
    return found


CASES = [
    ("gop_clip", [0.0, 1.7, 1.75, 5.9]),  # mid-GOP targets, with B-frames
    ("clip", [0.0, 0.3, 0.5, 0.99]),
    ("vfr_clip", [0.1, 0.2, 0.55, 1.2]),  # long and short frames
    ("ten_bit_clip", [0.0, 0.26, 0.45]),
]


@pytest.mark.parametrize(("fixture", "times"), CASES)
def test_each_png_is_the_source_frame_on_screen_at_the_time_asked(request, references, tmp_path, fixture, times):
    source = request.getfixturevalue(fixture)
    decoded = references(source)
    for seconds in times:
        folder = tmp_path / f"at {seconds}"
        run("frames", source, folder, "--at", str(seconds))
        expected = expected_index(decoded, seconds)
        [(index, _)] = written(folder)
        assert index == expected, f"--at {seconds}"
        picture = read_png(only_png(folder))
        closeness = [psnr(picture, frame) for frame in decoded.frames]
        assert int(np.argmax(closeness)) == expected
        # ~35.5 dB measured: the two chroma upsamplers differ on saturated 4:2:0 edges; the
        # neighbouring frames score 28 dB or less.
        assert closeness[expected] > 33


def test_seeking_lands_on_the_frame_asked_for_not_on_the_keyframe_before_it(gop_clip, references, tmp_path):
    """Frames 41 and 43 lie between keyframes 36 and 48; 130 lies between 120 and 132."""
    decoded = references(gop_clip)
    run("frames", gop_clip, tmp_path, "--index", "43", "--index", "41", "--index", "130")
    assert [index for index, _ in written(tmp_path)] == [41, 43, 130]
    for index, _ in written(tmp_path):
        picture = read_png(next(tmp_path.glob(f"frame_{index:06d}_*.png")))
        assert int(np.argmax([psnr(picture, frame) for frame in decoded.frames])) == index


def test_frames_are_found_by_seeking_near_ones_by_decoding_on(gop_clip, tmp_path, monkeypatch):
    """Never from the start: one seek to frame 41, on to 43, and a new seek for 130 (3.6 s further)."""
    import vidsr.inspect.timeline

    seeks = []

    def recording(container, stream, info, start_pts, **options):
        seeks.append(start_pts)
        return frames_from(container, stream, info, start_pts, **options)

    monkeypatch.setattr(vidsr.inspect.timeline, "frames_from", recording)
    run("frames", gop_clip, tmp_path, "--index", "41", "--index", "43", "--index", "130")
    assert seeks == [41 * 3750, 130 * 3750]


def test_a_png_holds_vidsrs_own_conversion_of_the_frame_exactly(clip, tmp_path):
    run("frames", clip, tmp_path, "--index", "7")
    batch = next(b for b in decode_batches(probe(clip), batch_size=24))
    planes = tuple(torch.from_numpy(np.ascontiguousarray(p[7:8])) for p in batch.planes)
    rgb = planes_to_rgb(planes, batch.layout, probe(clip).colour)[0].permute(1, 2, 0).numpy()
    expected = np.rint(rgb * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(only_png(tmp_path))), expected)


@pytest.mark.parametrize("fixture", ["clip", "vfr_clip"])
def test_an_index_selects_that_frame_number(request, references, tmp_path, fixture):
    source = request.getfixturevalue(fixture)
    decoded = references(source)
    run("frames", source, tmp_path, "--index", "9")
    [(index, time)] = written(tmp_path)
    assert index == 9
    seconds = decoded.times[9] - decoded.times[0]
    assert time == f"0-00-{int(seconds):02d}.{round(seconds * 1000) % 1000:03d}"
    assert int(np.argmax([psnr(read_png(only_png(tmp_path)), f) for f in decoded.frames])) == 9


def test_a_time_copied_from_a_file_name_finds_that_frame_again(vfr_clip, tmp_path):
    """Frame 3 starts at 0.208333 s; its name says 0.208, and --at 0.208 must give frame 3, not 2."""
    run("frames", vfr_clip, tmp_path / "first", "--index", "3")
    [(index, time)] = written(tmp_path / "first")
    assert (index, time) == (3, "0-00-00.208")
    run("frames", vfr_clip, tmp_path / "again", "--at", time.replace("-", ":"))
    assert written(tmp_path / "again") == [(3, "0-00-00.208")]


def test_times_are_accepted_as_seconds_or_clock_notation(gop_clip, tmp_path):
    run("frames", gop_clip, tmp_path, "--at", "0:01.5", "--at", "00:00:02.250", "--at", "3")
    assert written(tmp_path) == [(36, "0-00-01.500"), (54, "0-00-02.250"), (72, "0-00-03.000")]


def test_ten_bit_video_gives_sixteen_bit_pngs_with_more_than_eight_bits(ten_bit_clip, tmp_path):
    run("frames", ten_bit_clip, tmp_path, "--index", "4")
    with av.open(str(only_png(tmp_path))) as container:
        frame = next(container.decode(video=0))
    assert frame.format.name == "rgb48be"
    samples = frame.reformat(format="rgb48le").to_ndarray()
    assert np.any(samples % 257 != 0)  # not 8-bit values stretched


def test_with_no_selection_a_handful_of_frames_spread_over_the_video(gop_clip, tmp_path):
    run("frames", gop_clip, tmp_path)
    indices = [index for index, _ in written(tmp_path)]
    assert len(indices) == 5
    assert indices == sorted(set(indices))
    assert indices[0] > 0 and indices[-1] < 143 and indices[-1] - indices[0] > 100


def test_every_and_count_and_ranges(gop_clip, tmp_path):
    run("frames", gop_clip, tmp_path / "every", "--every", "1")
    assert [i for i, _ in written(tmp_path / "every")] == [0, 24, 48, 72, 96, 120]
    run("frames", gop_clip, tmp_path / "count", "--count", "2", "--start", "1", "--end", "3")
    assert [i for i, _ in written(tmp_path / "count")] == [36, 60]  # 1.5 s and 2.5 s
    run("frames", gop_clip, tmp_path / "range", "--start", "2", "--end", "2.25")
    assert [i for i, _ in written(tmp_path / "range")] == [48, 49, 50, 51, 52, 53]


def test_upscaled_is_the_models_output_and_compare_puts_it_beside_the_bicubic_source(clip, nearest_model, tmp_path):
    run(
        "frames",
        clip,
        tmp_path,
        "--at",
        "0.5",
        "--upscaled",
        "--compare",
        "--model",
        nearest_model,
        "--precision",
        "fp32",
    )
    source = np.asarray(Image.open(only_png(tmp_path)))
    upscaled = np.asarray(Image.open(only_png(tmp_path, "_upscaled")))
    assert np.array_equal(upscaled, source.repeat(4, axis=0).repeat(4, axis=1))  # the nearest-neighbour model
    compare = np.asarray(Image.open(only_png(tmp_path, "_compare")).convert("RGB"))
    assert compare.shape[0] > 192 and compare.shape[1] > 2 * 256
    assert np.array_equal(compare[-192:, -256:], upscaled)
    bicubic = compare[-192:, :256].astype(np.float64) / 255
    assert psnr(bicubic, upscaled.astype(np.float64) / 255) > 25
    assert not np.array_equal(compare[-192:, :256], upscaled)
    assert compare[:-192].std() > 0  # the labels are drawn


def test_an_upscaled_video_can_be_compared_with_its_source_at_the_same_times(clip, nearest_model, tmp_path):
    from vidsr.cli.app import app as main_app

    rendered = tmp_path / "upscaled.mp4"
    result = runner.invoke(
        main_app,
        ["upscale", str(clip), str(rendered), "--model", str(nearest_model), "--preset", "ultrafast", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    run("frames", clip, tmp_path / "before", "--at", "0.4", "--at", "0.8")
    run("frames", rendered, tmp_path / "after", "--at", "0.4", "--at", "0.8")
    assert written(tmp_path / "before") == written(tmp_path / "after")
    for before, after in zip(sorted((tmp_path / "before").iterdir()), sorted((tmp_path / "after").iterdir())):
        assert psnr(area_downscale(read_png(after), 4), read_png(before)) > 33


# FFmpeg's own turn for each display rotation (fftools' autorotate: the matrix angle is
# counterclockwise, so 90 is a quarter turn counterclockwise, "transpose=cclock").
FFMPEG_TURNS = {90: ["transpose=cclock"], -90: ["transpose=clock"], 180: ["hflip", "vflip"]}


def turned_by_ffmpeg(video: Path, filters: list[str]) -> np.ndarray:
    """The first frame as FFmpeg's filters turn it, converted by vidsr's own colour code."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        chain = [graph.add_buffer(template=stream)]
        chain += [graph.add(*f.split("=")) for f in filters] + [graph.add("buffersink")]
        for before, after in zip(chain, chain[1:]):
            before.link_to(after)
        graph.configure()
        graph.push(next(container.decode(stream)))
        turned = graph.pull()
    rgb, _ = frame_to_rgb(turned, probe(video).colour)
    return np.rint(rgb[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


@pytest.mark.parametrize("rotation", sorted(FFMPEG_TURNS))
def test_frames_of_a_rotated_video_come_out_upright_as_players_show_them(rotation, nearest_model, tmp_path):
    """A phone's portrait video is stored sideways with a display rotation; its PNGs, upscaled
    and compared ones too, are turned the way FFmpeg turns it for display."""
    video = write_clip(tmp_path / "phone.mp4", ClipSpec(rotation=rotation, pix_fmt="yuv444p"))
    run("frames", video, tmp_path / "out", "--index", "0", "--upscaled", "--compare", "--model", nearest_model)
    source = np.asarray(Image.open(only_png(tmp_path / "out")))
    expected = turned_by_ffmpeg(video, FFMPEG_TURNS[rotation])
    assert source.shape == expected.shape == ((64, 48, 3) if rotation != 180 else (48, 64, 3))
    assert np.abs(source.astype(int) - expected).max() <= 1
    upscaled = np.asarray(Image.open(only_png(tmp_path / "out", "_upscaled")))
    assert psnr(area_downscale(upscaled.astype(np.float64) / 255, 4), source.astype(np.float64) / 255) > 40
    compare = np.asarray(Image.open(only_png(tmp_path / "out", "_compare")).convert("RGB"))
    assert np.array_equal(compare[-upscaled.shape[0] :, -upscaled.shape[1] :], upscaled)


def test_frames_written_before_are_refused_without_force(clip, tmp_path):
    run("frames", clip, tmp_path, "--index", "2")
    assert_refused(vidsr("frames", clip, tmp_path, "--index", "2"), "already exist", "--force")
    run("frames", clip, tmp_path, "--index", "2", "--force")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--at", "2"], ["--at 0:00:02.000 is past the end of the video (0:00:01.000)"]),
        (["--at", "1:75"], ["'1:75' is not a time"]),
        (["--at", "soon"], ["'soon' is not a time", "mm:ss (1:15.5)"]),
        (["--index", "24"], ["--index 24: the video has 24 frames"]),
        (["--start", "0.5", "--end", "0.25"], ["must come after --start"]),
        (["--every", "0"], ["--every must be more than 0 seconds"]),
    ],
)
def test_selections_outside_the_video_are_refused_clearly(clip, tmp_path, args, fragments):
    assert_refused(vidsr("frames", clip, tmp_path / "out", *args), *fragments)
    assert not any((tmp_path / "out").glob("*.png"))


def test_bad_input_and_output_are_refused_clearly(tmp_path, clip):
    assert_refused(vidsr("frames", tmp_path / "nope.mp4", tmp_path / "out"), "input not found", "nope.mp4")
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 50)
    assert_refused(vidsr("frames", notes, tmp_path / "out"), "notes.mp4 is not a media file")
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert_refused(vidsr("frames", clip, a_file), "is a file")
    assert_refused(vidsr("frames", clip, tmp_path / "out", "--upscaled", "--model", "no-such-model"), "Unknown model")
