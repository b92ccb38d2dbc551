from __future__ import annotations

from typing import Any

import pytest

from polyroute.errors import ConfigError
from polyroute.signals import SIGNALS
from polyroute.types import Request


def make(kind: str, **options: Any) -> Any:
    return SIGNALS.get(kind)(f"s_{kind}", options, f"signals.s_{kind}")


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Can you PROVE it?", True),
        ("how do I improve my essay", False),
        ("the integral of x", True),
        ("integrals are fun", False),
        ("write c++ code", True),
        ("abc++", False),
    ],
)
def test_keyword_is_case_insensitive_and_word_bounded(prompt: str, expected: bool) -> None:
    signal = make("keyword", any=["prove", "integral", "c++"])
    assert signal.compute(Request.chat(prompt)) is expected


def test_keyword_all_and_regex() -> None:
    both = make("keyword", all=["sql", "index"])
    assert both.compute(Request.chat("add an INDEX to this SQL"))
    assert not both.compute(Request.chat("sql only"))
    rx = make("keyword", regex=r"\bCVE-\d{4}-\d+")
    assert rx.compute(Request.chat("is cve-2024-1234 fixed?"))


def test_keyword_reads_last_user_message_by_default() -> None:
    req = Request(
        {
            "messages": [
                {"role": "user", "content": "prove it"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
            ]
        }
    )
    assert not make("keyword", any=["prove"]).compute(req)
    assert make("keyword", any=["prove"], field="text").compute(req)


def test_keyword_config_errors() -> None:
    with pytest.raises(ConfigError, match="signals.s_keyword"):
        make("keyword")
    with pytest.raises(ConfigError, match="invalid regex"):
        make("keyword", regex="(")
    with pytest.raises(ConfigError, match="s_keyword.anyy"):
        make("keyword", anyy=["x"])


def test_token_count() -> None:
    assert make("tokens").compute(Request.chat("x" * 400)) == 100


def test_conversation_shape() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]},
        ],
        "tools": [{"type": "function"}],
    }
    req = Request(body)
    assert make("conversation", field="turns").compute(req) == 2
    assert make("conversation", field="user_turns").compute(req) == 1
    assert make("conversation", field="has_tools").compute(req) is True
    assert make("conversation", field="has_images").compute(req) is True
    assert make("conversation", field="has_system").compute(req) is True
    assert make("conversation", field="has_tools").compute(Request.chat("x")) is False


def test_metadata_header_and_field() -> None:
    req = Request(Request.chat("x", user="alice").body, headers={"x-tenant": "gold"})
    assert make("metadata", header="X-Tenant").compute(req) == "gold"
    assert make("metadata", field="user").compute(req) == "alice"
    assert make("metadata", header="x-missing", default="free").compute(req) == "free"
    with pytest.raises(ConfigError, match="exactly one of 'header' or 'field'"):
        make("metadata")


def test_language_detection_offline() -> None:
    signal = make("language", languages=["en", "fr", "de"])
    assert signal.compute(Request.chat("Bonjour, comment allez-vous aujourd'hui ?")) == "fr"
    assert signal.compute(Request.chat("How are you doing today, my friend?")) == "en"
    assert signal.compute(Request.chat("ok")) is None
    with pytest.raises(ConfigError, match="unknown ISO 639-1"):
        make("language", languages=["en", "xx"])


def test_unknown_signal_type_lists_choices() -> None:
    with pytest.raises(ConfigError, match="unknown signal type 'magic'; expected one of"):
        SIGNALS.get("magic", "signals.x.type")
