"""The shadow thread sheds when the server is saturated: it reads the serving thread's load from the kernel and drops
(counting) what waits rather than take the CPU production needs; below saturation it scores everything."""

from __future__ import annotations

import threading
import time
from typing import Any

from sealserve.serve.rollout.shadow import BUSY, ShadowRunner, ThreadLoad
from tests.support.server import wait_until

OFFERS = 400
DEADLINE = 20.0  # seconds: every loop below ends by its count, or by this at the latest


class Tally:
    def __init__(self) -> None:
        self.scored = self.shed = 0
        self.lock = threading.Lock()

    def score(self, items: list[Any]) -> None:
        with self.lock:
            self.scored += len(items)

    def dropped(self, count: int) -> None:
        with self.lock:
            self.shed += count


def spin(seconds: float) -> None:
    """Busy for `seconds` of wall time, as an event loop with requests always waiting is."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def offered_from_a_thread(runner: ShadowRunner, *, busy: bool) -> int:
    """OFFERS offers from one serving thread that is either never idle (busy) or idle between requests; the count offered."""
    offered, idle = 0, threading.Event()

    def serve() -> None:
        nonlocal offered
        deadline = time.monotonic() + DEADLINE
        while offered < OFFERS and time.monotonic() < deadline:
            if busy:
                spin(0.002)
            else:
                idle.wait(0.004)  # the gap between two requests
            offered += runner.offer(offered)

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(DEADLINE + 5)
    return offered


def test_a_thread_that_never_waits_reads_as_busy_and_one_that_waits_as_idle() -> None:
    readings: dict[str, float] = {}

    def measured(name: str, work: Any) -> None:
        load = ThreadLoad(threading.get_native_id())
        load.share()
        for _ in range(6):
            work(0.03)
            readings[name] = load.share()

    idle = threading.Event()
    for name, work in (("busy", spin), ("idle", idle.wait)):
        thread = threading.Thread(target=measured, args=(name, work))
        thread.start()
        thread.join(DEADLINE)
    assert readings["busy"] >= BUSY
    assert readings["idle"] < 0.2


def test_a_saturated_server_sheds_its_shadow_and_counts_every_request_it_drops() -> None:
    tally = Tally()
    runner = ShadowRunner("demo", tally.score, tally.dropped)
    assert offered_from_a_thread(runner, busy=True) == OFFERS
    runner.close(timeout=5)
    assert tally.shed > OFFERS / 2  # after the first looks, everything queued is dropped, not scored
    assert tally.scored + tally.shed <= OFFERS


def test_below_saturation_every_request_is_scored_and_none_dropped() -> None:
    """The live control of the test above: the same runner and offers, from a thread idle between requests."""
    tally = Tally()
    runner = ShadowRunner("demo", tally.score, tally.dropped)
    assert offered_from_a_thread(runner, busy=False) == OFFERS
    wait_until(lambda: runner.waiting == 0, timeout=DEADLINE)
    runner.close(timeout=5)
    assert tally.shed == 0
    assert tally.scored == OFFERS


def test_a_saturated_thread_is_seen_whichever_thread_offered_first() -> None:
    """gRPC calls offer from their own threads: an idle one offering first does not hide the event loop's saturation."""
    tally = Tally()
    runner = ShadowRunner("demo", tally.score, tally.dropped)
    first = threading.Thread(target=runner.offer, args=("from an idle thread",))
    first.start()
    first.join(DEADLINE)
    assert offered_from_a_thread(runner, busy=True) == OFFERS
    runner.close(timeout=5)
    assert tally.shed > OFFERS / 2
