"""Shrinkage of predicted qualities toward each model's mean: depart only beyond the noise.

A learned router predicts, per prompt, each model's quality.  Where a prediction
differs from the model's mean quality by less than the typical error of such
departures, acting on it is acting on noise: the chooser would leave the model
that is best on average for no real gain.  :class:`Shrinkage` soft-thresholds
every departure, ``mean + sign(d) * max(|d| - tau, 0)`` with ``d = predicted -
mean``, so a prompt moves away from the single-model choice only where the
predicted difference exceeds ``tau`` (per model).  ``tau = 0`` is the identity.

``auto`` chooses ``tau`` (a multiple of the spread of its out-of-fold departures)
by cross-validation, over row folds and held-out tasks; every learned router
applies the shrinkage it carries in :meth:`LearnedRouter.predict`, and an
artifact saves it as the arrays ``shrink/mean`` and ``shrink/tau``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Shrinkage:
    """Soft threshold of the departures from ``mean`` by ``tau`` (both per model)."""

    mean: F64
    tau: F64

    def apply(self, predicted: npt.NDArray[np.float64], mean: F64 | None = None) -> F64:
        """``predicted`` with departures from ``mean`` (default: the fitted one) cut by ``tau``."""
        centre = self.mean if mean is None else mean
        d = np.asarray(predicted, dtype=np.float64) - centre
        return np.asarray(centre + np.sign(d) * np.maximum(np.abs(d) - self.tau, 0.0))
