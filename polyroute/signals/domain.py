"""``domain``: the topic of the prompt, one of the model's labels or ``out_of_scope``.

The shipped default knows CLINC150's ten domains (banking, credit_cards, kitchen_and_dining,
home, auto_and_commute, travel, utility, work, small_talk, meta); it runs MiniLM (ONNX
Runtime, ~9 ms per prompt, off the event loop).  A prompt whose confidence (the best
domain's probability mixed with its cosine to the nearest intent centroid, see
``polyroute.signals.textmodel``) is below ``threshold`` (default: the model's, calibrated
by cross-validation) is ``out_of_scope``.  ``model: DIR`` loads one trained with
``polyroute train-signal domain``.  In a rule: ``{signal: domain, in: [banking, ...]}``;
used bare it fires for any in-scope domain.  Reads the last user message.
"""

from __future__ import annotations

from polyroute.embed import Encoder
from polyroute.signals.neural import ModelSignal
from polyroute.signals.textmodel import OUT_OF_SCOPE
from polyroute.types import Request, SignalValue


class DomainSignal(ModelSignal):
    kind = "domain"

    def evaluate(self, encoder: Encoder, request: Request) -> SignalValue:
        text = self.read_text(request, "prompt")
        return self.model.predict_labels(encoder.encode([text]), self.threshold)[0]

    def fires(self, value: SignalValue) -> bool:
        return isinstance(value, str) and value != OUT_OF_SCOPE
