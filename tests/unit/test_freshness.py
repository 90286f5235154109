"""Scrapes waiting for the rows committed before them (pipeline/freshness.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from stream_mlops.pipeline.freshness import FreshReads
from stream_mlops.pipeline.status import PipelineStatus


@pytest.fixture
def fresh() -> Iterator[FreshReads]:
    yield FreshReads(threading.Event(), threading.Event(), PipelineStatus(active=True))


def scrape_in_thread(fresh: FreshReads) -> tuple[threading.Thread, list[bool]]:
    out: list[bool] = []
    th = threading.Thread(target=lambda: out.append(fresh.wait(timeout=30)))
    th.start()
    return th, out


def test_a_scrape_waits_for_a_read_that_started_after_it(fresh: FreshReads) -> None:
    covered = fresh.ticket()  # a read in flight when the scrape arrives
    th, out = scrape_in_thread(fresh)
    while fresh.ticket() == covered:
        th.join(0.001)
    assert fresh.wake.is_set() and fresh.hurry.is_set()  # the consumer must not linger
    fresh.serve(covered)  # that read's batch does not answer it
    th.join(0.05)
    assert th.is_alive() and fresh.hurry.is_set()
    fresh.serve(fresh.ticket())  # the next read's does
    th.join(5)
    assert out == [True] and not fresh.hurry.is_set()


def test_nothing_waits_on_a_processor_that_does_not_consume() -> None:
    fresh = FreshReads(threading.Event(), threading.Event(), PipelineStatus(active=False))
    assert fresh.wait(timeout=30) is False
    assert fresh.ticket() == 0 and not fresh.wake.is_set()


def test_release_answers_every_scrape_and_a_stop_keeps_the_consumer_hurrying(
        fresh: FreshReads) -> None:
    threads = [scrape_in_thread(fresh) for _ in range(3)]
    while fresh.ticket() < 3:
        threads[0][0].join(0.001)
    fresh.stop.set()
    fresh.release()
    for th, out in threads:
        th.join(5)
        assert out == [True]
    assert fresh.hurry.is_set()


def test_a_scrape_gives_up_after_its_timeout(fresh: FreshReads) -> None:
    assert fresh.wait(timeout=0.01) is False
