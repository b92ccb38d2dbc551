"""The trained family similarity: the rule, training, files, the indexes and the plugin."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from polyroute.cache import MemoryIndex, Similarity
from polyroute.cache.families import (
    Families,
    default_families_dir,
    load_families,
    save_families,
    train_families,
)
from polyroute.cache.similarity import with_families
from polyroute.errors import ConfigError

DIM = 12
BASE = Similarity("toy", DIM, threshold=0.9, accept=0.9)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _family_data(seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Three families: each a direction plus a strong member-specific part, so two members
    of one family sit at a cosine of ~0.77 on average (a plain cosine rule at 0.9 joins
    about 5 % of them) while the families stay linearly separable."""
    rng = np.random.default_rng(seed)
    centres = np.eye(DIM, dtype=np.float32)[:3] * 3.0
    rows, groups = [], []
    for g, c in enumerate(centres):
        for _ in range(60):
            rows.append(c + rng.normal(0, 0.5, DIM).astype(np.float32))
            groups.append(f"family-{g}")
    return _unit(np.stack(rows)), groups, centres


def _model() -> Families:
    x, groups, _ = _family_data()
    return train_families(x, groups, encoder="toy", steps=300)


def test_the_score_reaches_the_threshold_exactly_when_one_of_the_two_rules_holds() -> None:
    fam = _model()
    sim = with_families(BASE, fam)
    rng = np.random.default_rng(1)
    stored = np.stack([sim.unit(v) for v in rng.normal(size=(200, DIM))])
    query = sim.unit(rng.normal(size=DIM))
    scores = sim.scores(stored, query)
    k = fam.k
    raw = stored[:, k:] @ query[k:] / (1 - fam.weight)
    z, zq = stored[:, :k] / np.sqrt(fam.weight), query[:k] / np.sqrt(fam.weight)
    mix = fam.weight * (z @ zq) + (1 - fam.weight) * raw
    expected = (raw >= fam.raw_threshold) | (mix >= fam.threshold)
    assert ((scores >= sim.threshold) == expected).all()
    assert expected.any() and not expected.all()  # the check separates something
    assert sim.width == DIM + k and stored.shape == (200, DIM + k)


async def test_rewordings_of_one_family_hit_and_other_families_do_not() -> None:
    x, groups, centres = _family_data()
    fam = train_families(x, groups, encoder="toy")
    trained = MemoryIndex(with_families(BASE, fam))
    plain = MemoryIndex(BASE)
    rng = np.random.default_rng(7)
    first = _unit(centres[0] + rng.normal(0, 0.5, DIM).astype(np.float32))
    again = _unit(centres[0] + rng.normal(0, 0.5, DIM).astype(np.float32))
    other = _unit(centres[1] + rng.normal(0, 0.5, DIM).astype(np.float32))
    assert float(first @ again) < 0.9  # the plain rule cannot join them
    for index in (trained, plain):
        await index.add("s", first, "reset my password", b"A")
    hit = await trained.lookup("s", again, "i forgot my password")
    assert hit is not None and hit.answer == b"A"
    assert await plain.lookup("s", again, "i forgot my password") is None
    assert await trained.lookup("s", other, "book a table") is None
    # the guards still hold: other numbers never hit, whatever the family
    assert await trained.lookup("s", again, "reset my password in 5 minutes") is None


def test_training_is_deterministic_and_learns_the_families() -> None:
    a, b = _model(), _model()
    assert np.array_equal(a.w, b.w) and np.array_equal(a.b, b.b)
    x, groups, _ = _family_data(seed=3)
    predicted = (x @ a.w + a.b).argmax(1)
    truth = np.unique(groups, return_inverse=True)[1]
    assert (predicted == truth).mean() > 0.95
    with pytest.raises(ConfigError, match="two groups"):
        train_families(x[:5], ["one"] * 5, encoder="toy")


def test_files_round_trip_and_bad_files_name_what_is_wrong(tmp_path: Path) -> None:
    fam = _model()
    out = save_families(fam, tmp_path / "m", {"trained_on": "x.jsonl"})
    back = load_families(out)
    assert np.array_equal(back.w, fam.w) and back.digest == fam.digest
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trained_on"] == "x.jsonl" and manifest["groups"] == 3
    manifest["weight"] = 1.5
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"manifest.json.*weight"):
        load_families(out)
    manifest["weight"], manifest["format"] = 0.9, "something-else"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="not a polyroute cache families"):
        load_families(out)
    with pytest.raises(ConfigError, match="not a cache families directory"):
        load_families(tmp_path / "missing")
    with pytest.raises(ConfigError, match="cannot serve"):
        with_families(Similarity("minilm", DIM, threshold=0.9, accept=0.9), fam)
    with pytest.raises(ConfigError, match="non-finite"):
        replace(fam, w=np.full_like(fam.w, np.nan))


def test_another_model_keeps_other_redis_keys() -> None:
    fam = _model()
    other = replace(fam, threshold=0.97)
    assert with_families(BASE, fam).tag != with_families(BASE, other).tag
    assert BASE.tag == ""


