"""Background tasks (``polyroute.background``): kept alive until they end, then dropped;
an exception that escapes one is logged; without a running loop nothing runs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from polyroute.background import Background


async def test_a_task_is_held_until_it_ends() -> None:
    background = Background("test")
    gate = asyncio.Event()
    ran: list[str] = []

    async def work() -> None:
        await gate.wait()
        ran.append("done")

    task = background.spawn(work())
    assert task is not None and len(background) == 1
    gate.set()
    await task
    await asyncio.sleep(0)  # the done callback runs on the next turn
    assert ran == ["done"] and len(background) == 0


async def test_an_escaped_exception_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    background = Background("test")

    async def fails() -> None:
        raise ValueError("boom")

    task = background.spawn(fails())
    assert task is not None
    with caplog.at_level(logging.ERROR, logger="polyroute.background"):
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
    assert "test: a background task failed" in caplog.text and "boom" in caplog.text
    assert len(background) == 0


def test_without_a_loop_the_work_is_closed_unrun() -> None:
    ran: list[str] = []

    async def work() -> None:
        ran.append("ran")

    coro = work()
    assert Background("test").spawn(coro) is None
    assert ran == [] and coro.cr_frame is None  # closed: no "never awaited" warning


async def test_drain_waits_for_work_in_flight_and_cuts_what_outlasts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    background = Background("test")
    done: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        done.append("quick")

    async def stuck() -> None:
        await asyncio.Event().wait()

    background.spawn(quick())
    assert await background.drain(1.0) == 0 and done == ["quick"]
    task = background.spawn(stuck())
    with caplog.at_level(logging.WARNING, logger="polyroute.background"):
        assert await background.drain(0.05) == 1
    await asyncio.sleep(0)
    assert task is not None and task.cancelled()
    assert "1 background task(s) cut at shutdown" in caplog.text
    assert await Background("idle").drain(0.01) == 0
