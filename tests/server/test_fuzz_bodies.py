"""Property: whatever JSON (or bytes) a client sends, the gateway answers 2xx or an
OpenAI-style 4xx -- never a 500, never a trace of its insides -- and keeps serving.

In-process (Starlette's TestClient) against the fake upstreams of ``tests/fakes.py``.
Documented behaviour pinned here:

* duplicate keys: orjson keeps the *last* one, deterministically;
* ``Content-Type`` is not looked at: a JSON body is parsed whatever it says;
* nesting: orjson parses up to 1024 levels but serializes only 254, and the
  gateway re-serializes what it forwards, so ``validate.MAX_DEPTH`` (128) is
  enforced at parse time (deeper bodies used to be a 500);
* numbers: integers beyond 64 bits become floats; beyond a double's range
  (``1e400``) the body is refused as invalid JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from polyroute.server.security import STEERING_FIELDS
from polyroute.server.validate import MAX_DEPTH

PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/route")
LEAKS = (b"Traceback", b'File "', b"site-packages", b"/polyroute/", b"Exception")
VALID = {
    "model": "auto",
    "messages": [{"role": "user", "content": "hi"}],
    "prompt": "hi",
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
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
    """Not a 5xx; a 4xx is exactly the OpenAI error shape, with nothing internal in it."""
    assert r.status_code < 500, r.text
    for leak in LEAKS:
        assert leak not in r.content, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert set(body) == {"error"}
        error = body["error"]
        assert set(error) == {"message", "type", "code", "param"}
        assert all(isinstance(error[k], str) for k in ("message", "type", "code"))
        assert error["param"] is None or isinstance(error["param"], str)


def check_alive(client: Any) -> None:
    assert client.get("/healthz").status_code == 200


@SETTINGS
@given(body=bodies)
def test_chat_bodies_never_500(make_client: Any, body: dict[str, Any]) -> None:
    client = make_client()
    for path in PATHS:
        check(client.post(path, json=body))


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_raw_bytes_never_500(make_client: Any, raw: bytes) -> None:
    check(make_client().post("/v1/chat/completions", content=raw))


# bytes that break UTF-8 or JSON in interesting ways
NASTY = [
    b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\x28",
    b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x00", b"\\ud800", b"\\udc00",
    b"\\u0000", b"\xef\xbb\xbf", b'"', b"\\", b"{", b"[", b"]", b"}", b",", b":", b"1e400",
    b"NaN", b"Infinity", b"-", b"\r\n", b"\t",
]  # fmt: skip


@SETTINGS
@given(
    path=st.sampled_from(PATHS),
    cuts=st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 3), st.sampled_from(NASTY) | st.binary()),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_valid_bodies_never_500(
    make_client: Any, path: str, cuts: list[tuple[int, int, bytes]]
) -> None:
    """A valid body with bytes replaced/inserted: invalid UTF-8, stray escapes, cut JSON."""
    raw = orjson.dumps({**VALID, "stream": False, "max_tokens": 5})
    for offset, drop, insert in cuts:
        at = min(offset, len(raw))
        raw = raw[:at] + insert + raw[at + drop :]
    client = make_client()
    check(client.post(path, content=raw))
    check_alive(client)


unknown_fields = st.dictionaries(
    (st.text(max_size=12) | st.sampled_from(sorted(STEERING_FIELDS))).filter(
        lambda k: k != "stream"
    ),
    json_values,
    max_size=5,
)


@SETTINGS
@given(extra=unknown_fields)
def test_unknown_fields_pass_through_or_steering_refused(
    make_client: Any, extra: dict[str, Any]
) -> None:
    client = make_client()
    body = {**extra, **VALID}
    steering = sorted(STEERING_FIELDS.intersection(body))
    for path in PATHS:
        r = client.post(path, json=body)
        check(r)
        if steering and path != "/v1/route":  # /v1/route forwards nothing
            assert r.status_code == 400
            assert r.json()["error"]["param"] == steering[0]
        else:
            assert r.status_code == 200, r.text


def body_for(path: str, text: str) -> dict[str, Any]:
    if path == "/v1/completions":
        return {"prompt": text}
    return {"messages": [{"role": "user", "content": text}]}


@settings(SETTINGS, max_examples=8)
@given(
    size=st.integers(0, 900 * 1024),  # the fake upstream (aiohttp) takes at most 1 MiB
    char=st.sampled_from(["x", "é", "\U0001f600", "\u0000", '"', "\\", "\u2028"]),
)
@example(size=900 * 1024, char="é")
@example(size=900 * 1024, char="\u0000")
def test_huge_strings_are_forwarded(make_client: Any, size: int, char: str) -> None:
    client = make_client()
    text = char * (size // (len(orjson.dumps(char)) - 2))
    for path in PATHS:
        r = client.post(path, json=body_for(path, text))
        check(r)
        assert r.status_code == 200


def test_body_just_under_the_limit_is_fine(make_client: Any) -> None:
    client = make_client()  # the default limit: 4 MiB
    text = "\U0001f600" * (4 * 1024 * 1024 // 4 - 64)
    r = client.post("/v1/route", json=body_for("/v1/route", text))
    check(r)
    assert r.status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_huge_body_over_the_limit_is_413(make_client: Any, path: str) -> None:
    client = make_client(max_body_bytes=64 * 1024)
    big = "x" * (64 * 1024)
    r = client.post(path, json={"messages": [{"role": "user", "content": big}], "prompt": big})
    check(r)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    check_alive(client)


def nested(depth: int, kind: str) -> bytes:
    """A JSON value of exactly ``depth`` levels of arrays or objects."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize(
    "depth", [1, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, 200, 253, 254, 300, 1023, 1024, 5000]
)
def test_deep_nesting_is_400_past_the_limit(make_client: Any, kind: str, depth: int) -> None:
    """The body object is one level, so a field nested ``depth`` deep makes depth + 1."""
    client = make_client()
    for path in PATHS:
        raw = b'{"messages":[{"role":"user","content":"hi"}],"prompt":"hi","x":'
        r = client.post(path, content=raw + nested(depth, kind) + b"}")
        check(r)
        assert r.status_code == (200 if depth + 1 <= MAX_DEPTH else 400), (depth, r.text)
    check_alive(client)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/route"])
