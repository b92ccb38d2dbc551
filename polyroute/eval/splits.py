"""How ``polyroute eval`` splits rows: k folds, repeated k folds, folds over groups.

One splitter underlies them all: the seeded permutation split of
:func:`polyroute.routers.learned._optim.kfold_indices`, the one the learned
routers use for their inner cross-validation.

- ``--cv K``: the rows are permuted with the seed and cut into K folds.
- ``--repeat N``: repeat ``r`` (0-based) is that split with seed ``seed + r``
  (scikit-learn's ``RepeatedKFold``; repeat 0 is the plain ``--cv K`` split).
- ``--group-by FIELD``: leave one group out (scikit-learn's ``LeaveOneGroupOut``,
  groups in sorted order); with ``--cv K``, or past :data:`MAX_GROUPS` groups,
  the *groups* are permuted and cut into K folds by the same splitter
  (scikit-learn's ``GroupKFold(shuffle=True)``), so no group is ever on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from polyroute.errors import ConfigError
from polyroute.eval.metrics import Ints
from polyroute.routers.learned._optim import group_kfold_indices, kfold_indices

MAX_GROUPS = 20
LOGO = "leave-one-group-out"
GROUP_KFOLD = "group-k-fold"
KFOLD = "k-fold"


@dataclass(frozen=True)
class Fold:
    """Row indices to fit on and to judge (both sorted); ``label`` names the held-out part."""

    train: Ints
    test: Ints
    label: str


@dataclass(frozen=True)
class Scheme:
    """Every split of one evaluation: ``rounds[r]`` is repeat ``r``, a partition of the rows."""

    kind: str  # KFOLD, LOGO or GROUP_KFOLD
    rounds: tuple[tuple[Fold, ...], ...]
    seeds: tuple[int, ...]
    note: str = ""  # why the scheme differs from what was asked (too many groups)

    @property
    def fits(self) -> int:
        """Number of (fit, predict) steps per router."""
        return sum(len(r) for r in self.rounds)


def folds(n: int, k: int, seed: int) -> list[Ints]:
    """``k`` disjoint test-row index sets covering ``range(n)`` (seeded permutation)."""
    return [f.test for f in kfold(n, k, seed)]


def kfold(n: int, k: int, seed: int) -> list[Fold]:
    """The K folds of ``range(n)`` for one seed (raises ConfigError unless 2 <= K <= n)."""
    if k < 2 or k > n:
        raise ConfigError(f"--cv: expected 2 <= K <= {n} (number of rows), got {k}")
    return [
        Fold(train, test, f"fold {i + 1}/{k}")
        for i, (train, test) in enumerate(kfold_indices(n, k, seed))
    ]


def group_folds(
    groups: Sequence[str], k: int | None, seed: int, field: str = "group"
) -> list[Fold]:
    """Leave each group out (``k=None``), or K folds over the shuffled groups."""
    labels = np.asarray(groups, dtype=object)
    names = sorted(set(groups))
    if len(names) < 2:
        only = repr(names[0]) if names else "none"
        raise ConfigError(f"--group-by {field}: one group only ({only}); need at least 2")
    if k is None:
        return [_held_out(labels, [g], f"{field}={g}") for g in names]
    if k < 2 or k > len(names):
        raise ConfigError(
            f"--cv with --group-by {field}: expected 2 <= K <= {len(names)} "
            f"(number of groups), got {k}"
        )
    return [
        Fold(train, test, f"fold {i + 1}/{k}")
        for i, (train, test) in enumerate(group_kfold_indices(groups, k, seed))
    ]


def _held_out(labels: npt.NDArray[np.object_], held: list[str], label: str) -> Fold:
    mask = np.isin(labels, np.asarray(held, dtype=object))
    return Fold(np.flatnonzero(~mask).astype(np.intp), np.flatnonzero(mask).astype(np.intp), label)


def scheme(
    n: int,
    cv: int | None,
    repeats: int,
    seed: int,
    *,
    groups: Sequence[str] | None = None,
    field: str = "group",
) -> Scheme:
    """The splits for ``--cv``/``--repeat``/``--group-by`` (``cv=None``: 5, or one per group)."""
    if repeats < 1:
        raise ConfigError(f"--repeat: expected >= 1, got {repeats}")
    seeds = tuple(seed + r for r in range(repeats))
    if groups is None:
        k = 5 if cv is None else cv
        return Scheme(KFOLD, tuple(tuple(kfold(n, k, s)) for s in seeds), seeds)
    if len(groups) != n:
        raise ConfigError(f"--group-by {field}: {len(groups)} labels for {n} rows")
    n_groups = len(set(groups))
    note = ""
    if cv is None and n_groups > MAX_GROUPS:
        cv = 5
        note = (
            f"{n_groups} groups of {field} (more than {MAX_GROUPS}): "
            f"{cv} folds over shuffled groups instead of leaving each group out"
        )
    if cv is None:
        if repeats > 1:
            raise ConfigError(
                f"--repeat {repeats}: leaving one group out has a single split; "
                "add --cv K to cut the groups into K shuffled folds that --repeat can redraw"
            )
        return Scheme(LOGO, (tuple(group_folds(groups, None, seed, field)),), (seed,))
    rounds = tuple(tuple(group_folds(groups, cv, s, field)) for s in seeds)
    return Scheme(GROUP_KFOLD, rounds, seeds, note)
