"""Encoders: TF-IDF state round trip, MiniLM offline with the disk cache and without torch."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyroute.dataset import RoutingDataset
from polyroute.embed import (
    TEXT_DIM,
    MiniLMEncoder,
    TfidfEncoder,
    encoder_from_state,
    make_encoder,
    text_features,
)
from polyroute.errors import ConfigError, NotFittedError


def test_tfidf_state_round_trip(small: RoutingDataset) -> None:
    enc = TfidfEncoder(dim=32).fit(small.prompts)
    again = encoder_from_state("tfidf", enc.state())
    z = enc.encode(small.prompts[:10])
    assert z.shape == (10, 32) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(again.encode(small.prompts[:10]), z)
    assert not enc.encode(["zzzz qqqq"]).any()  # unknown words: the zero vector


def test_tfidf_before_fit_and_unknown_encoder() -> None:
    with pytest.raises(NotFittedError):
        TfidfEncoder().encode(["x"])
    with pytest.raises(ConfigError, match="unknown encoder 'bert'"):
        make_encoder("bert")


def test_text_features_shape() -> None:
    f = text_features(["Is this a question?", "def f(x): return x"])
    assert f.shape == (2, TEXT_DIM)
    assert f[0, 2] > 0 and f[1, 2] == 0  # ends with '?'


def test_minilm_offline_with_disk_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYROUTE_CACHE_DIR", str(tmp_path))
    texts = ["How do I sort a list in Python?", "Sorting a Python list", "Best pizza in Naples"]
    z = MiniLMEncoder().encode(texts)
    assert z.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-4)
    assert z[0] @ z[1] > z[0] @ z[2] + 0.2  # paraphrases are closer than unrelated text
    cached = list((tmp_path / "embeddings").rglob("*.npy"))
    assert len(cached) == 3
    np.testing.assert_allclose(MiniLMEncoder().encode(texts), z, atol=1e-6)  # from the cache
    np.testing.assert_allclose(MiniLMEncoder(use_cache=False).encode(texts[:1]), z[:1], atol=1e-5)


TEXTS = [
    "Prove that the square root of two is irrational.",
    "hi",
    "Q: A train leaves at 3 pm at 60 km/h; when does it arrive 150 km away? " * 3,
    "hi " * 300,  # over MiniLM's 256 tokens: truncated like sentence-transformers
]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``POLYROUTE_CACHE_DIR`` whose embedding cache holds the exported graph, exported
    the gateway's way (in a subprocess)."""
    from polyroute.embed_onnx import minilm_runtime, onnx_path

    root = tmp_path_factory.mktemp("cache")
    assert minilm_runtime(root / "embeddings", "subprocess") is not None  # onnxruntime installed
    assert onnx_path(root / "embeddings").is_file()
    return root


def test_onnx_runtime_matches_sentence_transformers(cache_root: Path) -> None:
    from polyroute.embed import _minilm_model
    from polyroute.embed_onnx import minilm_runtime

    runtime = minilm_runtime(cache_root / "embeddings", "subprocess")
    assert runtime is not None
    many = [f"{t} ({i})" for i in range(20) for t in TEXTS[:3]]  # > one chunk, mixed lengths
    texts = TEXTS + many
    reference = _minilm_model().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(runtime.encode(texts), reference, atol=2e-5)
    for text, ref in zip(TEXTS, reference, strict=False):  # alone: no padding at all
        np.testing.assert_allclose(runtime._encode([text])[0], ref, atol=2e-5)
    assert runtime.encode([]).shape == (0, 384)


