"""What each x264 preset costs and gives on upscaled video: file size, fidelity, CPU time.

The network's output is rendered once, losslessly; every preset then encodes the same frames at
the same CRF, and each result is compared with the lossless frames (luma PSNR). This is what the
automatic preset (``vidsr.media.encode.automatic_preset``) trades: CPU time the network could use
against bytes.

    python bench/presets.py [--model realesr-animevideov3] [--size 320x180] [--frames 48] [--crf 18]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from speed import make_input

from vidsr.media.encode import EncodeSettings
from vidsr.render import UpscaleJob, upscale_video
from vidsr.upscale import UpscaleOptions

PRESETS = ("medium", "fast", "faster", "veryfast", "superfast", "ultrafast")


def luma_planes(video: Path) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        return [np.asarray(frame.planes[0]).astype(np.float64) for frame in container.decode(video=0)]


def encode(frames: list[av.VideoFrame], output: Path, preset: str, crf: int) -> float:
    """Encode ``frames`` and return the CPU seconds (all threads) it took."""
    started = time.process_time()
    with av.open(str(output), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": str(crf), "preset": preset})
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--crf", type=int, default=18)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        clip = make_input(folder / "input.mp4", width=width, height=height, frames=args.frames)
        lossless = folder / "lossless.mkv"
        upscale_video(
            UpscaleJob(
                input=clip,
                output=lossless,
                upscale=UpscaleOptions(models=(args.model,)),
                encode=EncodeSettings(crf=0, preset="ultrafast"),
            )
        )
        reference = luma_planes(lossless)
        with av.open(str(lossless)) as container:
            frames = list(container.decode(video=0))
        for frame in frames:
            frame.pict_type = av.video.frame.PictureType.NONE

        print(
            f"{args.model}, {width}x{height} -> x4, {len(frames)} frames, crf {args.crf}, against the lossless render"
        )
        print(f"{'preset':<11}{'kB':>8}{'x medium':>10}{'luma PSNR':>11}{'core-ms/frame':>15}")
        medium_size = None
        for preset in PRESETS:
            output = folder / f"{preset}.mp4"
            cpu_seconds = encode(frames, output, preset, args.crf)
            size = output.stat().st_size
            medium_size = medium_size or size
            errors = [np.mean((a - b) ** 2) for a, b in zip(reference, luma_planes(output))]
            psnr = 10 * np.log10(255**2 / np.mean(errors))
            print(
                f"{preset:<11}{size / 1024:8.0f}{size / medium_size:10.2f}{psnr:11.2f}"
                f"{1000 * cpu_seconds / len(frames):15.1f}"
            )


if __name__ == "__main__":
    main()
