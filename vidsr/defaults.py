"""The defaults the command line shows in its help, kept where reading them imports nothing heavy."""

from __future__ import annotations

DEFAULT_MODEL = "realesrgan-x4plus"  # the embedded model a render uses when none is named
DEFAULT_SEGMENT_SECONDS = 6.0  # the most work a resume redoes; see bench/segment_cost.py for its cost
