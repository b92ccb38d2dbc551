"""The learned-router contract, the shared chooser and the prompt-only cost estimator.

A learned router follows the scikit-learn contract::

    router = KNNRouter(k=20)            # __init__ stores hyperparameters only
    router.fit(dataset)                  # -> self; sets trailing-underscore attributes
    q = router.predict(prompts)          # [n_prompts x n_models] predicted quality in [0, 1]
    c = router.estimate_costs(prompts)   # [n_prompts x n_models] estimated USD (prompt only)
    picks = choose(q, c, willingness_to_pay=1e-3, max_cost_usd=None, allowed=None)

``predict`` before ``fit`` raises :class:`polyroute.errors.NotFittedError`.
``predict_dataset(ds)`` equals ``predict(ds.prompts)`` for every router except
the oracle baseline, which reads the scores of the rows it is judged on.

Artifacts (``polyroute.routers.artifact``) persist a router through
``get_params()`` (JSON hyperparameters), ``_get_state()`` (JSON metadata + numpy
arrays) and ``_set_state(state)``; subclasses implement the last two.
``_set_state`` takes every array with its expected shape from a
:class:`~polyroute.routers._artifact_state.SavedState`, so a junk artifact fails
at load; ``_probe()`` is the one prediction the loader makes to prove it works.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from polyroute import curves
from polyroute.dataset import Matrix, RoutingDataset
from polyroute.errors import ConfigError, NotFittedError
from polyroute.routers.shrink import Shrinkage

if TYPE_CHECKING:
    from polyroute.routers._artifact_state import SavedState

Arrays = dict[str, npt.NDArray[Any]]
#: up to this many prompts (a request, or the gateway's micro-batch) BLAS runs on one thread
_SMALL_BATCH = 64
JSONDict = dict[str, Any]


class CostModel:
    """Per-model cost linear in prompt length: ``cost = a_m + b_m * chars`` (least squares)."""

    def __init__(self, intercept: npt.NDArray[Any], slope: npt.NDArray[Any]) -> None:
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.slope = np.asarray(slope, dtype=np.float64)

    @classmethod
    def fit(cls, dataset: RoutingDataset) -> CostModel:
        chars = np.array([len(p) for p in dataset.prompts], dtype=np.float64)
        design = np.stack([np.ones_like(chars), chars], axis=1)
        coef, *_ = np.linalg.lstsq(design, dataset.costs, rcond=None)
        return cls(np.maximum(coef[0], 0.0), np.maximum(coef[1], 0.0))

    def predict(self, prompts: Sequence[str]) -> Matrix:
        chars = np.array([len(p) for p in prompts], dtype=np.float64)
        return self.intercept[None, :] + chars[:, None] * self.slope[None, :]


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return None
    return ThreadpoolController()


def _blas_limit(n_prompts: int) -> AbstractContextManager[Any]:
    """One BLAS thread for request-sized batches: on a busy machine threads only contend."""
    controller = _blas_controller() if n_prompts <= _SMALL_BATCH else None
    if controller is None:
        return nullcontext()
    return controller.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def choose(
    quality: Matrix,
    costs: Matrix,
    willingness_to_pay: float = math.inf,
    max_cost_usd: float | None = None,
    allowed: npt.NDArray[np.bool_] | Sequence[bool] | None = None,
) -> npt.NDArray[np.intp]:
    """Per row, the column maximising ``quality - cost / w`` under the constraints.

    The gateway's chooser; it is :func:`polyroute.curves.choose` (the one the workbench's
    curves report) with ``lam = 1 / w``, plus the constraints.  ``w = inf`` means pure
    quality; ties go to the cheaper model, then the lower column.  ``allowed`` masks
    columns; ``max_cost_usd`` drops models whose cost exceeds it.  If a row has no
    feasible model, the cheapest allowed one is chosen.
    """
    if willingness_to_pay <= 0:
        raise ConfigError(f"willingness_to_pay must be > 0, got {willingness_to_pay}")
    mask = np.ones(quality.shape, dtype=bool)
    if allowed is not None:
        mask &= np.asarray(allowed, dtype=bool)[None, :]
        if not mask.any():
            raise ConfigError("choose: 'allowed' excludes every model")
    feasible = mask if max_cost_usd is None else mask & (costs <= max_cost_usd)
    lam = 0.0 if math.isinf(willingness_to_pay) else 1.0 / willingness_to_pay
    picks = curves.choose(quality, costs, lam, None if feasible.all() else feasible)
    none = ~feasible.any(axis=1)
    if none.any():
        cheapest = np.argmin(np.where(mask, costs, np.inf), axis=1)
        picks = np.where(none, cheapest, picks)
    return np.asarray(picks, dtype=np.intp)


class LearnedRouter(ABC):
    """Base of every learned router (see the module docstring for the contract)."""

    #: the default encoder id, or ``None`` for routers that read no text
    needs_text: ClassVar[bool] = True

    models_: tuple[str, ...]
    cost_model_: CostModel
    #: departures from each model's mean that are noise (``auto`` sets it; see ``shrink``)
    shrinkage_: Shrinkage | None = None

    def get_params(self) -> JSONDict:
        """Hyperparameters, read back from the attributes ``__init__`` stored (JSON-able)."""
        sig = inspect.signature(type(self).__init__)
        keep = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names = [n for n, p in sig.parameters.items() if n != "self" and p.kind in keep]
        return {n: getattr(self, n) for n in names}

    def set_params(self, **params: Any) -> Self:
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def fit(self, dataset: RoutingDataset) -> Self:
        if len(dataset) < 2:
            raise ConfigError(
                f"{type(self).__name__}.fit: need at least 2 rows, got {len(dataset)}"
            )
        self.models_ = tuple(dataset.models)
        self.cost_model_ = CostModel.fit(dataset)
        self._fit(dataset)
        return self

    def predict(self, prompts: Sequence[str]) -> Matrix:
        self._check_fitted()
        if len(prompts) == 0:
            return np.zeros((0, len(self.models_)))
        with _blas_limit(len(prompts)):
            out = self._predict(list(prompts))
        if self.shrinkage_ is not None:
            out = self.shrinkage_.apply(out)
        return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)

    def predict_dataset(self, dataset: RoutingDataset) -> Matrix:
        return self.predict(dataset.prompts)

    def estimate_costs(self, prompts: Sequence[str]) -> Matrix:
        self._check_fitted()
        return self.cost_model_.predict(prompts)

    def is_fitted(self) -> bool:
        return hasattr(self, "models_")

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(dataset) first")

    @abstractmethod
    def _fit(self, dataset: RoutingDataset) -> None: ...

    @abstractmethod
    def _predict(self, prompts: list[str]) -> Matrix: ...

    @abstractmethod
    def _get_state(self) -> tuple[JSONDict, Arrays]:
        """Fitted state beyond ``models_`` and ``cost_model_``: JSON metadata and arrays."""

    @abstractmethod
    def _set_state(self, state: SavedState) -> None:
        """Restore the fitted state, taking each array with its expected shape from ``state``."""

    def _probe(self) -> Matrix:
        """Raw predictions for one neutral input (the loader's check that the state works)."""
        return self._predict(["probe"])


def validate_params(cls: type, params: dict[str, Any], where: str) -> dict[str, Any]:
    """Check ``params`` against ``cls.__init__``'s names and annotations (pydantic, lax).

    ``knn:k=abc`` becomes a ConfigError naming the hyperparameter and the expected
    type, instead of a crash deep inside ``fit``.
    """
    import inspect
    import typing

    from pydantic import TypeAdapter, ValidationError

    sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    names = [n for n in sig.parameters if n != "self"]
    try:
        hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except (NameError, TypeError):
        hints = {}
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in names:
            raise ConfigError(
                f"{where}: bad hyperparameters: unknown hyperparameter {name!r} for "
                f"{cls.__name__}; expected one of {', '.join(names)}"
            )
        hint = hints.get(name)
        if hint is None:
            out[name] = value
            continue
        try:
            out[name] = TypeAdapter(hint).validate_python(value)
        except ValidationError:
            shown = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise ConfigError(
                f"{where}: bad hyperparameters: {name}={value!r}: expected {shown}"
            ) from None
    return out
