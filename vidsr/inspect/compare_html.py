"""The compare page as one HTML file: the template, style and script from ``page/`` inlined, and
the page's data as JSON, so it opens from disk in any browser with nothing fetched from anywhere."""

from __future__ import annotations

import html
import json
import shlex
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

from vidsr.durable import atomic_write
from vidsr.errors import OutputError

__all__ = ["ClipFiles", "ModelCard", "Moment", "PageData", "SourceFacts", "page_html"]


@dataclass(frozen=True)
class SourceFacts:
    width: int
    height: int
    frame_rate: float | None
    frames: int
    duration: str  # as shown, "1:02:03.500"
    rotation: int


@dataclass(frozen=True)
class ModelCard:
    """One model as the page shows it: measured speed, the whole video's time, the command."""

    name: str  # as given to --model
    label: str  # shorter, for buttons: a file's stem
    seconds_per_frame: float
    whole_video_seconds: float
    frames: int
    device: str
    precision: str
    output_width: int  # as shown (upright)
    output_height: int
    command: tuple[str, ...]

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)


@dataclass(frozen=True)
class ClipFiles:
    """A moment's clips, file names in the page's folder: the source's, then one per model."""

    source: str
    outputs: tuple[str, ...]
    start: str  # where the clips start in the video, as shown
    offset: float  # seconds from the clips' start to the moment


@dataclass(frozen=True)
class Moment:
    """One moment: the frame, its time, and its pictures (file names in the page's folder)."""

    index: int
    seconds: float
    time: str
    source: str  # the frame at its own size (shown enlarged, nearest neighbour)
    bicubic: str  # the frame enlarged bicubically to the models' size
    outputs: tuple[str, ...]  # one per model, in the models' order
    clips: ClipFiles | None = None


@dataclass(frozen=True)
class PageData:
    title: str
    source: SourceFacts
    output_width: int  # as shown (upright), as every picture on the page is
    output_height: int
    models: tuple[ModelCard, ...]
    moments: tuple[Moment, ...]
    clip_seconds: float | None


def page_html(data: PageData, path: Path, folder: str) -> None:
    """Write the page atomically; ``folder`` is its files' folder, relative to the page."""
    text = render(data, folder)

    def write(handle: IO[bytes]) -> None:
        handle.write(text.encode("utf-8"))

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def render(data: PageData, folder: str) -> str:
    """The whole page as text: the template with style, script and data filled in."""
    page = resources.files("vidsr.inspect") / "page"
    template = (page / "compare.html").read_text(encoding="utf-8")
    payload = _payload(data, folder)
    # JSON inside <script>: "<" escaped so no "</script>" in a file name can end the element.
    as_json = json.dumps(payload, ensure_ascii=False).replace("<", "\\u003c")
    return (
        template.replace("{{title}}", html.escape(f"vidsr compare: {data.title}"))
        .replace("{{style}}", (page / "compare.css").read_text(encoding="utf-8"))
        .replace("{{data}}", as_json)
        .replace("{{script}}", (page / "compare.js").read_text(encoding="utf-8"))
    )


def _payload(data: PageData, folder: str) -> dict[str, Any]:
    plain = asdict(data)
    plain["folder"] = folder
    for card, model in zip(plain["models"], data.models):
        card["command_line"] = model.command_line
    return plain
