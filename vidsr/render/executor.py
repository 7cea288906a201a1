"""Who renders the segments: the small interface the pipeline drives, and the in-process backend.

The pipeline submits the segments the journal lacks, waits for any of them to finish, commits
each and records it; on Ctrl-C it cancels the rest. ``InProcessExecutor`` renders them here, one
after the other (this is vidsr without a cluster, and what the tests use); ``vidsr.render.ray_executor``
spreads them over the workers of a Ray cluster. Either way a segment is rendered by
:class:`~vidsr.render.segments.SegmentRenderer`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vidsr.models import LoadedModel
from vidsr.render.plan import RenderPlan
from vidsr.render.segments import RenderedSegment, SegmentRenderer

__all__ = ["Activity", "Executor", "InProcessExecutor"]


@dataclass(frozen=True)
class Activity:
    """What one worker is doing: the segment it renders (None: idle) and the frames of it done so far."""

    worker: str
    segment: int | None
    frames: int
    pid: int | None = None  # the worker's process, where it has one of its own
    node: str | None = None  # the cluster node it runs on


ActivityCallback = Callable[[Activity], None]


class Executor(Protocol):
    """Renders submitted segments somewhere; results come back in whatever order they finish."""

    @property
    def workers(self) -> int: ...

    def submit(self, index: int) -> None:
        """Queue segment ``index`` for rendering."""
        ...

    def pending(self) -> int:
        """How many submitted segments have not come back yet."""
        ...

    def wait_any(self) -> list[RenderedSegment]:
        """Block until at least one submitted segment is finished, and return those that are;
        a segment that failed for good raises its error here."""
        ...

    def cancel_all(self) -> None:
        """Stop every segment in flight and forget the queued ones (after Ctrl-C or an error)."""
        ...

    def close(self) -> None: ...


class InProcessExecutor:
    """Renders each segment in this process, in the order submitted, when it is waited for.

    The network stays loaded across segments; inside a segment, decoding and encoding run in
    their own threads beside the network. ``on_activity`` hears of the frames done as they go.
    """

    def __init__(
        self,
        plan: RenderPlan,
        model: LoadedModel | None = None,
        *,
        warn: Callable[[str], None] | None = None,
        on_activity: ActivityCallback | None = None,
    ) -> None:
        self._renderer = SegmentRenderer(plan, model, warn=warn)
        self._queue: deque[int] = deque()
        self._on_activity = on_activity

    @property
    def workers(self) -> int:
        return 1

    def submit(self, index: int) -> None:
        self._queue.append(index)

    def pending(self) -> int:
        return len(self._queue)

    def wait_any(self) -> list[RenderedSegment]:
        index = self._queue.popleft()
        report = self._on_activity

        def on_frames(frames: int) -> None:
            if report is not None:
                report(Activity("this process", index, frames))

        return [self._renderer.render(index, on_frames=on_frames)]

    def cancel_all(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        self._queue.clear()
