"""Prefetcher and Sink: the threads between decode, upscale and encode.

What the pipeline relies on: items pass through complete and in order, memory stays
bounded behind a slow stage, a failure on either side reaches the caller with its type,
message and cause, and stopping early leaves no thread behind and runs the source's cleanup.

No test measures speed. Every wait is bounded by ``HANG``, which is only ever reached when
a stage hangs (then the test fails instead of blocking the run).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from vidsr.render.stages import Prefetcher, Sink, StageFailed

HANG = 10.0  # seconds; a generous bound that only a hung thread reaches


# ---- helpers -------------------------------------------------------------------------------------


def bounded(call: Callable[[], object], *, hang: float = HANG) -> object:
    """Run ``call`` in a helper thread; fail if it has not returned within ``hang``, else re-raise or return."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the test thread
            outcome["error"] = exc

    helper = threading.Thread(target=run, name="test-bounded-call", daemon=True)
    helper.start()
    helper.join(hang)
    assert not helper.is_alive(), "the call hung"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, "the condition was never reached (a stage hung)"
        time.sleep(0.001)


def stage_threads(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name and thread.is_alive()]


def assert_no_thread_left(name: str) -> None:
    for thread in stage_threads(name):
        thread.join(HANG)
    assert stage_threads(name) == []


@pytest.fixture
def name(request) -> str:
    """A thread name unique to the test, so leftover threads are found by name."""
    return f"test-stage-{request.node.name}"


class Cleanup:
    """Records whether, and in which thread, a generator's ``finally`` ran."""

    def __init__(self) -> None:
        self.ran = threading.Event()
        self.thread_name: str | None = None
        self.drawn = 0

    def counting(self, limit: int | None = None) -> Iterator[int]:
        index = 0
        try:
            while limit is None or index < limit:
                self.drawn += 1
                yield index
                index += 1
        finally:
            self.thread_name = threading.current_thread().name
            self.ran.set()


# ---- Prefetcher ----------------------------------------------------------------------------------


def test_prefetched_items_arrive_complete_and_in_order(name):
    cleanup = Cleanup()
    prefetcher = Prefetcher(cleanup.counting(200), depth=3, name=name)
    assert bounded(lambda: list(prefetcher)) == list(range(200))
    assert cleanup.ran.is_set()
    assert_no_thread_left(name)


def test_an_empty_source_ends_the_iteration_at_once(name):
    prefetcher = Prefetcher(iter(()), depth=2, name=name)
    assert bounded(lambda: list(prefetcher)) == []
    assert_no_thread_left(name)


@pytest.mark.parametrize("depth", [1, 4])
def test_a_stalled_consumer_holds_the_producer_depth_items_ahead(name, depth):
    """While the caller works on an item, the producer fills the queue (``depth`` items) and holds
    one more in hand, waiting for room; it never draws further from the source."""
    total = 12
    drawn = 0

    def source() -> Iterator[int]:
        nonlocal drawn
        for index in range(total):
            drawn += 1
            yield index

    prefetcher = Prefetcher(source(), depth=depth, name=name)
    received = []
    ahead_while_stalled = []
    for item in prefetcher:
        received.append(item)
        expected_ahead = min(depth + 1, total - len(received))
        wait_until(lambda expected=expected_ahead: drawn - len(received) >= expected)  # the producer does run ahead...
        time.sleep(0.005)  # ...and gets every chance to overrun (no speed is measured)
        ahead_while_stalled.append(drawn - len(received))
        assert drawn - len(received) == expected_ahead  # ...but no further
    assert received == list(range(total))
    assert max(ahead_while_stalled) == depth + 1
    prefetcher.close()
    assert_no_thread_left(name)


def test_a_producer_error_reaches_the_consumer_after_the_items_before_it(name):
    def source() -> Iterator[int]:
        yield 0
        yield 1
        try:
            raise KeyError("packet 7")
        except KeyError as cause:
            raise ValueError("frame 2 is corrupt") from cause

    prefetcher = Prefetcher(source(), depth=4, name=name)
    received: list[int] = []

    def consume() -> None:
        for item in prefetcher:
            received.append(item)

    with pytest.raises(ValueError, match="^frame 2 is corrupt$") as raised:
        bounded(consume)
    assert received == [0, 1]
    assert isinstance(raised.value.__cause__, KeyError)
    assert raised.value.__cause__.args == ("packet 7",)
    assert_no_thread_left(name)


def test_a_producer_error_with_a_full_queue_still_arrives_after_every_item(name):
    """The error waits its turn behind a full queue instead of overtaking or dropping items."""

    def source() -> Iterator[int]:
        yield from range(10)
        raise RuntimeError("decoder gave up")

    prefetcher = Prefetcher(source(), depth=1, name=name)
    received: list[int] = []

    def consume() -> None:
        for item in prefetcher:
            received.append(item)

    with pytest.raises(RuntimeError, match="decoder gave up"):
        bounded(consume)
    assert received == list(range(10))


def test_a_source_that_fails_to_start_reaches_the_consumer(name):
    class Unopenable:
        def __iter__(self):
            raise OSError("cannot open the container")

    prefetcher = Prefetcher(Unopenable(), depth=2, name=name)
    with pytest.raises(OSError, match="cannot open the container"):
        bounded(lambda: list(prefetcher), hang=5.0)


