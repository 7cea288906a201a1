"""The job's typed identity: what a resume must match, what it may differ in, what it keeps."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import av
import numpy as np
import pytest

from vidsr.errors import VidsrError
from vidsr.render import UpscaleJob, plan_job, upscale_video
from vidsr.render.identity import JobIdentity, OutputSettings, differences, identity_from_json, identity_to_json
from vidsr.render.journal import JOURNAL_VERSION, Journal, read_journal
from vidsr.render.workfolder import WorkFolder
from vidsr.upscale import UpscaleOptions


@pytest.fixture
def identity(clip, nearest_model, tmp_path) -> JobIdentity:
    job = UpscaleJob(input=clip, output=tmp_path / "out.mp4", upscale=UpscaleOptions(models=(str(nearest_model),)))
    plan, _ = plan_job(job, device="cpu")
    return plan.identity


def test_the_identity_survives_the_journal_exactly(identity):
    text = json.dumps(identity_to_json(identity))
    assert identity_from_json(json.loads(text)) == identity


def test_every_changed_setting_is_named_with_its_old_and_new_value(identity):
    settings = dataclasses.replace(identity.settings, crf=20, segment_seconds=Fraction(3))
    changed = dataclasses.replace(identity, settings=settings)
    assert differences(identity.must_match(), changed.must_match()) == [
        "settings.crf: 18 → 20",
        "settings.segment_seconds: 6 → 3",
    ]


def test_a_new_setting_is_one_field(identity):
    """A dataclass field is all a setting needs: its place in the journal, the comparison and the
    message that names a change follow from it."""
    with_fake = dataclasses.make_dataclass("OutputSettings", [("fake", int, 1)], bases=(OutputSettings,), frozen=True)
    before = dataclasses.replace(identity, settings=with_fake(**dataclasses.asdict(identity.settings)))
    after = dataclasses.replace(identity, settings=with_fake(**dataclasses.asdict(identity.settings), fake=2))
    assert differences(before.must_match(), after.must_match()) == ["settings.fake: 1 → 2"]
    assert identity_to_json(after)["settings"]["fake"] == 2


def test_the_software_stack_and_the_machine_choices_are_not_part_of_what_must_match(identity):
    other = dataclasses.replace(
        identity,
        stack=dataclasses.replace(identity.stack, torch="9.9.9"),
        chosen=dataclasses.replace(identity.chosen, tile=40),
    )
    assert differences(identity.must_match(), other.must_match()) == []
    assert differences(identity.stack, other.stack, prefix="stack.") == [f"stack.torch: {identity.stack.torch} → 9.9.9"]


def test_a_journal_of_an_older_vidsr_is_refused_in_one_line_naming_restart(identity, tmp_path):
    path = tmp_path / "journal.json"
    payload = json.loads(Journal(job=identity, segment_count=1).to_json())
    path.write_text(json.dumps({**payload, "vidsr_journal": JOURNAL_VERSION - 1}))
    with pytest.raises(VidsrError, match="another version of vidsr.*--restart"):
        read_journal(path)


def test_a_journal_with_a_mistyped_field_is_damaged_not_trusted(identity, tmp_path):
    path = tmp_path / "journal.json"
    payload = json.loads(Journal(job=identity, segment_count=1).to_json())
    payload["job"]["settings"]["crf"] = "18"
    path.write_text(json.dumps(payload))
    with pytest.raises(VidsrError, match="damaged.*crf"):
        read_journal(path)


# ---- a sparse timeline: frames far apart cost what their frames cost, not what the gap does


def write_sparse_clip(path, gap_seconds: int) -> None:
    """Six frames: five at 24 fps, then one ``gap_seconds`` later (a camera that records on motion)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, moment in enumerate([0, 42, 83, 125, 167, gap_seconds * 1000]):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = moment, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_a_sparse_timeline_renders_its_frames_with_a_journal_as_small_as_they_are(nearest_model, tmp_path):
    clip = tmp_path / "sparse.mkv"
    write_sparse_clip(clip, gap_seconds=10 * 3600)
    output = tmp_path / "out.mkv"
    job = UpscaleJob(input=clip, output=output, upscale=UpscaleOptions(models=(str(nearest_model),)), keep_work=True)
    result = upscale_video(job)
    assert result.frames == 6
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        pts = [frame.pts for frame in container.decode(stream)]
    assert len(pts) == 6 and float((pts[-1] - pts[0]) * stream.time_base) == pytest.approx(10 * 3600, abs=0.01)
    journal = read_journal(WorkFolder(output).journal_path)
    assert journal is not None and journal.segment_count == 6001 and journal.complete
    assert len(journal.segments) <= 3  # the first segment, the one before the last frame's, the last one
