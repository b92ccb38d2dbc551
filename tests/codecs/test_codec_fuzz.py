"""Any JSON a client sends gets either a decoded body or ``InvalidRequest`` naming the
field: never another exception (a 500)."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.codecs import anthropic_messages as am
from polyroute.codecs import openai_responses as orsp
from polyroute.errors import InvalidRequest

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
# bodies near the real shapes, so the fuzz reaches the nested checks
keys = st.sampled_from(
    ["role", "content", "type", "text", "tool_use_id", "id", "name", "input", "source",
     "call_id", "arguments", "output", "image_url", "format", "tools", "tool_choice"]
)  # fmt: skip
parts = st.dictionaries(
    keys, json_values | st.sampled_from(["text", "user", "tool_use"]), max_size=4
)
messages = st.lists(
    st.dictionaries(keys, json_values | st.lists(parts, max_size=3), max_size=3), max_size=3
)


def _bodies(required: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            **required,
            "system": json_values,
            "tools": st.lists(parts, max_size=2) | json_values,
            "tool_choice": parts | json_values,
            "text": st.dictionaries(st.just("format"), parts | json_values, max_size=1),
            "instructions": json_values,
            "max_tokens": json_values,
            "stop_sequences": json_values,
            "metadata": json_values,
        },
    )


@settings(max_examples=300, deadline=None)
@given(_bodies({"messages": messages | json_values}))
def test_anthropic_decode_never_raises_anything_else(body: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidRequest):
        am.decode_request(body)


@settings(max_examples=300, deadline=None)
@given(_bodies({"input": messages | json_values}))
def test_responses_decode_never_raises_anything_else(body: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidRequest):
        orsp.decode_request(body)
