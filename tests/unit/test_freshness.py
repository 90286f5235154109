"""Scrapes waiting for the rows committed before them (pipeline/freshness.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from stream_mlops.pipeline.freshness import FreshReads
from stream_mlops.pipeline.status import PipelineStatus


@pytest.fixture
def fresh() -> Iterator[FreshReads]:
    yield FreshReads(threading.Event(), threading.Event(), PipelineStatus(active=True))


def scrapes(fresh: FreshReads, n: int) -> list[tuple[threading.Thread, list[bool]]]:
    """``n`` scrapes waiting in threads, once each holds its ticket."""
    out = []
    for _ in range(n):
        answer: list[bool] = []
        th = threading.Thread(target=lambda a=answer: a.append(fresh.wait(timeout=30)))
        th.start()
        out.append((th, answer))
    deadline = time.monotonic() + 10
    while fresh.ticket() < n:
        assert time.monotonic() < deadline, "the scrapes never took their tickets"
        time.sleep(0.001)
    return out


def answered(waiting: list[tuple[threading.Thread, list[bool]]]) -> list[bool]:
    for th, _ in waiting:
        th.join(0.05)
    return [not th.is_alive() for th, _ in waiting]


def test_a_read_in_a_new_window_answers_the_scrapes_that_came_before_it(
        fresh: FreshReads) -> None:
    in_flight = fresh.ticket()  # a read had started when the scrapes arrived
    waiting = scrapes(fresh, 2)
    assert fresh.wake.is_set() and fresh.hurry.is_set()  # the consumer must not linger
    fresh.after_read(in_flight, new_window=True, backlog=False)
    assert answered(waiting) == [False, False] and fresh.hurry.is_set()
    covering = fresh.ticket()
    fresh.after_read(covering, new_window=False, backlog=False)  # the end of a window
    assert answered(waiting) == [False, False] and fresh.hurry.is_set()
    fresh.after_read(covering, new_window=True, backlog=False)
    assert answered(waiting) == [True, True]
    assert [a for _, a in waiting] == [[True], [True]] and not fresh.hurry.is_set()


def test_behind_a_backlog_every_scrape_is_answered_after_the_batch_in_progress(
        fresh: FreshReads) -> None:
    in_flight = fresh.ticket()
    waiting = scrapes(fresh, 3)
    fresh.after_read(in_flight, new_window=False, backlog=True)
    assert answered(waiting) == [True, True, True] and not fresh.hurry.is_set()


def test_nothing_waits_on_a_processor_that_does_not_consume() -> None:
    fresh = FreshReads(threading.Event(), threading.Event(), PipelineStatus(active=False))
    assert fresh.wait(timeout=30) is False
    assert fresh.ticket() == 0 and not fresh.wake.is_set()


def test_release_answers_every_scrape_and_a_stop_keeps_the_consumer_hurrying(
        fresh: FreshReads) -> None:
    waiting = scrapes(fresh, 3)
    fresh.stop.set()
    fresh.release()
    assert answered(waiting) == [True, True, True]
    assert fresh.hurry.is_set()


def test_a_scrape_gives_up_after_its_timeout(fresh: FreshReads) -> None:
    t0 = time.monotonic()
    assert fresh.wait(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.05
