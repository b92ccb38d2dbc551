"""The static encoder distilled from MiniLM: table build, encoding, cache and artifacts.

Most tests distil from a fake teacher (a fixed random vector per token, mean-pooled),
so they run in a fraction of a second without ONNX Runtime; the ``slow`` test
distils from the real MiniLM graph (cached under the user's embedding cache).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from polyroute import embed_static
from polyroute.dataset import RoutingDataset
from polyroute.embed import ENCODERS, cache_dir, encoder_from_state, make_encoder
from polyroute.embed_static import (
    STATIC_DIM,
    StaticEncoder,
    StaticTable,
    build_table,
    cached_table,
    encode_static,
    load_table,
    save_table,
    shipped_table_path,
    table_path,
    tokenizer,
)
from polyroute.errors import ConfigError
from polyroute.routers.artifact import load_router, save_router
from polyroute.routers.learned import get_router

TEACHER_WIDTH = 260


class FakeSession:
    """Stands in for the MiniLM ONNX session: mean of fixed random token vectors, unit norm."""

    def __init__(self, width: int = TEACHER_WIDTH) -> None:
        rng = np.random.default_rng(7)
        self.emb = rng.standard_normal((tokenizer().get_vocab_size(), width)).astype(np.float32)

    def run(self, _outputs: Any, feed: dict[str, npt.NDArray[np.int64]]) -> list[Any]:
        pooled = self.emb[feed["input_ids"]].mean(axis=1)
        return [pooled / np.linalg.norm(pooled, axis=1, keepdims=True)]


@pytest.fixture(scope="module")
def table() -> StaticTable:
    return build_table(FakeSession(), dims=STATIC_DIM)


def test_build_is_deterministic(table: StaticTable) -> None:
    again = build_table(FakeSession(), dims=STATIC_DIM)
    np.testing.assert_array_equal(again.vectors, table.vectors)
    np.testing.assert_array_equal(again.weights, table.weights)
    vocab = tokenizer().get_vocab_size()
    assert table.vectors.shape == (vocab, STATIC_DIM) and table.vectors.dtype == np.float16
    unused = tokenizer().token_to_id("[unused0]")
    assert table.weights[unused] == 0 and not table.vectors[unused].any()
    the, rare = tokenizer().token_to_id("the"), tokenizer().token_to_id("gunners")
    assert 0 < table.weights[the] < table.weights[rare]  # frequent pieces weigh less


def test_dims_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dims must be in"):
        build_table(FakeSession(), dims=TEACHER_WIDTH + 1)


def test_unit_norm_and_batch_equals_single(table: StaticTable) -> None:
    texts = ["How do I sort a list in Python?", "Best pizza in Naples", "x = 1; y = 2"]
    z = encode_static(table, texts)
    assert z.shape == (3, STATIC_DIM) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(encode_static(table, [text])[0], z[i], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(encode_static(table, texts), z)


def test_shared_words_are_closer(table: StaticTable) -> None:
    z = encode_static(table, ["sort a python list", "python list sorting", "pizza in naples"])
    assert z[0] @ z[1] > z[0] @ z[2] + 0.2


def test_empty_special_only_and_huge_texts(table: StaticTable) -> None:
    z = encode_static(table, ["", "   ", "[PAD] [CLS]", "word " * 50_000])
    np.testing.assert_allclose(z[0], table.empty)
    np.testing.assert_allclose(z[1], table.empty)
    np.testing.assert_allclose(z[2], table.empty)  # special tokens carry no weight
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(z[3], table.empty)
    assert encode_static(table, []).shape == (0, STATIC_DIM)


def test_cached_table_round_trip(
    table: StaticTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A size (or tokenizer) with no shipped table is read from the cache."""
    monkeypatch.setattr(embed_static, "shipped_table_path", lambda dims: tmp_path / "none.npz")
    cached_table.cache_clear()
    path = table_path(tmp_path, STATIC_DIM)
    save_table(table, path)
    loaded = load_table(path)
    np.testing.assert_array_equal(loaded.vectors, table.vectors)
    np.testing.assert_array_equal(cached_table(tmp_path, STATIC_DIM).weights, table.weights)
    cached_table.cache_clear()


def test_corrupt_cached_table_names_the_file(table: StaticTable, tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match=r"t\.npz: unreadable static encoder table"):
        load_table(path)
    short = StaticTable(table.vectors[:100], table.weights[:100], table.empty)
    save_table(short, path)
    with pytest.raises(ConfigError, match=r"t\.npz: static encoder table has shapes"):
        load_table(path)
    nan = table.vectors.copy()
    nan[5, 0] = np.nan
    save_table(StaticTable(nan, table.weights, table.empty), path)
    with pytest.raises(ConfigError, match=r"t\.npz: .*finite"):
        load_table(path)


def test_registered_and_state_round_trip(table: StaticTable) -> None:
    assert "static" in ENCODERS and isinstance(make_encoder("static"), StaticEncoder)
    enc = StaticEncoder()
    enc.table_ = table
    again = encoder_from_state("static", enc.state())
    texts = ["one prompt", "another prompt"]
    np.testing.assert_array_equal(again.encode(texts), enc.encode(texts))


