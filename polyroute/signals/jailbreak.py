"""``jailbreak``: the probability (0..1) that the user turns are a prompt injection.

A linear model over an encoder's vectors (see ``polyroute.signals.textmodel``; the
shipped default reads hashed word and character n-grams, ``polyroute.embed_ngram``, and
is trained on the S-Labs prompt-injection data; ``variant: fast`` is the earlier one on
the ``static`` encoder).  Used bare in a
rule (``when: jailbreak``) it fires when the probability reaches ``threshold``
(default: the model's, calibrated for a 3 % false-positive rate on benign prompts);
``{signal: jailbreak, ge: 0.9}`` compares the probability itself.  All user messages
are read (bounded by ``server.signal_text_max_chars``).
"""

from __future__ import annotations

from polyroute.embed import Encoder
from polyroute.signals.neural import ModelSignal
from polyroute.types import Request, SignalValue, bound_text


class JailbreakSignal(ModelSignal):
    kind = "jailbreak"

    def encoder_texts(self, request: Request) -> tuple[str, ...]:
        return (bound_text(request.user_text, self.text_max_chars),)

    def evaluate(self, encoder: Encoder, request: Request) -> SignalValue:
        text = self.encoder_texts(request)[0]
        score = self._finite(self.model.scores(encoder.encode([text]))[0])
        return round(score, 6)

    def fires(self, value: SignalValue) -> bool:
        return isinstance(value, float) and value >= self.threshold
