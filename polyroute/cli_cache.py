"""``polyroute train-cache``: fit the family model of the semantic cache's similarity.

::

    polyroute train-cache --data ROWS.jsonl --out DIR [--group-field group]
        [--skip-group oos] [--raw-threshold 0.88 --weight 0.9 --threshold 0.96]
        [--calibrate [--background PROMPTS.jsonl]]

Rows are ``{"text", "group"}``: prompts of one group are rewordings of one request (one
cached answer serves them all).  Rows whose group is missing or listed by
``--skip-group`` are left out (CLINC150's ``oos`` rows are each their own request).
The rule's numbers default to the shipped calibration (``polyroute.cache.families``);
``--calibrate`` chooses ``--raw-threshold`` and ``--threshold`` on the rows themselves,
cross-fitted (``polyroute.cache.families_calibrate``), with the wrong hits capped at
0.5 % on them and on ``--background`` prompts (rows ``{"text"}`` or ``{"prompt"}``:
unrelated traffic, each its own request), and writes what it measured to the manifest.
``DIR`` gets ``manifest.json`` and ``arrays.npz``; the cache
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
    p.add_argument(
        "--group-field", default="group", help="the row field naming the family (default: group)"
    )
    p.add_argument(
        "--skip-group",
        action="append",
        default=[],
        metavar="NAME",
        help="a group whose rows are each their own request (repeatable; e.g. oos)",
    )
    p.add_argument(
        "--l2", type=float, default=1e-4, help="L2 penalty on the weights (default: %(default)s)"
    )
    p.add_argument(
        "--raw-threshold",
        type=float,
        default=RAW_THRESHOLD,
        help="prompts at this cosine or above match (default: %(default)s)",
    )
    p.add_argument(
        "--weight",
        type=float,
        default=WEIGHT,
        help="the family cosine's share of the family score (default: %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help="prompts whose family score reaches this match (default: %(default)s)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="choose --raw-threshold and --threshold on the rows (cross-fitted)",
    )
    p.add_argument(
        "--background",
        default=None,
        metavar="FILE.jsonl",
        help="with --calibrate: unrelated prompts, each its own request (every hit wrong)",
    )
    p.set_defaults(func=cmd_train_cache)


def read_groups(
    path: str | Path, field: str, skip: set[str]
) -> tuple[list[str], list[str], list[str]]:
    """Texts and groups of a JSONL file, and the texts of the skipped rows (each its own
    request); a bad row is an error naming the file and line."""
    from polyroute.jsonio import json_lines

    file = Path(path)
    texts: list[str] = []
    groups: list[str] = []
    singles: list[str] = []
    for number, row in json_lines(file):
        text, group = row.get("text"), row.get(field)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{file}:{number}: expected a non-empty string 'text'")
        if group is None or group in skip:
            singles.append(text)
            continue
        if not isinstance(group, str) or not group:
            raise ConfigError(f"{file}:{number}: expected a non-empty string {field!r}")
        texts.append(text)
        groups.append(group)
    if len(set(groups)) < 2:
        raise ConfigError(f"{file}: expected rows of at least two groups in {field!r}")
    return texts, groups, singles


def read_prompts(path: str | Path) -> list[str]:
    """The ``text`` (or ``prompt``) of every row of a JSONL file, distinct, in order."""
    from polyroute.jsonio import json_lines

    file = Path(path)
    out: dict[str, None] = {}
    for number, row in json_lines(file):
        text = row.get("text", row.get("prompt"))
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{file}:{number}: expected a non-empty string 'text' or 'prompt'")
        out[text] = None
    if not out:
        raise ConfigError(f"{file}: no prompts")
    return list(out)


def cmd_train_cache(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from polyroute.cache import default_similarity
    from polyroute.cache.families import save_families, train_families
    from polyroute.embed import make_encoder

    if args.background and not args.calibrate:
        raise ConfigError("train-cache: --background is for --calibrate")
    if not 0.0 < args.weight < 1.0:
        raise ConfigError(f"train-cache: --weight: expected 0 < weight < 1, got {args.weight}")
    for flag, value in (("--raw-threshold", args.raw_threshold), ("--threshold", args.threshold)):
        if not -1.0 <= value <= 1.0:
            raise ConfigError(f"train-cache: {flag}: expected a cosine in -1..1, got {value}")
    texts, groups, singles = read_groups(args.data, args.group_field, set(args.skip_group))
    background = read_prompts(args.background) if args.background else []
    started = time.perf_counter()
    encoder = make_encoder("minilm")
    x = encoder.encode(texts)
    model = train_families(x, groups, encoder="minilm", l2=args.l2)
    raw_threshold, threshold = args.raw_threshold, args.threshold
    info: dict[str, Any] = {"trained_on": Path(args.data).name}
    if args.calibrate:
        from polyroute.cache.families_calibrate import calibrate_families

        found = calibrate_families(
            default_similarity("minilm"),
            x,
            texts,
            groups,
            singletons=(encoder.encode(singles), singles) if singles else None,
            background=(encoder.encode(background), background) if background else None,
            l2=args.l2,
            weight=args.weight,
        )
        if found.rule is None:
            raise ConfigError(
                f"{args.data}: no rule of the calibration grid keeps wrong hits within 0.5 %; "
                "these groups may not be rewordings of one request each"
            )
        raw_threshold, threshold = found.rule
        info["calibration"] = {
            **found.summary(),
            "background": Path(args.background).name if args.background else None,
        }
        print(f"calibration: {info['calibration']}")
    model = replace(model, raw_threshold=raw_threshold, weight=args.weight, threshold=threshold)
    out = save_families(model, args.out, info)
    seconds = time.perf_counter() - started
    print(f"{out}: {model.k} families from {len(texts)} rows over minilm, raw >= "
          f"{raw_threshold} or family >= {threshold} ({seconds:.1f} s)")  # fmt: skip
    return 0
