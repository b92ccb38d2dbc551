"""A static encoder distilled from all-MiniLM-L6-v2 (the Model2Vec idea): a token -> vector table.

Distilling (:func:`build_table`, once, ~13 s on two cores): every token of MiniLM's
WordPiece vocabulary but ``[unused*]`` and the special tokens goes through the
MiniLM ONNX graph of :mod:`polyroute.embed_onnx` as ``[CLS] token [SEP]``; the
mean-pooled unit output (the sentence encoder's pooling) is centred and reduced
by PCA to ``dims`` (256 by default).  Each token also gets a SIF weight
``a / (a + p(token))`` with ``p`` a Zipf law over the vocabulary order (BERT's
vocabulary is roughly frequency ordered), ``a = 1e-4``: frequent pieces count less.

Encoding (:class:`StaticEncoder`) is a tokenizer call, a table lookup and a
weighted mean, L2-normalised: numpy and ``tokenizers`` only, no onnxruntime or
torch, no truncation (long prompts are read to the end).  A text without a
weighted token encodes to the distilled vector of the empty prompt.

The 256-dim table ships with polyroute (``polyroute/data/static/``, distilled once
as above): the shipped models on ``static`` were trained on it, and it serves the same
vectors on every machine, with no ONNX export and no torch.  A table of another size,
or for another tokenizer, is distilled and cached as
``<embedding cache>/static/minilm-static-<dims>-<tok>.npz`` (float16 vectors, float32
weights; loaded with ``allow_pickle=False``), keyed by the size and a hash of the
bundled ``tokenizer.json`` (a table an earlier version distilled into the cache for the
default size is no longer read: the shipped one is).  A table that does not load or
does not fit the tokenizer is a ConfigError naming the file.
Artifacts carry the table itself (:meth:`StaticEncoder.state`): ONNX Runtime's
float results differ across CPUs and versions, so rebuilding could not reproduce
it bit for bit, and a served artifact then needs neither the ONNX graph nor
onnxruntime.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError

Array = npt.NDArray[np.float32]
STATIC_DIM = 256
SIF_A = 1e-4
_BATCH = 1024
#: tokens gathered at once when encoding (bounds the float32 scratch to 16 MiB at 256 dims)
_CHUNK_TOKENS = 16384
_SKIP_SPECIAL = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")
_FORMAT = 1


@dataclass(frozen=True)
class StaticTable:
    """Token vectors ``[vocab x dims]`` (float16), weights ``[vocab]``, the empty-prompt vector."""

    vectors: npt.NDArray[np.float16]
    weights: npt.NDArray[np.float32]
    empty: Array

    @property
    def dims(self) -> int:
        return int(self.vectors.shape[1])

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {
            "static_vectors": self.vectors,
            "static_weights": self.weights,
            "static_empty": self.empty,
        }


@lru_cache(maxsize=1)
def tokenizer() -> Any:
    """MiniLM's WordPiece tokenizer, without the bundled truncation and padding."""
    from tokenizers import Tokenizer

    from polyroute.embed_onnx import model_dir

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


@lru_cache(maxsize=1)
def tokenizer_tag() -> str:
    """A short hash of the bundled ``tokenizer.json``: the table's rows are its token ids."""
    from polyroute.embed_onnx import model_dir

    return hashlib.sha256((model_dir() / "tokenizer.json").read_bytes()).hexdigest()[:16]


def table_path(cache: Path, dims: int) -> Path:
    return cache / "static" / f"minilm-static-{dims}-{tokenizer_tag()}-v{_FORMAT}.npz"


def _kept_ids(tok: Any) -> npt.NDArray[np.int64]:
    vocab: dict[str, int] = tok.get_vocab()
    keep = [i for s, i in vocab.items() if not s.startswith("[unused") and s not in _SKIP_SPECIAL]
    return np.array(sorted(keep), dtype=np.int64)


def _sif_weights(n: int) -> npt.NDArray[np.float32]:
    """``a / (a + p)`` for Zipf probabilities ``p ~ 1/rank`` over ``n`` ranked tokens."""
    inv = 1.0 / np.arange(1, n + 1, dtype=np.float64)
    return np.asarray(SIF_A / (SIF_A + inv / inv.sum()), dtype=np.float32)