@pytest.fixture
def static_cache(table: StaticTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedding cache holding the fake table as the default-size static table (and no
    shipped one, so the cache's is read)."""
    monkeypatch.setenv("POLYROUTE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embed_static, "shipped_table_path", lambda dims: tmp_path / "none.npz")
    save_table(table, table_path(cache_dir(), STATIC_DIM))
    return tmp_path


def _rewrite(path: Path, key: str, value: npt.NDArray[Any]) -> None:
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays[key] = value
    with (path / "arrays.npz").open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def test_knn_artifact_round_trip(static_cache: Path, small: RoutingDataset, tmp_path: Path) -> None:
    router = get_router("knn")(encoder="static", text_features=False, k=5).fit(small)
    path = save_router(router, tmp_path / "art")
    loaded = load_router(path)
    prompts = small.prompts[:7]
    np.testing.assert_allclose(loaded.predict(prompts), router.predict(prompts), rtol=1e-6)
    key = "state/enc/static_vectors"
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        vectors = npz[key]
    _rewrite(path, key, vectors[:-1])  # a table for another tokenizer
    with pytest.raises(ConfigError, match=r"arrays\.npz.*static_vectors.*tokenizer has"):
        load_router(path)
    _rewrite(path, key, vectors.astype(np.int8))
    with pytest.raises(ConfigError, match=r"arrays\.npz.*static_vectors.*dtype"):
        load_router(path)


def test_static_tfidf_artifact_round_trip(
    static_cache: Path, small: RoutingDataset, tmp_path: Path
) -> None:
    """``static+tfidf``: both halves travel with the artifact, which serves the same
    predictions after the cache is gone; its meaning-only view is the static half."""
    from polyroute.routers.learned._features import features, semantic, view

    prompts = small.prompts[:7]
    both = make_encoder("static+tfidf").fit(small.prompts)
    x = features(both, prompts)
    params = semantic("static+tfidf")
    cut = view(x, "static+tfidf", params)
    assert cut is not None and params == {"encoder": "static", "text_features": False}
    alone = features(make_encoder("static"), prompts, with_text=False)
    np.testing.assert_allclose(cut, alone, rtol=1e-5, atol=1e-6)
    assert view(x, "static+tfidf", {"encoder": "minilm", "text_features": False}) is None
    router = get_router("logistic")(encoder="static+tfidf").fit(small)
    path = save_router(router, tmp_path / "art")
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        assert {"state/enc/static_vectors", "state/enc/tfidf_idf"} <= set(npz.files)
    table_path(cache_dir(), STATIC_DIM).unlink()  # the artifact must not need the cache
    loaded = load_router(path)
    np.testing.assert_allclose(loaded.predict(prompts), router.predict(prompts), rtol=1e-5)


def test_the_shipped_table_serves_with_an_empty_cache_and_no_onnx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No MiniLM graph to distil from, and an earlier version's table in the cache: the
    static encoder reads the table that ships with polyroute (the same on every
    machine), not the cached one, and writes nothing to the cache."""
    import polyroute.embed_onnx

    def no_runtime(*_: Any) -> None:
        raise AssertionError("the shipped table must not need the MiniLM graph")

    monkeypatch.setenv("POLYROUTE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(polyroute.embed_onnx, "minilm_runtime", no_runtime)
    cached_table.cache_clear()
    stale = StaticTable(np.zeros((tokenizer().get_vocab_size(), STATIC_DIM), np.float16),
                        np.ones(tokenizer().get_vocab_size(), np.float32),
                        np.ones(STATIC_DIM, np.float32))  # fmt: skip
    save_table(stale, table_path(cache_dir(), STATIC_DIM))  # an earlier version's distillation
    try:
        table = cached_table(cache_dir())
        z = make_encoder("static", use_cache=False).encode(["reset my password", ""])
    finally:
        cached_table.cache_clear()
    assert shipped_table_path().is_file() and table.dims == STATIC_DIM
    assert table.vectors.shape == (tokenizer().get_vocab_size(), STATIC_DIM)
    np.testing.assert_array_equal(load_table(shipped_table_path()).vectors, table.vectors)
    assert z.shape == (2, STATIC_DIM) and np.allclose(np.linalg.norm(z, axis=1), 1.0)
    # the stale cached table is not read, and nothing is written
    assert [f for f in tmp_path.rglob("*") if f.is_file()] == [table_path(cache_dir(), STATIC_DIM)]


@pytest.mark.slow
def test_the_shipped_table_is_what_minilm_distils_here() -> None:
    """The shipped table against a fresh distillation on this machine's ONNX Runtime
    (~10-20 s): the models shipped on ``static`` were trained on the shipped table, and
    a machine whose MiniLM outputs drifted far from it would show here."""
    from polyroute.embed_onnx import minilm_runtime

    runtime = minilm_runtime(cache_dir(), "subprocess")
    if runtime is None:
        pytest.skip("no MiniLM ONNX graph on this machine")
    fresh = build_table(runtime.session, STATIC_DIM)
    shipped = load_table(shipped_table_path())
    np.testing.assert_array_equal(fresh.weights, shipped.weights)
    diff = np.abs(fresh.vectors.astype(np.float32) - shipped.vectors.astype(np.float32))
    assert float(diff.max()) < 1e-2 and float((diff > 0).mean()) < 0.01


@pytest.mark.slow
def test_distilled_from_minilm_keeps_meaning() -> None:
    real = cached_table(cache_dir())  # the shipped table (or the user's cached one)
    z = encode_static(
        real,
        [
            "How do I sort a list in Python?",
            "What is the way to order an array in Python?",
            "Recommend a good pizza restaurant in Naples.",
        ],
    )
    assert z.shape == (3, 256)
    assert z[0] @ z[1] > z[0] @ z[2] + 0.1


def test_chunked_sums_match(table: StaticTable, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["a short one", "", "a somewhat longer prompt about sorting lists " * 3, "x"]
    whole = encode_static(table, texts)
    monkeypatch.setattr("polyroute.embed_static._CHUNK_TOKENS", 5)  # chunks split texts
    np.testing.assert_allclose(encode_static(table, texts), whole, rtol=1e-5, atol=1e-6)
