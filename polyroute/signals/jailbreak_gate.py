"""Binding two trained ``jailbreak`` models into a gated cascade.

::

    polyroute train-signal jailbreak --stages FAST_DIR ACCURATE_DIR \\
        --validation VAL.jsonl --out DIR

The fast model (say the n-gram one, ~0.5 ms a prompt) scores every prompt.  A prompt it
scores below ``low`` is benign on its word alone; every other prompt also goes to the
accurate model (say a fine-tuned MiniLM), and the score mixes the two as
``JailbreakCascade.combine`` does, over the band ``[low, 1]``.  Both models are used as
trained; only the gate and the mix are chosen here, on the validation rows alone:

- ``low``: the ``miss`` quantile (default 0.5 %) of the fast model's scores over the
  validation injections, so the gate alone loses at most that share of them (and never
  above the fast model's own threshold);
- the weight ``w`` of the accurate model, from ``WEIGHTS``: the highest validation F1
  (ties: the larger ``w``);
- the threshold: the mixed probability reaching the accurate model's own threshold
  (``low + (1 - low) * t``); with ``w = 1`` exactly the accurate model's decision.

The directory written holds the manifest and a verbatim copy of each stage's directory
(its graph, if any, and its manifest's options with it), named after the stage's
encoder (``ngram/``, ``finetuned/``): a shipped default built this way offers each
stage as ``variant: NAME`` too.  When the accurate model fails on a request, the fast
one decides alone at its own threshold (``JailbreakCascade.fast_alone``, the failure
logged); a stage that cannot load (a missing or corrupt graph) is a ConfigError at load.
``--out`` must be new or empty, or a gated cascade written before (replaced).
``link_shipped`` (``--link-shipped``) references stages that are polyroute's own shipped
models (``@NAME``, checked by digest at load) instead of copying them: how the shipped
``variant: gated`` is built.

``key`` (``--key DIR``) adds a second key, a third jailbreak model (say the ``static``
one, whose vector the domain and similarity signals compute anyway): a prompt goes to
the accurate model only when both keys are unsure.  The two cuts are then chosen
together: each a quantile of its model's scores over the validation injections, from 0
to ``miss`` by 0.05 %; of the pairs losing at most ``miss`` of them in all, the one
sending the fewest validation benign prompts on (ties: fewer lost, then the higher
``low``).  A prompt the key clears scores ``low * p`` (``JailbreakCascade.cleared``).

``min_words`` (``--gate-min-words N``) sets a word floor: a prompt of fewer words never
reaches the accurate stage, and the fast stage decides it alone at its own threshold
(``JailbreakCascade.fast_alone``; say, under the shortest benign row the accurate stage
was trained on).  Such validation rows neither choose the cuts nor count as sent on, and
are scored that way in the metrics.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.errors import ConfigError
from polyroute.replace_dir import staging_beside, swap_in
from polyroute.signals.cascade import CASCADE, SHIPPED, STAGES, shipped_digest
from polyroute.signals.jailbreak_cascade import KEY_ENCODERS, fast_alone_map, under_floor
from polyroute.signals.textmodel import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    TextModel,
    default_model_dir,
    load_model,
)
from polyroute.signals.textmodel_train import Rows, jailbreak_metrics, refuse_weights

WEIGHTS = (1.0, 0.5)
MISS = 0.005
_EPS = 1e-7  # as JailbreakCascade.combine


def gate_scores(
    p: np.ndarray,
    q: np.ndarray,
    low: float,
    weight: float,
    *,
    s: np.ndarray | None = None,
    key_low: float = 0.0,
) -> np.ndarray:
    """The cascade's scores from the fast ``p`` and accurate ``q`` probabilities (and the
    second key's ``s``), as ``JailbreakSignal`` computes them one prompt at a time (``q``
    counts only where ``p >= low`` and ``s >= key_low``)."""
    pc, qc = np.clip(p, _EPS, 1 - _EPS), np.clip(q, _EPS, 1 - _EPS)
    z = (1 - weight) * np.log(pc / (1 - pc)) + weight * np.log(qc / (1 - qc))
    mixed = low + (1.0 - low) / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))
    if s is not None:
        mixed = np.where(s < key_low, low * p, mixed)
    out: np.ndarray = np.where((p < low) | (p >= 1.0), p, mixed)  # p of 1: sure, as served
    return out


def fast_alone_scores(p: np.ndarray, low: float, own: float, cut: float) -> np.ndarray:
    """``JailbreakCascade.fast_alone`` over many fast probabilities ``p`` (band ``[low, 1)``,
    the fast stage's own threshold ``own``, the cascade's ``cut``)."""
    out: np.ndarray = np.asarray(fast_alone_map(p, low, 1.0, own, cut), dtype=np.float64)
    return out


def _two_cuts(p: np.ndarray, s: np.ndarray, truth: np.ndarray, miss: float) -> tuple[float, float]:
    """The gate on ``p`` and the key's cut on ``s`` (see the module docstring)."""
    levels = {*np.round(np.arange(0.0, miss, 0.0005), 6).tolist(), miss}  # 0: loses none
    cuts_p = sorted(
        {0.0, *(_floor6(float(np.quantile(p[truth], m, method="lower"))) for m in levels)}
    )
    cuts_s = sorted(
        {0.0, *(_floor6(float(np.quantile(s[truth], m, method="lower"))) for m in levels)}
    )
    best: tuple[tuple[float, float, float], tuple[float, float]] | None = None
    for a in cuts_p:
        for b in cuts_s:
            sent = (p >= a) & (s >= b)
            lost = float((~sent[truth]).mean())
            if lost > miss:
                continue
            rank = (float(sent[~truth].mean()), lost, -a)
            if best is None or rank < best[0]:
                best = (rank, (a, b))
    assert best is not None  # (0, 0) loses nothing
    return best[1]


