"""Secrets never printed: what they are, every form an HTTP client derives from them.

``secrets_of(config)`` lists what must never reach a client or a log: upstream
API keys, secret-looking backend header values and URL credentials, each also
in the forms it takes on the wire or in an echo of it: percent-encoded and
decoded, and, for URL credentials, the ``Authorization: Basic`` token the HTTP
client builds from them (base64 of ``user:password``).  ``SecretRedactor``
replaces all of them by ``***``; it is also a logging filter.

Scrub *before* cutting text: a secret split by a cut no longer matches.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlsplit

if TYPE_CHECKING:
    from polyroute.config import Config

MIN_SECRET_CHARS = 4
REDACTED = "***"
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|signature", re.IGNORECASE)
_FORMATTER = logging.Formatter()


class SecretRedactor(logging.Filter):
    """Replaces every configured secret in a text (or a log record) by ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        found = {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
        self.secrets = tuple(sorted(found, key=len, reverse=True))  # longest first

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def scrub_cut(self, text: str, limit: int) -> str:
        """Scrubbed, then cut to ``limit`` characters (in that order)."""
        text = self.scrub(text)
        return text if len(text) <= limit else text[:limit] + "…"

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


def _forms(secret: str) -> set[str]:
    """A secret as sent and as an upstream may echo it back."""
    return {secret, quote(secret, safe=""), unquote(secret)}


def _basic_tokens(user: str, password: str) -> set[str]:
    """What ``Authorization: Basic`` carries for these URL credentials (as aiohttp builds it)."""
    pair = f"{unquote(user)}:{unquote(password)}"
    tokens = {pair}
    for encoding in ("latin-1", "utf-8"):
        try:
            raw = pair.encode(encoding)
        except UnicodeEncodeError:
            continue
        tokens |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return tokens


def secrets_of(config: Config) -> list[str]:
    """What must never be printed: upstream keys, secret-looking header values, URL
    credentials, and the wire forms of each."""
    found: set[str] = set()
    for model in config.models.values():
        if model.api_key:
            found |= _forms(model.api_key.get_secret_value())
        for name, value in model.headers.items():
            if _SECRET_HEADER.search(name):
                found |= _forms(value)
        url = urlsplit(model.base_url)
        if url.password:
            found |= _forms(url.password) | _basic_tokens(url.username or "", url.password)
        for _, value in parse_qsl(url.query):
            if len(value) >= 8:
                found |= _forms(value)
    found = {s for s in found if len(s) >= MIN_SECRET_CHARS}
    return sorted(found, key=len, reverse=True)  # longest first: no partial leftovers


__all__ = ["SecretRedactor", "secrets_of"]
