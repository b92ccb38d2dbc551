"""``domain``: the topic of the prompt, one of the model's labels or ``out_of_scope``.

The shipped default knows CLINC150's ten domains (banking, credit_cards, kitchen_and_dining,
home, auto_and_commute, travel, utility, work, small_talk, meta); a prompt whose best
domain probability is below ``threshold`` (default: the model's, calibrated by
cross-validation) is ``out_of_scope``.  ``model: DIR`` loads one trained with
``polyroute train-signal domain``.  In a rule: ``{signal: domain, in: [banking, ...]}``;
used bare it fires for any in-scope domain.  Reads the last user message.
"""

from __future__ import annotations

from pydantic import Field

from polyroute.embed import Encoder
from polyroute.signals.neural import ModelOptions, ModelSignal
from polyroute.signals.textmodel import OUT_OF_SCOPE
from polyroute.types import Request, SignalValue


class DomainOptions(ModelOptions):
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class DomainSignal(ModelSignal):
    kind = "domain"
    Options = DomainOptions
    options: DomainOptions

    def setup(self) -> None:
        super().setup()
        chosen = self.options.threshold
        self.threshold = self.model.threshold if chosen is None else chosen

    def evaluate(self, encoder: Encoder, request: Request) -> SignalValue:
        text = self.read_text(request, "prompt")
        return self.model.predict_labels(encoder.encode([text]), self.threshold)[0]

    def fires(self, value: SignalValue) -> bool:
        return isinstance(value, str) and value != OUT_OF_SCOPE
