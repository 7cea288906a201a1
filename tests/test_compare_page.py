"""`vidsr compare`: one page, opened from disk in a real Chromium, that compares models at chosen moments.

The page is made from a flat grey clip with two predictable models: the nearest-neighbour model
(grey stays grey) and the same network with its red residual raised by half (grey turns pink). So
which side of the split shows which picture can be told from the colours of a screenshot, without
a golden image that would change with every Chromium.
"""

from __future__ import annotations

import io
import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import nearest_compact_model
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from vidsr.cli.app import app

runner = CliRunner()

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
GREY = 128


def write_grey_clip(path: Path, *, width: int = 64, height: int = 48, frames: int = 24) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), GREY, np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def pink_model(nearest: Path, path: Path) -> Path:
    """The nearest-neighbour network with +0.5 on its red residual: grey 0.5 comes out (1, 0.5, 0.5)."""
    state = load_file(str(nearest))
    last_bias = max((key for key in state if key.endswith(".bias") and key.startswith("body.")), key=_layer_number)
    bias = state[last_bias].clone()
    bias[: bias.numel() // 3] = 0.5  # pixel shuffle: the first scale² channels are red
    state[last_bias] = bias
    save_file(state, str(path))
    return path


def _layer_number(key: str) -> int:
    return int(key.split(".")[1])


def vidsr(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("compare")
    nearest = nearest_compact_model(folder / "nearest.safetensors")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDSR_MODELS_DIR", str(folder / "no-models"))
        return {
            "clip": write_grey_clip(folder / "grey clip.mp4"),
            "nearest": nearest,
            "pink": pink_model(nearest, folder / "pink.safetensors"),
            "folder": folder,
        }


@pytest.fixture(scope="module")
def page(made) -> Path:
    """A page of two moments with both models, and half-second clips."""
    target = made["folder"] / "page" / "grey compare.html"
    target.parent.mkdir()
    result = vidsr(
        "compare", made["clip"], "-o", target, "--model", made["nearest"], "--model", made["pink"],
        "--at", "0.25", "--at", "0.75", "--clip", "0.5", "--precision", "fp32", "--crf", "20",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return target


def page_data(page: Path) -> dict:
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', page.read_text(), re.S)
    assert found is not None
    return json.loads(found.group(1))


# ---- the files ---------------------------------------------------------------------------------------


def test_the_page_holds_its_moments_models_and_the_commands_that_render_them(page, made):
    data = page_data(page)
    assets = page.with_name("grey compare_files")
    assert data["folder"] == assets.name
    assert [m["index"] for m in data["moments"]] == [6, 18]  # 0.25 s and 0.75 s at 24 fps
    for moment in data["moments"]:
        for name in (moment["source"], moment["bicubic"], *moment["outputs"], *moment["clips"]["outputs"]):
            assert (assets / name).is_file()
    pink = np.asarray(Image.open(assets / data["moments"][0]["outputs"][1]))
    assert pink.shape == (192, 256, 3) and pink[..., 0].min() > 240 and abs(int(pink[..., 1].mean()) - GREY) < 4
    nearest_card, pink_card = data["models"]
    assert pink_card["output_width"] == 256 and pink_card["seconds_per_frame"] > 0
    assert pink_card["whole_video_seconds"] == pytest.approx(24 * pink_card["seconds_per_frame"])
    assert pink_card["command_line"].endswith(f"--model {made['pink']} --precision fp32 --crf 20")
    assert "<script src" not in page.read_text() and "http" not in page.read_text().replace("http-equiv", "")


def test_an_existing_page_is_kept_without_force(page, made):
    before = page.read_text()
    result = vidsr("compare", made["clip"], "-o", page, "--model", made["nearest"], "--at", "0.5")
    assert result.exit_code == 1 and "--force" in result.output and "Traceback" not in result.output
    assert page.read_text() == before


def test_an_unknown_model_is_refused_in_one_line_before_anything_is_written(made, tmp_path):
    result = vidsr("compare", made["clip"], "-o", tmp_path / "p.html", "--model", "no-such-model")
    assert result.exit_code == 1 and "no-such-model" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


# ---- in the browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="no playwright: pip install playwright")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def opened(browser, page):
    """The page open from file://, with every console message, page error and request recorded."""
    tab = browser.new_page(viewport=VIEWPORT)
    problems: list[str] = []
    requests: list[str] = []
    tab.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on("request", lambda request: requests.append(request.url))
    tab.goto(page.as_uri())
    tab.wait_for_load_state("load")
    tab.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    yield tab, problems, requests
    tab.close()


def viewer_pixel(tab, fraction: float) -> np.ndarray:
    """The colour at ``fraction`` of the viewer's width, half way down, from a screenshot."""
    shot = np.asarray(Image.open(io.BytesIO(tab.locator("#viewer").screenshot())).convert("RGB"))
    height, width = shot.shape[:2]
    return shot[height // 2, int(width * fraction)].astype(int)


def is_grey(colour: np.ndarray) -> bool:
    return bool(abs(colour[0] - colour[1]) < 16 and abs(colour[0] - GREY) < 16)


def is_pink(colour: np.ndarray) -> bool:
    return bool(colour[0] > 235 and abs(colour[1] - GREY) < 16)


@pytest.mark.browser
def test_every_picture_loads_at_its_true_size_from_disk_and_nothing_else_is_fetched(opened):
    tab, problems, requests = opened
    sizes = tab.evaluate(
        "() => [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])"
    )
    assert sorted(sizes) == [
        ["grey%20compare_files/m1_frame6_model1.png", 256, 192],
        ["grey%20compare_files/m1_frame6_source.png", 64, 48],
    ]
    tab.select_option("#left", "bicubic")
    tab.wait_for_function("() => document.getElementById('img-left').naturalWidth === 256")
    every_picture = """async () => {
        const data = JSON.parse(document.getElementById('data').textContent);
        const names = data.moments.flatMap(m => [m.source, m.bicubic, ...m.outputs]);
        const load = (name) => new Promise((done, failed) => {
            const picture = new Image();
            picture.onload = () => done([name, picture.naturalWidth, picture.naturalHeight]);
            picture.onerror = () => failed(new Error(name));
            picture.src = encodeURIComponent(data.folder) + '/' + encodeURIComponent(name);
        });
        return Promise.all(names.map(load));
    }"""
    loaded = tab.evaluate(every_picture)
    assert len(loaded) == 2 * 4  # two moments: source, bicubic and two models each
    assert all((w, h) == ((64, 48) if name.endswith("_source.png") else (256, 192)) for name, w, h in loaded)
    assert all(url.startswith("file://") for url in requests)
    assert problems == []


@pytest.mark.browser
def test_the_slider_moves_the_split_between_the_two_pictures(opened):
    tab, problems, _ = opened
    tab.keyboard.press("2")  # the pink model on the right, the source (nearest) on the left
    tab.click("#zooms button[data-zoom='4']")  # 4:1: the 256x192 output fills most of the view
    assert is_grey(viewer_pixel(tab, 0.35)) and is_pink(viewer_pixel(tab, 0.65))
    box = tab.locator("#viewer").bounding_box()
    middle = box["y"] + box["height"] / 2
    tab.mouse.move(box["x"] + box["width"] * 0.5, middle)
    tab.mouse.down()
    tab.mouse.move(box["x"] + box["width"] * 0.2, middle, steps=5)
    tab.mouse.up()
    assert float(tab.input_value("#split")) == pytest.approx(20, abs=1)
    assert is_pink(viewer_pixel(tab, 0.35)) and is_grey(viewer_pixel(tab, 0.15))
    assert problems == []


@pytest.mark.browser
def test_keys_switch_moment_model_and_flip_the_sides(opened):
    tab, problems, _ = opened
    for _ in range(3):
        tab.keyboard.press("z")  # fit, 1:1, 2:1, 4:1
    assert "zoom 4:1" in tab.inner_text("#where")
    rendering = "() => [getComputedStyle(document.getElementById('img-left')).imageRendering, "
    rendering += "document.getElementById('img-left').getBoundingClientRect().width]"
    assert tab.evaluate(rendering) == ["pixelated", 256 * 4]  # no browser smoothing: each pixel a 4x4 square
    assert is_grey(viewer_pixel(tab, 0.65))  # model 1, nearest neighbour: grey as the source
    tab.keyboard.press("2")
    assert is_pink(viewer_pixel(tab, 0.65)) and is_grey(viewer_pixel(tab, 0.35))
    tab.keyboard.press("Space")
    assert is_pink(viewer_pixel(tab, 0.35)) and is_grey(viewer_pixel(tab, 0.65))
    tab.keyboard.press("ArrowRight")
    assert "moment 2 of 2" in tab.inner_text("#where") and "frame 18" in tab.inner_text("#where")
    tab.wait_for_function("() => document.getElementById('img-left').getAttribute('src').includes('m2_frame18')")
    assert problems == []


@pytest.mark.browser
def test_the_clips_load_at_their_sizes_and_play_together(opened):
    tab, problems, _ = opened
    tab.wait_for_function("() => [...document.querySelectorAll('video')].every(v => v.readyState >= 2)")
    sizes = tab.evaluate("() => [...document.querySelectorAll('video')].map(v => [v.videoWidth, v.videoHeight])")
    assert sizes == [[64, 48], [256, 192]]
    tab.keyboard.press("p")
    tab.wait_for_function("() => [...document.querySelectorAll('video')].every(v => !v.paused && v.currentTime > 0)")
    assert problems == []


@pytest.mark.browser
def test_a_screenshot_at_a_fixed_size_shows_source_and_model_either_side_of_the_split(opened, tmp_path):
    tab, _, _ = opened
    tab.keyboard.press("2")
    tab.click("#zooms button[data-zoom='4']")
    shot = np.asarray(Image.open(io.BytesIO(tab.screenshot())).convert("RGB")).astype(int)
    assert shot.shape[:2] == (VIEWPORT["height"], VIEWPORT["width"])
    box = tab.locator("#viewer").bounding_box()
    row = shot[int(box["y"] + box["height"] / 2)]
    split = int(box["x"] + box["width"] / 2)
    left, right = row[split - 200 : split - 20], row[split + 20 : split + 200]
    assert all(is_grey(c) for c in left) and all(is_pink(c) for c in right)


def test_a_folder_in_the_way_of_the_pictures_is_kept_without_force(made, tmp_path):
    (tmp_path / "look_files").mkdir()
    (tmp_path / "look_files" / "mine.txt").write_text("not vidsr's")
    result = vidsr("compare", made["clip"], "-o", tmp_path / "look.html", "--model", made["nearest"], "--at", "0.5")
    assert result.exit_code == 1 and "look_files" in result.output and "--force" in result.output
    assert (tmp_path / "look_files" / "mine.txt").exists() and not (tmp_path / "look.html").exists()


def test_a_rotated_video_is_shown_upright(rich_mkv, nearest_model, tmp_path):
    target = tmp_path / "rotated.html"
    result = vidsr("compare", rich_mkv, "-o", target, "--model", nearest_model, "--at", "0.5")
    assert result.exit_code == 0, result.output
    data = page_data(target)
    assert (data["output_width"], data["output_height"]) == (192, 256)  # 64x48 stored, turned a quarter
    moment = data["moments"][0]
    source = Image.open(target.with_name("rotated_files") / moment["source"])
    upscaled = Image.open(target.with_name("rotated_files") / moment["outputs"][0])
    assert source.size == (48, 64) and upscaled.size == (192, 256)


def test_a_moment_past_the_end_is_refused_in_one_line_and_nothing_is_written(made, tmp_path):
    result = vidsr("compare", made["clip"], "-o", tmp_path / "p.html", "--model", made["nearest"], "--at", "9")
    assert result.exit_code == 1 and "--at" in result.output and "past the end" in result.output
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_each_moment_is_the_frame_vidsr_frames_writes_and_the_models_output_of_it(clip, nearest_model, tmp_path):
    target = tmp_path / "moving.html"
    result = vidsr("compare", clip, "-o", target, "--model", nearest_model, "--at", "0.3", "--at", "0.8")
    assert result.exit_code == 0, result.output
    assert vidsr("frames", clip, tmp_path / "frames", "--at", "0.3", "--at", "0.8").exit_code == 0
    written = sorted((tmp_path / "frames").glob("*.png"))
    for moment, frame_png in zip(page_data(target)["moments"], written, strict=True):
        source = np.asarray(Image.open(target.with_name("moving_files") / moment["source"]))
        assert np.array_equal(source, np.asarray(Image.open(frame_png)))
        upscaled = np.asarray(Image.open(target.with_name("moving_files") / moment["outputs"][0]))
        assert np.array_equal(upscaled, source.repeat(4, axis=0).repeat(4, axis=1))  # the nearest-neighbour model
