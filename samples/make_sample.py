"""Regenerate ``samples/sample.mp4``, the small demo/test clip for vidsr.

The clip is a 2-second, 160x90, 24 fps Ken Burns pan-and-zoom over the
public-domain NASA portrait of astronaut Eileen Collins that ships with
scikit-image (``skimage.data.astronaut()``), plus a synthesised stereo
arpeggio as AAC audio.  Everything is computed from fixed parameters (no
randomness), so re-running the script reproduces the same pictures and sound.

Why it looks like this:

* Each frame is cut from the *full-resolution* photograph and downscaled with
  Pillow's Lanczos filter, so the clip looks like genuinely low-resolution,
  properly antialiased footage rather than an upscaled or aliased image.
* 160x90 keeps a 4x upscale (640x360) cheap enough for a slow neural net on a
  CPU, while the face, the flag and the shuttle model give it detail to work on.
* The audio track exists so that vidsr's "audio is kept" path has something to
  carry through; it is musical rather than a bare sine so a broken remux is
  audible.

Usage::

    python samples/make_sample.py [OUTPUT]

OUTPUT defaults to ``sample.mp4`` next to this script.  Needs PyAV, NumPy,
Pillow and scikit-image (``pip install scikit-image pillow``); no ffmpeg
binary is used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from skimage import data

# --- Video parameters -------------------------------------------------------
WIDTH, HEIGHT = 160, 90
FPS = 24
DURATION_S = 2
N_FRAMES = FPS * DURATION_S  # 48
CRF = 18
PRESET = "slow"

# BT.601 (SD) colour tags, as FFmpeg enum values.  AVColorSpace 6 is
# SMPTE 170M (the BT.601 matrix); primaries and transfer use SMPTE 170M too,
# and range 1 is MPEG (limited, 16-235).  Raw ints are used on purpose:
# PyAV's ``Colorspace`` enum holds *swscale* values, which differ from
# AVColorSpace for this matrix.
AVCOL_SPC_SMPTE170M = 6
AVCOL_PRI_SMPTE170M = 6
AVCOL_TRC_SMPTE170M = 6
AVCOL_RANGE_MPEG = 1


@dataclass(frozen=True)
class Window:
    """A crop window over the source photo: centre and width, in pixels.

    The height always follows from the output aspect ratio, so the crop is
    never stretched.
    """

    cx: float
    cy: float
    width: float

    @property
    def height(self) -> float:
        return self.width * HEIGHT / WIDTH

    def box(self) -> tuple[float, float, float, float]:
        """Return the (left, top, right, bottom) box Pillow's resize expects."""
        half_w, half_h = self.width / 2, self.height / 2
        return (self.cx - half_w, self.cy - half_h, self.cx + half_w, self.cy + half_h)


# Start on a wide shot of the upper body (flag and shuttle model visible) and
# drift in towards the face.  Both windows lie inside the 512x512 photo.
START = Window(cx=256.0, cy=165.0, width=480.0)
END = Window(cx=228.0, cy=122.0, width=320.0)

# --- Audio parameters -------------------------------------------------------
SAMPLE_RATE = 48_000
N_SAMPLES = SAMPLE_RATE * DURATION_S  # 96 000
AAC_FRAME_SIZE = 1024
AUDIO_BITRATE = 128_000
PEAK = 0.5  # -6 dBFS: comfortably clear of clipping after AAC coding.

# A Cmaj9 arpeggio, one note every quarter second (two per beat at 120 bpm),
# rising then falling, panned gently left/right.  MIDI note numbers.
ARPEGGIO = (60, 64, 67, 71, 74, 71, 67, 64)
NOTE_STEP_S = DURATION_S / len(ARPEGGIO)
PAD_CHORD = (48, 55, 64)  # C3 G3 E4: a soft sustained bed under the arpeggio.


def ease_in_out(t: float) -> float:
    """Cosine ease: zero velocity at both ends, so the move starts and stops softly."""
    return 0.5 - 0.5 * float(np.cos(np.pi * t))


