"""``polyroute train-signal``: fit the model of a ``jailbreak`` or ``domain`` signal.

::

    polyroute train-signal jailbreak --data TRAIN.jsonl [--validation VAL.jsonl] --out DIR
    polyroute train-signal domain --data TRAIN.jsonl --out DIR
        [--encoder static|minilm|ngram|cascade|finetuned] [--min-oos-recall 0.9]

``--encoder cascade`` trains a fast model and a MiniLM one and the band of the fast
model's score in which MiniLM answers: for ``domain`` static then MiniLM (see
``polyroute.signals.cascade``), for ``jailbreak`` ngram then MiniLM, the extra rows
held out by their ``group`` in cross-validation (see
``polyroute.signals.jailbreak_cascade``).  ``--extra-data FILE`` adds rows to the training data
(not to cross-validation's held-out folds' scoring; e.g. the benign look-alike prompts
of ``polyroute/data/signals/jailbreak-lookalikes.jsonl``, or for ``domain`` unrelated
prompts labelled ``out_of_scope``).

``--encoder finetuned`` (jailbreak) fine-tunes all of MiniLM and ships it in ``DIR`` as
an int8 ONNX graph (``polyroute.signals.finetune_train``; needs torch).

Rows are ``{"text", "label"}``, for ``domain`` optionally with a finer ``"intent"``
(see ``polyroute.signals.textmodel_train``); label ``out_of_scope`` rows calibrate the
out-of-scope cut.  A training row may carry a sample ``"weight"`` (a positive number;
single jailbreak models, fine-tuned ones included; other trainers refuse it).  ``DIR``
gets ``manifest.json`` and ``arrays.npz``; a signal loads it with ``model: DIR``.
Errors are ``ConfigError``; ``polyroute.cli`` prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyroute.signals.cascade import CASCADE
from polyroute.signals.finetuned import FINETUNED, MAX_TOKENS, WINDOWS
from polyroute.signals.textmodel import MODEL_TYPES, SIGNAL_ENCODERS, save_model

if TYPE_CHECKING:
    from polyroute.signals.textmodel_train import Rows


def add_train_signal_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train-signal",
        help="fit a jailbreak or domain signal model and write it as a directory",
        description="Fit a linear model over text embeddings for a model-backed signal.",
    )
    p.add_argument("type", choices=MODEL_TYPES, help="which signal's model to train")
    p.add_argument(
        "--data",
        default=None,
        metavar="FILE.jsonl",
        help='rows {"text", "label"[, "intent"][, "weight"]}',
    )
    p.add_argument(
        "--validation", default=None, metavar="FILE.jsonl", help="held-out rows for the metrics"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument(
        "--encoder",
        default=None,
        choices=(*SIGNAL_ENCODERS, CASCADE),
        help="the request-path encoder the model reads (default static: ~0.1 ms; minilm: "
        "~6-15 ms; cascade: a fast model, and minilm when it is unsure; finetuned "
        "(jailbreak): all of MiniLM fine-tuned, ~8 min on 2 cores, ~8 ms a prompt)",
    )
    p.add_argument(
        "--extra-data",
        action="append",
        default=[],
        metavar="FILE.jsonl",
        help="more training rows (repeatable); never scored in cross-validation",
    )
    p.add_argument("--C", type=float, default=None, help="inverse L2 strength (LR)")
    p.add_argument(
        "--max-fpr",
        type=float,
        default=None,
        help="jailbreak: the false-positive rate the threshold allows (default 0.03; with "
        "--encoder finetuned the threshold is 0.5 unless this is given)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="--encoder finetuned: passes over the training rows (default 2)",
    )
    p.add_argument(
        "--layers",
        type=int,
        default=None,
        help="--encoder finetuned: keep MiniLM's first N of 6 layers (fewer: faster)",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="--encoder finetuned: the tokens of a prompt it reads, training and serving "
        "(default 128; fewer: faster)",
    )
    p.add_argument(
        "--windows",
        type=int,
        default=None,
        help="--encoder finetuned: a longer prompt is read in up to N overlapping windows of "
        "--max-tokens, its score the highest (default 8; 1: the first window only)",
    )
    p.add_argument(
        "--min-oos-recall",
        type=float,
        default=0.0,
        help="domain: the lowest threshold whose cross-validated out-of-scope recall reaches "
        "this (default 0: the threshold maximising in-scope accuracy + out-of-scope recall)",
    )
    p.add_argument(
        "--cascade-tolerance",
        type=float,
        default=None,
        help="domain cascade: the out-of-fold in-scope accuracy the cascade may give up "
        "against its accurate stage alone for speed (default 0.01)",
    )
    p.add_argument(
        "--cascade-max-words",
        type=int,
        default=None,
        help="cascade: longer prompts never reach the accurate stage (default: twice "
        "the longest training prompt; 0: no cap)",
    )
    p.add_argument(
        "--cascade-traffic",
        action="append",
        default=[],
        metavar="FILE.jsonl",
        help="jailbreak cascade: prompts ('text' or 'prompt') standing for gateway traffic; "
        "the band may send at most 10 %% of each file's to MiniLM (repeatable)",
    )
    p.add_argument(
        "--stages",
        nargs=2,
        default=None,
        metavar=("FAST_DIR", "ACCURATE_DIR"),
        help="jailbreak: bind two trained models into a gated cascade (no --data; the gate "
        "and the mix are chosen on --validation)",
    )
    p.add_argument(
        "--link-shipped",
        action="store_true",
        help="--stages: reference stages that are polyroute's shipped models (by name, "
        "checked by digest at load) instead of copying them",
    )
    p.add_argument(
        "--key",
        default=None,
        metavar="DIR",
        help="--stages: a third jailbreak model as a second key: only prompts both keys are "
        "unsure of reach the accurate stage",
    )
    p.add_argument(
        "--gate-miss",
        type=float,
        default=None,
        help="--stages: the share of validation injections the gate alone may lose (default 0.005)",
    )
    p.add_argument(
        "--gate-min-words",
        type=int,
        default=None,
        metavar="N",
        help="--stages: prompts of fewer words never reach the accurate stage; the fast one "
        "decides them alone (say, under the shortest benign row the accurate stage saw)",
    )
    p.set_defaults(func=cmd_train_signal)


def _check_shaping(args: argparse.Namespace) -> None:
    """The fine-tuning flags go with ``--encoder finetuned`` only."""
    from polyroute.errors import ConfigError

    shaping = (args.layers, args.max_tokens, args.epochs, args.windows)
    tuned = any(value is not None for value in shaping)
    if tuned and (args.stages is not None or args.encoder != FINETUNED):
        raise ConfigError("--epochs, --layers, --max-tokens and --windows shape a model "
                          "trained with --encoder finetuned")  # fmt: skip


def cmd_train_signal(args: argparse.Namespace) -> int:
    from polyroute.errors import ConfigError
    from polyroute.signals.textmodel_train import train_domain, train_jailbreak

    _check_shaping(args)
    if args.stages is not None:
        return _bind_stages(args)
    if args.data is None:
        raise ConfigError('--data: required (rows {"text", "label"}), unless --stages')
    if (args.gate_miss is not None or args.link_shipped or args.key is not None
            or args.gate_min_words is not None):  # fmt: skip
        raise ConfigError(
            "--gate-miss, --gate-min-words, --key and --link-shipped: only with --stages"
        )
    args.encoder = args.encoder or "static"  # None: not given (--stages rejects it)
    rows, extra, validation, info = _read_inputs(args)
    started = time.perf_counter()
    common: dict[str, Any] = {"validation": validation, "where": args.data}
    if args.C is not None:
        common["c"] = args.C
    max_fpr = 0.03 if args.max_fpr is None else args.max_fpr
    floor = args.min_oos_recall or None
    if args.encoder == FINETUNED:
        return _train_finetuned(args, rows, extra, validation, info)
    if args.type == "jailbreak" and args.encoder == CASCADE:
        from polyroute.signals.jailbreak_cascade import save_jailbreak_cascade
        from polyroute.signals.jailbreak_cascade_train import (
            read_traffic,
            train_jailbreak_cascade,
        )

        if args.cascade_max_words is not None:
            common["max_words"] = args.cascade_max_words
        traffic = [read_traffic(f) for f in args.cascade_traffic]
        jb = train_jailbreak_cascade(rows, max_fpr=max_fpr, extra=extra, traffic=traffic,
                                     **common)  # fmt: skip
        out = save_jailbreak_cascade(jb, args.out, info)
        _report(out, f"jailbreak cascade (band {jb.low:.4f}-{jb.high:.4f}, threshold "
                f"{jb.threshold:.4f})", jb.metrics, started)  # fmt: skip
        return 0
    if args.type == "jailbreak":
        model = train_jailbreak(rows, encoder=args.encoder, max_fpr=max_fpr, extra=extra,
                                **common)  # fmt: skip
    elif args.encoder == CASCADE:
        from polyroute.signals.cascade import save_cascade
        from polyroute.signals.cascade_train import train_domain_cascade

        if args.cascade_tolerance is not None:
            common["tolerance"] = args.cascade_tolerance
        if args.cascade_max_words is not None:
            common["max_words"] = args.cascade_max_words
        cascade = train_domain_cascade(rows, min_oos_recall=floor, extra=extra, **common)
        out = save_cascade(cascade, args.out, info)
        _report(out, f"domain cascade (band {cascade.low:.4f}-{cascade.high:.4f})",
                cascade.metrics, started)  # fmt: skip
        return 0
    else:
        model = train_domain(rows, encoder=args.encoder, min_oos_recall=floor, extra=extra,
                             **common)  # fmt: skip
    out = save_model(model, args.out, info)
    what = f"{args.type} model over {args.encoder}, threshold {model.threshold:.4f}"
    _report(out, what, model.metrics, started)
    return 0


def _read_inputs(args: argparse.Namespace) -> tuple[Rows, list[Rows], Rows | None, dict[str, Any]]:
    """The training, extra and validation rows, checked, and the manifest's record of them."""
    from polyroute.signals.textmodel_train import read_rows

    rows = read_rows(args.data, args.type)
    extra = [read_rows(f, args.type) for f in args.extra_data]
    validation = read_rows(args.validation, args.type) if args.validation else None
    files = [(args.data, rows), *zip(args.extra_data, extra, strict=True)]
    weights = _check_weights(args, files, validation)
    info: dict[str, Any] = {"trained_on": Path(args.data).name, "rows": len(rows.texts)}
    if extra:
        info["extra_data"] = [Path(f).name for f in args.extra_data]
    if weights:
        info["row_weights"] = weights
    return rows, extra, validation, info


