"""``domain``: the topic of the prompt, one of the model's labels or ``out_of_scope``.

The shipped default knows CLINC150's ten domains (banking, credit_cards, kitchen_and_dining,
home, auto_and_commute, travel, utility, work, small_talk, meta).  It is a cascade
(``polyroute.signals.cascade``): a model on the static encoder (~0.2 ms) answers the
prompts it is sure of, and only the uncertain ones pay for MiniLM (ONNX Runtime, 6-36 ms,
off the event loop; prompts of more than twice the longest training prompt's words are
left to the static stage); without MiniLM the static stage answers alone.  ``variant: fast``
is the static model alone, ``variant: accurate`` MiniLM alone.  A prompt whose confidence
(the best domain's probability mixed with its cosine to the nearest intent centroid, see
``polyroute.signals.textmodel``) is below ``threshold`` (default: the model's, calibrated
by cross-validation; for a cascade, the threshold of the stage that answers) is
``out_of_scope``.  ``model: DIR`` loads one trained with ``polyroute train-signal domain``.
In a rule: ``{signal: domain, in: [banking, ...]}``; used bare it fires for any in-scope
domain.  Reads the last user message.
"""

from __future__ import annotations

import logging
from pathlib import Path

from polyroute.embed import Encoder
from polyroute.signals.cascade import Cascade, is_cascade, load_cascade
from polyroute.signals.neural import StagedSignal, embed_memo
from polyroute.signals.textmodel import OUT_OF_SCOPE, TextModel
from polyroute.types import Request, SignalValue

_LOG = logging.getLogger("polyroute.signals")


class DomainSignal(StagedSignal):
    kind = "domain"
    #: the two stages when the model is a cascade (``self.model`` is then the accurate one)
    cascade: Cascade | None = None

    def load_model(self, path: Path) -> TextModel:
        if is_cascade(path):
            self.cascade = load_cascade(path)
            return self.cascade.accurate
        return super().load_model(path)

    def fast_stage(self) -> TextModel | None:
        return None if self.cascade is None else self.cascade.fast

    def encoder_texts(self, request: Request) -> tuple[str, ...]:
        text = self.read_text(request, "prompt")
        if self.cascade is not None and not self.alone and self._fast(request, text) is not None:
            return ()  # the fast stage is sure: nothing for the accurate encoder to batch
        return (text,)

    def evaluate(self, encoder: Encoder, request: Request) -> SignalValue:
        text = self.read_text(request, "prompt")
        if self.cascade is None:
            return self.model.predict_labels(encoder.encode([text]), self.threshold)[0]
        label = self._fast(request, text)
        if label is not None:
            return label
        if not self.alone:
            try:
                return self.model.predict_labels(encoder.encode([text]), self.threshold)[0]
            except Exception as exc:
                _LOG.warning("signal %s: the accurate stage failed (%s: %s); fast stage answers",
                             self.name, type(exc).__name__, exc)  # fmt: skip
        fast = self.cascade.fast
        cut = fast.threshold if self.options.threshold is None else self.options.threshold
        assert self.fast_encoder is not None
        return fast.predict_labels(embed_memo(request, self.fast_encoder, text), cut)[0]

    def _fast(self, request: Request, text: str) -> str | None:
        """The cascade's fast-stage label, or None when the accurate stage should answer."""
        assert self.cascade is not None and self.fast_encoder is not None
        x = embed_memo(request, self.fast_encoder, text)
        return self.cascade.fast_labels(x, [text], self.options.threshold)[0]

    def fires(self, value: SignalValue) -> bool:
        return isinstance(value, str) and value != OUT_OF_SCOPE
