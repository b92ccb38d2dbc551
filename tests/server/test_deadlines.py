"""``Deadlines``: the slow-body cut, one timer for every waiting request."""

from __future__ import annotations

import asyncio
import time

import pytest

from polyroute.server.limits import Deadlines


async def wait(deadlines: Deadlines, seconds: float) -> str:
    token = deadlines.enter()
    try:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            deadlines.expired(token)
            raise
    except TimeoutError:
        return "timeout"
    finally:
        deadlines.leave(token)
    return "done"


def test_a_wait_past_its_deadline_is_cut_within_one_interval() -> None:
    deadlines = Deadlines(0.2)

    async def main() -> tuple[str, float]:
        started = time.monotonic()
        result = await wait(deadlines, 10)
        return result, time.monotonic() - started

    result, took = asyncio.run(main())
    assert result == "timeout"
    assert 0.2 <= took < 0.2 + deadlines.interval_s + 0.2


def test_waits_that_end_in_time_are_untouched_and_the_timer_stops() -> None:
    deadlines = Deadlines(0.2)

    async def main() -> list[str]:
        results = await asyncio.gather(*(wait(deadlines, 0.01 * i) for i in range(20)))
        await asyncio.sleep(0.5)  # no stray cancellation lands after the wait
        assert deadlines._timer is None and not deadlines._waiting  # idle: no timer left
        return list(results)

    assert asyncio.run(main()) == ["done"] * 20


def test_only_the_late_waits_are_cut() -> None:
    deadlines = Deadlines(0.2)

    async def main() -> list[str]:
        return list(await asyncio.gather(wait(deadlines, 0.05), wait(deadlines, 5)))

    assert asyncio.run(main()) == ["done", "timeout"]


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(5)

    async def main() -> None:
        task = asyncio.create_task(wait(deadlines, 10))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not deadlines._waiting

    asyncio.run(main())


def test_the_deadlines_work_on_a_second_event_loop() -> None:
    """An app outlives a test client's loop: a timer of a closed loop is not relied on."""
    deadlines = Deadlines(0.2)

    async def abandon() -> None:
        deadlines.enter()  # left waiting when this loop closes

    asyncio.run(abandon())
    assert asyncio.run(wait(deadlines, 10)) == "timeout"