def _check_weights(
    args: argparse.Namespace, files: list[tuple[str, Rows]], validation: Rows | None
) -> dict[str, list[float]]:
    """Weighted rows where the trainer would not read the weights: an error naming the
    file, not a drop.  Returns each weighted file's distinct weights (for the manifest)."""
    from polyroute.errors import ConfigError

    if validation is not None and validation.weights is not None:
        raise ConfigError(f"{args.validation}: 'weight' on validation rows: they are scored, "
                          "not fitted")  # fmt: skip
    weighted = {Path(name).name: sorted(set(rows.weights)) for name, rows in files
                if rows.weights is not None}  # fmt: skip
    single = args.type == "jailbreak" and args.encoder in SIGNAL_ENCODERS  # not a cascade
    if weighted and not single:
        first = next(name for name, rows in files if rows.weights is not None)
        raise ConfigError(f"{first}: row 'weight' is read only when training a single "
                          f"jailbreak model (--encoder {'|'.join(SIGNAL_ENCODERS)})")  # fmt: skip
    return weighted


def _bind_stages(args: argparse.Namespace) -> int:
    from polyroute.errors import ConfigError
    from polyroute.signals.jailbreak_gate import MISS, build_gate
    from polyroute.signals.textmodel_train import read_rows

    started = time.perf_counter()
    if args.type != "jailbreak":
        raise ConfigError("--stages: binds jailbreak models only")
    if args.data is not None or args.extra_data or args.encoder is not None:
        raise ConfigError(
            "--stages: the stages are trained already; give --validation, not --data, "
            "--extra-data or --encoder"
        )
    training = {"--C": args.C is not None, "--max-fpr": args.max_fpr is not None,
                "--min-oos-recall": bool(args.min_oos_recall),
                "--cascade-tolerance": args.cascade_tolerance is not None,
                "--cascade-max-words": args.cascade_max_words is not None,
                "--cascade-traffic": bool(args.cascade_traffic)}  # fmt: skip
    given = [flag for flag, on in training.items() if on]
    if given:
        raise ConfigError(f"--stages: {', '.join(given)} train a model; the stages are "
                          "trained already (--gate-miss and --validation choose here)")  # fmt: skip
    if args.validation is None:
        raise ConfigError("--stages: needs --validation rows to choose the gate and the mix")
    validation = read_rows(args.validation, "jailbreak")
    _check_weights(args, [], validation)
    miss = MISS if args.gate_miss is None else args.gate_miss
    info = {"stages_from": [Path(d).name for d in args.stages],
            "calibrated_on": Path(args.validation).name}  # fmt: skip
    fast_dir, accurate_dir = args.stages
    if args.key is not None:
        info["key_from"] = Path(args.key).name
    manifest = build_gate(fast_dir, accurate_dir, validation, args.out, miss=miss,
                          link_shipped=args.link_shipped, key_dir=args.key,
                          min_words=args.gate_min_words, info=info)  # fmt: skip
    low, weight = manifest["band"][0], manifest["accurate_weight"]
    key = f", key {manifest['key']['low']:.4f}" if "key" in manifest else ""
    if "accurate_min_words" in manifest:
        key += f", under {manifest['accurate_min_words']} words the fast stage alone"
    what = (f"gated jailbreak cascade (gate {low:.4f}{key}, accurate weight {weight}, "
            f"threshold {manifest['threshold']:.4f}; stages {manifest['stages']})")  # fmt: skip
    _report(Path(args.out), what, manifest["metrics"], started)
    return 0


