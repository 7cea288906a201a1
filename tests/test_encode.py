"""The encode stage: what the writer takes from the network stage and puts in the work file."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from vidsr.media.encode import EncodeSettings, VideoWriter
from vidsr.planes import ColourSpec, OutputBatch


def test_a_batch_is_read_only_once_its_planes_have_landed(tmp_path):
    """From a GPU the planes arrive after the batch is handed over (an asynchronous copy); the
    writer must wait for them, or it encodes whatever the buffers held before."""
    luma = np.zeros((2, 48, 64), dtype=np.uint8)
    chroma = np.full((2, 24, 32), 128, dtype=np.uint8)

    def land() -> None:  # what the copy from the device delivers, late
        luma[:] = 200

    writer = VideoWriter(
        tmp_path / "work.nut",
        width=64,
        height=48,
        time_base=Fraction(1, 24),
        frame_rate=Fraction(24),
        settings=EncodeSettings(crf=0, preset="ultrafast"),
        pix_fmt="yuv420p",
        colour=ColourSpec(matrix="bt709", full_range=False),
    )
    writer.write(OutputBatch(planes=(luma, chroma, chroma.copy()), pts=(0, 1), first_index=0, wait=land))
    writer.close()
    with av.open(str(tmp_path / "work.nut")) as container:
        lumas = [frame.to_ndarray()[:48] for frame in container.decode(video=0)]
    assert len(lumas) == 2 and all((plane == 200).all() for plane in lumas)
