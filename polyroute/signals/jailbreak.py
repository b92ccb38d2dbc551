"""``jailbreak``: the probability (0..1) that the user turns are a prompt injection.

The shipped default is a linear model over hashed word and character n-grams
(``polyroute.embed_ngram``, ~0.5 ms), trained on the S-Labs prompt-injection data plus
benign look-alike prompts and terse ordinary queries. ``variant: cascade``
(``polyroute.signals.jailbreak_cascade``) lets that model answer the prompts it is sure
of and sends only the uncertain band (2-3 % of injection-set prompts, about 10-12 % of
unrelated ones) also to MiniLM (ONNX Runtime, off the event loop, micro-batched, its
vector shared with the ``domain`` signal through the request); without MiniLM the n-gram
stage answers alone. It catches slightly more jailbreaks at about a third less gateway
throughput (BENCHMARKS.md), so it is not the default. ``variant: finetuned`` is a
fine-tuned MiniLM graph (the most accurate, ~8 ms a prompt, a longer one read in up to 8
windows); ``variant: gated`` puts the default and the ``static`` model in front of it
(``train-signal jailbreak --stages ... --key``: only prompts both are unsure of reach
the graph, and none under 4 words).
``variant: fast`` is an earlier model on the ``static`` encoder; ``model: DIR``
loads one trained with ``polyroute train-signal jailbreak`` (a single model or a cascade).
Used bare in a rule (``when: jailbreak``) it fires when the probability reaches
``threshold`` (default: the model's, calibrated for a 3 % false-positive rate on benign
prompts); ``{signal: jailbreak, ge: 0.9}`` compares the probability itself.  All user
messages are read (bounded by ``server.signal_text_max_chars``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from polyroute.embed import Encoder
from polyroute.signals.cascade import is_cascade
from polyroute.signals.jailbreak_cascade import JailbreakCascade, load_jailbreak_cascade
from polyroute.signals.neural import StagedSignal, embed_memo, model_encoder
from polyroute.signals.textmodel import TextModel
from polyroute.types import Request, SignalValue, bound_text

_LOG = logging.getLogger("polyroute.signals")


class JailbreakSignal(StagedSignal):
    kind = "jailbreak"
    #: the two stages when the model is a cascade (``self.model`` is then the accurate one,
    #: carrying the cascade's threshold)
    cascade: JailbreakCascade | None = None
    #: the encoder of the cascade's second key, if it has one
    key_encoder: Encoder | None = None

    def load_model(self, path: Path) -> TextModel:
        if is_cascade(path):
            self.cascade = load_jailbreak_cascade(path)
            return replace(self.cascade.accurate, threshold=self.cascade.threshold)
        return super().load_model(path)

    def fast_stage(self) -> TextModel | None:
        return None if self.cascade is None else self.cascade.fast

    def load_encoder(self) -> Encoder:
        encoder = super().load_encoder()
        if self.cascade is not None and self.cascade.key is not None and not self.alone:
            try:
                self.key_encoder = model_encoder(self.cascade.key, self.where)
            except Exception as exc:  # no key: every in-band prompt goes on, slower not laxer
                _LOG.warning("signal %s: the second key cannot load (%s: %s); the gate alone "
                             "sends prompts on", self.name, type(exc).__name__, exc)  # fmt: skip
        return encoder

    def encoder_texts(self, request: Request) -> tuple[str, ...]:
        text = bound_text(request.user_text, self.text_max_chars)
        cascade = self.cascade
        if cascade is None or self.alone:
            return (text,)
        if cascade.short(text) or cascade.sure(self._fast(request, text), text):
            return ()  # the fast stage settles it: nothing for the accurate encoder to batch
        if self._cleared(request, text):
            return ()  # so does the second key
        return (text,)

    def evaluate(self, encoder: Encoder, request: Request) -> SignalValue:
        text = bound_text(request.user_text, self.text_max_chars)
        if self.cascade is None:
            return round(self._finite(self.model.scores(encoder.encode([text]))[0]), 6)
        p = self._fast(request, text)
        if self.cascade.sure(p, text):
            return round(self._finite(p), 6)
        if self.cascade.short(text):  # under the word floor: the fast stage's alone
            return round(self._finite(self.cascade.fast_alone(p)), 6)
        if not self.alone and self._cleared(request, text):
            return round(self._finite(self.cascade.cleared(p)), 6)
        if not self.alone:
            try:
                q = float(self.cascade.accurate.scores(encoder.encode([text]))[0])
                return round(self._finite(self.cascade.combine(p, q)), 6)
            except Exception as exc:
                _LOG.warning("signal %s: the accurate stage failed (%s: %s); fast stage answers",
                             self.name, type(exc).__name__, exc)  # fmt: skip
        return round(self._finite(self.cascade.fast_alone(p)), 6)

    def _fast(self, request: Request, text: str) -> float:
        """The cascade's fast-stage probability (its vector shared through the request)."""
        assert self.cascade is not None and self.fast_encoder is not None
        return float(self.cascade.fast.scores(embed_memo(request, self.fast_encoder, text))[0])

    def _cleared(self, request: Request, text: str) -> bool:
        """Whether the second key (if any) clears this in-band prompt."""
        cascade, encoder = self.cascade, self.key_encoder
        if cascade is None or cascade.key is None or encoder is None:
            return False
        try:
            s = float(cascade.key.scores(embed_memo(request, encoder, text))[0])
        except Exception as exc:  # the accurate stage decides instead: slower, never laxer
            _LOG.warning("signal %s: the second key failed (%s: %s)", self.name,
                         type(exc).__name__, exc)  # fmt: skip
            return False
        return cascade.key_clears(s)

    def fires(self, value: SignalValue) -> bool:
        return isinstance(value, float) and value >= self.threshold
