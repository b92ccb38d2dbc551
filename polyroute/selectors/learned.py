"""The gateway adapter: a trained router artifact as a :class:`polyroute.types.Selector`.

Config: ``select: {router: PATH, willingness_to_pay: W}`` (or
``target_cost_fraction: F`` — pick W from the calibration table the artifact
stores — and/or ``max_cost_usd: C``).  The artifact and its encoder load once,
in ``__init__`` (MiniLM on ONNX Runtime, without torch, no disk cache).

Batching: in the gateway (``aorder``) concurrent requests share one
``router.predict(prompts)`` call in a worker thread
(:class:`~polyroute.batching.MicroBatcher`): ``batch_workers`` (default 1)
batches run at once, each of at most ``max_batch`` (32) prompts; while they run,
new requests queue and form the next batch, and an idle batcher waits
``batch_window_ms`` (default 0) for company.  ``order`` (library, CLI, huge
requests routed in a thread) predicts its one prompt directly.

Ordering: candidates the artifact knows are sorted by utility
``predicted_quality - estimated_cost / W`` (W unset = pure quality), those over
``max_cost_usd`` after the rest and open circuits last; candidates the artifact
does not know follow,
in config order.  One :class:`~polyroute.types.Estimate` per candidate goes to
``trace.estimates`` (costs from the backend's prices).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from polyroute import curves
from polyroute.batching import MicroBatcher
from polyroute.errors import ConfigError
from polyroute.routers.artifact import load_serving_router, read_manifest
from polyroute.types import Estimate, Request, Trace

if TYPE_CHECKING:
    from polyroute.backends.backend import Backend

# what a trained router reads of a prompt (its encoders read far less: MiniLM 256 tokens)
ROUTER_TEXT_MAX_CHARS = 64 * 1024
#: the largest batch one predict call may take (base.py keeps BLAS on one thread up to it)
MAX_BATCH = 64


def w_for_cost_fraction(table: Sequence[Any], target: float, where: str) -> float:
    """The calibrated W of highest quality whose cost fraction stays within ``target``
    (:func:`polyroute.curves.pick_within_cost`, the rule of ``polyroute calibrate``);
    for a table without qualities, the largest such W.  None within: the smallest W."""
    rows = _calibration(table, where)
    if not rows:
        raise ConfigError(
            f"{where}: the artifact has no calibration table; set willingness_to_pay instead "
            "(or find one with 'polyroute calibrate')"
        )
    w = np.array([r[0] for r in rows])
    fraction = np.array([r[1] for r in rows])
    quality = np.array([w_ if q is None else q for w_, _, q in rows])
    pick = curves.pick_within_cost(fraction, quality, w, target)
    return float(w[pick]) if pick is not None else float(w.min())


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _calibration(table: Any, where: str) -> list[tuple[float, float, float | None]]:
    """``(w, cost_fraction, quality)`` rows of the manifest's ``info.calibration`` (w may be
    infinite; quality is None in tables written before it was recorded)."""
    if not isinstance(table, list):
        raise ConfigError(f"{where}: info.calibration must be a list, got {type(table).__name__}")
    rows = []
    for i, row in enumerate(table):
        w = _number(row.get("w")) if isinstance(row, dict) else None
        fraction = _number(row.get("cost_fraction")) if isinstance(row, dict) else None
        quality = _number(row.get("quality")) if isinstance(row, dict) else None
        has_quality = isinstance(row, dict) and "quality" in row
        if (
            w is None
            or fraction is None
            or not w > 0
            or math.isinf(fraction)
            or (has_quality and (quality is None or math.isinf(quality)))
        ):
            raise ConfigError(
                f"{where}: info.calibration[{i}] must be "
                f'{{"w": number > 0, "cost_fraction": number, "quality": number (optional)}}, '
                f"got {str(row)[:80]}"
            )
        rows.append((w, fraction, quality))
    return rows


class LearnedSelector:
    """Orders candidates by a trained router's predicted utility (see the module docstring)."""

    #: the sync ``order`` is CPU-bound (milliseconds): run it in a worker thread.  The
    #: engine's event-loop path awaits ``aorder`` instead, which batches concurrent requests
    blocking = True

    def __init__(
        self,
        router: str,
        willingness_to_pay: float | None = None,
        target_cost_fraction: float | None = None,
        max_cost_usd: float | None = None,
        *,
        batch_window_ms: float = 0.0,
        max_batch: int = 32,
        batch_workers: int = 1,
    ) -> None:
        path = Path(router)
        where = f"select.router {path}"
        if not path.is_dir():
            raise ConfigError(f"{where}: no such router artifact directory")
        try:
            manifest = read_manifest(path)
            self.router = load_serving_router(path)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
        if willingness_to_pay is not None and not willingness_to_pay > 0:
            raise ConfigError(f"{where}: willingness_to_pay must be > 0")
        if target_cost_fraction is not None and not target_cost_fraction > 0:
            raise ConfigError(f"{where}: target_cost_fraction must be > 0")
        if not 0 <= batch_window_ms <= 1000:
            raise ConfigError(f"{where}: batch_window_ms must be in [0, 1000]")
        if not 1 <= max_batch <= MAX_BATCH or not 1 <= batch_workers <= 64:
            raise ConfigError(
                f"{where}: max_batch must be in [1, {MAX_BATCH}] and batch_workers in [1, 64]"
            )
        if willingness_to_pay is not None:
            self.w = float(willingness_to_pay)
        elif target_cost_fraction is not None:
            table = manifest.get("info", {}).get("calibration", [])
            self.w = w_for_cost_fraction(table, target_cost_fraction, where)
        else:
            self.w = math.inf
        self.max_cost_usd = max_cost_usd
        self.path = path
        self._column = {m: i for i, m in enumerate(self.router.models_)}
        self.router.predict(["warm up"])  # load the encoder now, not on the first request
        self._batcher = MicroBatcher(
            self.router.predict,
            max_batch=max_batch,
            window_s=batch_window_ms / 1000,
            workers=batch_workers,
            name=f"learned router {path.name!r}",
        )

    def order(self, candidates: Sequence[Backend], request: Request, trace: Trace) -> list[Backend]:
        """The library's and the CLI's path: one ``predict`` for this request alone."""
        row = None
        if any(b.name in self._column for b in candidates):
            row = self.router.predict([self._prompt(request)])[0]
        return self._rank(candidates, request, trace, row)

    async def aorder(
        self, candidates: Sequence[Backend], request: Request, trace: Trace
    ) -> list[Backend]:
        """The gateway's path: this request's prediction shares a batch with concurrent ones."""
        row = None
        if any(b.name in self._column for b in candidates):
            row = await self._batcher.predict(self._prompt(request))
        return self._rank(candidates, request, trace, row)

    @staticmethod
    def _prompt(request: Request) -> str:
        # bounded like the text signals: a 4 MB prompt must not cost an unbounded encode
        return request.bounded("prompt", ROUTER_TEXT_MAX_CHARS)

    def _rank(
        self,
        candidates: Sequence[Backend],
        request: Request,
        trace: Trace,
        row: npt.NDArray[np.float64] | None,
    ) -> list[Backend]:
        known = [b for b in candidates if b.name in self._column]
        unknown = [b for b in candidates if b.name not in self._column]
        costs = {b.name: b.estimate_cost(request) for b in candidates}
        quality: dict[str, float] = {}
        if known and row is not None:
            quality = {b.name: float(row[self._column[b.name]]) for b in known}
        for b in candidates:
            trace.estimates.append(Estimate(b.name, costs[b.name], quality.get(b.name)))

        w = self.w * trace.budget_scale  # a steering budget scales it (polyroute.budget)
        trace.willingness_to_pay = None if math.isinf(w) else w
        lam = 0.0 if math.isinf(w) else 1.0 / w

        def key(b: Backend) -> tuple[bool, bool, float, float]:
            # polyroute.curves.choose's order: utility, then the cheaper, then config order
            over = self.max_cost_usd is not None and costs[b.name] > self.max_cost_usd
            c = costs[b.name]
            return not b.available(), over, lam * c - quality[b.name], c

        return sorted(known, key=key) + unknown
