"""Token-count estimates for the token signal and cost estimates (no tokenizer on the hot path)."""

from __future__ import annotations

DEFAULT_OUTPUT_TOKENS = 256


def estimate_tokens(text: str) -> int:
    """About four characters per token for English-like text; at least one token."""
    return max(1, (len(text) + 3) // 4)


def request_cost_usd(
    input_tokens: int, output_tokens: int, input_price_per_mtok: float, output_price_per_mtok: float
) -> float:
    return (input_tokens * input_price_per_mtok + output_tokens * output_price_per_mtok) / 1e6
