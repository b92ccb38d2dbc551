"""Property-based fuzzing of what found the red-team's leaks and 500s (issue 8).

* Upstream error bodies that echo credentials, in any form the HTTP client
  derives from them (``Bearer``, ``Basic`` base64, percent-encoded), after any
  client-chosen text and cut anywhere: no 6-character piece of a secret reaches
  the client's message.
* Any model or decision name (non-ASCII, control characters refused at load):
  the response headers it reaches are always encodable and valid, and decode
  back to the name.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, unquote

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.backends.failover import MAX_REASON_CHARS, upstream_reason
from polyroute.config import Config
from polyroute.errors import UpstreamStatus
from polyroute.redact import SecretRedactor, secrets_of
from polyroute.server.app import header_value

# uvicorn's check before it writes a header value (control bytes but HTAB)
HEADER_VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
secret_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=8, max_size=60
)


def _config(key: str, user: str, password: str) -> Config:
    url = f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:9/v1"
    return Config(
        models={
            "keyed": {"base_url": "http://127.0.0.1:9/v1", "api_key": key},
            "basic": {"base_url": url},
        }
    )


def _pieces(secret: str, n: int = 6) -> set[str]:
    return {secret[i : i + n] for i in range(max(len(secret) - n + 1, 1))}


# client-chosen text around the echo: punctuation and spaces only, so any piece of a
# secret's token holding a letter or digit can only have come from the secret
filler = st.text(alphabet=" .,;!?-", max_size=700)


@settings(max_examples=200, deadline=None)
@given(
    key=secret_text,
    password=secret_text,
    pad=st.integers(0, 600),
    after=filler,
    form=st.sampled_from(["bearer", "raw", "quoted", "basic", "basic-urlsafe"]),
)
def test_no_piece_of_a_secret_survives_scrub_and_cut(
    key: str, password: str, pad: int, after: str, form: str
) -> None:
    before = "." * pad  # the client's own text, echoed first: it moves where a cut lands
    user = "user"
    redactor = SecretRedactor(secrets_of(_config(key, user, password)))
    pair = f"{user}:{password}".encode()
    token = {
        "bearer": key,
        "raw": key,
        "quoted": quote(key, safe=""),
        "basic": base64.b64encode(pair).decode(),
        "basic-urlsafe": base64.urlsafe_b64encode(pair).decode(),
    }[form]
    echoed = {"bearer": "Bearer ", "basic": "Basic "}.get(form, "") + token
    body = orjson.dumps({"error": {"message": before + echoed + after}})
    reason = upstream_reason(UpstreamStatus("x", 400, body), redactor)
    message = reason.removesuffix(" (upstream status 400)")
    assert len(message) <= MAX_REASON_CHARS + 1  # the cut, plus its ellipsis
    for piece in _pieces(token):
        if any(c.isalnum() for c in piece):
            assert piece not in message, (form, piece, message[-80:])


@settings(max_examples=300, deadline=None)
@given(name=st.text(min_size=1, max_size=128).filter(lambda s: s.isprintable() and s.strip()))
def test_any_printable_name_makes_a_valid_header(name: str) -> None:
    Config(models={name: {"base_url": "http://127.0.0.1:9/v1"}})  # accepted at load
    value = header_value(name)
    raw = value.encode("latin-1")  # what Starlette does with a header value
    assert not HEADER_VALUE_RE.search(raw)
    assert value == name or unquote(value) == name


@given(name=st.text(min_size=1, max_size=20).filter(lambda s: not s.isprintable()))
def test_names_with_control_characters_are_refused_at_load(name: str) -> None:
    try:
        Config(models={name: {"base_url": "http://127.0.0.1:9/v1"}})
    except ValueError as exc:  # pydantic's ValidationError
        assert "printable" in str(exc)
    else:
        raise AssertionError(f"{name!r} was accepted")
