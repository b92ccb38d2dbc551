"""The shipped hit rules: pinned, and the ones benchmarks/RESULTS_cache.md says the bench chose."""

from __future__ import annotations

import re
from pathlib import Path

from polyroute.cache import DEFAULTS, Similarity

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS_cache.md"


def fmt(sim: Similarity) -> str:
    """As ``benchmarks/bench_cache.py`` prints a rule."""
    t, a, m, lex = sim.threshold, sim.accept, sim.margin, sim.lexical
    text = f"t={t:.2f}" if t == a else f"t={t:.2f} accept={a:.2f} margin={m:.2f}"
    return text + (f" lexical={lex:.2f}" if lex else "")


def test_shipped_rules_are_plain_cosine_at_the_calibrated_thresholds() -> None:
    # chosen under the CLINC + distinct-prompt caps with all the guards, the swap guard
    # included (RESULTS_cache.md, 2026-11-30 evening note)
    rules = {k: (s.threshold, s.accept, s.margin, s.lexical) for k, s in DEFAULTS.items()}
    assert rules == {"minilm": (0.86, 0.86, 0.0, 0.0), "static": (0.88, 0.88, 0.0, 0.0)}
    for sim in DEFAULTS.values():
        assert sim.literal_guard and sim.swap_guard and not sim.swap_added


def test_results_file_records_the_shipped_rules_as_the_grids_choice() -> None:
    text = RESULTS.read_text()
    for encoder, sim in DEFAULTS.items():
        found = re.search(
            rf"Shipped `DEFAULTS\['{encoder}'\]`: `([^`]*)`, guards on \(equal to", text
        )
        assert found, f"RESULTS_cache.md does not record DEFAULTS[{encoder!r}] as chosen"
        assert found.group(1) == fmt(sim)
