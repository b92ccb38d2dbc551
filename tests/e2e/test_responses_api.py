"""``/v1/responses`` end to end: the unmodified ``openai`` SDK's ``responses`` API against the
gateway in front of the real llama.cpp model, routed by the config's rules."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI
from procs import Gateway

pytestmark = pytest.mark.e2e


def test_a_response_is_routed_and_answered(client: OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model="auto",
        instructions="You are terse.",
        input="Prove that the derivative of x squared is 2x.",
        max_output_tokens=16,
    )
    response = raw.parse()
    assert raw.headers["x-polyroute-decision"] == "hard-math"
    assert response.model == "large" and response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0


def test_a_streamed_response_arrives_as_typed_events(client: OpenAI) -> None:
    events = list(
        client.responses.create(
            model="auto", input="Hi there! How are you today?", max_output_tokens=16, stream=True
        )
    )
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    last = events[-1]
    # a cut at max_output_tokens ends with response.incomplete, as the API does
    assert events[0].type == "response.created"
    assert last.type in ("response.completed", "response.incomplete")
    assert deltas and "".join(deltas) == last.response.output_text


def test_previous_response_id_continues_a_stored_conversation(
    client: OpenAI, gateway: Gateway
) -> None:
    first = client.responses.create(
        model="small", input="My name is Ada. Say hello.", max_output_tokens=8
    )
    second = client.responses.create(
        model="small",
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=8,
    )
    third = client.responses.create(
        model="small", input="Thanks.", previous_response_id=second.id, max_output_tokens=8
    )
    assert client.responses.retrieve(third.id).id == third.id
    trace = gateway.wait_trace(gateway.log_records()[-1]["trace_id"])
    assert trace["endpoint"] == "responses"
    client.responses.delete(third.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(third.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model="small", input="again", previous_response_id="resp_" + "0" * 32
        )
