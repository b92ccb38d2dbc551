"""Map transport failures to polyroute's upstream errors, in one place for every provider."""

from __future__ import annotations

import asyncio
from email.utils import parsedate_to_datetime
from time import time

import aiohttp

from polyroute.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable


def transport_error(exc: BaseException, what: str) -> UpstreamError:
    """Classify an exception raised while talking to an upstream."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"{what}: timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(
            f"{what}: connection failed ({exc.os_error.strerror or 'refused'})"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return UpstreamError(f"{what}: connection closed before the response was complete")
    if isinstance(exc, OSError) and exc.strerror:  # e.g. ClientOSError: connection reset
        return UpstreamError(f"{what}: {type(exc).__name__} ({exc.strerror})")
    return UpstreamError(f"{what}: {type(exc).__name__}")


def parse_retry_after(value: str | None, cap_s: float = 30.0) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP date), capped; None if absent/invalid."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), cap_s)