def test_the_shipped_model_joins_rewordings_the_plain_cosine_misses() -> None:
    """Real MiniLM and the shipped CLINC150 family model (the default similarity)."""
    from polyroute.cache import default_similarity
    from polyroute.embed import make_encoder

    fam = load_families(default_families_dir())
    sim = with_families(default_similarity("minilm"), fam)
    assert (fam.k, fam.raw_threshold, fam.weight, fam.threshold) == (150, 0.88, 0.9, 0.96)
    texts = ["create a new timer", "help me set a timer please", "set an alarm for me"]
    x = make_encoder("minilm").encode(texts)
    timer, reworded, alarm = (sim.unit(v) for v in x)
    raw = float(_unit(x[0]) @ _unit(x[1]))
    assert raw < 0.86  # the plain calibrated cosine misses this rewording
    scores = sim.scores(np.stack([timer]), reworded)
    assert float(scores[0]) >= sim.threshold
    assert float(sim.scores(np.stack([timer]), alarm)[0]) < sim.threshold


def test_train_cache_cli_writes_a_model_the_cache_loads(tmp_path: Path) -> None:
    from polyroute.cli import main

    data = tmp_path / "rows.jsonl"
    rows = [
        {"text": t, "group": g}
        for g, ts in {
            "balance": ["what is my balance", "how much money do i have", "show my balance"],
            "weather": ["will it rain today", "what's the weather", "is it sunny outside"],
        }.items()
        for t in ts
    ] + [{"text": "something else entirely", "group": "oos"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "model"
    assert main(["train-cache", "--data", str(data), "--out", str(out), "--skip-group", "oos"]) == 0
    fam = load_families(out)
    assert fam.k == 2 and fam.info["path"] == str(out)
    assert json.loads((out / "manifest.json").read_text())["rows"] == 6
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "only one", "group": "a"}\n{"text": 3, "group": "a"}\n')
    assert main(["train-cache", "--data", str(bad), "--out", str(tmp_path / "x")]) == 2


def _texts(groups: list[str], seed: int) -> list[str]:
    """Distinct digit-free texts of two content words (no guard refuses a pair)."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    return [f"{g.replace('-', '')} {''.join(rng.choice(letters, 8))}" for g in groups]


def test_calibration_chooses_the_rule_on_held_out_halves_within_the_cap() -> None:
    from polyroute.cache.families_calibrate import CAP, calibrate_families

    x, groups, centres = _family_data()
    texts = _texts(groups, 0)
    found = calibrate_families(BASE, x, texts, groups)
    assert found.rule is not None
    summary = found.summary()
    assert summary["cross_fitted_hits"] > 0.5  # type: ignore[operator]
    assert summary["cross_fitted_wrong"] <= CAP  # type: ignore[operator]
    assert summary["requests"] == len(x) and summary["background_requests"] == 0
    # unrelated prompts that sit in the families' directions: every hit on them is wrong,
    # so the rule must keep them out (stricter, or no rule at all)
    rng = np.random.default_rng(5)
    near = _unit(centres[[0, 1, 2] * 20] + rng.normal(0, 0.35, (60, DIM)).astype(np.float32))
    hard = calibrate_families(BASE, x, texts, groups, background=(near, _texts(["bg"] * 60, 1)))
    for rule in [r for r in [hard.rule] if r is not None]:
        tally = hard.background[rule]
        assert tally.wrong <= CAP * tally.requests
        assert rule >= found.rule
    assert found.background[found.rule].requests == 0
    assert hard.rule != found.rule
    with pytest.raises(ConfigError, match="2 groups of >= 2 rows"):
        calibrate_families(BASE, x[:3], texts[:3], ["a", "a", "b"])


def test_train_cache_calibrate_writes_what_it_measured(tmp_path: Path) -> None:
    from polyroute.cli import main

    data = tmp_path / "rows.jsonl"
    families = {
        "balance": ["what is my balance", "how much money do i have", "show my balance",
                    "tell me my account balance"],
        "weather": ["will it rain today", "what's the weather like", "is it sunny outside",
                    "do i need an umbrella"],
    }  # fmt: skip
    data.write_text("".join(json.dumps({"text": t, "group": g}) + "\n"
                            for g, ts in families.items() for t in ts))  # fmt: skip
    background = tmp_path / "bg.jsonl"
    background.write_text('{"prompt": "write a haiku about autumn"}\n{"text": "sort a list"}\n')
    out = tmp_path / "model"
    args = ["train-cache", "--data", str(data), "--out", str(out), "--calibrate"]
    assert main([*args, "--background", str(background)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    calibration = manifest["calibration"]
    assert calibration["background"] == "bg.jsonl" and calibration["background_requests"] == 4
    assert (manifest["raw_threshold"], manifest["threshold"]) == (
        calibration["raw_threshold"],
        calibration["threshold"],
    )
    no_calibrate = ["train-cache", "--data", str(data), "--out", str(out)]
    assert main([*no_calibrate, "--background", str(background)]) == 2
    assert main([*no_calibrate, "--weight", "1.5"]) == 2
    assert main([*no_calibrate, "--threshold", "2"]) == 2