def window_at(t: float) -> Window:
    """Interpolate the crop window for normalised time ``t`` in [0, 1].

    The width is interpolated geometrically so the zoom speed looks uniform
    (equal ratios per step), and the centre linearly, both on the eased curve.
    """
    e = ease_in_out(t)
    width = START.width * (END.width / START.width) ** e
    return Window(
        cx=START.cx + (END.cx - START.cx) * e,
        cy=START.cy + (END.cy - START.cy) * e,
        width=width,
    )


def render_frames(photo: Image.Image) -> Iterator[NDArray[np.uint8]]:
    """Yield the RGB frames of the pan-and-zoom.

    Pillow's ``resize(box=...)`` takes a sub-pixel box, so the window glides
    smoothly instead of snapping to whole pixels, and Lanczos downscaling
    gives clean, alias-free low-resolution frames.
    """
    for i in range(N_FRAMES):
        window = window_at(i / (N_FRAMES - 1))
        frame = photo.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS, box=window.box())
        yield np.asarray(frame, dtype=np.uint8)


def midi_to_hz(note: int) -> float:
    """Equal-tempered frequency of a MIDI note (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69) / 12)


def tone(freq: float, t: NDArray[np.float64]) -> NDArray[np.float64]:
    """A mellow, slightly bell-like timbre: a few harmonics falling off fast.

    Richer than a bare sine so it sounds like an instrument, but with no
    harmonics high enough to be harsh or to alias at 48 kHz.
    """
    partials = ((1, 1.0), (2, 0.35), (3, 0.15), (4, 0.06))
    return sum(amp * np.sin(2 * np.pi * freq * k * t) for k, amp in partials)


def envelope(t: NDArray[np.float64], attack_s: float, decay_s: float) -> NDArray[np.float64]:
    """Soft linear attack into an exponential decay; zero before the note starts.

    The attack avoids clicks at note onsets; the decay lets notes ring and overlap.
    """
    env = np.where(t < attack_s, t / attack_s, np.exp(-(t - attack_s) / decay_s))
    return np.where(t >= 0, env, 0.0)


def synthesise_audio() -> NDArray[np.float32]:
    """Return the (2, N_SAMPLES) float32 stereo signal, peak-normalised to PEAK.

    An arpeggio of plucked notes over a quiet pad chord, with a short global
    fade in/out so the clip starts and ends in silence (no click at the cut).
    """
    t = np.arange(N_SAMPLES, dtype=np.float64) / SAMPLE_RATE
    left = np.zeros(N_SAMPLES)
    right = np.zeros(N_SAMPLES)

    for i, note in enumerate(ARPEGGIO):
        local_t = t - i * NOTE_STEP_S
        voice = tone(midi_to_hz(note), local_t) * envelope(local_t, 0.008, 0.35)
        pan = 0.5 + 0.25 * (1 if i % 2 else -1)  # alternate gently between sides
        left += voice * np.cos(pan * np.pi / 2)
        right += voice * np.sin(pan * np.pi / 2)

    pad = sum(tone(midi_to_hz(n), t) for n in PAD_CHORD) * 0.12
    pad *= np.minimum(t / 0.4, 1.0)  # slow swell so the pad never "starts"
    left += pad
    right += pad

    fade = np.minimum(1.0, np.minimum(t / 0.01, (DURATION_S - t) / 0.25))
    stereo = np.stack([left, right]) * fade
    stereo *= PEAK / np.max(np.abs(stereo))
    return stereo.astype(np.float32)


def add_video_stream(container: av.container.OutputContainer) -> av.VideoStream:
    """Add an H.264 yuv420p stream tagged consistently as BT.601 limited range.

    Tagging matters: untagged SD video is guessed differently by different
    players, and vidsr has to carry these tags through to its output.
    A single encoder thread and x264's plain-C code paths keep the output
    bit-identical from run to run (see the options below).
    """
    stream = container.add_stream("libx264", rate=FPS)
    stream.width = WIDTH
    stream.height = HEIGHT
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, FPS)
    # "no-asm": x264's SIMD routines read some uninitialised bytes when the
    # height is not a multiple of 16 (90 here), which made the bitstream vary
    # from run to run; the C paths are deterministic and fast enough at 160x90.
    stream.options = {"crf": str(CRF), "preset": PRESET, "x264-params": "no-asm=1"}
    cc = stream.codec_context
    cc.thread_count = 1  # PyAV's default (0 = auto) overrides a "threads" option
    cc.colorspace = AVCOL_SPC_SMPTE170M
    cc.color_primaries = AVCOL_PRI_SMPTE170M
    cc.color_trc = AVCOL_TRC_SMPTE170M
    cc.color_range = AVCOL_RANGE_MPEG
    return stream


def add_audio_stream(container: av.container.OutputContainer) -> av.AudioStream:
    """Add a 48 kHz stereo AAC stream with a sample-count time base."""
    stream = container.add_stream("aac", rate=SAMPLE_RATE)
    stream.layout = "stereo"
    stream.format = "fltp"
    stream.bit_rate = AUDIO_BITRATE
    stream.time_base = Fraction(1, SAMPLE_RATE)
    return stream


def to_video_frame(rgb: NDArray[np.uint8], index: int) -> av.VideoFrame:
    """Convert an RGB array to a tagged yuv420p frame with pts ``index``.

    The RGB->YUV conversion uses the BT.601 matrix and limited range, matching
    the stream tags, so the colours decode back the way they were rendered.
    """
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame = frame.reformat(
        format="yuv420p",
        dst_colorspace="ITU601",
        dst_color_range="MPEG",
        dst_color_trc=AVCOL_TRC_SMPTE170M,
        dst_color_primaries=AVCOL_PRI_SMPTE170M,
    )
    frame.colorspace = AVCOL_SPC_SMPTE170M
    frame.color_range = AVCOL_RANGE_MPEG
    frame.pts = index
    frame.time_base = Fraction(1, FPS)
    return frame


def audio_frames(signal: NDArray[np.float32]) -> Iterator[av.AudioFrame]:
    """Split the signal into AAC-sized frames (1024 samples) with sample pts.

    The AAC encoder wants exactly ``frame_size`` samples per frame; only the
    final frame may be shorter (96 000 = 93 x 1024 + 768).
    """
    for start in range(0, signal.shape[1], AAC_FRAME_SIZE):
        chunk = np.ascontiguousarray(signal[:, start : start + AAC_FRAME_SIZE])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        frame.time_base = Fraction(1, SAMPLE_RATE)
        yield frame


def write_clip(output: Path) -> None:
    """Encode video and audio into an mp4 with ``+faststart``.

    Frames are fed in presentation-time order (each video frame followed by
    the audio that starts before the next one) and PyAV's interleaved muxing
    does the rest; both encoders are flushed at the end.
    """
    photo = Image.fromarray(data.astronaut())
    signal = synthesise_audio()
    output.parent.mkdir(parents=True, exist_ok=True)

    with av.open(str(output), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        vstream = add_video_stream(container)
        astream = add_audio_stream(container)
        pending_audio = audio_frames(signal)
        next_audio = next(pending_audio, None)

        for index, rgb in enumerate(render_frames(photo)):
            container.mux(vstream.encode(to_video_frame(rgb, index)))
            frame_end = Fraction(index + 1, FPS)
            while next_audio is not None and Fraction(next_audio.pts, SAMPLE_RATE) < frame_end:
                container.mux(astream.encode(next_audio))
                next_audio = next(pending_audio, None)

        while next_audio is not None:  # nothing left in practice; kept for safety
            container.mux(astream.encode(next_audio))
            next_audio = next(pending_audio, None)
        container.mux(vstream.encode(None))
        container.mux(astream.encode(None))


def main(argv: list[str]) -> int:
    """Entry point: ``make_sample.py [OUTPUT]``."""
    if len(argv) > 2:
        print(__doc__.split("Usage::")[1].strip().splitlines()[0].strip(), file=sys.stderr)
        return 2
    output = Path(argv[1]) if len(argv) == 2 else Path(__file__).resolve().parent / "sample.mp4"
    write_clip(output)
    print(f"wrote {output} ({output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
