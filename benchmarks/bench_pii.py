"""The ``pii`` signal on presidio-research's synthetic dataset (1,500 sentences, 17 types).

Per entity type, sentence-level recall and precision: a sentence is a true positive
for type T when it holds a T span and the signal reports T; a false positive when
the signal reports T and the sentence holds no T span.  Latency: one ``compute`` on a
one-message chat request, one thread, p50 and p99 over every sentence (repeated).

With ``--presidio`` (and presidio-analyzer plus an spaCy English model installed)
the same table for presidio's ``AnalyzerEngine`` at its default score threshold,
for comparison only; polyroute never imports presidio.

    python benchmarks/bench_pii.py [--data PATH] [--repeat 5] [--presidio] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from polyroute.signals.pii import PiiSignal
from polyroute.signals.pii_recognizers import STRUCTURED
from polyroute.types import Request

DATA = Path(__file__).resolve().parents[2] / "shared/data/guards/pii/synth_dataset_v2.json"
Detector = Callable[[str], frozenset[str]]


def load(path: Path) -> list[tuple[str, frozenset[str]]]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [(r["full_text"], frozenset(s["entity_type"] for s in r["spans"])) for r in rows]


def score(
    rows: list[tuple[str, frozenset[str]]], predicted: list[frozenset[str]], types: Iterable[str]
) -> dict[str, dict[str, float | int]]:
    table: dict[str, dict[str, float | int]] = {}
    pairs = [(gold, pred) for (_, gold), pred in zip(rows, predicted, strict=True)]
    for t in types:
        tp = sum(t in gold and t in pred for gold, pred in pairs)
        fp = sum(t not in gold and t in pred for gold, pred in pairs)
        fn = sum(t in gold and t not in pred for gold, pred in pairs)
        table[t] = {
            "support": tp + fn,
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "fp": fp,
        }
    return table


def polyroute_detector() -> tuple[Detector, Callable[[str], None]]:
    signal = PiiSignal("pii", {})

    def detect(text: str) -> frozenset[str]:
        value = signal.compute(Request.chat(text))
        assert isinstance(value, frozenset)
        return value

    def once(text: str) -> None:
        signal.compute(Request.chat(text))

    return detect, once


def presidio_detector() -> tuple[Detector, Callable[[str], None]] | None:
    try:
        from presidio_analyzer import AnalyzerEngine
    except ImportError:
        return None
    engine = AnalyzerEngine()

    def detect(text: str) -> frozenset[str]:
        return frozenset(r.entity_type for r in engine.analyze(text, language="en"))

    def once(text: str) -> None:
        engine.analyze(text, language="en")

    return detect, once


def latency_ms(once: Callable[[str], None], texts: list[str], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        for text in texts:
            start = time.perf_counter()
            once(text)
            samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[int(len(samples) * 0.99) - 1],
        "mean_ms": statistics.fmean(samples),
    }


def run(name: str, detector: tuple[Detector, Callable[[str], None]], rows: Any, repeat: int) -> Any:
    detect, once = detector
    predicted = [detect(text) for text, _ in rows]
    gold_types = sorted({t for _, gold in rows for t in gold})
    types = list(STRUCTURED) + [t for t in gold_types if t not in STRUCTURED]
    texts = [text for text, _ in rows]
    return {"name": name, "scores": score(rows, predicted, types),
            "latency": latency_ms(once, texts, repeat)}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    lines = [f"### {result['name']}", "", "| type | sentences | recall | precision | FP |",
             "|---|---|---|---|---|"]  # fmt: skip
    for t, s in result["scores"].items():
        if s["recall"] != s["recall"] and s["fp"] == 0:
            continue  # not in the data and never reported
        lines.append(
            f"| {t} | {s['support']} | {s['recall']:.3f} | {s['precision']:.3f} | {s['fp']} |"
        )
    lat = result["latency"]
    lines += ["", f"latency per prompt: p50 {lat['p50_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms, "
              f"mean {lat['mean_ms']:.3f} ms", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--presidio", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = load(args.data)
    results = [run("polyroute pii (structured defaults)", polyroute_detector(), rows, args.repeat)]
    if args.presidio:
        detector = presidio_detector()
        if detector is None:
            print("presidio-analyzer is not installed: skipped")
        else:
            results.append(run("presidio-analyzer AnalyzerEngine", detector, rows, 1))
    text = "\n".join(markdown(r) for r in results)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
