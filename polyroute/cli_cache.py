"""``polyroute train-cache``: fit the family model of the semantic cache's similarity.

::

    polyroute train-cache --data ROWS.jsonl --out DIR [--group-field group]
        [--skip-group oos] [--raw-threshold 0.90 --weight 0.9 --threshold 0.96]

Rows are ``{"text", "group"}``: prompts of one group are rewordings of one request (one
cached answer serves them all).  Rows whose group is missing or listed by
``--skip-group`` are left out (CLINC150's ``oos`` rows are each their own request).
The rule's numbers default to the shipped calibration (``polyroute.cache.families``);
they were chosen on CLINC150 by ``benchmarks/exp_cache_trained.py``, and another set of
families may want its own.  ``DIR`` gets ``manifest.json`` and ``arrays.npz``; the cache
loads it with ``{type: semantic_cache, similarity: DIR}``.  Errors are ``ConfigError``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from polyroute.cache.families import RAW_THRESHOLD, THRESHOLD, WEIGHT
from polyroute.errors import ConfigError


def add_train_cache_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train-cache",
        help="fit the semantic cache's family model (rewordings of one request) as a directory",
        description="Fit a multinomial logistic regression over request families on MiniLM.",
    )
    p.add_argument("--data", required=True, metavar="FILE.jsonl", help='rows {"text", "group"}')
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument("--group-field", default="group", help="the row field naming the family")
    p.add_argument(
        "--skip-group",
        action="append",
        default=[],
        metavar="NAME",
        help="a group whose rows are each their own request (repeatable; e.g. oos)",
    )
    p.add_argument("--l2", type=float, default=1e-4, help="L2 penalty on the weights")
    p.add_argument("--raw-threshold", type=float, default=RAW_THRESHOLD)
    p.add_argument("--weight", type=float, default=WEIGHT)
    p.add_argument("--threshold", type=float, default=THRESHOLD)
    p.set_defaults(func=cmd_train_cache)


def read_groups(path: str | Path, field: str, skip: set[str]) -> tuple[list[str], list[str]]:
    """Texts and groups of a JSONL file; a bad row is an error naming the file and line."""
    from polyroute.jsonio import json_lines

    file = Path(path)
    texts: list[str] = []
    groups: list[str] = []
    for number, row in json_lines(file):
        text, group = row.get("text"), row.get(field)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{file}:{number}: expected a non-empty string 'text'")
        if group is None or group in skip:
            continue
        if not isinstance(group, str) or not group:
            raise ConfigError(f"{file}:{number}: expected a non-empty string {field!r}")
        texts.append(text)
        groups.append(group)
    if len(set(groups)) < 2:
        raise ConfigError(f"{file}: expected rows of at least two groups in {field!r}")
    return texts, groups


def cmd_train_cache(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from polyroute.cache.families import save_families, train_families
    from polyroute.embed import make_encoder

    texts, groups = read_groups(args.data, args.group_field, set(args.skip_group))
    started = time.perf_counter()
    x = make_encoder("minilm").encode(texts)
    model = train_families(x, groups, encoder="minilm", l2=args.l2)
    model = replace(
        model, raw_threshold=args.raw_threshold, weight=args.weight, threshold=args.threshold
    )
    out = save_families(model, args.out, {"trained_on": Path(args.data).name})
    seconds = time.perf_counter() - started
    print(f"{out}: {model.k} families from {len(texts)} rows over minilm ({seconds:.1f} s)")
    return 0