def _train_finetuned(
    args: argparse.Namespace, rows: Any, extra: list[Any], validation: Any, info: dict[str, Any]
) -> int:
    started = time.perf_counter()
    from polyroute.errors import ConfigError
    from polyroute.signals.finetune_train import train_finetuned

    if args.type != "jailbreak":
        raise ConfigError("--encoder finetuned trains jailbreak models only")
    epochs = 2 if args.epochs is None else args.epochs
    if epochs < 1:
        raise ConfigError(f"--epochs: expected a whole number >= 1, got {epochs}")
    model = train_finetuned(rows, args.out, validation=validation, extra=extra,
                            epochs=epochs, max_fpr=args.max_fpr, layers=args.layers,
                            max_tokens=MAX_TOKENS if args.max_tokens is None else args.max_tokens,
                            windows=WINDOWS if args.windows is None else args.windows,
                            info=info)  # fmt: skip
    what = f"jailbreak model over fine-tuned MiniLM, threshold {model.threshold:.4f}"
    _report(Path(args.out), what, model.metrics, started)
    return 0


def _report(out: Path, what: str, metrics: dict[str, Any], started: float) -> None:
    seconds = time.perf_counter() - started
    print(f"{out}: {what}")
    print(f"metrics: {json.dumps(metrics, sort_keys=True)}  ({seconds:.1f} s)")
