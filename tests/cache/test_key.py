"""Scope keys: what must match exactly for a cached answer to apply; what is cacheable."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from polyroute.cache import cacheable, prompt_text, scope_key


def body(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "auto",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And of Italy?"},
        ],
    }
    base.update(over)
    return base


def key(b: dict[str, Any], tenant: str = "team-a", decision: str = "general") -> str:
    return scope_key(b, "/v1/chat/completions", decision, tenant)


def test_same_request_same_scope_and_prompt_excluded() -> None:
    a, b = body(), body()
    b["messages"][-1]["content"] = "Italy's capital, please?"  # only the prompt differs
    assert key(a) == key(b)
    assert key(body(temperature=0.0)) == key(body(temperature=0))  # 0.0 and 0 are one value


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["messages"].__setitem__(0, {"role": "system", "content": "You are verbose."}),
        lambda b: b["messages"].__setitem__(2, {"role": "assistant", "content": "Paris!"}),
        lambda b: b["messages"].__setitem__(1, {"role": "user", "content": "Capital of Spain?"}),
        lambda b: b.__setitem__("tools", [{"type": "function", "function": {"name": "f"}}]),
        lambda b: b.__setitem__("tool_choice", "none"),
        lambda b: b.__setitem__("response_format", {"type": "json_object"}),
        lambda b: b.__setitem__("temperature", 0.7),
        lambda b: b.__setitem__("max_tokens", 5),
        lambda b: b.__setitem__("seed", 1),
        lambda b: b.__setitem__("stop", ["\n"]),
        lambda b: b.__setitem__("model", "gpt-4o"),
        lambda b: b.__setitem__("reasoning_effort", "high"),  # unknown fields count
        lambda b: b["messages"].append({"role": "assistant", "content": "Rome"}),  # a prefill
    ],
)
def test_scope_changes_with_everything_but_the_prompt(change: Any) -> None:
    changed = copy.deepcopy(body())
    change(changed)
    assert key(changed) != key(body())


def test_scope_changes_with_tenant_decision_endpoint() -> None:
    b = body()
    assert key(b, tenant="team-a") != key(b, tenant="team-b")
    assert key(b, decision="general") != key(b, decision="code")
    assert scope_key(b, "/v1/chat/completions", "d", "t") != scope_key(b, "/v1/messages", "d", "t")


def test_anthropic_top_level_system_changes_the_scope() -> None:
    a = {"temperature": 0, "system": "Be terse.", "messages": [{"role": "user", "content": "hi"}]}
    b = {**a, "system": "Be verbose."}
    assert scope_key(a, "/v1/messages", "d", "t") != scope_key(b, "/v1/messages", "d", "t")


def test_user_and_metadata_do_not_change_the_scope() -> None:
    assert key(body(user="u1", metadata={"a": 1})) == key(body(user="u2"))


def test_prompt_text() -> None:
    assert prompt_text(body()) == "And of Italy?"
    parts = body(
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]
    )
    assert prompt_text(parts) == "a\nb"
    image = body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
    assert prompt_text(image) is None
    assert prompt_text({"messages": [{"role": "system", "content": "x"}]}) is None
    assert prompt_text({"messages": "nope"}) is None


def test_cacheable_refuses_sampling_unless_allowed() -> None:
    assert cacheable(body(temperature=0))
    assert not cacheable(body(temperature=0.2))
    assert cacheable(body(temperature=0.2), allow_sampling=True)
    no_temp = body()
    del no_temp["temperature"]
    assert not cacheable(no_temp)  # the upstream default temperature is 1
    assert cacheable(no_temp, allow_sampling=True)
    assert not cacheable(body(temperature=None))
    assert not cacheable(body(temperature="0"))


def test_cacheable_refuses_n_and_non_text_prompts() -> None:
    assert not cacheable(body(n=2), allow_sampling=True)
    assert cacheable(body(n=1))
    image = body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
    assert not cacheable(image, allow_sampling=True)
