"""Stored Responses conversations (``store: true`` and ``previous_response_id``).

Each stored response is one record: the Response object (for
``GET /v1/responses/{id}``) and the chat messages of the whole conversation up to and
including its answer (for the next turn's ``previous_response_id``), as JSON under a
key scoped to the tenant (the gateway key's name, hashed), with a TTL.  A record is a
full snapshot, so a turn costs one ``get`` whatever the conversation's length, and
any response of a conversation can be continued (branching) as in the API.

The store is any :class:`polyroute.types.Store` (memory, Redis).  It has no delete:
``delete`` writes an empty tombstone that expires with the same TTL.  A missing,
expired, deleted or other tenant's id is the same :class:`ResponseNotFound` (404): a
tenant cannot learn whether another tenant's id exists.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from polyroute.errors import ModelNotFound, PayloadTooLarge
from polyroute.jsonio import dumps_body
from polyroute.types import JSON, Store

DEFAULT_TTL_S = 30 * 24 * 3600.0  # the API keeps stored responses for 30 days
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class ResponseNotFound(ModelNotFound):
    """No stored response with this id for this tenant (missing, expired or deleted)."""

    code = "response_not_found"

    def __init__(self, response_id: str, param: str | None = None) -> None:
        super().__init__(
            f"response {response_id[:128]!r} not found (never stored, expired or deleted)"
        )
        self.param = param


class ConversationStore:
    """Stored responses over a :class:`Store`: ``save`` after a turn, ``history`` before
    the next, ``get`` and ``delete`` for the HTTP routes.

    ``ttl_s`` is how long a record lives after it was written; ``max_bytes`` bounds one
    record (a conversation that would grow past it is refused with 413, never cut)."""

    def __init__(
        self,
        store: Store,
        ttl_s: float = DEFAULT_TTL_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        prefix: str = "responses:",
    ) -> None:
        if ttl_s <= 0 or max_bytes <= 0:
            raise ValueError("ttl_s and max_bytes must be positive")
        self.store, self.ttl_s, self.max_bytes, self.prefix = store, ttl_s, max_bytes, prefix

    def _key(self, tenant: str, response_id: str) -> str:
        scope = hashlib.sha256(tenant.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self.prefix}{scope}:{response_id}"

    async def _load(self, tenant: str, response_id: str, param: str | None = None) -> JSON:
        if not isinstance(response_id, str) or not _ID.fullmatch(response_id):
            raise ResponseNotFound(str(response_id), param)
        raw = await self.store.get(self._key(tenant, response_id))
        record: Any = None
        if raw:  # else missing, expired, or a tombstone
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                record = None
        if not isinstance(record, dict):
            raise ResponseNotFound(response_id, param)
        return record

    def check(self, messages: list[JSON]) -> None:
        """Refuse (``PayloadTooLarge``) a conversation already over ``max_bytes``; call it
        before sending a stored turn upstream, so a too-long one fails before it costs."""
        size = len(dumps_body(messages))
        if size > self.max_bytes:
            raise PayloadTooLarge(
                f"the stored conversation would be {size} bytes; the limit is "
                f"{self.max_bytes}: start a new conversation (without previous_response_id)"
            )

    async def save(
        self, tenant: str, response_id: str, messages: list[JSON], response: JSON
    ) -> None:
        """Store ``response`` and ``messages`` (the whole conversation so far, the answer
        included) under ``response_id`` for ``tenant``, for ``ttl_s`` seconds."""
        if not _ID.fullmatch(response_id):
            raise ValueError(f"response id {response_id!r} is not 1-128 of [A-Za-z0-9_-]")
        raw = dumps_body({"messages": messages, "response": response})
        if len(raw) > self.max_bytes:
            raise PayloadTooLarge(
                f"response {response_id} was not stored: its conversation is {len(raw)} "
                f"bytes; the limit is {self.max_bytes}"
            )
        await self.store.set(self._key(tenant, response_id), raw, ttl_s=self.ttl_s)

    async def history(self, tenant: str, previous_response_id: str) -> list[JSON]:
        """The chat messages of the conversation ending with ``previous_response_id``."""
        record = await self._load(tenant, previous_response_id, "previous_response_id")
        messages = record.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    async def get(self, tenant: str, response_id: str) -> JSON:
        """The stored Response object (``GET /v1/responses/{id}``)."""
        response = (await self._load(tenant, response_id)).get("response")
        if not isinstance(response, dict):
            raise ResponseNotFound(response_id)
        return response

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Forget a stored response; False when there was none for this tenant."""
        try:
            await self._load(tenant, response_id)
        except ResponseNotFound:
            return False
        await self.store.set(self._key(tenant, response_id), b"", ttl_s=self.ttl_s)
        return True
