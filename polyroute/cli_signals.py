"""``polyroute train-signal``: fit the model of a ``jailbreak`` or ``domain`` signal.

::

    polyroute train-signal jailbreak --data TRAIN.jsonl [--validation VAL.jsonl] --out DIR
    polyroute train-signal domain --data TRAIN.jsonl --out DIR [--encoder static|minilm]
        [--min-oos-recall 0.9]

Rows are ``{"text", "label"}``, for ``domain`` optionally with a finer ``"intent"``
(see ``polyroute.signals.textmodel_train``); label ``out_of_scope`` rows calibrate the
out-of-scope cut.  ``DIR``
gets ``manifest.json`` and ``arrays.npz``; a signal loads it with ``model: DIR``.
Errors are ``ConfigError``; ``polyroute.cli`` prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from polyroute.signals.textmodel import MODEL_TYPES, SIGNAL_ENCODERS, save_model


def add_train_signal_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train-signal",
        help="fit a jailbreak or domain signal model and write it as a directory",
        description="Fit a linear model over text embeddings for a model-backed signal.",
    )
    p.add_argument("type", choices=MODEL_TYPES, help="which signal's model to train")
    p.add_argument(
        "--data", required=True, metavar="FILE.jsonl", help='rows {"text", "label"[, "intent"]}'
    )
    p.add_argument(
        "--validation", default=None, metavar="FILE.jsonl", help="held-out rows for the metrics"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument(
        "--encoder",
        default="static",
        choices=SIGNAL_ENCODERS,
        help="the request-path encoder the model reads (static: ~0.1 ms, minilm: ~6 ms)",
    )
    p.add_argument("--C", type=float, default=None, help="inverse L2 strength (LR)")
    p.add_argument(
        "--max-fpr",
        type=float,
        default=0.03,
        help="jailbreak: the false-positive rate the threshold allows (default 0.03)",
    )
    p.add_argument(
        "--min-oos-recall",
        type=float,
        default=0.0,
        help="domain: the lowest threshold whose cross-validated out-of-scope recall reaches "
        "this (default 0: the threshold maximising in-scope accuracy + out-of-scope recall)",
    )
    p.set_defaults(func=cmd_train_signal)


def cmd_train_signal(args: argparse.Namespace) -> int:
    from polyroute.signals.textmodel_train import read_rows, train_domain, train_jailbreak

    rows = read_rows(args.data, args.type)
    validation = read_rows(args.validation, args.type) if args.validation else None
    started = time.perf_counter()
    common: dict[str, Any] = {"encoder": args.encoder, "validation": validation}
    if args.C is not None:
        common["c"] = args.C
    if args.type == "jailbreak":
        model = train_jailbreak(rows, max_fpr=args.max_fpr, where=args.data, **common)
    else:
        floor = args.min_oos_recall or None
        model = train_domain(rows, min_oos_recall=floor, where=args.data, **common)
    info = {"trained_on": Path(args.data).name, "rows": len(rows.texts)}
    out = save_model(model, args.out, info)
    seconds = time.perf_counter() - started
    print(f"{out}: {args.type} model over {args.encoder}, threshold {model.threshold:.4f}")
    print(f"metrics: {json.dumps(model.metrics, sort_keys=True)}  ({seconds:.1f} s)")
    return 0