def _teacher(session: Any, rows: npt.NDArray[np.int64]) -> Array:
    """Pooled MiniLM outputs of ``[n x tokens]`` id rows (no padding: all rows are full)."""
    out = [
        session.run(
            None,
            {
                "input_ids": chunk,
                "attention_mask": np.ones_like(chunk),
                "token_type_ids": np.zeros_like(chunk),
            },
        )[0]
        for chunk in np.array_split(rows, max(1, -(-len(rows) // _BATCH)))
    ]
    return np.asarray(np.concatenate(out), dtype=np.float32)


def _pca(x: Array, dims: int) -> tuple[Array, Array]:
    """Mean and the top ``dims`` principal axes ``[dims x width]`` of ``x``, signs fixed."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(np.asarray(x - mean, dtype=np.float64), full_matrices=False)
    axes = vt[:dims]
    pivot = np.abs(axes).argmax(axis=1)
    axes = axes * np.sign(axes[np.arange(len(axes)), pivot])[:, None]
    return np.asarray(mean, dtype=np.float32), np.asarray(axes, dtype=np.float32)


@dataclass(frozen=True)
class TeacherOutputs:
    """MiniLM's pooled outputs for the kept token ids (``[CLS] tok [SEP]``) and for ``""``."""

    ids: npt.NDArray[np.int64]
    pooled: Array
    empty: Array


def run_teacher(session: Any) -> TeacherOutputs:
    """Run every kept vocabulary token through a MiniLM ONNX ``session`` (the slow part)."""
    tok = tokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    ids = _kept_ids(tok)
    rows = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
    empty = _teacher(session, np.array([[cls, sep]], dtype=np.int64))[0]
    return TeacherOutputs(ids, _teacher(session, rows), empty)


def table_from_teacher(
    teacher: TeacherOutputs, dims: int = STATIC_DIM, weighted: bool = True
) -> StaticTable:
    """PCA to ``dims`` and (if ``weighted``) SIF weights: the table."""
    if not 1 <= dims <= teacher.pooled.shape[1]:
        width = teacher.pooled.shape[1]
        raise ConfigError(f"static encoder dims must be in [1, {width}], got {dims}")
    vocab = tokenizer().get_vocab_size()
    mean, axes = _pca(teacher.pooled, dims)
    vectors = np.zeros((vocab, dims), dtype=np.float16)
    vectors[teacher.ids] = ((teacher.pooled - mean) @ axes.T).astype(np.float16)
    weights = np.zeros(vocab, dtype=np.float32)
    weights[teacher.ids] = _sif_weights(len(teacher.ids)) if weighted else 1.0
    empty = np.asarray((teacher.empty - mean) @ axes.T, dtype=np.float32)
    norm = max(float(np.linalg.norm(empty)), 1e-12)
    return StaticTable(vectors, weights, np.asarray(empty / norm, dtype=np.float32))


def build_table(session: Any, dims: int = STATIC_DIM, weighted: bool = True) -> StaticTable:
    """Distil the table from a MiniLM ONNX ``session`` (see the module docstring)."""
    return table_from_teacher(run_teacher(session), dims, weighted)


def check_table(arrays: dict[str, npt.NDArray[Any]], where: str) -> StaticTable:
    """A :class:`StaticTable` from its arrays, checked against the tokenizer.

    A missing, misshapen or non-finite array is a ConfigError naming ``where``."""
    try:
        vectors, weights, empty = (
            arrays["static_vectors"],
            arrays["static_weights"],
            arrays["static_empty"],
        )
    except KeyError as exc:
        raise ConfigError(f"{where}: static encoder table lacks array {exc.args[0]!r}") from exc
    vocab = tokenizer().get_vocab_size()
    dims = vectors.shape[1] if vectors.ndim == 2 else -1
    if vectors.shape != (vocab, dims) or weights.shape != (vocab,) or empty.shape != (dims,):
        raise ConfigError(
            f"{where}: static encoder table has shapes {vectors.shape}, {weights.shape}, "
            f"{empty.shape}; expected ({vocab}, dims), ({vocab},), (dims,) for the bundled "
            f"MiniLM tokenizer ({vocab} tokens)"
        )
    if any(a.dtype.kind != "f" or not np.isfinite(a).all() for a in (vectors, weights, empty)):
        raise ConfigError(f"{where}: static encoder table must hold finite floats")
    return StaticTable(
        np.asarray(vectors, dtype=np.float16),
        np.asarray(weights, dtype=np.float32),
        np.asarray(empty, dtype=np.float32),
    )


def load_table(path: Path) -> StaticTable:
    """The cached table at ``path``; a file that does not load or fit is a ConfigError naming it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(
            f"{path}: unreadable static encoder table ({exc}); delete it to rebuild"
        ) from exc
    return check_table(arrays, str(path))


def save_table(table: StaticTable, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, **table.arrays())  # type: ignore[arg-type]
    os.replace(tmp, path)


def shipped_table_path(dims: int = STATIC_DIM) -> Path:
    """Where polyroute's own table of size ``dims`` for the bundled tokenizer would be
    (only the default size ships)."""
    return Path(__file__).parent / "data" / "static" / table_path(Path("."), dims).name


@lru_cache(maxsize=4)
def cached_table(cache: Path, dims: int = STATIC_DIM) -> StaticTable:
    """The table of size ``dims``: the shipped one when there is one (the default size,
    for the bundled tokenizer), else from ``cache``, else distilled (and saved there)."""
    shipped = shipped_table_path(dims)
    if shipped.is_file():
        return load_table(shipped)
    path = table_path(cache, dims)
    if path.is_file():
        return load_table(path)
    from polyroute.embed_onnx import minilm_runtime

    runtime = minilm_runtime(cache, "subprocess")
    if runtime is None:
        raise ConfigError(
            "encoder 'static' distils its table from MiniLM on ONNX Runtime, which is "
            "unavailable: pip install 'polyroute[learn]'"
        )
    table = build_table(runtime.session, dims)
    with contextlib.suppress(OSError):  # a read-only cache must not break encoding
        save_table(table, path)
    return table


def _weighted_sums(
    table: StaticTable, ids: npt.NDArray[np.int64], seg: npt.NDArray[np.intp], n: int
) -> Array:
    """Per-text sums of weighted token vectors (``seg`` = text of each token), in bounded chunks."""
    acc = np.zeros((n, table.dims), dtype=np.float32)
    for a in range(0, len(ids), _CHUNK_TOKENS):
        part, owner = ids[a : a + _CHUNK_TOKENS], seg[a : a + _CHUNK_TOKENS]
        rows = table.vectors[part].astype(np.float32) * table.weights[part, None]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        acc[owner[starts]] += np.add.reduceat(rows, starts, axis=0)
    return acc


def encode_static(table: StaticTable, texts: Sequence[str]) -> Array:
    """``[n x dims]`` unit vectors: SIF-weighted mean of the texts' token vectors."""
    tok = tokenizer()
    n = len(texts)
    out = np.tile(table.empty, (n, 1))
    if n == 0:
        return out
    if n == 1:  # the request path: one prompt, fewest numpy calls
        one = np.asarray(tok.encode(texts[0], add_special_tokens=False).ids, dtype=np.int64)
        total = table.weights[one] @ table.vectors[one].astype(np.float32) if one.size else None
        norm = 0.0 if total is None else float(np.linalg.norm(total))
        if total is not None and norm > 1e-9:
            out[0] = total / norm
        return out
    id_lists = [e.ids for e in tok.encode_batch_fast(list(texts), add_special_tokens=False)]
    lengths = np.fromiter((len(x) for x in id_lists), dtype=np.intp, count=n)
    ids = np.fromiter((i for x in id_lists for i in x), dtype=np.int64, count=int(lengths.sum()))
    if ids.size:
        sums = _weighted_sums(table, ids, np.repeat(np.arange(n), lengths), n)
        norms = np.linalg.norm(sums, axis=1)
        ok = np.flatnonzero(norms > 1e-9)
        out[ok] = sums[ok] / norms[ok, None]
    return out


class StaticEncoder:
    """Static token vectors distilled from MiniLM (see the module docstring); ``fit`` is a no-op.

    The table is taken from the embedding cache (built there on first use) unless an
    artifact supplied it (:meth:`load_state`)."""

    id = "static"

    def __init__(self, dims: int = STATIC_DIM) -> None:
        self.dims = dims
        self.table_: StaticTable | None = None

    def _table(self) -> StaticTable:
        if self.table_ is None:
            from polyroute.embed import cache_dir

            self.table_ = cached_table(cache_dir(), self.dims)
        return self.table_

    def fit(self, texts: Sequence[str]) -> StaticEncoder:
        self._table()
        return self

    def encode(self, texts: Sequence[str]) -> Array:
        return encode_static(self._table(), texts)

    def state(self) -> dict[str, npt.NDArray[Any]]:
        return self._table().arrays()

    def load_state(self, arrays: dict[str, npt.NDArray[Any]], where: str) -> StaticEncoder:
        self.table_ = check_table(arrays, where)
        self.dims = self.table_.dims
        return self
