"""Learning state of the online routers: plain numpy arrays behind small typed classes.

Every state turns into a JSON-serialisable dict (:meth:`to_dict`) and back
(:meth:`from_dict`) exactly: arrays travel as ``{"shape": [...], "data": [...]}``
with float64 values written by ``repr`` (which round-trips), the random generator
as numpy's PCG64 state.  No pickle, so the gateway can keep a state in memory,
SQLite or Redis.  A malformed dict is a :class:`~polyroute.errors.ConfigError`
naming the field and what was expected.

- :class:`LinearState` (LinUCB, Thompson sampling): per model the inverse design
  matrix ``a_inv = (Lambda + sum x x^T)^-1`` ``[models x d x d]``, the
  response sums ``b = Lambda theta0 + sum y x`` ``[models x targets x d]`` (one row
  per :data:`~polyroute.online.types.TARGETS`), the pulls per model, the
  exploration counters and the spend anchor's discounted sums ``anchor`` =
  ``[the warm start's estimated spend, the spend, the answers]`` (``polyroute.online.linear``).
- :class:`EMAState` (the EMA router): per (domain, model) the moving averages of the
  targets and the observation counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError
from polyroute.online.types import TARGETS

Array = npt.NDArray[np.float64]
JSON = dict[str, Any]
FORMAT = "polyroute.online"


def new_rng_state(seed: int | None) -> JSON:
    return dict(np.random.default_rng(seed).bit_generator.state)


def rng_from(state: JSON) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def _array_json(a: Array) -> JSON:
    return {"shape": list(a.shape), "data": a.ravel().tolist()}


def _array(obj: JSON, key: str, shape: tuple[int, ...], where: str) -> Array:
    raw = obj.get(key)
    want = f"{{'shape': {list(shape)}, 'data': [numbers]}}"
    if not isinstance(raw, dict) or list(raw.get("shape", [])) != list(shape):
        raise ConfigError(f"{where}: field {key!r} must be {want}")
    try:
        arr = np.asarray(raw.get("data"), dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: field {key!r}.data must be a list of numbers") from None
    if arr.ndim != 1 or arr.size != int(np.prod(shape)) or not np.isfinite(arr).all():
        raise ConfigError(f"{where}: field {key!r}.data must hold {np.prod(shape)} finite numbers")
    return arr.reshape(shape)


def _header(obj: Any, kind: str, where: str) -> tuple[tuple[str, ...], int, int, JSON]:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("kind") != kind:
        raise ConfigError(
            f'{where}: expected an object with "format": "{FORMAT}", "kind": "{kind}"'
        )
    models = obj.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{where}: field 'models' must be a non-empty list of names")
    counters = [obj.get("chosen"), obj.get("explored")]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counters):
        raise ConfigError(f"{where}: fields 'chosen' and 'explored' must be integers >= 0")
    rng = obj.get("rng")
    if not isinstance(rng, dict) or rng.get("bit_generator") != "PCG64":
        raise ConfigError(f"{where}: field 'rng' must be a numpy PCG64 state object")
    return tuple(models), int(obj["chosen"]), int(obj["explored"]), rng


@dataclass
class LinearState:
    """A linear bandit's statistics (see the module docstring); ``dim`` = feature width."""

    models: tuple[str, ...]
    a_inv: Array
    b: Array
    pulls: Array
    chosen: int = 0
    explored: int = 0
    rng: JSON = field(default_factory=lambda: new_rng_state(0))
    anchor: Array = field(default_factory=lambda: np.zeros(3))

    @property
    def dim(self) -> int:
        return int(self.a_inv.shape[1])

    @classmethod
    def prior(
        cls, models: tuple[str, ...], precision: Array, mean: Array, seed: int | None = 0
    ) -> LinearState:
        """``Lambda = diag(precision)`` ``[d]``, prior coefficients ``mean`` ``[targets x d]``."""
        m, d = len(models), precision.shape[0]
        a_inv = np.broadcast_to(np.diag(1.0 / precision), (m, d, d)).copy()
        b = np.broadcast_to(mean * precision[None, :], (m, len(TARGETS), d)).copy()
        return cls(models, a_inv, b, np.zeros(m), 0, 0, new_rng_state(seed))

    def to_dict(self) -> JSON:
        return {
            "format": FORMAT,
            "kind": "linear",
            "models": list(self.models),
            "targets": list(TARGETS),
            "a_inv": _array_json(self.a_inv),
            "b": _array_json(self.b),
            "pulls": _array_json(self.pulls),
            "chosen": self.chosen,
            "explored": self.explored,
            "rng": self.rng,
            "anchor": _array_json(self.anchor),
        }

    @classmethod
    def from_dict(cls, obj: Any, where: str = "linear bandit state") -> LinearState:
        models, chosen, explored, rng = _header(obj, "linear", where)
        if obj.get("targets") != list(TARGETS):
            raise ConfigError(f"{where}: field 'targets' must be {list(TARGETS)}")
        shape = obj.get("a_inv", {}).get("shape") if isinstance(obj.get("a_inv"), dict) else None
        d = shape[1] if isinstance(shape, list) and len(shape) == 3 else 0
        if not isinstance(d, int) or d < 1:
            raise ConfigError(f"{where}: field 'a_inv' must have shape [models, d, d] with d >= 1")
        m = len(models)
        a_inv = _array(obj, "a_inv", (m, d, d), where)
        b = _array(obj, "b", (m, len(TARGETS), d), where)
        pulls = _array(obj, "pulls", (m,), where)
        # states written before the spend anchor existed have none: it starts empty
        anchor = _array(obj, "anchor", (3,), where) if "anchor" in obj else np.zeros(3)
        return cls(models, a_inv, b, pulls, chosen, explored, rng, anchor)


