"""Property: whatever JSON (or bytes) a client sends, the gateway answers 2xx or an
OpenAI-style 4xx — never a 500 — and keeps serving."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": json_values | st.sampled_from(["user", "system"])},
        optional={"content": json_values},
    ),
    max_size=3,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.sampled_from(["auto", "small", "nope"]),
        "messages": messages | json_values,
        "stream": json_values,
        "prompt": json_values,
        "max_tokens": json_values,
    },
)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check(r: Any) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()["error"]) >= {"message", "type", "code"}


@SETTINGS
@given(body=bodies)
def test_chat_bodies_never_500(make_client: Any, body: dict[str, Any]) -> None:
    client = make_client()
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/route"):
        check(client.post(path, json=body))


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_raw_bytes_never_500(make_client: Any, raw: bytes) -> None:
    check(make_client().post("/v1/chat/completions", content=raw))
