"""Structured access log: one JSON line per request, with secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import orjson

from polyroute.types import Trace

if TYPE_CHECKING:
    from polyroute.config import Config

access = logging.getLogger("polyroute.access")


class SecretRedactor(logging.Filter):
    """Replaces every configured secret in a log record's message by ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if len(s) >= 4)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                record.msg, record.args = self.scrub(message), None
        return True


_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|signature", re.IGNORECASE)


def secrets_of(config: Config) -> list[str]:
    """What must never be printed: upstream keys, secret-looking header values, URL credentials."""
    found: list[str] = []
    for model in config.models.values():
        if model.api_key:
            found.append(model.api_key.get_secret_value())
        found += [v for k, v in model.headers.items() if _SECRET_HEADER.search(k)]
        url = urlsplit(model.base_url)
        if url.password:
            found.append(url.password)
        found += [v for _, v in parse_qsl(url.query) if len(v) >= 8]
    return sorted(set(found), key=len, reverse=True)  # longest first: no partial leftovers


def configure_logging(level: str) -> None:
    """One line per record on stderr (measured: cheaper than a queue and writer thread)."""
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [writer]
    root.setLevel(level.upper())


def log_request(trace: Trace, status: int, endpoint: str, stream: bool, started: float) -> None:
    """One JSON line: status, total latency and the whole trace (``started`` is perf_counter)."""
    if access.isEnabledFor(logging.INFO):
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        line = {"event": "request", "endpoint": endpoint, "stream": stream, "status": status}
        line["latency_ms"] = latency_ms
        line.update(trace.as_dict())
        access.info(orjson.dumps(line, default=str).decode())
