"""`--cluster`: the same render spread over Ray workers gives the output one process gives, and
survives a lost worker, a lost driver, and a switch between the two ways of rendering.

One Ray instance serves the module (started here, two CPUs); the node-loss tests, which need a
cluster of several nodes, are in test_cluster_nodes.py. The first tests start their own Ray
through the command line (`--cluster local`), before this module's instance exists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

# Read by Ray when it is imported (and inherited by the vidsr processes the tests start).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written on the test machine

ray = pytest.importorskip("ray")

from media import ClipSpec, audio_packets, with_default_sigint, write_clip  # noqa: E402
from test_resume import assert_same_render as assert_same_long_render  # noqa: E402

from vidsr.errors import RenderInterrupted  # noqa: E402
from vidsr.render import UpscaleJob, upscale_video  # noqa: E402
from vidsr.render.ray_executor import RayBackend  # noqa: E402
from vidsr.render.workfolder import WorkFolder  # noqa: E402
from vidsr.upscale import UpscaleOptions  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"


def vidsr(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vidsr", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=600)


def decoded(path: Path) -> tuple[list[int], list[bytes]]:
    import av

    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.pts for f in frames], [f.to_ndarray().tobytes() for f in frames]


def assert_same_output(result: Path, reference: Path) -> None:
    """The same decoded frames at the same pts, and the same audio packets."""
    assert decoded(result) == decoded(reference)
    assert audio_packets(result) == audio_packets(reference)


# ---- `vidsr IN OUT --cluster local`: a Ray of its own, every core of this machine --------------


@pytest.mark.parametrize("name", ["sample.mp4", "vfr.mkv"])
def test_cluster_local_gives_what_one_process_gives(name, vfr_mkv, nearest_model, tmp_path):
    source = SAMPLE if name == "sample.mp4" else vfr_mkv
    alone = tmp_path / f"alone{source.suffix}"
    spread = tmp_path / f"spread{source.suffix}"
    common = ("--model", nearest_model, "--segment-seconds", "1")
    assert vidsr(source, alone, *common).returncode == 0
    clustered = vidsr(source, spread, *common, "--cluster", "local", "--worker-cpus", "1")
    assert clustered.returncode == 0, clustered.stderr
    assert "(2 workers)" in clustered.stderr
    assert_same_output(spread, alone)
    if source.suffix == ".mp4":
        assert spread.read_bytes() == alone.read_bytes()  # byte for byte where the container allows


@pytest.fixture(scope="module")
def vfr_mkv(tmp_path_factory) -> Path:
    """Variable frame rate, 2.6 s, in Matroska (millisecond timestamps), with AAC."""
    return write_clip(tmp_path_factory.mktemp("cluster") / "vfr.mkv", ClipSpec(vfr=True, frames=36))


def test_a_missing_ray_is_one_line_saying_what_to_install(clip, nearest_model, tmp_path):
    blocker = tmp_path / "no_ray"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('no ray here')\n")
    result = vidsr(clip, tmp_path / "out.mp4", "--model", nearest_model, "--cluster", "local", PYTHONPATH=str(blocker))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --cluster needs Ray: pip install 'vidsr[ray]'"
    assert not (tmp_path / "out.mp4").exists()


# ---- one Ray for the rest of the module ---------------------------------------------------------


@pytest.fixture(scope="module")
def ray_address(worker_hold):
    with pytest.MonkeyPatch.context() as started_with:  # the raylet, and so every worker, inherits it
        for name, value in worker_hold.environment.items():
            started_with.setenv(name, value)
        ray.init(
            address="local",
            num_cpus=2,
            object_store_memory=100 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def job(source: Path, output: Path, model: Path, **changes: object) -> UpscaleJob:
    settings: dict[str, object] = {"segment_seconds": 0.5, **changes}
    return UpscaleJob(input=source, output=output, upscale=UpscaleOptions(models=(str(model),)), **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("clip_name", ["ten_bit_clip", "rich_mkv"])
def test_ten_bit_and_audio_with_subtitles_come_out_as_from_one_process(
    clip_name, request, ray_address, nearest_model, tmp_path
):
    source = request.getfixturevalue(clip_name)
    alone = upscale_video(job(source, tmp_path / f"alone{source.suffix}", nearest_model))
    spread = upscale_video(
        job(source, tmp_path / f"spread{source.suffix}", nearest_model), backend=RayBackend("auto", worker_cpus=1)
    )
    assert spread.workers == 2
    assert spread.frames == alone.frames
    assert_same_output(spread.output, alone.output)


def test_a_worker_killed_mid_segment_costs_that_segment_only(
    ray_address, worker_hold, long_clip, slow_model, long_reference, tmp_path
):
    killed: list[int] = []

    def kill_the_held_worker(progress) -> None:
        held = [a.pid for a in progress.workers if a.segment == worker_hold.segment and a.pid]
        if not killed and held and worker_hold.reached.exists():
            killed.append(held[0])
            os.kill(held[0], signal.SIGKILL)  # in the middle of its segment: some frames done, not all
            worker_hold.let_go()  # the segment's second run goes through

    with worker_hold.holding():
        result = upscale_video(
            job(long_clip, tmp_path / "out.mp4", slow_model, batch=1),
            backend=RayBackend("auto", worker_cpus=1),
            on_progress=kill_the_held_worker,
        )
    assert killed, "the worker held in the middle of a segment was never seen"
    assert result.frames == 144
    assert_same_long_render(result.output, long_reference)


def cluster_command(source: Path, output: Path, model: Path, *extra: str) -> list[str | Path]:
    return [source, output, "--model", model, "--segment-seconds", "0.5", "--batch", "1", *extra]


def test_a_killed_driver_resumes_with_exactly_the_missing_segments(
    ray_address, long_clip, slow_model, long_reference, tmp_path
):
    output = tmp_path / "out.mp4"
    on_cluster = ("--cluster", "auto", "--worker-cpus", "1")
    killed = vidsr(
        *cluster_command(long_clip, output, slow_model, *on_cluster),
        RAY_ADDRESS=ray_address,
        VIDSR_TEST_KILL_AT="journal-written:5",
    )
    assert killed.returncode == -signal.SIGKILL
    done = {s["index"] for s in json.loads(WorkFolder(output).journal_path.read_text())["segments"]}
    assert 5 in done and len(done) < 12

    resumed = vidsr(*cluster_command(long_clip, output, slow_model, *on_cluster), RAY_ADDRESS=ray_address)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} " in resumed.stderr and "resuming" in resumed.stderr
    assert_same_long_render(output, long_reference)


@pytest.mark.parametrize("first, then", [("cluster", "one process"), ("one process", "cluster")])
def test_a_render_started_one_way_is_finished_the_other(
    first, then, ray_address, long_clip, slow_model, long_reference, tmp_path
):
    output = tmp_path / "out.mp4"
    ways = {"cluster": ("--cluster", "auto", "--worker-cpus", "1"), "one process": ()}
    killed = vidsr(
        *cluster_command(long_clip, output, slow_model, *ways[first]),
        RAY_ADDRESS=ray_address,
        VIDSR_TEST_KILL_AT="journal-written:3",
    )
    assert killed.returncode == -signal.SIGKILL
    finished = vidsr(*cluster_command(long_clip, output, slow_model, *ways[then]), RAY_ADDRESS=ray_address)
    assert finished.returncode == 0, finished.stderr
    assert "resuming" in finished.stderr
    assert_same_long_render(output, long_reference)


def test_ctrl_c_cancels_the_workers_keeps_the_journal_and_exits_130(
    ray_address, long_clip, slow_model, long_reference, tmp_path
):
    output = tmp_path / "out.mp4"
    arguments = cluster_command(long_clip, output, slow_model, "--cluster", "auto", "--worker-cpus", "1")
    process = subprocess.Popen(
        [sys.executable, "-m", "vidsr", *map(str, arguments)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ray_address},
        preexec_fn=with_default_sigint,
    )
    journal = WorkFolder(output).journal_path
    while not (journal.exists() and json.loads(journal.read_text())["segments"]):
        assert process.poll() is None, "the render ended before it could be interrupted"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    assert not output.exists()
    deadline = time.monotonic() + 30  # the cancelled segments' workers are gone: every CPU is free again
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2

    resumed = vidsr(*arguments, RAY_ADDRESS=ray_address)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_long_render(output, long_reference)


@pytest.fixture
def two_files(clip, tmp_path) -> list[Path]:
    """Two 1 s clips (4 segments of 0.25 s each) with the same settings and other pictures: a
    worker must not mix them up."""
    inputs = [tmp_path / "in" / name for name in ("a.mp4", "b.mp4")]
    inputs[0].parent.mkdir()
    shutil.copy(clip, inputs[0])
    reversed_copy(clip, inputs[1])
    return inputs


def short_job(model: Path) -> UpscaleJob:
    return job(Path(), Path(), model, segment_seconds=0.25)


def assert_each_equals_its_render_alone(items, model: Path, folder: Path) -> None:
    for item in items:
        alone = upscale_video(replace(short_job(model), input=item.source, output=folder / f"alone {item.output.name}"))
        assert item.output.read_bytes() == alone.output.read_bytes()


def unfinished(progress) -> bool:
    return progress is not None and progress.segments_done < progress.segments_total


def test_a_batch_keeps_two_files_in_flight_and_each_output_equals_its_render_alone(
    ray_address, two_files, nearest_model, tmp_path
):
    from vidsr.render.batch import BatchProgress, find_batch, run_batch

    items = find_batch(two_files, tmp_path / "out")
    seen: list[BatchProgress] = []

    results = run_batch(
        items,
        short_job(nearest_model),
        backend=RayBackend("auto", worker_cpus=1),  # as --cluster makes it: overlapping is its default
        on_batch_progress=seen.append,
        settle_seconds=0,
    )

    assert [r.result for r in results] == ["done", "done"]
    assert_each_equals_its_render_alone(items, nearest_model, tmp_path)
    # b.mp4's render started while a.mp4's last segments were still out on the workers.
    overlapping = [p for p in seen if len(p.rendering) == 2 and unfinished(p.rendering[0].progress)]
    assert overlapping and overlapping[0].rendering[1].source.name == "b.mp4"
    assert seen[-1].frames_done == seen[-1].frames_total == 48 and seen[-1].rendering == ()


def test_ctrl_c_stops_every_file_in_flight_each_keeping_its_journal_and_the_batch_resumes(
    ray_address, two_files, nearest_model, tmp_path
):
    from vidsr.render.batch import BatchProgress, find_batch, run_batch

    items = find_batch(two_files, tmp_path / "out")
    backend = RayBackend("auto", worker_cpus=1)
    pressed: list[BatchProgress] = []

    def ctrl_c_while_both_render(progress: BatchProgress) -> None:
        if not pressed and len(progress.rendering) == 2 and unfinished(progress.rendering[0].progress):
            pressed.append(progress)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)  # as from the terminal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # also where the suite runs in the background
    try:
        with pytest.raises(RenderInterrupted, match="run the same command again"):
            run_batch(
                items,
                short_job(nearest_model),
                backend=backend,
                on_batch_progress=ctrl_c_while_both_render,
                settle_seconds=0,
            )
    finally:
        signal.signal(signal.SIGINT, before)

    assert pressed
    a, b = items
    assert not b.output.exists() and WorkFolder(b.output).journal_path.exists()  # stopped, its journal kept
    assert a.output.exists() or WorkFolder(a.output).journal_path.exists()  # finished, or stopped the same way
    rows = run_batch(items, short_job(nearest_model), backend=backend, settle_seconds=0)
    assert rows[0].result in ("skipped", "resumed", "done") and rows[1].result in ("resumed", "done")
    assert not any("another vidsr" in row.note for row in rows)  # no render of the first run still going
    assert_each_equals_its_render_alone(items, nearest_model, tmp_path)


def test_an_error_after_one_file_stops_the_batch_and_leaves_the_other_resumable(
    ray_address, two_files, nearest_model, tmp_path
):
    from vidsr.render.batch import FileResult, find_batch, run_batch

    items = find_batch(two_files, tmp_path / "out")
    backend = RayBackend("auto", worker_cpus=1)

    def table_cannot_be_written(result: FileResult) -> None:
        raise OSError(28, "No space left on device")  # where the caller records a finished file

    with pytest.raises(OSError, match="No space left"):
        run_batch(
            items,
            short_job(nearest_model),
            backend=backend,
            on_file_done=table_cannot_be_written,
            settle_seconds=0,
        )

    assert any(item.output.exists() for item in items)  # the file whose row could not be recorded
    assert all(item.output.exists() or WorkFolder(item.output).journal_path.exists() for item in items)
    rows = run_batch(items, short_job(nearest_model), backend=backend, settle_seconds=0)
    assert "skipped" in [row.result for row in rows]
    assert all(row.result in ("skipped", "resumed", "done") for row in rows)
    assert not any("another vidsr" in row.note for row in rows)  # no render of the first run still going
    assert_each_equals_its_render_alone(items, nearest_model, tmp_path)


def reversed_copy(source: Path, target: Path) -> None:
    """``source``'s frames in reverse order, at its frame rate, size and colour tags (no audio)."""
    import av

    with av.open(str(source)) as container:
        frames = [f.to_ndarray() for f in container.decode(video=0)][::-1]
        rate = container.streams.video[0].average_rate
    with av.open(str(target), "w") as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1  # bt709, limited: as the source
        for array in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="yuv420p")))
        output.mux(stream.encode())
