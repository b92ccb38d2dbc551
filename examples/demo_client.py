"""A few routed requests through polyroute with the unmodified openai client.

    python examples/demo_client.py --base-url http://127.0.0.1:8100/v1

Sends a chit-chat and a math prompt with ``model="auto"``, plain and streaming,
plus a text completion, and shows where each went (``x-polyroute-*`` headers).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Mapping

from openai import OpenAI

PROMPTS = {
    "chit-chat": "Hi! What's a nice name for a cat?",
    "math": "Prove that the derivative of x squared is 2x.",
}
MAX_TOKENS = 32


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def show_route(headers: Mapping[str, str], label: str) -> None:
    say(
        f"  [{label}] model={headers.get('x-polyroute-model', '?')} "
        f"decision={headers.get('x-polyroute-decision', '?')} "
        f"overhead={headers.get('x-polyroute-overhead-ms', '?')} ms "
        f"trace={headers.get('x-polyroute-trace-id', '?')}"
    )


def answer_text(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return textwrap.shorten(flat, width=100, placeholder=" ...") or "(empty)"


def plain(client: OpenAI, label: str, prompt: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=MAX_TOKENS,
        temperature=0.2,
    )
    completion = raw.parse()
    show_route(raw.headers, label)
    say(f"  body model: {completion.model}")
    say(f"  answer: {answer_text(completion.choices[0].message.content)}")


def streaming(client: OpenAI, label: str, prompt: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=MAX_TOKENS,
        temperature=0.2,
        stream=True,
    )
    show_route(raw.headers, label + ", streaming")
    sys.stdout.write("  stream: ")
    chunks = 0
    finish = None
    with raw.parse() as stream:
        for chunk in stream:
            chunks += 1
            for choice in chunk.choices:
                sys.stdout.write((choice.delta.content or "").replace("\n", " "))
                sys.stdout.flush()
                finish = choice.finish_reason or finish
    say(f"\n  ({chunks} chunks, finish_reason={finish})")


def completion(client: OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="auto", prompt="The capital of France is", max_tokens=8, temperature=0
    )
    show_route(raw.headers, "text completion")
    say(f"  text: {answer_text(raw.parse().choices[0].text)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8100/v1")
    args = parser.parse_args()
    with OpenAI(base_url=args.base_url, api_key="no-key-needed", max_retries=0) as client:
        models = [m.id for m in client.models.list()]
        say(f"GET /v1/models -> {', '.join(models)}")
        for label, prompt in PROMPTS.items():
            say(f"\n> {prompt}")
            plain(client, label, prompt)
            streaming(client, label, prompt)
        say("\n> The capital of France is")
        completion(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