def test_deep_message_content_is_400(make_client: Any, path: str) -> None:
    """Nesting inside a message (content parts) is counted too."""
    parts = b"[" + b'{"type":"text","text":' * 300 + b'"x"' + b"}" * 300 + b"]"
    raw = b'{"messages":[{"role":"user","content":' + parts + b"}]}"
    r = make_client().post(path, content=raw)
    check(r)
    assert r.status_code == 400
    assert "nested too deeply" in r.json()["error"]["message"]


def test_many_flat_brackets_are_not_too_deep(make_client: Any) -> None:
    """The bracket count only triggers the exact walk: many shallow lists are fine."""
    raw = (
        b'{"messages":[{"role":"user","content":"hi"}],"x":[' + b",".join([b"[]"] * 50_000) + b"]}"
    )
    r = make_client().post("/v1/chat/completions", content=raw)
    check(r)
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("raw", "status", "param"),
    [
        # duplicate keys: orjson keeps the last one, so the outcome follows the last value
        (b'{"model": 3, "model": "auto", "messages": [{"role": "user"}]}', 200, None),
        (b'{"model": "auto", "model": 3, "messages": [{"role": "user"}]}', 400, "model"),
        (b'{"messages": [], "messages": [{"role": "user"}]}', 200, None),
        (b'{"messages": [{"role": "user"}], "messages": "x"}', 400, "messages"),
        (b'{"messages": [{"role": 1, "role": "user"}]}', 200, None),
        (b'{"messages": [{"role": "user"}], "stream": true, "stream": "no"}', 400, "stream"),
    ],
)
def test_duplicate_keys_last_one_wins(
    make_client: Any, raw: bytes, status: int, param: str | None
) -> None:
    client = make_client()
    for _ in range(3):  # deterministic
        r = client.post("/v1/chat/completions", content=raw)
        check(r)
        assert r.status_code == status
        if status == 400:
            assert r.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "content_type",
    [
        None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
        "application/json; charset=latin-1", "application/xml", "*/*", "garbage;;;=",
    ],
)  # fmt: skip
def test_content_type_is_ignored_for_json_bodies(
    make_client: Any, content_type: str | None
) -> None:
    client = make_client()
    headers = {"content-type": content_type} if content_type else {}
    raw = orjson.dumps(VALID)
    for path in PATHS:
        r = client.post(path, content=raw, headers=headers)
        check(r)
        assert r.status_code == 200
    form = client.post("/v1/chat/completions", data={"model": "auto", "messages": "hi"})
    check(form)
    assert form.status_code == 400


@pytest.mark.parametrize(
    ("number", "status"),
    [
        (b"18446744073709551615", 200),  # u64 max
        (b"18446744073709551616", 200),  # past u64: parsed as a float
        (b"-9223372036854775809", 200),
        (b"1" + b"0" * 300, 200),
        (b"1e308", 200),
        (b"-0", 200),
        (b"1e400", 400),  # not a finite double
        (b"1" + b"0" * 400, 400),
        (b"0x10", 400),
        (b"01", 400),
        (b".5", 400),
    ],
)
def test_number_edge_cases(make_client: Any, number: bytes, status: int) -> None:
    raw = b'{"messages":[{"role":"user","content":"hi"}],"max_tokens":' + number + b"}"
    r = make_client().post("/v1/chat/completions", content=raw)
    check(r)
    assert r.status_code == status, r.text


def test_stream_with_odd_extras_is_a_clean_stream(make_client: Any) -> None:
    body = {**VALID, "stream": True, "x": [[[["\u0000"]]]], "stream_options": "nope"}
    with make_client().stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    assert text.rstrip().endswith("data: [DONE]")
