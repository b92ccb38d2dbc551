"""The learned selector's micro-batcher: one predict call for concurrent requests."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from polyroute.batching import MicroBatcher
from polyroute.errors import RoutingError

GUARD_S = 30.0  # a hang fails the test instead of stalling the run (not a speed check)


class Recorder:
    """``predict_batch`` that records its batches; row = (prompt number, batch size)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> np.ndarray:
        self.batches.append(list(prompts))
        return np.array([[float(p.split()[-1]), len(prompts)] for p in prompts])


async def test_concurrent_requests_share_a_batch_and_get_their_own_rows() -> None:
    record = Recorder()
    batcher = MicroBatcher(record, max_batch=8, window_s=0.001)
    async with asyncio.timeout(GUARD_S):
        rows = await asyncio.gather(*(batcher.predict(f"prompt {i}") for i in range(20)))
    assert [row[0] for row in rows] == list(range(20))  # each request its own row
    assert [len(b) for b in record.batches] == [8, 8, 4]  # max_batch holds, in arrival order
    assert [p for b in record.batches for p in b] == [f"prompt {i}" for i in range(20)]


async def test_a_lone_request_is_predicted_alone() -> None:
    record = Recorder()
    batcher = MicroBatcher(record, window_s=0.0)
    async with asyncio.timeout(GUARD_S):
        row = await batcher.predict("prompt 7")
    assert row.tolist() == [7.0, 1.0]
    assert record.batches == [["prompt 7"]]


async def test_requests_arriving_during_a_batch_form_the_next_one() -> None:
    started, release = threading.Event(), threading.Event()
    record = Recorder()

    def slow(prompts: list[str]) -> np.ndarray:
        started.set()
        release.wait(GUARD_S)
        return record(prompts)

    batcher = MicroBatcher(slow, window_s=0.0)
    async with asyncio.timeout(GUARD_S):
        first = asyncio.ensure_future(batcher.predict("prompt 0"))
        await asyncio.to_thread(started.wait, GUARD_S)
        later = [asyncio.ensure_future(batcher.predict(f"prompt {i}")) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        release.set()
        rows = await asyncio.gather(first, *later)
    assert [row[0] for row in rows] == [0, 1, 2, 3]
    assert record.batches == [["prompt 0"], ["prompt 1", "prompt 2", "prompt 3"]]


async def test_an_exception_fails_every_waiter_of_the_batch_clearly() -> None:
    calls = 0

    def broken(prompts: list[str]) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise MemoryError("encoder out of memory")
        return np.zeros((len(prompts), 2))

    batcher = MicroBatcher(broken, name="learned router 'x'")
    async with asyncio.timeout(GUARD_S):
        results = await asyncio.gather(
            *(batcher.predict(f"p {i}") for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, RoutingError) for r in results)
        message = str(results[0])
        assert "learned router 'x' failed" in message and "encoder out of memory" in message
        assert isinstance(results[0].__cause__, MemoryError)
        assert (await batcher.predict("p 9")).shape == (2,)  # the batcher still works


async def test_a_wrong_number_of_rows_is_an_error_not_a_misroute() -> None:
    batcher = MicroBatcher(lambda prompts: np.zeros((len(prompts) + 1, 2)))
    async with asyncio.timeout(GUARD_S):
        with pytest.raises(RoutingError, match="3 rows for 2 prompts"):
            await asyncio.gather(batcher.predict("p 0"), batcher.predict("p 1"))


async def test_a_cancelled_request_does_not_break_its_batch() -> None:
    started, release = threading.Event(), threading.Event()
    record = Recorder()

    def slow(prompts: list[str]) -> np.ndarray:
        started.set()
        release.wait(GUARD_S)
        return record(prompts)

    batcher = MicroBatcher(slow, window_s=0.0)
    async with asyncio.timeout(GUARD_S):
        waiters = [asyncio.ensure_future(batcher.predict(f"p {i}")) for i in range(3)]
        await asyncio.to_thread(started.wait, GUARD_S)  # the batch is in predict now
        waiters[1].cancel()
        release.set()
        done = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [r[0] for r in (done[0], done[2])] == [0, 2]  # type: ignore[index]


async def test_a_request_cancelled_before_its_batch_starts_is_skipped() -> None:
    record = Recorder()
    batcher = MicroBatcher(record, window_s=0.001)
    async with asyncio.timeout(GUARD_S):
        waiters = [asyncio.ensure_future(batcher.predict(f"p {i}")) for i in range(3)]
        await asyncio.sleep(0)  # queued, the window not over
        waiters[0].cancel()
        done = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert record.batches == [["p 1", "p 2"]]


async def test_workers_run_batches_side_by_side() -> None:
    both = threading.Barrier(2, timeout=GUARD_S)  # breaks (an error) unless 2 run at once
    record = Recorder()

    def meet(prompts: list[str]) -> np.ndarray:
        both.wait()
        return record(prompts)

    batcher = MicroBatcher(meet, max_batch=2, window_s=0.0, workers=2)
    async with asyncio.timeout(GUARD_S):
        rows = await asyncio.gather(*(batcher.predict(f"p {i}") for i in range(4)))
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert sorted(len(b) for b in record.batches) == [2, 2]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(Recorder(), max_batch=0)


def test_a_batcher_survives_a_new_event_loop() -> None:
    record = Recorder()
    batcher = MicroBatcher(record)
    assert asyncio.run(batcher.predict("p 1"))[0] == 1
    assert asyncio.run(batcher.predict("p 2"))[0] == 2
