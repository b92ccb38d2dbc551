"""uvicorn's httptools protocol, hardened at the connection level.

What plain uvicorn + httptools does not bound, this subclass does:

* **Head size.** httptools buffers request lines and headers without any limit
  (a 256 MiB header costs minutes of CPU).  Bytes of a head are counted two
  ways: raw bytes of every read that stays inside a head (so a head that never
  ends is refused as it grows) and the exact size of the request target and
  each header as the parser completes them (so a head that ends inside the same
  read, or arrives in pieces, is measured exactly).  Past ``max_head_bytes``
  the answer is an OpenAI-style JSON **431**.
* **Head time.** A head must be complete ``head_timeout_s`` after the connection
  opened or the previous response ended: a silent or trickling client gets a
  JSON **408** (or, having sent nothing, a close) and frees its descriptor.
* **Write stalls.** When a client stops reading, the transport's buffer fills
  and writing pauses; if it stays paused for ``write_timeout_s`` the connection
  is aborted, so the response (a stream's upstream included) is released.
* **Errors in order.** Malformed HTTP gets a JSON **400**; when requests that
  came before it on the same connection (pipelining) are still being answered,
  the error is sent after their answers, never instead of them.
* **No upgrades.** WebSocket and other upgrade requests are answered as plain
  HTTP (a JSON 404/405), never with uvicorn's empty 403.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from polyroute.config import ServerConfig
from polyroute.server.errors import error_body

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 60.0
# bytes of a head line around what the parser hands over: ": " and CRLF
_LINE_OVERHEAD = 4
STATUS_LINE.setdefault(408, b"HTTP/1.1 408 Request Timeout\r\n")
STATUS_LINE.setdefault(431, b"HTTP/1.1 431 Request Header Fields Too Large\r\n")

log = logging.getLogger("polyroute.access")


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing an oversized head."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    head_timeout_s = HEAD_TIMEOUT_S
    write_timeout_s = WRITE_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._raw_head_bytes = 0  # reads that stayed inside the current head
        self._exact_head_bytes = 0  # request target + headers as parsed
        self._heads_done = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None  # waits for earlier answers
        self._dropped: object = None  # a queued request whose own body was malformed

    # -- connection life ----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing() or self._refusal is not None:
            return  # refused: what follows the error is not parsed
        began_in_head, heads_done = self._in_head, self._heads_done
        super().data_received(data)
        # a read that began and stayed inside one head is all head bytes
        if began_in_head and self._in_head and self._heads_done == heads_done:
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > self.max_head_bytes and self._refusal is None:
                self._refuse(*self._too_large())

    # -- parser callbacks: measure the head exactly -------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._raw_head_bytes = self._exact_head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url) + 16)  # method, version and CRLF around the target
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + _LINE_OVERHEAD)
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        self._exact_head_bytes += n
        if self._exact_head_bytes > self.max_head_bytes:
            self._refusal = self._too_large()
            raise _HeadTooLarge  # httptools stops and raises HttpParserCallbackError

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
        self._cancel(self._head_timer)
        self._head_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # what arrives next belongs to the next head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._refusal is not None and self._idle():
            self._write_refusal(*self._refusal)
        elif self._idle():
            self._arm_head_timer()

    # -- refusals ------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """httptools found malformed HTTP (or a callback stopped it on an oversized head)."""
        refusal = self._refusal or (400, "bad_http_request", "malformed HTTP request")
        self._refuse(*refusal)

    def _too_large(self) -> tuple[int, str, str]:
        return (
            431,
            "request_header_fields_too_large",
            f"request line and headers are over {self.max_head_bytes} bytes",
        )

    def _idle(self) -> bool:
        """No request of this connection is being answered or waiting to be."""
        cycle = self.cycle
        done = cycle is None or cycle.response_complete or cycle is self._dropped
        return done and not self.pipeline

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer now, or after the requests before this one (pipelining) are answered."""
        self._refusal = (status, code, message)
        self._cancel(self._head_timer)
        self._head_timer = None
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            # the fault is inside this request's own body: it is never answered
            queued = [c for c, _ in self.pipeline]
            if cycle not in queued:  # it is the one being answered: refuse it now
                self._write_refusal(status, code, message)
                return
            self.pipeline.remove(self.pipeline[queued.index(cycle)])
            self._dropped = cycle
        if self._idle():
            self._write_refusal(status, code, message)

    def _write_refusal(self, status: int, code: str, message: str) -> None:
        body = error_body(message, "invalid_request_error", code)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        _log_connection(status, code)

    def _unsupported_upgrade_warning(self) -> None:
        """An upgrade we do not speak is answered as plain HTTP; nothing to warn about."""

    # -- timers ---------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head or not self._idle():
            return
        if self._raw_head_bytes or self._exact_head_bytes:
            self._refuse(
                408,
                "request_timeout",
                f"the request head did not arrive within {self.head_timeout_s:g} s",
            )
        else:  # nothing was sent: there is nobody to answer
            self.transport.close()
            _log_connection(408, "idle_connection_closed")

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.write_timeout_s, self._write_stalled)

    def resume_writing(self) -> None:
        self._cancel(self._write_timer)
        self._write_timer = None
        super().resume_writing()

    def _write_stalled(self) -> None:
        self._write_timer = None
        if not self.flow.write_paused:
            return
        _log_connection(499, "client_stopped_reading")
        self.transport.abort()  # connection_lost follows: the response sees a disconnect

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._write_timer):
            self._cancel(timer)
        self._head_timer = self._write_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


def _log_connection(status: int, outcome: str) -> None:
    if log.isEnabledFor(logging.INFO):
        line = {"event": "connection", "status": status, "outcome": outcome}
        log.info(orjson.dumps(line).decode())


def bounded_protocol(server: ServerConfig) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with this config's limits."""
    attrs = {
        "max_head_bytes": server.max_header_bytes,
        "head_timeout_s": server.head_timeout_s,
        "write_timeout_s": server.write_timeout_s or server.stream_idle_timeout_s,
    }
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), attrs)
