"""Gateway API keys and the fields a client may not use to steer the gateway.

Keys are random tokens (``polyroute keys new``); the config holds only their
SHA-256.  A presented key is hashed and compared with *every* configured digest
by ``hmac.compare_digest``, so neither the comparison nor the loop ends early.
A plain SHA-256 (not a slow password hash) is enough because the keys are 256
random bits, not passwords a person chose.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

from polyroute.config import ApiKeyConfig, Config
from polyroute.errors import ConfigError, Unauthorized
from polyroute.server.validate import ParamError
from polyroute.types import JSON

KEY_PREFIX = "pr-"
# body fields other gateways read as "send this request there / with these headers"
STEERING_FIELDS = frozenset(
    {"api_base", "base_url", "api_key", "api_version", "extra_headers", "headers",
     "custom_llm_provider"}
)  # fmt: skip


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The configured keys; ``check`` returns the name of the key a request presents."""

    def __init__(self, keys: Sequence[ApiKeyConfig]) -> None:
        self._digests = [(bytes.fromhex(k.sha256), k.name) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, headers: Mapping[str, str]) -> str:
        presented = _presented(headers)
        if presented is None:
            raise Unauthorized("this gateway needs an API key: send 'Authorization: Bearer <key>'")
        # Starlette decodes header bytes as latin-1: encoding back gives the bytes sent
        digest = hashlib.sha256(presented.encode("latin-1")).digest()
        found = ""
        for stored, name in self._digests:
            if hmac.compare_digest(digest, stored):
                found = name
        if not found:
            raise Unauthorized("invalid API key")
        return found


def _presented(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None
    key = headers.get("x-api-key")
    return key.strip() or None if key is not None else None


def reject_steering(body: JSON) -> None:
    """Upstream URLs and headers come from the config only; say so instead of dropping fields."""
    found = sorted(STEERING_FIELDS.intersection(body))
    if found:
        raise ParamError(
            f"'{found[0]}' is not accepted: this gateway takes upstream URLs, keys and headers "
            "from its config only",
            found[0],
        )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def check_exposure(config: Config, host: str) -> str | None:
    """An open gateway is a choice: without keys, serve beyond loopback only when allowed.

    Returns a warning for an open gateway on loopback; raises ``ConfigError``
    for an open one on any other address unless ``server.allow_unauthenticated``.
    """
    server = config.server
    if server.api_keys:
        return None
    if host in LOOPBACK_HOSTS:
        return "no server.api_keys: any local process may use this gateway"
    if not server.allow_unauthenticated:
        raise ConfigError(
            f"{config.source}: server.api_keys: refusing to serve on {host} without API keys; "
            "add keys (`polyroute keys new`) or set server.allow_unauthenticated: true"
        )
    return f"server.allow_unauthenticated: the gateway on {host} is open to anyone who reaches it"