@dataclass
class EMAState:
    """The EMA router's averages ``values`` ``[domains x models x targets]`` and ``counts``."""

    models: tuple[str, ...]
    domains: list[str]
    values: Array
    counts: Array
    chosen: int = 0
    explored: int = 0
    rng: JSON = field(default_factory=lambda: new_rng_state(0))

    @classmethod
    def empty(cls, models: tuple[str, ...], seed: int | None = 0) -> EMAState:
        """One row, the domain ``""`` (every request, whatever its label)."""
        m = len(models)
        return cls(
            models,
            [""],
            np.zeros((1, m, len(TARGETS))),
            np.zeros((1, m)),
            0,
            0,
            new_rng_state(seed),
        )

    def row(self, domain: str) -> int:
        """The row of ``domain``, added (empty) if new."""
        if domain not in self.domains:
            self.domains.append(domain)
            m = len(self.models)
            self.values = np.concatenate([self.values, np.zeros((1, m, len(TARGETS)))])
            self.counts = np.concatenate([self.counts, np.zeros((1, m))])
        return self.domains.index(domain)

    def to_dict(self) -> JSON:
        return {
            "format": FORMAT,
            "kind": "ema",
            "models": list(self.models),
            "targets": list(TARGETS),
            "domains": list(self.domains),
            "values": _array_json(self.values),
            "counts": _array_json(self.counts),
            "chosen": self.chosen,
            "explored": self.explored,
            "rng": self.rng,
        }

    @classmethod
    def from_dict(cls, obj: Any, where: str = "EMA router state") -> EMAState:
        models, chosen, explored, rng = _header(obj, "ema", where)
        domains = obj.get("domains")
        if not isinstance(domains, list) or not domains or domains[0] != "":
            raise ConfigError(f"{where}: field 'domains' must be a list of labels starting with ''")
        if not all(isinstance(d, str) for d in domains):
            raise ConfigError(f"{where}: field 'domains' must be a list of strings")
        k, m = len(domains), len(models)
        values = _array(obj, "values", (k, m, len(TARGETS)), where)
        counts = _array(obj, "counts", (k, m), where)
        return cls(models, list(domains), values, counts, chosen, explored, rng)