@dataclass(frozen=True)
class Gate:
    """What :func:`build_gate` chose on the validation rows."""

    low: float
    #: the second key's cut; None: no key (none given, or its cut came out 0)
    key_low: float | None
    weight: float
    threshold: float
    tried: dict[float, dict[str, Any]]
    sent_on: float


def build_gate(
    fast_dir: str | Path,
    accurate_dir: str | Path,
    validation: Rows,
    out: str | Path,
    *,
    miss: float = MISS,
    link_shipped: bool = False,
    key_dir: str | Path | None = None,
    min_words: int | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Choose the gate and the mix on ``validation`` and write the cascade to ``out``;
    returns its manifest.  With ``link_shipped``, a stage that is one of polyroute's
    shipped models is referenced (``@NAME``, its digest recorded) instead of copied.
    Any problem is a ConfigError naming the flag or file."""
    if not 0.0 <= miss < 1.0:
        raise ConfigError(f"--gate-miss: expected a share in [0, 1), got {miss}")
    if min_words is not None and min_words < 1:
        raise ConfigError(f"--gate-min-words: expected a whole number >= 1, got {min_words}")
    refuse_weights("--validation", validation)
    truth = np.asarray(validation.labels) == "injection"
    if truth.all() or not truth.any():
        raise ConfigError("--validation: the rows need both 'injection' and 'benign' labels")
    root = Path(out).resolve()
    for src in (Path(d).resolve() for d in (fast_dir, accurate_dir, key_dir) if d is not None):
        if root == src or root.is_relative_to(src) or src.is_relative_to(root):
            raise ConfigError(f"--out: {out} and the stage {src} must not hold one another")
    _check_out(root, out)
    fast = load_model(fast_dir, "jailbreak")
    accurate = load_model(accurate_dir, "jailbreak")
    key = None if key_dir is None else load_model(key_dir, "jailbreak")
    if key is not None and key.encoder not in KEY_ENCODERS:
        raise ConfigError(f"--key: {key_dir} is a {key.encoder!r} model; a key must be cheap: "
                          f"one of {list(KEY_ENCODERS)}")  # fmt: skip
    p = _scores(fast, validation.texts, "--stages")
    q = _scores(accurate, validation.texts, "--stages")
    s = None if key is None else _scores(key, validation.texts, "--key")
    short = np.asarray([min_words is not None and under_floor(t, min_words)
                        for t in validation.texts])  # fmt: skip
    if min_words is not None and not ((truth & ~short).any() and (~truth & ~short).any()):
        raise ConfigError(f"--gate-min-words: the validation rows need injections and benign "
                          f"prompts of {min_words} words or more to choose the gate")  # fmt: skip
    gate = _choose(p, q, s, truth, miss=miss, thresholds=(fast.threshold, accurate.threshold),
                   short=short)  # fmt: skip
    staging = staging_beside(root, "--out", "the cascade")
    try:
        manifest = _write(
            staging, fast, accurate, (fast_dir, accurate_dir), link_shipped=link_shipped
        )
        if key is not None and key_dir is not None and gate.key_low is not None:
            digests = manifest["shipped_digests"]
            ref = _place(staging, digests, "key", "key", key_dir, link_shipped=link_shipped)
            manifest["key"] = {"stage": ref, "low": gate.key_low}
            manifest["encoders"]["key"] = key.encoder
        if min_words is not None:
            manifest["accurate_min_words"] = min_words
        if not manifest["shipped_digests"]:
            del manifest["shipped_digests"]
        manifest.update(_chosen(gate, miss, info))
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        swap_in(staging, root, "--out", "the cascade")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _choose(
    p: np.ndarray,
    q: np.ndarray,
    s: np.ndarray | None,
    truth: np.ndarray,
    *,
    miss: float,
    thresholds: tuple[float, float],
    short: np.ndarray | None = None,
) -> Gate:
    """The gate (and the key's cut), the weight and the threshold (module docstring).
    ``short`` rows (under the word floor) are the fast stage's alone: they neither choose
    the cuts nor go on."""
    short = np.zeros(len(p), dtype=bool) if short is None else short
    gated = ~short
    # "lower": a validation score, so the gate alone loses at most ``miss`` of them; the
    # values scored are the ones the manifest stores (6 decimals, the gate rounded down so
    # that the injection it sits on is still sent on)
    if s is None:
        low = _floor6(float(np.quantile(p[truth & gated], miss, method="lower")))
        key_low = 0.0
    else:
        low, key_low = _two_cuts(p[gated], s[gated], truth[gated], miss)
        if key_low <= 0.0:  # a key that clears nothing only costs its vector: left out
            s = None
    low = min(low, _floor6(thresholds[0]))
    threshold = round(low + (1.0 - low) * thresholds[1], 6)
    alone = fast_alone_scores(p, low, thresholds[0], threshold)
    tried = {w: jailbreak_metrics(np.where(short, alone, gate_scores(p, q, low, w, s=s,
                                                                      key_low=key_low)),
                                  truth, threshold)
             for w in WEIGHTS}  # fmt: skip
    weight = max(WEIGHTS, key=lambda w: (tried[w]["f1"], w))
    sent = gated & (p >= low) if s is None else gated & (p >= low) & (s >= key_low)
    return Gate(low, None if s is None else key_low, weight, threshold, tried,
                round(float(sent.mean()), 4))  # fmt: skip


def _chosen(gate: Gate, miss: float, info: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's fields for ``gate``."""
    return {
        "band": [gate.low, 1.0],
        "accurate_weight": gate.weight,
        "threshold": gate.threshold,
        "metrics": {
            "source": "validation",
            "gate_miss": miss,
            "sent_on": gate.sent_on,
            **gate.tried[gate.weight],
            "by_weight": {str(w): m for w, m in gate.tried.items()},
        },
        **(info or {}),
    }


def _scores(model: TextModel, texts: list[str], where: str) -> np.ndarray:
    from polyroute.signals.neural import model_encoder

    out: np.ndarray = model.scores(model_encoder(model, where).encode(texts)).astype(np.float64)
    return out


def _place(
    root: Path, digests: dict[str, str], role: str, name: str, src_dir: str | Path,
    *, link_shipped: bool,
) -> str:  # fmt: skip
    """Reference (a shipped model, with ``link_shipped``: its digest goes to ``digests``)
    or copy the model ``src_dir`` to ``root / name``; the reference the manifest holds."""
    src = Path(src_dir).resolve()
    if link_shipped and src.parent == default_model_dir("jailbreak").parent.resolve():
        digests[role] = shipped_digest(src)
        return SHIPPED + src.name
    shutil.copytree(src_dir, root / name)
    return name


def _write(
    root: Path,
    fast: TextModel,
    accurate: TextModel,
    dirs: tuple[str | Path, str | Path],
    *,
    link_shipped: bool,
) -> dict[str, Any]:
    """Copy (or, shipped and ``link_shipped``, reference) the stages into ``root``; the
    manifest's stage part (``shipped_digests`` always present, emptied by the caller)."""
    from polyroute.routers._artifact_files import versions

    digests: dict[str, str] = {}
    names = _stage_names(fast, accurate)
    refs = {role: _place(root, digests, role, name, stage, link_shipped=link_shipped)
            for role, name, stage in zip(STAGES, names, dirs, strict=True)}  # fmt: skip
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "type": "jailbreak",
        "encoder": CASCADE,
        "stages": refs,
        "encoders": {"fast": fast.encoder, "accurate": accurate.encoder},
        "accurate_max_words": None,
        "labels": ["injection"],
        "versions": versions(),
        "shipped_digests": digests,
    }


def _floor6(x: float) -> float:
    """``x`` rounded down to 6 decimals (as the manifest stores it)."""
    return math.floor(x * 1e6) / 1e6


def _check_out(root: Path, out: str | Path) -> None:
    """``--out`` must be a new or empty directory, or a gated cascade written before (it is
    replaced whole once the new one is complete): the stages are copied in under fixed
    names, which must not clobber anything else."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out: {out} is a file; expected a directory to write the cascade")
    if not root.is_dir() or not any(root.iterdir()):
        return
    try:
        found = json.loads((root / MANIFEST).read_text())
        earlier = found.get("encoder") == CASCADE and found.get("type") == "jailbreak"
    except (OSError, ValueError, AttributeError):
        earlier = False
    if not earlier:
        raise ConfigError(
            f"--out: {out} holds other files (not a jailbreak cascade); give a new or empty "
            "directory"
        )


def _stage_names(fast: TextModel, accurate: TextModel) -> tuple[str, str]:
    """The stages' directory names: their encoders, or ``fast``/``accurate`` when equal."""
    if fast.encoder == accurate.encoder:
        return ("fast", "accurate")
    return (fast.encoder, accurate.encoder)
