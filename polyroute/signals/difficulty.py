"""``difficulty``: how hard a prompt is, read from a trained router artifact.

    signals:
      hard: {type: difficulty, router: router/}                  # the best predicted quality
      split: {type: difficulty, router: router/, measure: spread} # best minus worst

The artifact (``polyroute train --out DIR``) predicts each model's quality for the
prompt.  ``best`` is the highest predicted quality (low: no model is likely to do
well, a hard prompt); ``spread`` is the best minus the worst (high: the choice of
model matters).  Compare it with ``lt`` / ``gt`` in rules.  The artifact loads when
the config is built, so a missing or corrupt one is a config error naming it; a
failure per request is unknown (``None``), never a failed request.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Literal

from polyroute.errors import ConfigError
from polyroute.routers.artifact import load_serving_router
from polyroute.selectors.learned import ROUTER_TEXT_MAX_CHARS
from polyroute.signals.base import BaseSignal, SignalOptions
from polyroute.types import Request, SignalValue

_LOG = logging.getLogger("polyroute.signals")


class DifficultyOptions(SignalOptions):
    router: str
    measure: Literal["best", "spread"] = "best"


class DifficultySignal(BaseSignal):
    Options = DifficultyOptions
    options: DifficultyOptions
    #: the router encodes the prompt (MiniLM: milliseconds): computed off the event loop
    blocking = True

    def setup(self) -> None:
        path = Path(self.options.router)
        if not path.is_dir():
            raise ConfigError(f"{self.where}.router: {path}: no such router artifact directory")
        try:
            self.router = load_serving_router(path)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}.router: {exc.message}") from None

    def warmup(self) -> None:
        self.router.predict(["warm up"])

    def compute(self, request: Request) -> SignalValue:
        try:
            row = self.router.predict([request.bounded("prompt", ROUTER_TEXT_MAX_CHARS)])[0]
            best, worst = float(row.max()), float(row.min())
            value = best if self.options.measure == "best" else best - worst
            if not math.isfinite(value):
                raise ValueError(f"the router predicted {value}")
            return round(value, 6)
        except Exception as exc:  # a failing signal is unknown, never a failed request
            _LOG.warning("signal %s failed: %s: %s", self.name, type(exc).__name__, exc)
            return None
