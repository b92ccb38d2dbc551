"""uvicorn's httptools protocol with a bound on request heads and JSON errors.

httptools buffers request lines and headers without any limit (a 256 MiB header
costs minutes of CPU), and uvicorn answers malformed HTTP in plain text.  This
subclass counts the bytes of each request head as they arrive and answers
**431** with an OpenAI-style JSON error once they pass ``max_head_bytes``,
without waiting for the head to end; malformed HTTP gets a JSON **400**.
Both close the connection.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from polyroute.server.errors import error_body

MAX_HEAD_BYTES = 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._heads_done = 0

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        began_in_head, heads_done = self._in_head, self._heads_done
        super().data_received(data)
        # a read that began and stayed inside one head is all head bytes; others are not
        # counted (under-counts by at most one read; never refuses a head under the limit)
        if began_in_head and self._in_head and self._heads_done == heads_done:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
                self._refuse(
                    431,
                    "request_header_fields_too_large",
                    f"request line and headers are over {self.max_head_bytes} bytes",
                )

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "bad_http_request", "malformed HTTP request")

    def _refuse(self, status: int, code: str, message: str) -> None:
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


def bounded_protocol(max_head_bytes: int) -> type[BoundedHttpToolsProtocol]:
    return type(
        "BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"max_head_bytes": max_head_bytes}
    )