def test_recently_encoded_texts_are_not_encoded_again(
    cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt a signal encoded is free for the learned selector and the cache."""
    from polyroute.embed_onnx import minilm_runtime

    runtime = minilm_runtime(cache_root / "embeddings", "subprocess")
    assert runtime is not None
    first = runtime.encode(["a prompt seen once", "another"])
    encoded: list[list[str]] = []
    real = runtime._encode

    def spy(texts: list[str]) -> np.ndarray:
        encoded.append(list(texts))
        return real(texts)

    monkeypatch.setattr(runtime, "_encode", spy)
    again = runtime.encode(["new text", "another", "a prompt seen once"])
    assert encoded == [["new text"]]
    np.testing.assert_array_equal(again[1:], first[::-1])


def _race(runtime: Any, monkeypatch: pytest.MonkeyPatch, text: str, fail_first: bool) -> Any:
    """Two threads encode ``text`` while the first one's encoding is held: what each got,
    and every batch ``_encode`` was asked for."""
    encoded: list[list[str]] = []
    started, release = threading.Event(), threading.Event()
    real = runtime._encode

    def slow(texts: list[str]) -> np.ndarray:
        encoded.append(list(texts))
        started.set()
        release.wait(5)
        if fail_first and len(encoded) == 1:
            raise RuntimeError("boom")
        return real(texts)

    monkeypatch.setattr(runtime, "_encode", slow)
    results: dict[str, np.ndarray] = {}

    def first() -> None:
        try:
            results["first"] = runtime.encode([text])
        except RuntimeError:
            results["first failed"] = np.zeros(1)

    one = threading.Thread(target=first)
    one.start()
    assert started.wait(5)
    two = threading.Thread(target=lambda: results.update(second=runtime.encode([text, text])))
    two.start()
    two.join(0.2)
    waited = two.is_alive()  # for the first thread's encoding
    release.set()
    one.join(5)
    two.join(5)
    monkeypatch.setattr(runtime, "_encode", real)
    return waited, results, encoded


def test_a_text_another_thread_is_encoding_is_waited_for_not_encoded_twice(
    cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache's store and a learned selector often embed one prompt at once: the
    second waits for the first; a failed first encoding lets the waiter encode alone."""
    from polyroute.embed_onnx import minilm_runtime

    runtime = minilm_runtime(cache_root / "embeddings", "subprocess")
    assert runtime is not None
    waited, results, encoded = _race(runtime, monkeypatch, "two threads want it", False)
    assert waited and encoded == [["two threads want it"]]
    np.testing.assert_array_equal(results["second"], np.vstack([results["first"]] * 2))
    waited, results, encoded = _race(runtime, monkeypatch, "the first one fails", True)
    assert waited and "first failed" in results
    assert encoded == [["the first one fails"], ["the first one fails"]]
    assert np.abs(results["second"]).sum() > 0
    np.testing.assert_array_equal(results["second"][0], results["second"][1])


def run_alone(code: str, cache_root: Path, timeout_s: float = 120) -> None:
    """Run ``code`` in a fresh interpreter (nothing imported yet) over ``cache_root``."""
    env = {**os.environ, "POLYROUTE_CACHE_DIR": str(cache_root)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_torch_free_encoder_matches_and_never_imports_torch(
    cache_root: Path, tmp_path: Path
) -> None:
    """The gateway's encoder, in a fresh process: same vectors, and no torch in sys.modules."""
    from polyroute.embed import _minilm_model

    out = tmp_path / "vectors.npy"
    code = (
        "import sys, numpy as np\n"
        "from polyroute.embed import MiniLMEncoder\n"
        "enc = MiniLMEncoder(use_cache=False)\n"
        "enc.torch_free = True\n"
        f"np.save({str(out)!r}, enc.encode({TEXTS!r}))\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'sklearn')"
        " if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    run_alone(code, cache_root)
    reference = _minilm_model().encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(np.load(out), reference, atol=2e-5)


def test_a_served_minilm_artifact_never_imports_torch(
    cache_root: Path, tmp_path: Path, small: RoutingDataset
) -> None:
    """The gateway's adapter (``LearnedSelector``) over a MiniLM artifact predicts batches
    without torch."""
    from polyroute.routers.artifact import save_router
    from polyroute.routers.learned.knn import KNNRouter

    artifact = save_router(KNNRouter(encoder="minilm+tfidf", k=5).fit(small), tmp_path / "r")
    code = (
        "import sys\n"
        "from polyroute.selectors.learned import LearnedSelector\n"
        f"selector = LearnedSelector({str(artifact)!r})\n"
        "rows = selector.router.predict([f'How do I sort list {i}?' for i in range(8)])\n"
        "assert rows.shape[0] == 8\n"  # a batch, as the gateway's batcher makes
        "assert 'torch' not in sys.modules\n"
    )
    run_alone(code, cache_root)


def test_minilm_signals_and_the_cache_never_import_torch(cache_root: Path, tmp_path: Path) -> None:
    """A gateway with MiniLM similarity (many examples and a background of 500 prompts to
    calibrate) and a MiniLM semantic cache warms up and routes without torch."""
    config = tmp_path / "c.yaml"
    examples = [f"how do I get a refund for order {i}" for i in range(8)]
    config.write_text(
        "models: {m: {base_url: 'http://127.0.0.1:9'}}\n"
        f"signals: {{refund: {{type: similarity, encoder: minilm, examples: {examples!r}}}}}\n"
        "plugins: [{type: semantic_cache, encoder: minilm}]\n"
        "decisions: [{name: r, when: refund, models: [m]}, {name: d, models: [m]}]\n"
    )
    code = (
        "import sys\n"
        "from polyroute import Engine, Request\n"
        f"engine = Engine.from_file({str(config)!r})\n"
        "engine.warmup()\n"
        "assert engine.route(Request.chat('I want a refund for my order')).decision == 'r'\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers')"
        " if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    run_alone(code, cache_root, timeout_s=300)
