"""Adaptive batching: each caller gets exactly its own rows back, whatever the batch shapes, failures and timing.

pytest-asyncio is not a dependency: every test drives its coroutine with `asyncio.run`. Ordering is made
deterministic with gates (threading.Event inside `run`) and loop yields, never with wall-clock sleeps.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import pytest

from sealserve.serve.errors import OverloadedError
from sealserve.serve.request.batching import AdaptiveBatcher

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
Rows = list[tuple[int, int]]
GATE_TIMEOUT = 10.0


def drive(main: Callable[[], Awaitable[T]], limit: float = 20.0) -> T:
    """Run one test coroutine on a fresh loop, bounded in time."""

    async def bounded() -> T:
        async with asyncio.timeout(limit):
            return await main()

    return asyncio.run(bounded())


async def settle(turns: int = 10) -> None:
    """Let every ready task (callers, the batch worker) take its next steps."""
    for _ in range(turns):
        await asyncio.sleep(0)


def caller_rows(caller: int, n: int) -> Rows:
    return [(caller, i) for i in range(n)]


class Recorder:
    """A row model: doubles each row of the concatenated batch and splits the result back per part; records batches."""

    def __init__(self, gate_first: bool = False) -> None:
        self.batches: list[list[Rows]] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        if not gate_first:
            self.gate.set()

    def __call__(self, parts: list[Rows]) -> list[Rows]:
        self.batches.append([list(part) for part in parts])
        self.started.set()
        assert self.gate.wait(GATE_TIMEOUT), "test gate never opened"
        flat = [(caller, i * 2) for part in parts for caller, i in part]
        out, start = [], 0
        for part in parts:
            out.append(flat[start : start + len(part)])
            start += len(part)
        return out


def doubled(rows: Rows) -> Rows:
    return [(caller, i * 2) for caller, i in rows]


def rows_batcher(run: Callable[[list[Rows]], list[Rows]], **kwargs: Any) -> AdaptiveBatcher[Rows, Rows]:
    kwargs.setdefault("max_batch_size", 16)
    return AdaptiveBatcher(run, len, name="test", **kwargs)


def test_every_caller_gets_exactly_its_own_rows() -> None:
    rng = random.Random(1)
    sizes = [rng.randint(1, 7) for _ in range(300)]
    model = Recorder()
    batcher = rows_batcher(model, max_batch_size=16)

    async def main() -> list[Rows]:
        try:
            return await asyncio.gather(*(batcher.submit(caller_rows(c, n)) for c, n in enumerate(sizes)))
        finally:
            await batcher.close()

    results = drive(main)
    assert results == [doubled(caller_rows(c, n)) for c, n in enumerate(sizes)]
    assert any(len(batch) > 1 for batch in model.batches), "no batching happened"
    for batch in model.batches:
        assert len(batch) == 1 or sum(len(part) for part in batch) <= 16
    assert sorted(part[0][0] for batch in model.batches for part in batch) == list(range(300))
    assert (batcher.stats.batches, batcher.stats.parts, batcher.stats.rows) == (len(model.batches), 300, sum(sizes))
    assert batcher.stats.queue_depth == 0


def test_interleaved_waves_of_numpy_blocks() -> None:
    """Different part sizes in waves (including parts above the limit, run alone); parts are numpy blocks."""
    rng = random.Random(7)
    limit = 32
    batches: list[list[int]] = []

    def run(parts: list[np.ndarray]) -> list[np.ndarray]:
        batches.append([len(part) for part in parts])
        doubled_all = np.concatenate(parts) * 2
        return np.split(doubled_all, np.cumsum([len(part) for part in parts])[:-1])

    batcher: AdaptiveBatcher[np.ndarray, np.ndarray] = AdaptiveBatcher(run, len, max_batch_size=limit, max_queue=256)

    def block(caller: int, n: int) -> np.ndarray:
        return np.column_stack([np.full(n, caller), np.arange(n)])

    async def one(caller: int, n: int, delay_turns: int) -> tuple[int, int, np.ndarray]:
        for _ in range(delay_turns):
            await asyncio.sleep(0)
        return caller, n, await batcher.submit(block(caller, n))

    async def main() -> list[tuple[int, int, np.ndarray]]:
        done: list[tuple[int, int, np.ndarray]] = []
        caller = 0
        try:
            for wave_sizes in ([1, 2, 3], [5, 9, 17], [1, 33, 2, 40], [31, 1, 1], [7]):
                calls = []
                for _ in range(80):
                    calls.append(one(caller, rng.choice(wave_sizes), rng.randint(0, 5)))
                    caller += 1
                done.extend(await asyncio.gather(*calls))
        finally:
            await batcher.close()
        return done

    results = drive(main)
    assert len(results) == 400
    for caller, n, result in results:
        np.testing.assert_array_equal(result, block(caller, n) * 2)
    assert sum(len(b) for b in batches) == 400
    assert any(len(b) > 1 for b in batches)
    for sizes in batches:
        assert len(sizes) == 1 or sum(sizes) <= limit
    assert [40] in batches
    assert [33] in batches


def test_full_queue_rejects_the_excess_and_queued_callers_still_complete() -> None:
    model = Recorder(gate_first=True)
    batcher = rows_batcher(model, max_batch_size=1, max_queue=5)

    async def main() -> None:
        try:
            running = asyncio.create_task(batcher.submit(caller_rows(0, 1)))
            assert await asyncio.to_thread(model.started.wait, GATE_TIMEOUT)
            queued = [asyncio.create_task(batcher.submit(caller_rows(c, 1))) for c in range(1, 6)]
            await settle()
            assert batcher.stats.queue_depth == 5
            for c in range(6, 9):
                with pytest.raises(OverloadedError) as info:
                    await batcher.submit(caller_rows(c, 1))
                assert info.value.status == 503
                assert info.value.headers is not None
                assert "Retry-After" in info.value.headers
            assert batcher.stats.rejected == 3
            model.gate.set()
            assert await running == doubled(caller_rows(0, 1))
            assert await asyncio.gather(*queued) == [doubled(caller_rows(c, 1)) for c in range(1, 6)]
        finally:
            model.gate.set()
            await batcher.close()

    drive(main)


def test_run_error_reaches_that_batch_only_and_the_next_batch_succeeds() -> None:
    model = Recorder(gate_first=True)

    def run(parts: list[Rows]) -> list[Rows]:
        out = model(parts)
        if any(caller == 99 for part in parts for caller, _ in part):
            raise ValueError("model failed on this batch")
        return out

    batcher = rows_batcher(run)

    async def main() -> None:
        try:
            first = asyncio.create_task(batcher.submit(caller_rows(1, 2)))
            assert await asyncio.to_thread(model.started.wait, GATE_TIMEOUT)
            doomed = [asyncio.create_task(batcher.submit(caller_rows(c, 2))) for c in (2, 99, 3)]
            await settle()
            model.gate.set()
            assert await first == doubled(caller_rows(1, 2))
            outcomes = await asyncio.gather(*doomed, return_exceptions=True)
            assert all(isinstance(outcome, ValueError) for outcome in outcomes)
            assert outcomes[0] is outcomes[1] is outcomes[2]
            assert await batcher.submit(caller_rows(4, 3)) == doubled(caller_rows(4, 3))
        finally:
            model.gate.set()
            await batcher.close()

    drive(main)
    assert [[part[0][0] for part in batch] for batch in model.batches] == [[1], [2, 99, 3], [4]]
    assert batcher.stats.failed_batches == 1


@pytest.mark.parametrize("skew", [-1, 1])
def test_wrong_result_count_fails_the_whole_batch_and_nobody_gets_foreign_rows(skew: int) -> None:
    model = Recorder(gate_first=True)
    calls = 0

    def run(parts: list[Rows]) -> list[Rows]:
        nonlocal calls
        calls += 1
        out = model(parts)
        if calls == 2:
            return out[:-1] if skew < 0 else [*out, [(-1, -1)]]
        return out

    batcher = rows_batcher(run)

    async def main() -> None:
        try:
            first = asyncio.create_task(batcher.submit(caller_rows(1, 1)))
            assert await asyncio.to_thread(model.started.wait, GATE_TIMEOUT)
            victims = [asyncio.create_task(batcher.submit(caller_rows(c, 3))) for c in (2, 3, 4)]
            await settle()
            model.gate.set()
            assert await first == doubled(caller_rows(1, 1))
            outcomes = await asyncio.gather(*victims, return_exceptions=True)
            for outcome in outcomes:
                assert isinstance(outcome, RuntimeError)
                assert "results for 3 parts" in str(outcome)
            assert await batcher.submit(caller_rows(5, 2)) == doubled(caller_rows(5, 2))
        finally:
            model.gate.set()
            await batcher.close()

    drive(main)
    assert len(model.batches[1]) == 3


def test_lone_caller_on_an_idle_batcher_runs_alone_at_once() -> None:
    model = Recorder()
    batcher = rows_batcher(model, max_batch_size=64)
    part = caller_rows(1, 3)

    async def main() -> None:
        try:
            assert await batcher.submit(part) == doubled(part)
            assert model.batches == [[part]]
            assert await batcher.submit(caller_rows(2, 1)) == doubled(caller_rows(2, 1))
            assert model.batches == [[part], [caller_rows(2, 1)]]
        finally:
            await batcher.close()

    drive(main)


def test_parts_queued_during_a_batch_form_the_next_batch() -> None:
    model = Recorder(gate_first=True)
    batcher = rows_batcher(model, max_batch_size=8)

    async def main() -> None:
        try:
            first = asyncio.create_task(batcher.submit(caller_rows(1, 1)))
            assert await asyncio.to_thread(model.started.wait, GATE_TIMEOUT)
            rest = [asyncio.create_task(batcher.submit(caller_rows(c, 3))) for c in (2, 3, 4)]
            await settle()
            model.gate.set()
            await first
            assert await asyncio.gather(*rest) == [doubled(caller_rows(c, 3)) for c in (2, 3, 4)]
        finally:
            model.gate.set()
            await batcher.close()

    drive(main)
    # 3 + 3 fit in 8 rows, the third part does not: it starts the following batch.
    assert [[part[0][0] for part in batch] for batch in model.batches] == [[1], [2, 3], [4]]


def test_max_latency_collects_parts_submitted_close_together() -> None:
    model = Recorder()
    # A latency far above the test's time limit: the batch can only run because it fills up.
    batcher = rows_batcher(model, max_batch_size=3, max_latency_ms=600_000)

    async def main() -> None:
        try:
            tasks = [asyncio.create_task(batcher.submit(caller_rows(1, 1)))]
            await settle()
            assert batcher.stats.queue_depth == 0
            assert model.batches == []
            for c in (2, 3):
                tasks.append(asyncio.create_task(batcher.submit(caller_rows(c, 1))))
                await settle()
            assert await asyncio.gather(*tasks) == [doubled(caller_rows(c, 1)) for c in (1, 2, 3)]
        finally:
            await batcher.close()

    drive(main)
    assert model.batches == [[caller_rows(1, 1), caller_rows(2, 1), caller_rows(3, 1)]]


def test_without_latency_the_same_sequence_does_not_wait() -> None:
    model = Recorder()
    batcher = rows_batcher(model, max_batch_size=3)

    async def main() -> None:
        try:
            tasks = [asyncio.create_task(batcher.submit(caller_rows(1, 1)))]
            await settle()
            for c in (2, 3):
                tasks.append(asyncio.create_task(batcher.submit(caller_rows(c, 1))))
            await asyncio.gather(*tasks)
        finally:
            await batcher.close()

    drive(main)
    assert model.batches[0] == [caller_rows(1, 1)]


def test_max_latency_is_an_upper_bound_for_a_lone_part() -> None:
    model = Recorder()
    batcher = rows_batcher(model, max_batch_size=100, max_latency_ms=20)

    async def main() -> None:
        try:
            assert await batcher.submit(caller_rows(1, 2)) == doubled(caller_rows(1, 2))
        finally:
            await batcher.close()

    drive(main, limit=10.0)
    assert model.batches == [[caller_rows(1, 2)]]


def test_event_loop_stays_responsive_during_a_long_run() -> None:
    model = Recorder(gate_first=True)
    finished = threading.Event()

    def run(parts: list[Rows]) -> list[Rows]:
        out = model(parts)
        finished.set()
        return out

    batcher = rows_batcher(run)

    async def probe() -> str:
        await asyncio.sleep(0)
        return "ok"

    async def main() -> None:
        try:
            pending = asyncio.create_task(batcher.submit(caller_rows(1, 2)))
            assert await asyncio.to_thread(model.started.wait, GATE_TIMEOUT)
            assert await asyncio.wait_for(probe(), 5) == "ok"
            assert not finished.is_set()
            assert not pending.done()
            model.gate.set()
            assert await pending == doubled(caller_rows(1, 2))
        finally:
            model.gate.set()
            await batcher.close()

    drive(main)


def test_cancelled_caller_is_dropped_without_disturbing_others() -> None:
    model = Recorder(gate_first=True)
    batcher = rows_batcher(model)

    async def main() -> None:
        try:
            first = asyncio.create_task(batcher.submit(caller_rows(1, 1)))
            assert await asyncio.to_thread(model.started.wait, GATE_TIMEOUT)
            queued = {c: asyncio.create_task(batcher.submit(caller_rows(c, 2))) for c in (2, 3, 4)}
            await settle()
            queued[3].cancel()
            await settle()
            assert batcher.stats.queue_depth == 2
            model.gate.set()
            await first
            assert await queued[2] == doubled(caller_rows(2, 2))
            assert await queued[4] == doubled(caller_rows(4, 2))
            assert queued[3].cancelled()
        finally:
            model.gate.set()
            await batcher.close()

    drive(main)
    assert model.batches[1] == [caller_rows(2, 2), caller_rows(4, 2)]


def test_close_fails_queued_callers_and_lets_the_running_batch_finish() -> None:
    model = Recorder(gate_first=True)
    batcher = rows_batcher(model)

    async def main() -> None:
        running = asyncio.create_task(batcher.submit(caller_rows(1, 1)))
        assert await asyncio.to_thread(model.started.wait, GATE_TIMEOUT)
        queued = [asyncio.create_task(batcher.submit(caller_rows(c, 1))) for c in (2, 3)]
        await settle()
        closing = asyncio.create_task(batcher.close())
        await settle()
        for task in queued:
            with pytest.raises(OverloadedError, match="shutting down"):
                await task
        model.gate.set()
        await closing
        assert await running == doubled(caller_rows(1, 1))
        with pytest.raises(OverloadedError, match="shutting down"):
            await batcher.submit(caller_rows(4, 1))

    drive(main)
    assert len(model.batches) == 1


def test_batcher_outlives_an_event_loop() -> None:
    """A batcher created once (e.g. per model in the registry) keeps working when a later loop serves it."""
    model = Recorder()
    batcher = rows_batcher(model)

    async def once(caller: int) -> Rows:
        return await batcher.submit(caller_rows(caller, 2))

    assert drive(lambda: once(1)) == doubled(caller_rows(1, 2))
    assert drive(lambda: once(2)) == doubled(caller_rows(2, 2))
    drive(batcher.close)