@pytest.mark.parametrize("taken", [0, 3])
def test_closing_mid_stream_stops_the_producer_and_runs_the_sources_cleanup(name, taken):
    """The consumer stops early (an error downstream, or Ctrl-C): the endless source is closed
    in the producer's own thread (PyAV containers must close where they were used)."""
    cleanup = Cleanup()
    prefetcher = Prefetcher(cleanup.counting(), depth=2, name=name)
    received = []
    if taken:
        for item in prefetcher:
            received.append(item)
            if len(received) == taken:
                break
    else:
        wait_until(lambda: cleanup.drawn == 3)  # queue full (2) and one in hand: the producer is blocked
    bounded(prefetcher.close)
    assert received == list(range(taken))
    assert cleanup.ran.is_set()
    assert cleanup.thread_name == name
    assert stage_threads(name) == []  # close() returned only after the thread ended


def test_close_is_safe_after_the_end_and_twice(name):
    prefetcher = Prefetcher(range(5), depth=2, name=name)
    assert bounded(lambda: list(prefetcher)) == list(range(5))
    bounded(prefetcher.close)
    bounded(prefetcher.close)
    assert_no_thread_left(name)


# ---- Sink ----------------------------------------------------------------------------------------


def test_finish_returns_once_every_item_is_consumed_in_order(name):
    consumed: list[int] = []
    sink = Sink(consumed.append, depth=2, name=name)

    def feed() -> None:
        for item in range(50):
            sink.put(item)
        sink.finish()

    bounded(feed)
    assert consumed == list(range(50))
    assert stage_threads(name) == []  # finish() joined the thread


def test_a_slow_consumer_makes_put_wait_for_room(name):
    """The caller gets at most ``depth`` items (plus the one being consumed) ahead."""
    depth = 3
    release = threading.Event()
    consumed: list[int] = []
    puts_done = 0

    def slow_consume(item: int) -> None:
        assert release.wait(HANG)
        consumed.append(item)

    sink = Sink(slow_consume, depth=depth, name=name)

    def feed() -> None:
        nonlocal puts_done
        for item in range(10):
            sink.put(item)
            puts_done += 1

    feeder = threading.Thread(target=feed, name=f"{name}-feeder", daemon=True)
    feeder.start()
    wait_until(lambda: puts_done >= depth + 1)
    time.sleep(0.005)  # every chance to overrun (no speed is measured)
    assert puts_done == depth + 1
    release.set()
    feeder.join(HANG)
    assert not feeder.is_alive()
    bounded(sink.finish)
    assert consumed == list(range(10))


def _failing_consumer(fail_at: int, consumed: list[int]) -> Callable[[int], None]:
    def consume(item: int) -> None:
        if item == fail_at:
            try:
                raise ConnectionResetError("pipe closed")
            except ConnectionResetError as cause:
                raise OSError(28, "No space left on device") from cause
        consumed.append(item)

    return consume


def test_a_consumer_error_is_raised_from_put_in_the_caller(name):
    consumed: list[int] = []
    sink = Sink(_failing_consumer(2, consumed), depth=2, name=name)

    def feed_forever() -> None:
        for item in range(10_000):  # the failure must surface long before this runs out
            sink.put(item)

    with pytest.raises(OSError, match="No space left on device") as raised:
        bounded(feed_forever)
    assert raised.value.errno == 28
    assert isinstance(raised.value.__cause__, ConnectionResetError)
    assert consumed == [0, 1]
    assert_no_thread_left(name)
    with pytest.raises(OSError, match="No space left on device"):
        bounded(sink.finish)  # and finish keeps reporting it rather than pretending success


def test_a_consumer_error_on_the_last_item_is_raised_from_finish(name):
    consumed: list[int] = []
    sink = Sink(_failing_consumer(2, consumed), depth=8, name=name)
    for item in range(3):
        sink.put(item)  # room for all: the failure cannot happen before the last put
    with pytest.raises(OSError, match="No space left on device") as raised:
        bounded(sink.finish)
    assert isinstance(raised.value.__cause__, ConnectionResetError)
    assert consumed == [0, 1]
    assert stage_threads(name) == []


def test_abort_of_an_idle_sink_leaves_no_thread_and_refuses_more_items(name):
    consumed: list[int] = []
    sink = Sink(consumed.append, depth=2, name=name)
    sink.put(1)
    wait_until(lambda: consumed == [1])
    bounded(sink.abort)
    assert stage_threads(name) == []
    with pytest.raises(StageFailed):
        sink.put(2)
    assert consumed == [1]


def test_abort_waits_for_the_busy_consumer_and_skips_what_is_queued(name):
    busy, release = threading.Event(), threading.Event()
    consumed: list[int] = []

    def consume(item: int) -> None:
        if item == 0:
            busy.set()
            assert release.wait(HANG)
        consumed.append(item)

    sink = Sink(consume, depth=8, name=name)
    for item in range(4):
        sink.put(item)
    assert busy.wait(HANG)  # item 0 is in hand, items 1..3 are queued
    aborting = threading.Thread(target=sink.abort, name=f"{name}-abort", daemon=True)
    aborting.start()

    def put_refused() -> bool:  # once abort has begun, put refuses: only then let the consumer go
        try:
            sink.put(-1)
        except StageFailed:
            return True
        return False

    wait_until(put_refused)
    release.set()
    aborting.join(HANG)
    assert not aborting.is_alive()
    assert consumed == [0]  # the item in hand is finished, the queued ones are dropped
    assert stage_threads(name) == []
