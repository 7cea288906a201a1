"""Times as users read and type them: h:mm:ss.mmm on screen, h-mm-ss.mmm in file names."""

from __future__ import annotations

import re
from fractions import Fraction

from vidsr.errors import SettingsError

__all__ = ["name_time", "parse_time", "show_time"]

_TIME_PATTERN = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)$")


def parse_time(text: str) -> Fraction:
    """Seconds ("75", "75.5") or [hh:]mm:ss[.ms] ("1:15.5", "0:01:15") as an exact Fraction."""
    match = _TIME_PATTERN.match(text.strip())
    if not match:
        raise SettingsError(f"{text!r} is not a time: give seconds (75.5), mm:ss (1:15.5) or hh:mm:ss.ms (0:01:15.500)")
    hours, minutes, seconds = match.groups()
    if hours is not None or minutes is not None:
        if float(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
            raise SettingsError(f"{text!r} is not a time: minutes and seconds go up to 59")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + Fraction(seconds)


def name_time(seconds: Fraction | float | None) -> str:
    """A time as h-mm-ss.mmm, rounded to the millisecond: file-name safe everywhere (no colons)."""
    millis = round(Fraction(seconds or 0) * 1000)
    sign = "-" if millis < 0 else ""
    hours, millis = divmod(abs(millis), 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{sign}{hours}-{minutes:02d}-{whole:02d}.{millis:03d}"


def show_time(seconds: Fraction | float | None) -> str:
    """A time as h:mm:ss.mmm, the way users find a spot in a player."""
    text = name_time(seconds)
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    return sign + text.replace("-", ":")
