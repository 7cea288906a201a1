"""Threads joined by bounded queues, where an error in any stage stops them all.

A ``Prefetcher`` runs a producer (the decoder) ahead of the caller; a ``Sink`` runs a
consumer (the encoder) behind it. Both use bounded queues, so memory stays flat however
long the video, and both hand a failure in their thread to the caller with its cause.
Decoding and encoding release the GIL inside FFmpeg, and so does torch, so the three
stages really run at the same time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_EOF = object()
_POLL_SECONDS = 0.1  # how often a blocked put/get looks whether the other side has stopped


class StageFailed(Exception):
    """Internal: the thread on the other side of a queue has died; its exception is the cause."""


class Prefetcher(Generic[T]):
    """Iterates ``source`` in a background thread, at most ``depth`` items ahead of the caller."""

    def __init__(self, source: Iterable[T], *, depth: int, name: str) -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        iterator = None
        try:
            iterator = iter(self._source)
            for item in iterator:
                if not _put_unless_stopped(self._queue, item, self._stop):
                    return
            _put_unless_stopped(self._queue, _EOF, self._stop)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._error = exc
            _put_unless_stopped(self._queue, _EOF, self._stop)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's cleanup (closing its container) runs in its own thread

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _EOF:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Stop the producer and wait for its thread; safe to call more than once."""
        self._stop.set()
        _drain(self._queue)
        self._thread.join()


class Sink(Generic[T]):
    """Feeds items to ``consume`` in a background thread through a queue of ``depth`` items."""

    def __init__(self, consume: Callable[[T], None], *, depth: int, name: str) -> None:
        self._consume = consume
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._queue.get()
                if item is _EOF:
                    return
                self._consume(item)  # type: ignore[arg-type]
        except BaseException as exc:
            self._error = exc
            self._stop.set()
            _drain(self._queue)

    def put(self, item: T) -> None:
        """Queue ``item``; raises the consumer's exception if it has failed."""
        if not _put_unless_stopped(self._queue, item, self._stop):
            self._raise_failure()

    def finish(self) -> None:
        """Wait until every queued item is consumed; raises the consumer's exception if any."""
        if not _put_unless_stopped(self._queue, _EOF, self._stop):
            self._raise_failure()
        self._thread.join()
        self._raise_failure()

    def abort(self) -> None:
        """Stop without consuming what is queued, and wait for the thread."""
        self._stop.set()
        _drain(self._queue)
        _put_unless_stopped(self._queue, _EOF, threading.Event())
        self._thread.join()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
        if self._stop.is_set():
            raise StageFailed(f"{self._thread.name} stopped")


def _put_unless_stopped(target: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item``, waiting for room; False if ``stop`` was set first."""
    while not stop.is_set():
        try:
            target.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _drain(target: queue.Queue[object]) -> None:
    while True:
        try:
            target.get_nowait()
        except queue.Empty:
            return
