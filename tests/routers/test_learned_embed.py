"""Encoders: TF-IDF state round trip, MiniLM offline with the on-disk cache."""

from __future__ import annotations

from pathlib import Path

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


def test_onnx_request_path_matches_sentence_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyroute.embed import _encode_small, _minilm_model
    from polyroute.embed_onnx import onnx_session

    monkeypatch.setenv("POLYROUTE_CACHE_DIR", str(tmp_path))
    model = _minilm_model()
    assert onnx_session(model, tmp_path / "embeddings") is not None  # onnxruntime is installed
    texts = ["Prove that the square root of two is irrational.", "hi " * 300]
    fast = _encode_small(model, texts)  # ONNX Runtime
    reference = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(fast, reference, atol=2e-5)
