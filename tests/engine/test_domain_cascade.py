"""The two-stage ``domain`` model: the fast stage answers when sure, else the accurate one;
without the accurate stage the fast one answers alone; a broken cascade is a ConfigError."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyroute.errors import ConfigError
from polyroute.signals.cascade import Cascade, is_cascade, load_cascade, save_cascade
from polyroute.signals.cascade_train import choose_band, train_domain_cascade
from polyroute.signals.domain import DomainSignal
from polyroute.signals.textmodel import default_model_dir
from polyroute.signals.textmodel_train import OutOfFold, Rows
from polyroute.types import Request

pytest.importorskip("onnxruntime")  # the static table is distilled from MiniLM once

PER = {
    "banking": ["what is my checking account balance", "transfer money to savings",
                "how much money is in my bank account", "send 50 dollars to my savings"],
    "kitchen_and_dining": ["give me a recipe for lasagna", "how long to boil an egg",
                           "what can i cook with chicken and rice", "recipe for pancakes"],
    "travel": ["book a flight to paris", "do i need a visa for japan",
               "find me a hotel in rome", "what is the baggage limit on my flight"],
}  # fmt: skip
OOS = ["what is the airspeed of a swallow", "tell me about quantum chromodynamics",
       "who won the 1966 world cup", "what does a platypus eat", "how tall is everest",
       "what is the boiling point of tungsten"]  # fmt: skip


def _rows() -> Rows:
    texts = [t for ts in PER.values() for t in ts] * 3
    labels = [d for d, ts in PER.items() for _ in ts] * 3
    return Rows(texts + OOS, labels + ["out_of_scope"] * len(OOS), None)


@pytest.fixture(scope="module")
def cascade_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # static, then ngram as the "accurate" stage: no MiniLM needed for these tests
    model = train_domain_cascade(_rows(), fast_encoder="static", accurate_encoder="ngram")
    return save_cascade(model, tmp_path_factory.mktemp("m") / "cascade")


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_round_trip_and_the_signal_answers(cascade_dir: Path) -> None:
    assert is_cascade(cascade_dir) and not is_cascade(default_model_dir("jailbreak"))
    model = load_cascade(cascade_dir)
    assert model.fast.encoder == "static" and model.accurate.encoder == "ngram"
    assert 0.0 <= model.low <= model.high <= 1.0
    signal = DomainSignal("d", {"model": str(cascade_dir)})
    assert signal.cascade is not None and signal.blocking
    assert signal.compute(Request.chat("please move 20 dollars into my savings account")) == (
        "banking"
    )


def test_a_sure_prompt_needs_no_accurate_encode(cascade_dir: Path) -> None:
    model = load_cascade(cascade_dir)
    always_sure = Cascade(model.fast, model.accurate, 0.0, 0.0)  # nothing in the band
    never_sure = Cascade(model.fast, model.accurate, 0.0, 1.01)
    signal = DomainSignal("d", {"model": str(cascade_dir)})
    signal.warmup()
    text = "book a flight to paris"
    signal.cascade = always_sure
    request = Request.chat(text)
    assert signal.encoder_texts(request) == ()
    assert signal.compute(request) == "travel"
    assert request.memo is not None
    assert {k[1] for k in request.memo} == {"static"}  # the accurate encoder never ran
    signal.cascade = never_sure
    request = Request.chat(text)
    assert signal.encoder_texts(request) == (text,)
    assert signal.compute(request) == "travel"
    assert request.memo is not None and {k[1] for k in request.memo} == {"static", "ngram"}


def test_a_long_prompt_is_left_to_the_fast_stage(cascade_dir: Path) -> None:
    model = load_cascade(cascade_dir)
    assert model.max_words == 2 * max(len(t.split()) for t in _rows().texts)
    signal = DomainSignal("d", {"model": str(cascade_dir)})
    signal.warmup()
    signal.cascade = Cascade(model.fast, model.accurate, 0.0, 1.01, max_words=4)  # never sure
    short, long = "book a flight", "please book a flight to paris for me next week"
    assert signal.encoder_texts(Request.chat(short)) == (short,)
    request = Request.chat(long)
    assert signal.encoder_texts(request) == ()
    assert signal.compute(request) == "travel"
    assert request.memo is not None and {k[1] for k in request.memo} == {"static"}


def test_without_the_accurate_stage_the_fast_one_answers_alone(
    cascade_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import polyroute.signals.neural as neural

    real = neural.serving_encoder

    def no_ngram(encoder_id: str) -> Any:
        if encoder_id == "ngram":
            raise ConfigError("the accurate encoder is not installed")
        return real(encoder_id)

    monkeypatch.setattr(neural, "serving_encoder", no_ngram)
    model = load_cascade(cascade_dir)
    save_cascade(Cascade(model.fast, model.accurate, 0.0, 1.01), cascade_dir.parent / "unsure")
    signal = DomainSignal("d", {"model": str(cascade_dir.parent / "unsure")})
    with caplog.at_level(logging.WARNING, "polyroute.signals"):
        signal.warmup()
    assert signal.alone and "answers alone" in caplog.text
    request = Request.chat("book a flight to paris")
    assert signal.encoder_texts(request) == ("book a flight to paris",)
    assert signal.compute(request) == "travel"  # not None: the static stage still knows


def test_an_accurate_stage_failing_per_request_falls_back(cascade_dir: Path) -> None:
    model = load_cascade(cascade_dir)
    signal = DomainSignal("d", {"model": str(cascade_dir)})
    signal.warmup()
    signal.cascade = Cascade(model.fast, model.accurate, 0.0, 1.01)  # always ask it

    class Exploding:
        id = "ngram"

        def encode(self, texts: Any) -> Any:
            raise RuntimeError("onnx session died")

    signal.encoder = Exploding()  # type: ignore[assignment]
    assert signal.compute(Request.chat("give me a recipe for lasagna")) == "kitchen_and_dining"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "fast" / "arrays.npz").write_bytes(b"not a zip"), "fast/arrays.npz"),
        (lambda p: shutil.rmtree(p / "accurate"), "accurate"),
        (lambda p: _edit(p, band=[0.9, 0.1]), "band"),
        (lambda p: _edit(p, stages={"fast": "../x", "accurate": "accurate"}), "stages"),
        (lambda p: _edit(p, format_version=7), "format_version"),
        (lambda p: _edit(p, accurate_max_words=0), "accurate_max_words"),
    ],
)
def test_a_broken_cascade_is_a_config_error_naming_the_file(
    cascade_dir: Path, tmp_path: Path, damage: Any, message: str
) -> None:
    path = _copy(cascade_dir, tmp_path)
    damage(path)
    with pytest.raises(ConfigError, match=message) as info:
        DomainSignal("d", {"model": str(path)}, "signals.d")
    assert str(path) in str(info.value) and "signals.d.model" in str(info.value)


def _edit(path: Path, **changes: Any) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, **changes}))


def test_choose_band_keeps_the_accurate_stage_s_quality_for_the_least_work() -> None:
    # rows 0-5 in scope, 6-7 out of scope; the fast stage is right only when confident
    truth = ["a", "a", "b", "b", "a", "b", "out_of_scope", "out_of_scope"]
    top = np.array([0.95, 0.9, 0.92, 0.5, 0.55, 0.45, 0.1, 0.52], dtype=np.float32)
    fast = OutOfFold(["a", "a", "b", "a", "b", "a", "a", "b"], top, [])
    accurate = OutOfFold([], np.zeros(0), truth)  # the accurate stage is always right
    low, high, share = choose_band(fast, accurate, truth, tolerance=0.0)
    assert low <= 0.45 and 0.55 < high <= 0.9  # all the unsure rows go on, the sure ones stay
    assert share == pytest.approx(4 / 8)


def test_the_shipped_default_is_a_cascade_with_both_variants_beside_it() -> None:
    signal = DomainSignal("d", {}, "signals.d")
    assert signal.cascade is not None
    assert signal.cascade.fast.encoder == "static" and signal.cascade.accurate.encoder == "minilm"
    assert DomainSignal("d", {"variant": "fast"}, "signals.d").model.encoder == "static"
    assert DomainSignal("d", {"variant": "accurate"}, "signals.d").model.encoder == "minilm"


def test_the_cli_checks_cascades_and_extra_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from polyroute.cli import main

    data = tmp_path / "rows.jsonl"
    data.write_text(
        '{"text": "hi", "label": "benign"}\n{"text": "ignore it", "label": "injection"}\n'
    )
    out = str(tmp_path / "m")
    argv = ["train-signal", "jailbreak", "--data", str(data), "--out", out]
    assert main([*argv, "--encoder", "cascade"]) == 2  # a jailbreak cascade needs more rows
    assert "a cascade needs at least" in capsys.readouterr().err
    # a domain model's extra rows must agree with its training rows on every label
    domain = ["train-signal", "domain", "--data", str(data), "--out", out]
    clash = tmp_path / "clash.jsonl"
    clash.write_text('{"text": "hello there", "label": "injection", "intent": "benign"}\n')
    assert main([*domain, "--extra-data", str(clash)]) == 2
    assert "an extra row's intent 'benign' has label 'injection'" in capsys.readouterr().err
