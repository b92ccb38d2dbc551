from __future__ import annotations

from typing import Any

import pytest


def assert_openai_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert {"message", "type", "code"} <= set(err)
    return err  # type: ignore[no-any-return]


def test_malformed_json_is_400(make_client: Any) -> None:
    r = make_client().post("/v1/chat/completions", content=b'{"model": "auto", "messages": [')
    assert "not valid JSON" in assert_openai_error(r, 400)["message"]


def test_invalid_utf8_is_400(make_client: Any) -> None:
    r = make_client().post("/v1/chat/completions", content=b'{"model": "\xff\xfe"}')
    assert_openai_error(r, 400)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([1, 2], None),
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": []}, "messages"),
        ({"model": "auto", "messages": ["hi"]}, "messages[0]"),
        ({"model": "auto", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": 3, "messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
    ],
)
def test_wrong_schema_is_400(make_client: Any, body: Any, param: str | None) -> None:
    err = assert_openai_error(make_client().post("/v1/chat/completions", json=body), 400)
    assert err.get("param") == param


def test_completions_needs_prompt(make_client: Any) -> None:
    err = assert_openai_error(make_client().post("/v1/completions", json={"model": "auto"}), 400)
    assert err["param"] == "prompt"


def test_body_over_limit_is_413(make_client: Any) -> None:
    client = make_client(max_body_bytes=1000)
    body = {"model": "auto", "messages": [{"role": "user", "content": "x" * 2000}]}
    assert_openai_error(client.post("/v1/chat/completions", json=body), 413)


def test_unknown_path_and_method(make_client: Any) -> None:
    client = make_client()
    assert_openai_error(client.get("/v1/nope"), 404)
    assert_openai_error(client.get("/v1/chat/completions"), 405)
