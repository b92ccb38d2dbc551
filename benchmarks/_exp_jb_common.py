"""What the jailbreak experiments (``exp_jailbreak_benign.py``, ``exp_jailbreak_tokens.py``)
share: where the data lies, the probe sets, the false-positive budget, a JSONL reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
INJECTION = SHARED / "guards" / "injection"
PROBES = HERE / "probes" / "jailbreak_heldout.jsonl"
LOOKALIKES = HERE.parent / "polyroute" / "data" / "signals" / "jailbreak-lookalikes.jsonl"
SETS = ("wild_jailbreak", "indirect_injection", "hard_benign", "plain_benign")
MAX_FPR = 0.03


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
